//! The request guards: [`Authenticated`] and [`Scoped`].

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use m2m_core::{Principal, Rejection, Verifier};
use rocket::Request;
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome};

use crate::catcher::record_failure;
use crate::credentials::credentials;
use crate::fairing::{Settings, SharedSettings};

/// Why a guard refused a request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum GuardError {
    /// The credentials were refused; the catchers render this rejection.
    Rejected(Rejection),
    /// Neither the [`M2mAuth`](crate::M2mAuth) fairing nor a managed [`Verifier`] is there to
    /// verify with: a server error.
    NotConfigured,
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::Rejected(rejection) => rejection.fmt(f),
            GuardError::NotConfigured => f.write_str(
                "m2m authentication is not configured: attach m2m_rocket::M2mAuth to the Rocket",
            ),
        }
    }
}

impl std::error::Error for GuardError {}

pub(crate) type Failure = GuardError;

/// The outcome of verifying a request against the required scopes, kept in request-local
/// state so that a request is verified once however many guards ask.
struct Verification(Result<Principal, Failure>);

/// Verifies `request` with `settings` (once per request).
pub(crate) async fn verification<'a>(
    request: &'a Request<'_>,
    settings: &Settings,
) -> &'a Result<Principal, Failure> {
    &request
        .local_cache_async(async {
            let outcome = settings
                .verifier
                .verify(credentials(request), &settings.scopes(&[]))
                .await;
            Verification(outcome.map_err(Failure::Rejected))
        })
        .await
        .0
}

/// What guards verify with: the fairing's settings, or else a managed [`Verifier`] alone.
enum Config<'a> {
    Fairing(&'a Settings),
    Verifier(&'a Verifier),
}

fn config<'a>(request: &'a Request<'_>) -> Option<Config<'a>> {
    let rocket = request.rocket();
    if let Some(shared) = rocket.state::<SharedSettings>() {
        return Some(Config::Fairing(&shared.0));
    }
    rocket.state::<Verifier>().map(Config::Verifier)
}

/// Verifies `request` against the fairing's scopes and `extra`.
async fn principal(request: &Request<'_>, extra: &[&str]) -> Result<Principal, Failure> {
    match config(request) {
        None => Err(Failure::NotConfigured),
        Some(Config::Fairing(settings)) => {
            let verified = verification(request, settings).await;
            match verified {
                Ok(principal) if extra.iter().all(|s| principal.has_scope(s)) => {
                    Ok(principal.clone())
                }
                // Under-scoped for this route: the core builds the 403 naming every scope.
                Ok(_) => settings
                    .verifier
                    .verify(credentials(request), &settings.scopes(extra))
                    .await
                    .map_err(Failure::Rejected),
                Err(failure) => Err(failure.clone()),
            }
        }
        Some(Config::Verifier(verifier)) => verifier
            .verify(credentials(request), extra)
            .await
            .map_err(Failure::Rejected),
    }
}

fn refuse<T>(request: &Request<'_>, failure: Failure) -> Outcome<T, GuardError> {
    let status = match &failure {
        Failure::Rejected(rejection) => Status::new(rejection.status().as_u16()),
        Failure::NotConfigured => Status::InternalServerError,
    };
    record_failure(request, failure.clone());
    Outcome::Error((status, failure))
}

/// The caller, authenticated: a request guard.
///
/// Fails with the contract's status (rendered exactly by the fairing's catchers) when the
/// request has no valid credentials or lacks a scope required by
/// [`M2mAuth::require_scopes`](crate::M2mAuth::require_scopes). As `Option<Authenticated>` it
/// yields `None` for a request without credentials on an [optional](crate::M2mAuth::optional)
/// fairing; the fairing refuses every other failure before routing.
///
/// Without the fairing, the guard verifies with a [`Verifier`] managed as state (but Rocket's
/// default catchers then answer, without the contract's headers); with neither, it fails with
/// 500 and [`GuardError::NotConfigured`].
#[derive(Clone, Debug)]
pub struct Authenticated(pub Principal);

impl Authenticated {
    /// The caller.
    pub fn into_inner(self) -> Principal {
        self.0
    }
}

impl Deref for Authenticated {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Authenticated {
    type Error = GuardError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, GuardError> {
        match principal(request, &[]).await {
            Ok(principal) => Outcome::Success(Authenticated(principal)),
            Err(failure) => refuse(request, failure),
        }
    }
}

/// A set of scopes a route requires; define one with [`scopes!`](crate::scopes).
pub trait ScopeSet: 'static {
    /// Every scope the token must carry.
    const SCOPES: &'static [&'static str];
}

/// The caller, authenticated and carrying every scope of `S`: a request guard.
///
/// A valid token without one of the scopes is refused with 403 `insufficient_scope`, naming the
/// scopes in `WWW-Authenticate` and in the body.
///
/// ```
/// m2m_rocket::scopes!(pub ReportsRead => "reports:read");
///
/// #[rocket::get("/v1/reports")]
/// fn reports(caller: m2m_rocket::Scoped<ReportsRead>) -> String {
///     format!("reports of {}", caller.tenant())
/// }
/// ```
pub struct Scoped<S: ScopeSet> {
    principal: Principal,
    scopes: PhantomData<fn() -> S>,
}

impl<S: ScopeSet> Scoped<S> {
    /// The caller.
    pub fn into_inner(self) -> Principal {
        self.principal
    }
}

impl<S: ScopeSet> Deref for Scoped<S> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<S: ScopeSet> Clone for Scoped<S> {
    fn clone(&self) -> Self {
        Self {
            principal: self.principal.clone(),
            scopes: PhantomData,
        }
    }
}

impl<S: ScopeSet> fmt::Debug for Scoped<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped")
            .field("scopes", &S::SCOPES)
            .field("principal", &self.principal)
            .finish()
    }
}

#[rocket::async_trait]
impl<'r, S: ScopeSet> FromRequest<'r> for Scoped<S> {
    type Error = GuardError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, GuardError> {
        match principal(request, S::SCOPES).await {
            Ok(principal) => Outcome::Success(Scoped {
                principal,
                scopes: PhantomData,
            }),
            Err(failure) => refuse(request, failure),
        }
    }
}

/// Defines a marker type implementing [`ScopeSet`], for use as [`Scoped<S>`](crate::Scoped).
///
/// ```
/// m2m_rocket::scopes!(pub ReportsRead => "reports:read");
/// m2m_rocket::scopes!(
///     /// Reading and writing reports.
///     pub(crate) ReportsWrite => "reports:read", "reports:write"
/// );
/// use m2m_rocket::ScopeSet;
/// assert_eq!(ReportsWrite::SCOPES, ["reports:read", "reports:write"]);
/// ```
#[macro_export]
macro_rules! scopes {
    ($(#[$meta:meta])* $vis:vis $name:ident => $($scope:literal),+ $(,)?) => {
        #[doc = concat!("Requires the scopes:" $(, " `", $scope, "`")+, ".")]
        $(#[$meta])*
        #[derive(Clone, Copy, Debug)]
        $vis struct $name;

        impl $crate::ScopeSet for $name {
            const SCOPES: &'static [&'static str] = &[$($scope),+];
        }
    };
}
