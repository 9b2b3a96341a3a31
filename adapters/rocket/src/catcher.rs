//! Catchers that render the rejection a guard or the fairing recorded.
//!
//! Rocket guards can fail only with a status; headers and body come from the catcher of that
//! status. A refusal therefore records its [`Rejection`] in request-local state, and the
//! catcher renders it exactly as the core built it. A catcher that finds no rejection, or one
//! of another status, answers a plain response for its status: errors that are not about
//! authentication keep their meaning.

use std::io::Cursor;
use std::sync::Mutex;

use m2m_core::{Rejection, log_refusal};
use rocket::http::{ContentType, Header, Status};
use rocket::response::Response;
use rocket::{Catcher, Request, catcher};

use crate::fairing::SharedSettings;

/// The statuses the catchers answer.
const STATUSES: [u16; 6] = [400, 401, 403, 429, 500, 503];

/// The last refusal of a request, for the catcher, and whether it is logged already.
#[derive(Default)]
struct Pending(Mutex<Option<(Rejection, bool)>>);

fn pending<'a>(request: &'a Request<'_>) -> &'a Pending {
    request.local_cache(Pending::default)
}

/// Records why `request` is refused, for the catcher; `logged` when the refusal was logged
/// already (the catcher logs it otherwise).
pub(crate) fn record_rejection(request: &Request<'_>, rejection: Rejection, logged: bool) {
    let mut slot = pending(request).0.lock().unwrap_or_else(|e| e.into_inner());
    *slot = Some((rejection, logged));
}

/// The status of the recorded refusal, if any.
pub(crate) fn pending_status(request: &Request<'_>) -> Option<Status> {
    let slot = pending(request).0.lock().unwrap_or_else(|e| e.into_inner());
    slot.as_ref().map(|(rejection, _)| status_of(rejection))
}

fn status_of(rejection: &Rejection) -> Status {
    Status::new(rejection.status().as_u16())
}

/// The catchers for 400, 401, 403, 429, 500 and 503 that render recorded rejections.
///
/// [`M2mAuth`](crate::M2mAuth) registers them at `/`. Without the fairing, guards fail with
/// 500 (no middleware decided about the request); register them yourself to answer that with
/// the same problem+json body as the other m2m adapters.
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
        let rejection = {
            let slot = pending(request).0.lock().unwrap_or_else(|e| e.into_inner());
            slot.as_ref()
                .filter(|(r, _)| status_of(r) == status)
                .map(|(rejection, logged)| {
                    if !logged {
                        log_refusal(rejection);
                    }
                    rejection.clone()
                })
        };
        match (rejection, request.rocket().state::<SharedSettings>()) {
            (Some(rejection), Some(shared)) => shared.0.respond(rejection, request),
            (Some(rejection), None) => Ok(contract_response(&rejection)),
            (None, _) => Ok(plain(status)),
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

fn plain(status: Status) -> Response<'static> {
    let body = format!("{} {}", status.code, status.reason_lossy());
    Response::build()
        .status(status)
        .header(ContentType::Plain)
        .sized_body(body.len(), Cursor::new(body))
        .finalize()
}
