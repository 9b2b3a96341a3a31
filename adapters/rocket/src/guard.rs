//! The request guards: [`Authenticated`] and [`Scoped`].

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use m2m_core::{Principal, Rejection};
use rocket::Request;
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome};

use crate::catcher::record_rejection;
use crate::fairing::{SharedSettings, Verdict, verdict};

/// Why a guard refused a request: the core [`Rejection`] the catchers render.
///
/// The contract's 401 for a request the optional fairing let through without credentials, 403
/// for a [`Scoped`] guard whose scopes the caller lacks, and 500
/// ([`RejectionKind::MiddlewareMissing`](m2m_core::RejectionKind::MiddlewareMissing)) when no
/// [`M2mAuth`](crate::M2mAuth) fairing decided about the request.
#[derive(Clone, Debug)]
pub struct GuardError(pub Rejection);

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for GuardError {}

/// The caller the fairing admitted, checked against a route's own `scopes`.
fn caller(request: &Request<'_>, scopes: &[&str]) -> Result<Principal, Rejection> {
    match verdict(request) {
        Verdict::Caller(principal) => {
            let settings = request
                .rocket()
                .state::<SharedSettings>()
                .map(|shared| &shared.0.admission);
            match settings {
                Some(admission) => admission.authorize(principal, scopes)?,
                None => return Err(Rejection::middleware_missing()),
            }
            Ok(principal.clone())
        }
        Verdict::Anonymous(rejection) => Err(rejection.clone()),
        Verdict::Unknown | Verdict::Preflight | Verdict::Refused => {
            Err(Rejection::middleware_missing())
        }
    }
}

fn refuse<T>(request: &Request<'_>, rejection: Rejection) -> Outcome<T, GuardError> {
    let status = Status::new(rejection.status().as_u16());
    // Logged by the catcher when it renders it: `Option<…>` guards turn it into `None`.
    record_rejection(request, rejection.clone(), false);
    Outcome::Error((status, GuardError(rejection)))
}

m2m_core::caller_type!(
    /// The caller, authenticated: a request guard.
    ///
    /// It reads what the [`M2mAuth`](crate::M2mAuth) fairing decided and never verifies by itself.
    /// The fairing refuses bad credentials before routing; the guard fails with the contract's 401
    /// (rendered exactly by the fairing's catchers) on a request an
    /// [optional](crate::M2mAuth::optional) fairing let through without credentials, where
    /// `Option<Authenticated>` yields `None`. Without the fairing it fails with 500
    /// ([`GuardError`]); register [`catchers`](crate::catchers) to render that as problem+json.
    Authenticated
);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Authenticated {
    type Error = GuardError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, GuardError> {
        match caller(request, &[]) {
            Ok(principal) => Outcome::Success(Authenticated(principal)),
            Err(rejection) => refuse(request, rejection),
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
/// A caller the fairing admitted but without one of the scopes is refused with 403
/// `insufficient_scope`, naming the scopes in `WWW-Authenticate` and in the body. The token is
/// not verified again: the core's [`Admission::authorize`](m2m_core::Admission::authorize)
/// checks the scopes on the admitted caller.
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
        match caller(request, S::SCOPES) {
            Ok(principal) => Outcome::Success(Scoped {
                principal,
                scopes: PhantomData,
            }),
            Err(rejection) => refuse(request, rejection),
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
