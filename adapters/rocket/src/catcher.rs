//! Catchers that render the rejection a guard or the fairing recorded.
//!
//! Rocket guards can fail only with a status; headers and body come from the catcher of that
//! status. A refusal therefore records its [`Rejection`] in request-local state, and the
//! catcher renders it exactly as the core built it. A catcher that finds no rejection, or one
//! of another status, answers a plain response for its status: errors that are not about
//! authentication keep their meaning.

use std::io::Cursor;
use std::sync::Mutex;

use m2m_core::{PROBLEM_JSON, Rejection};
use rocket::http::{ContentType, Header, Status};
use rocket::response::Response;
use rocket::{Catcher, Request, catcher};

use crate::fairing::SharedSettings;
use crate::guard::Failure;

/// The statuses the catchers answer.
const STATUSES: [u16; 5] = [400, 401, 403, 500, 503];

/// The last refusal of a request, for the catcher.
#[derive(Default)]
struct Pending(Mutex<Option<Failure>>);

fn pending<'a>(request: &'a Request<'_>) -> &'a Pending {
    request.local_cache(Pending::default)
}

/// Records why `request` is refused, for the catcher.
pub(crate) fn record_failure(request: &Request<'_>, failure: Failure) {
    let mut slot = pending(request).0.lock().unwrap_or_else(|e| e.into_inner());
    *slot = Some(failure);
}

/// The status of the recorded refusal, if any.
pub(crate) fn pending_status(request: &Request<'_>) -> Option<Status> {
    let slot = pending(request).0.lock().unwrap_or_else(|e| e.into_inner());
    slot.as_ref().map(status_of)
}

fn status_of(failure: &Failure) -> Status {
    match failure {
        Failure::Rejected(rejection) => Status::new(rejection.status().as_u16()),
        Failure::NotConfigured => Status::InternalServerError,
    }
}

/// The catchers for 400, 401, 403, 500 and 503 that render recorded rejections.
///
/// [`M2mAuth`](crate::M2mAuth) registers them at `/`; register them yourself only when you
/// use the guards with a managed [`Verifier`](m2m_core::Verifier) and no fairing.
pub fn catchers() -> Vec<Catcher> {
    STATUSES
        .into_iter()
        .map(|code| {
            let mut catcher = Catcher::new(code, render);
            catcher.name = Some("m2m rejection".into());
            catcher
        })
        .collect()
}

fn render<'r>(status: Status, request: &'r Request<'_>) -> catcher::BoxFuture<'r> {
    Box::pin(async move {
        let failure = {
            let slot = pending(request).0.lock().unwrap_or_else(|e| e.into_inner());
            slot.as_ref().filter(|f| status_of(f) == status).cloned()
        };
        match failure {
            Some(Failure::Rejected(rejection)) => {
                match request.rocket().state::<SharedSettings>() {
                    Some(shared) => shared.0.respond(rejection, request),
                    None => Ok(contract_response(&rejection)),
                }
            }
            Some(Failure::NotConfigured) => Ok(problem(
                status,
                "authentication is not configured on this server".to_owned(),
            )),
            None => Ok(plain(status)),
        }
    })
}

/// The core's response for `rejection`: its status, every header, its body.
pub(crate) fn contract_response(rejection: &Rejection) -> Response<'static> {
    let body = rejection.body();
    let mut response = Response::build()
        .status(Status::new(rejection.status().as_u16()))
        .sized_body(body.len(), Cursor::new(body))
        .finalize();
    for (name, value) in rejection.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        response.set_header(Header::new(name.as_str().to_owned(), value));
    }
    response
}

fn problem(status: Status, detail: String) -> Response<'static> {
    let body = format!(
        r#"{{"type":"about:blank","title":"{}","status":{},"detail":"{}"}}"#,
        status.reason_lossy(),
        status.code,
        detail
    );
    Response::build()
        .status(status)
        .raw_header("Content-Type", PROBLEM_JSON)
        .raw_header("Cache-Control", "no-store")
        .sized_body(body.len(), Cursor::new(body))
        .finalize()
}

fn plain(status: Status) -> Response<'static> {
    let body = format!("{} {}", status.code, status.reason_lossy());
    Response::build()
        .status(status)
        .header(ContentType::Plain)
        .sized_body(body.len(), Cursor::new(body))
        .finalize()
}
