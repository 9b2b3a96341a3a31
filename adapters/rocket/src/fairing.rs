//! The [`M2mAuth`] fairing: the settings, the verifier as managed state, the catchers, and the
//! contract enforced on every request that reaches the application.

use std::fmt;
use std::sync::Arc;

use m2m_core::{Rejection, RejectionKind, Verifier};
use rocket::data::Data;
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::http::uri::Origin;
use rocket::http::{Header, Method, Status};
use rocket::response::{self, Responder};
use rocket::route::{self, Handler, Route};
use rocket::{Build, Request, Rocket};

use crate::catcher::{catchers, record_failure};
use crate::credentials::credentials;
use crate::guard::{Failure, verification};

/// Where the fairing sends a request it refuses, so that no application handler runs.
const REFUSED_PATH: &str = "/.m2m/refused";

type Responds =
    dyn for<'r, 'i> Fn(Rejection, &'r Request<'i>) -> response::Result<'static> + Send + Sync;

/// What the fairing was configured with; managed as Rocket state, read by guards and catchers.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) verifier: Verifier,
    pub(crate) required_scopes: Vec<String>,
    pub(crate) optional: bool,
    pub(crate) cors_preflight: bool,
    pub(crate) strip_credentials: bool,
    pub(crate) on_rejection: Option<Arc<Responds>>,
}

impl Settings {
    /// The scopes every request needs, with `extra` appended.
    pub(crate) fn scopes<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut scopes: Vec<&str> = self.required_scopes.iter().map(String::as_str).collect();
        scopes.extend_from_slice(extra);
        scopes
    }

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
/// Attaching it:
/// - manages the [`Verifier`] (unless one is managed already) and the settings as state, so the
///   [`Authenticated`](crate::Authenticated) and [`Scoped`](crate::Scoped) guards can verify;
/// - registers catchers for 400, 401, 403, 500 and 503 at `/` that render a rejection exactly
///   as the core builds it (status, `WWW-Authenticate`, `Retry-After`, `Cache-Control`,
///   problem+json body), and a plain response for those statuses when no rejection is pending;
/// - verifies every request before routing, against the scopes of
///   [`require_scopes`](M2mAuth::require_scopes). A refused request is routed to a route of the
///   fairing (`/.m2m/refused`) that fails with the rejection's status, so no handler of the
///   application runs.
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
            .field("verifier", &s.verifier)
            .field("required_scopes", &s.required_scopes)
            .field("optional", &s.optional)
            .field("cors_preflight", &s.cors_preflight)
            .field("strip_credentials", &s.strip_credentials)
            .field("on_rejection", &s.on_rejection.is_some())
            .finish()
    }
}

impl M2mAuth {
    /// Authentication with `verifier`, no required scopes, credentials required, CORS
    /// preflights let through, credential headers left in place, the core's responses.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            settings: Arc::new(Settings {
                verifier,
                required_scopes: Vec::new(),
                optional: false,
                cors_preflight: true,
                strip_credentials: false,
                on_rejection: None,
            }),
        }
    }

    fn settings_mut(&mut self) -> &mut Settings {
        Arc::make_mut(&mut self.settings)
    }

    /// Scopes every request must carry (in addition to those of [`Scoped`](crate::Scoped)
    /// guards).
    pub fn require_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings_mut()
            .required_scopes
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// Whether a request without any credentials reaches the routes (default `false`); any
    /// other failure is still refused.
    pub fn optional(mut self, optional: bool) -> Self {
        self.settings_mut().optional = optional;
        self
    }

    /// Whether a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`) passes without
    /// verification (default `true`).
    pub fn cors_preflight(mut self, pass: bool) -> Self {
        self.settings_mut().cors_preflight = pass;
        self
    }

    /// Whether to blank the `X-API-KEY` and `Authorization` headers before routing (default
    /// `false`).
    ///
    /// Rocket 0.5 offers no way to remove a request header, so each present header is replaced
    /// by one with an empty value: handlers and their guards cannot read the token, and the
    /// m2m guards use the values captured before blanking.
    pub fn strip_credentials(mut self, strip: bool) -> Self {
        self.settings_mut().strip_credentials = strip;
        self
    }

    /// Renders rejections with `respond` instead of the core's response; it is called by the
    /// fairing's catchers.
    pub fn on_rejection<F, R>(mut self, respond: F) -> Self
    where
        F: Fn(Rejection) -> R + Send + Sync + 'static,
        R: for<'r> Responder<'r, 'static>,
    {
        self.settings_mut().on_rejection = Some(Arc::new(move |rejection, request| {
            respond(rejection).respond_to(request)
        }));
        self
    }
}

fn is_preflight(request: &Request<'_>) -> bool {
    request.method() == Method::Options
        && request.headers().contains("Access-Control-Request-Method")
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
        let mut rocket = rocket
            .manage(SharedSettings(Arc::clone(&self.settings)))
            .register("/", catchers())
            .mount("/", vec![refused_route()]);
        if rocket.state::<Verifier>().is_none() {
            rocket = rocket.manage(self.settings.verifier.clone());
        }
        Ok(rocket)
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        let settings = &*self.settings;
        if settings.cors_preflight && is_preflight(request) {
            return;
        }
        credentials(request);
        let refusal = match verification(request, settings).await {
            Err(Failure::Rejected(rejection))
                if !(settings.optional
                    && rejection.kind() == RejectionKind::MissingCredentials) =>
            {
                Some(rejection.clone())
            }
            _ => None,
        };
        if settings.strip_credentials {
            for name in ["X-API-KEY", "Authorization"] {
                if request.headers().contains(name) {
                    request.replace_header(Header::new(name, ""));
                }
            }
        }
        if let Some(rejection) = refusal {
            record_failure(request, Failure::Rejected(rejection));
            request.set_method(Method::Get);
            request.set_uri(Origin::const_new(REFUSED_PATH, None));
        }
    }
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
