//! The [`M2mAuth`] fairing: the settings as managed state, the catchers, and the one decision
//! per request that guards read.
use std::fmt;
use std::sync::Arc;

use m2m_core::{Admission, Decision, Principal, Rejection, Verifier};
use rocket::data::Data;
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::http::uri::Origin;
use rocket::http::{Header, Method, Status};
use rocket::response::{self, Responder};
use rocket::route::{self, Handler, Route};
use rocket::{Build, Request, Rocket};

use crate::catcher::{catchers, record_rejection};
use crate::credentials::{RocketRequest, header_name};

/// Where the fairing sends a request it refuses, so that no application handler runs.
const REFUSED_PATH: &str = "/.m2m/refused";

type Responds =
    dyn for<'r, 'i> Fn(Rejection, &'r Request<'i>) -> response::Result<'static> + Send + Sync;

/// What the fairing was configured with; managed as Rocket state, read by guards and catchers.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) admission: Admission,
    pub(crate) on_rejection: Option<Arc<Responds>>,
}

impl Settings {
    /// The response to a rejection: the custom responder's, or the core's exact one.
    pub(crate) fn respond(
        &self,
        rejection: Rejection,
        request: &Request<'_>,
    ) -> response::Result<'static> {
        match &self.on_rejection {
            Some(respond) => respond(rejection, request),
            None => Ok(crate::catcher::contract_response(&rejection)),
        }
    }
}

/// Token authentication for a Rocket application.
///
/// The options are those of the core's [`Admission`], which makes every decision; the fairing,
/// guards and catchers only translate it. Attaching it:
/// - verifies every request once, before routing, against the scopes of
///   [`require_scopes`](M2mAuth::require_scopes). A refused request is routed to a route of the
///   fairing (`/.m2m/refused`) that fails with the rejection's status, so no handler of the
///   application runs;
/// - manages the settings as state, so the [`Authenticated`](crate::Authenticated) and
///   [`Scoped`](crate::Scoped) guards read what the fairing decided (they never verify the
///   token again: `Scoped` checks its own scopes on the admitted caller);
/// - registers catchers for 400, 401, 403, 500 and 503 at `/` that render a rejection exactly
///   as the core builds it (status, `WWW-Authenticate`, `Retry-After`, `Cache-Control`,
///   problem+json body), and a plain response for those statuses when no rejection is pending.
///
/// By default, like the middleware of the other adapters, every request needs valid
/// credentials. With [`optional(true)`](M2mAuth::optional) a request without any credentials is
/// let through and each route decides with its guards: `Authenticated` answers 401,
/// `Option<Authenticated>` yields `None`, a route without a guard is public. A request with a
/// malformed, invalid, expired or under-scoped credential, or one the store cannot check (503),
/// is still refused, whatever the route — which is what makes `Option<Authenticated>` safe,
/// since Rocket turns any failure of the inner guard into `None`.
///
/// Rocket refuses to launch when two catchers share a status and a base, so an application
/// using this fairing registers no catcher of its own for those statuses at `/`.
#[must_use]
#[derive(Clone)]
pub struct M2mAuth {
    settings: Arc<Settings>,
}

impl fmt::Debug for M2mAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("M2mAuth")
            .field("admission", &s.admission)
            .field("on_rejection", &s.on_rejection.is_some())
            .finish()
    }
}

impl M2mAuth {
    /// Authentication with `verifier`: no required scopes, credentials required, preflights
    /// verified like any request, credential headers left in place, the core's responses.
    pub fn new(verifier: Verifier) -> Self {
        Self::from_admission(Admission::new(verifier))
    }

    /// Authentication that decides with `admission`.
    pub fn from_admission(admission: Admission) -> Self {
        Self {
            settings: Arc::new(Settings {
                admission,
                on_rejection: None,
            }),
        }
    }

    fn admission_mut(&mut self) -> &mut Admission {
        &mut Arc::make_mut(&mut self.settings).admission
    }

    m2m_core::admission_options!(admission_mut);

    /// Renders rejections with `respond` instead of the core's response; it is called by the
    /// fairing's catchers.
    pub fn on_rejection<F, R>(mut self, respond: F) -> Self
    where
        F: Fn(Rejection) -> R + Send + Sync + 'static,
        R: for<'r> Responder<'r, 'static>,
    {
        Arc::make_mut(&mut self.settings).on_rejection =
            Some(Arc::new(move |rejection, request| {
                respond(rejection).respond_to(request)
            }));
        self
    }
}

#[rocket::async_trait]
impl Fairing for M2mAuth {
    fn info(&self) -> Info {
        Info {
            name: "m2m token authentication",
            kind: Kind::Ignite | Kind::Request,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        if rocket.state::<SharedSettings>().is_some() {
            return Ok(rocket);
        }
        Ok(rocket
            .manage(SharedSettings(Arc::clone(&self.settings)))
            .register("/", catchers())
            .mount("/", vec![refused_route()]))
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        let decision = self
            .settings
            .admission
            .decide(&RocketRequest(request))
            .await;
        let verdict = match decision {
            Decision::Admit(admitted) => {
                for placement in admitted.headers_to_strip() {
                    let name = header_name(*placement);
                    if request.headers().contains(name) {
                        request.replace_header(Header::new(name, ""));
                    }
                }
                Verdict::Caller(admitted.into_principal())
            }
            Decision::Anonymous(rejection) => Verdict::Anonymous(rejection),
            Decision::Preflight => Verdict::Preflight,
            Decision::Refuse(rejection) => {
                // The admission logged it.
                record_rejection(request, rejection, true);
                request.set_method(Method::Get);
                request.set_uri(Origin::const_new(REFUSED_PATH, None));
                Verdict::Refused
            }
        };
        request.local_cache(|| verdict);
    }
}

/// What the fairing decided about a request, for the guards.
pub(crate) enum Verdict {
    /// No fairing ran.
    Unknown,
    /// Admitted: the caller.
    Caller(Principal),
    /// Let through without credentials: what a guard that requires a caller answers.
    Anonymous(Rejection),
    /// A preflight let through unverified.
    Preflight,
    /// Refused; no application route runs.
    Refused,
}

/// What the fairing decided about `request`, [`Verdict::Unknown`] when no fairing ran.
pub(crate) fn verdict<'a>(request: &'a Request<'_>) -> &'a Verdict {
    request.local_cache(|| Verdict::Unknown)
}

/// The settings as managed state (a private type, so applications cannot collide with it).
pub(crate) struct SharedSettings(pub(crate) Arc<Settings>);

/// Fails with the status of the rejection the fairing recorded.
#[derive(Clone, Copy)]
struct Refused;

#[rocket::async_trait]
impl Handler for Refused {
    async fn handle<'r>(&self, request: &'r Request<'_>, _: Data<'r>) -> route::Outcome<'r> {
        route::Outcome::Error(crate::catcher::pending_status(request).unwrap_or(Status::NotFound))
    }
}

fn refused_route() -> Route {
    let mut route = Route::ranked(isize::MIN, Method::Get, REFUSED_PATH, Refused);
    route.name = Some("m2m refused request".into());
    route
}
