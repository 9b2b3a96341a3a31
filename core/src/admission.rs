//! [`Admission`]: the route options of every adapter, and the one decision per request they
//! lead to.
//!
//! Middleware in each framework holds an `Admission` and only translates its [`Decision`]: it
//! never looks at an option itself. So the options mean the same in tower/axum, actix-web and
//! Rocket, and a new option is written once, here:
//!
//! | option | default | meaning |
//! |---|---|---|
//! | [`require_scopes`](Admission::require_scopes) | none | every call adds scopes the token must carry (403 `insufficient_scope` otherwise) |
//! | [`optional`](Admission::optional) | off | a request with no credentials at all is let through without a caller ([`Decision::Anonymous`]); every other failure is still refused |
//! | [`cors_preflight`](Admission::cors_preflight) | off | a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) passes unverified ([`Decision::Preflight`]); the documented way is a CORS layer outside the auth layer instead |
//! | [`strip_credentials`](Admission::strip_credentials) | off | an admitted request loses both credential headers, `X-API-KEY` and `Authorization`, before the application sees it |
//!
//! A request that an outer middleware already admitted is not verified again: the inner one
//! only checks its own scopes ([`RequestHead::admitted`]).
//!
//! Each decision is one `tracing` event (target `m2m::admission`): refusals at `debug` (a store
//! failure at `warn`) with the reason, and the token id, kind and tenant when the store knows
//! the token; admissions (with the same fields) and passes at `trace`. The token itself is
//! never logged. Each decision is also counted once in `m2m_decisions_total`, by outcome and
//! reason ([`metrics`](crate::metrics)); a request that meets two admissions (nested
//! middleware, or a route's own scopes through [`Admission::authorize`]) counts at each.
//!
//! # Example
//!
//! ```
//! use http::{Method, Request, StatusCode};
//! use m2m_core::{Admission, Decision, Expiry, MemoryStore, NewToken, TokenKind, TokenStore, Verifier};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = Arc::new(MemoryStore::new());
//! let verifier = Verifier::builder(store.clone()).build();
//! let issued = store
//!     .issue(
//!         verifier.format(),
//!         NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays).scope("reports:read"),
//!         verifier.now(),
//!     )
//!     .await
//!     .unwrap();
//!
//! let admission = Admission::new(verifier).require_scopes(["reports:read"]).optional(true);
//!
//! let request = Request::get("/v1/reports")
//!     .header("x-api-key", issued.token.expose_secret())
//!     .body(())
//!     .unwrap();
//! let Decision::Admit(admitted) = admission.decide(&request).await else { panic!() };
//! assert_eq!(admitted.principal().tenant(), "acme");
//!
//! // Optional: no credentials at all are let through...
//! let anonymous = Request::get("/v1/reports").body(()).unwrap();
//! assert!(matches!(admission.decide(&anonymous).await, Decision::Anonymous(_)));
//!
//! // ...but a bad token is still refused.
//! let forged = Request::get("/v1/reports").header("x-api-key", "m2m_at_forged").body(()).unwrap();
//! let Decision::Refuse(rejection) = admission.decide(&forged).await else { panic!() };
//! assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
//!
//! // Preflights are verified like any request unless the route opts in.
//! let preflight = Request::builder()
//!     .method(Method::OPTIONS)
//!     .header("origin", "https://app.example")
//!     .header("access-control-request-method", "GET")
//!     .body(())
//!     .unwrap();
//! assert!(matches!(admission.decide(&preflight).await, Decision::Anonymous(_)));
//! let admission = admission.optional(false);
//! assert!(matches!(admission.decide(&preflight).await, Decision::Refuse(_)));
//! assert!(matches!(admission.cors_preflight(true).decide(&preflight).await, Decision::Preflight));
//! # });
//! ```

use std::fmt;
use std::sync::Arc;

use http::header::{ACCESS_CONTROL_REQUEST_METHOD, HeaderMap, ORIGIN};
use http::{Method, Request, request::Parts};

use crate::metrics::Event;
use crate::placement::{CredentialHeaders, Placement};
use crate::policy::RequiredScopes;
use crate::record::Principal;
use crate::rejection::{Rejection, RejectionKind};
use crate::verifier::Verifier;

/// The headers that [`strip_credentials`](Admission::strip_credentials) removes.
const BOTH_CREDENTIAL_HEADERS: &[Placement] = &[Placement::ApiKey, Placement::Bearer];

/// What an [`Admission`] reads of a request: the credential headers, the method, the presence
/// of the CORS preflight headers, and a caller an outer middleware already admitted.
///
/// Implemented for [`http::Request`] and [`http::request::Parts`] (the admitted caller is a
/// [`Principal`] in their extensions); an adapter whose framework has other request types
/// implements it for a thin wrapper.
pub trait RequestHead: CredentialHeaders {
    /// Whether the method is `OPTIONS`.
    fn is_options(&self) -> bool;

    /// Whether a header named `name` (lowercase) is present.
    fn has_header(&self, name: &str) -> bool;

    /// The caller an earlier [`Admission`] admitted for this request, if any.
    fn admitted(&self) -> Option<Principal> {
        None
    }
}

fn header_map_values(headers: &HeaderMap, placement: Placement) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(placement.header_name())
        .into_iter()
        .map(http::HeaderValue::as_bytes)
}

impl<B> CredentialHeaders for Request<B> {
    fn values(&self, placement: Placement) -> impl Iterator<Item = &[u8]> {
        header_map_values(self.headers(), placement)
    }
}

impl<B> RequestHead for Request<B> {
    fn is_options(&self) -> bool {
        self.method() == Method::OPTIONS
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers().contains_key(name)
    }

    fn admitted(&self) -> Option<Principal> {
        self.extensions().get::<Principal>().cloned()
    }
}

impl CredentialHeaders for Parts {
    fn values(&self, placement: Placement) -> impl Iterator<Item = &[u8]> {
        header_map_values(&self.headers, placement)
    }
}

impl RequestHead for Parts {
    fn is_options(&self) -> bool {
        self.method == Method::OPTIONS
    }

    fn has_header(&self, name: &str) -> bool {
        self.headers.contains_key(name)
    }

    fn admitted(&self) -> Option<Principal> {
        self.extensions.get::<Principal>().cloned()
    }
}

impl<R: RequestHead + ?Sized> RequestHead for &R {
    fn is_options(&self) -> bool {
        (**self).is_options()
    }

    fn has_header(&self, name: &str) -> bool {
        (**self).has_header(name)
    }

    fn admitted(&self) -> Option<Principal> {
        (**self).admitted()
    }
}

/// The decision about one request.
#[derive(Debug)]
#[must_use]
pub enum Decision {
    /// Authenticated: hand the caller to the application, without the headers to strip.
    Admit(Admitted),
    /// No credentials on an optional route: let the request through without a caller. The
    /// rejection is what an extractor or guard that requires a caller answers.
    Anonymous(Rejection),
    /// A CORS preflight on a route that lets them pass: let it through unverified.
    Preflight,
    /// Refused: answer with this rejection, and call nothing of the application.
    Refuse(Rejection),
}

/// An admitted request: its caller, and the credential headers to remove before the
/// application sees the request.
#[derive(Clone, Debug)]
pub struct Admitted {
    principal: Principal,
    strip: &'static [Placement],
}

impl Admitted {
    /// The caller.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The caller, taken out.
    pub fn into_principal(self) -> Principal {
        self.principal
    }

    /// The credential headers to remove from the request: both of them with
    /// [`strip_credentials`](Admission::strip_credentials), none otherwise.
    pub fn headers_to_strip(&self) -> &'static [Placement] {
        self.strip
    }
}

#[derive(Clone)]
struct Options {
    verifier: Verifier,
    scopes: RequiredScopes,
    optional: bool,
    cors_preflight: bool,
    strip_credentials: bool,
}

/// The options of one middleware and the decision they lead to, for any framework.
///
/// Cheap to clone (one reference count); the setters copy the options on write, so a clone
/// configured differently does not change the original.
#[derive(Clone)]
#[must_use]
pub struct Admission {
    options: Arc<Options>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &*self.options;
        f.debug_struct("Admission")
            .field("verifier", &o.verifier)
            .field("scopes", &o.scopes)
            .field("optional", &o.optional)
            .field("cors_preflight", &o.cors_preflight)
            .field("strip_credentials", &o.strip_credentials)
            .finish()
    }
}

impl Admission {
    /// Admission with `verifier`: no required scope, credentials required, preflights verified
    /// like any request, credential headers left in place.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            options: Arc::new(Options {
                verifier,
                scopes: RequiredScopes::default(),
                optional: false,
                cors_preflight: false,
                strip_credentials: false,
            }),
        }
    }

    fn edit(mut self, change: impl FnOnce(&mut Options)) -> Self {
        change(Arc::make_mut(&mut self.options));
        self
    }

    /// Requires every scope in `scopes`, in addition to those required before.
    ///
    /// ```
    /// use m2m_core::{Admission, MemoryStore, Verifier};
    /// let admission = Admission::new(Verifier::builder(MemoryStore::new()).build())
    ///     .require_scopes(["reports:read"])
    ///     .require_scopes(["reports:write"]);
    /// assert_eq!(admission.scopes().collect::<Vec<_>>(), ["reports:read", "reports:write"]);
    /// ```
    pub fn require_scopes<I>(self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.edit(|o| o.scopes = o.scopes.and(scopes))
    }

    /// Whether a request with no credentials at all is let through without a caller
    /// (default: no). A bad, expired, misplaced or under-scoped token is refused either way.
    pub fn optional(self, optional: bool) -> Self {
        self.edit(|o| o.optional = optional)
    }

    /// Whether a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
    /// passes unverified (default: no). Prefer a CORS layer outside the authentication layer,
    /// which answers preflights before they reach it.
    pub fn cors_preflight(self, pass: bool) -> Self {
        self.edit(|o| o.cors_preflight = pass)
    }

    /// Whether both credential headers (`X-API-KEY` and `Authorization`) are removed from an
    /// admitted request before the application sees it (default: no).
    pub fn strip_credentials(self, strip: bool) -> Self {
        self.edit(|o| o.strip_credentials = strip)
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.options.verifier
    }

    /// The scopes every request must carry, in the order they were required.
    pub fn scopes(&self) -> impl ExactSizeIterator<Item = &str> {
        self.options.scopes.iter()
    }

    /// Whether a request without credentials is let through.
    pub fn is_optional(&self) -> bool {
        self.options.optional
    }

    /// Decides from the request and the verifier's cache alone, without waiting: `None` when
    /// the store must answer, and then [`decide`](Self::decide) gives the decision.
    ///
    /// Middleware calls this first, so that a cached token costs no future and no allocation.
    pub fn decide_cached<R: RequestHead + ?Sized>(&self, request: &R) -> Option<Decision> {
        if let Some(decision) = self.decide_without_token(request) {
            return Some(decision);
        }
        let o = &*self.options;
        let (outcome, hit) = o
            .scopes
            .with(|scopes| o.verifier.outcome_cached(request, scopes))?;
        Some(self.settle(outcome, hit))
    }

    /// Decides about `request`, asking the store when nothing fresh is cached for its token.
    pub async fn decide<R: RequestHead + ?Sized>(&self, request: &R) -> Decision {
        if let Some(decision) = self.decide_without_token(request) {
            return decision;
        }
        let o = &*self.options;
        // Off the hot path: a vector costs nothing next to the store's answer.
        let scopes: Vec<&str> = o.scopes.iter().collect();
        let (outcome, hit) = o.verifier.outcome(request, &scopes).await;
        self.settle(outcome, hit)
    }

    /// Checks `scopes` (a route's own, such as a Rocket `Scoped` guard's) on a caller this
    /// admission admitted, without verifying the token again. A refusal is counted as a
    /// decision (the request was counted admitted before), but not logged here: the guard logs
    /// it with [`log_refusal`] when it answers with it.
    ///
    /// # Errors
    ///
    /// The 403 `insufficient_scope` rejection, naming every scope of this admission and
    /// `scopes`.
    pub fn authorize(&self, principal: &Principal, scopes: &[&str]) -> Result<(), Rejection> {
        if scopes.iter().all(|s| principal.has_scope(s)) {
            return Ok(());
        }
        let mut all: Vec<&str> = self.scopes().collect();
        for scope in scopes {
            if !all.contains(scope) {
                all.push(scope);
            }
        }
        let verifier = &self.options.verifier;
        let refused = verifier.check_scopes(principal, &all);
        if let Err(rejection) = &refused {
            verifier.count(Event::refused(rejection.kind()));
        }
        refused
    }

    /// The decisions that need no token: an outer middleware's caller, or a preflight.
    fn decide_without_token<R: RequestHead + ?Sized>(&self, request: &R) -> Option<Decision> {
        let o = &*self.options;
        if let Some(principal) = request.admitted() {
            let outcome = o
                .scopes
                .with(|scopes| o.verifier.check_scopes(&principal, scopes))
                .map(|()| principal);
            return Some(self.settle(outcome, false));
        }
        if o.cors_preflight
            && request.is_options()
            && request.has_header(ORIGIN.as_str())
            && request.has_header(ACCESS_CONTROL_REQUEST_METHOD.as_str())
        {
            tracing::trace!(target: "m2m::admission", outcome = "preflight");
            o.verifier.count(Event::Preflight);
            return Some(Decision::Preflight);
        }
        None
    }

    /// The decision of `outcome`, counted (with a cache hit when `hit`: a fresh entry answered).
    fn settle(&self, outcome: Result<Principal, Rejection>, hit: bool) -> Decision {
        let o = &*self.options;
        match outcome {
            Ok(principal) => {
                o.verifier
                    .count_decision_event(Event::admitted(principal.kind()), hit);
                tracing::trace!(
                    target: "m2m::admission",
                    outcome = "admitted",
                    token_id = %principal.token_id(),
                    token_kind = principal.kind().name(),
                    tenant = principal.tenant(),
                );
                Decision::Admit(Admitted {
                    principal,
                    strip: if o.strip_credentials {
                        BOTH_CREDENTIAL_HEADERS
                    } else {
                        &[]
                    },
                })
            }
            Err(rejection)
                if o.optional && rejection.kind() == RejectionKind::MissingCredentials =>
            {
                tracing::trace!(target: "m2m::admission", outcome = "anonymous");
                o.verifier.count_decision_event(Event::Anonymous, hit);
                Decision::Anonymous(rejection)
            }
            Err(rejection) => {
                o.verifier
                    .count_decision_event(Event::refused(rejection.kind()), hit);
                log_refusal(&rejection);
                Decision::Refuse(rejection)
            }
        }
    }
}

/// Logs one refusal: the reason, and the token id and tenant when the store knows the token.
///
/// [`Admission`] logs every refusal it decides. An extractor or guard that refuses a request
/// the admission let through (no credentials on an optional route, no middleware at all) calls
/// this, so that every refused request is one event, whichever part refused it.
pub fn log_refusal(rejection: &Rejection) {
    let kind = rejection.kind();
    let token_id = rejection.token_id().map(|id| id.as_str());
    if kind == RejectionKind::StoreUnavailable {
        tracing::warn!(
            target: "m2m::admission",
            outcome = "refused",
            reason = kind.reason(),
            status = rejection.status().as_u16(),
            "the token store cannot answer",
        );
    } else {
        tracing::debug!(
            target: "m2m::admission",
            outcome = "refused",
            reason = kind.reason(),
            status = rejection.status().as_u16(),
            token_id,
            token_kind = rejection.token_kind().map(crate::TokenKind::name),
            tenant = rejection.tenant(),
            detail = rejection.detail(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Expiry, MemoryStore, NewToken, TokenKind, TokenStore};

    async fn admission_with_token(scopes: &[&str]) -> (Admission, String) {
        let store = Arc::new(MemoryStore::new());
        let verifier = Verifier::builder(store.clone()).build();
        let mut request = NewToken::new(TokenKind::AccessToken, "acme", Expiry::OneDay);
        for scope in scopes {
            request = request.scope(*scope);
        }
        let issued = store
            .issue(verifier.format(), request, verifier.now())
            .await
            .unwrap();
        (
            Admission::new(verifier),
            issued.token.expose_secret().to_owned(),
        )
    }

    fn get(token: Option<&str>) -> Request<()> {
        let mut request = Request::get("/");
        if let Some(token) = token {
            request = request.header("x-api-key", token);
        }
        request.body(()).unwrap()
    }

    #[tokio::test]
    async fn scopes_accumulate_and_a_clone_keeps_its_own() {
        let (admission, token) = admission_with_token(&["a"]).await;
        let one = admission.clone().require_scopes(["a"]);
        let two = one.clone().require_scopes(["b"]);
        assert!(matches!(
            one.decide(&get(Some(&token))).await,
            Decision::Admit(_)
        ));
        let Decision::Refuse(rejection) = two.decide(&get(Some(&token))).await else {
            panic!("under-scoped token admitted");
        };
        assert_eq!(rejection.kind(), RejectionKind::InsufficientScope);
        assert!(
            rejection
                .www_authenticate()
                .unwrap()
                .contains("scope=\"a b\"")
        );
        assert!(rejection.token_id().is_some());
        assert_eq!(admission.scopes().count(), 0);
    }

    #[tokio::test]
    async fn stripping_names_both_headers_only_when_asked() {
        let (admission, token) = admission_with_token(&[]).await;
        let Decision::Admit(kept) = admission.decide(&get(Some(&token))).await else {
            panic!()
        };
        assert!(kept.headers_to_strip().is_empty());
        let stripping = admission.strip_credentials(true);
        let Some(Decision::Admit(stripped)) = stripping.decide_cached(&get(Some(&token))) else {
            panic!("the cached token is decided without the store")
        };
        assert_eq!(
            stripped.headers_to_strip(),
            [Placement::ApiKey, Placement::Bearer]
        );
    }

    #[tokio::test]
    async fn an_admitted_caller_is_not_verified_again() {
        let (admission, token) = admission_with_token(&["a"]).await;
        let Decision::Admit(admitted) = admission.decide(&get(Some(&token))).await else {
            panic!()
        };
        // No credentials on the request: only the principal an outer middleware left.
        let mut request = get(None);
        request.extensions_mut().insert(admitted.into_principal());
        let inner = admission.clone().require_scopes(["a"]);
        assert!(matches!(
            inner.decide_cached(&request),
            Some(Decision::Admit(_))
        ));
        let stricter = admission.require_scopes(["b"]);
        assert!(matches!(
            stricter.decide_cached(&request),
            Some(Decision::Refuse(r)) if r.kind() == RejectionKind::InsufficientScope
        ));
    }

    #[tokio::test]
    async fn a_preflight_needs_options_origin_and_the_request_method_header() {
        let (admission, _) = admission_with_token(&[]).await;
        let admission = admission.cors_preflight(true);
        let preflight = |origin: bool, method: Method| {
            let mut request = Request::builder()
                .method(method)
                .header("access-control-request-method", "GET");
            if origin {
                request = request.header("origin", "https://app.example");
            }
            request.body(()).unwrap()
        };
        assert!(matches!(
            admission.decide(&preflight(true, Method::OPTIONS)).await,
            Decision::Preflight
        ));
        assert!(matches!(
            admission.decide(&preflight(false, Method::OPTIONS)).await,
            Decision::Refuse(_)
        ));
        assert!(matches!(
            admission.decide(&preflight(true, Method::GET)).await,
            Decision::Refuse(_)
        ));
    }

    #[tokio::test]
    async fn authorize_names_the_middleware_scopes_and_the_route_scopes() {
        let (admission, token) = admission_with_token(&["a"]).await;
        let admission = admission.require_scopes(["a"]);
        let Decision::Admit(admitted) = admission.decide(&get(Some(&token))).await else {
            panic!()
        };
        assert!(admission.authorize(admitted.principal(), &["a"]).is_ok());
        let rejection = admission
            .authorize(admitted.principal(), &["b"])
            .unwrap_err();
        assert!(
            rejection
                .www_authenticate()
                .unwrap()
                .contains("scope=\"a b\"")
        );
    }
}
