//! `POST /oauth/token`: the OAuth 2.0 client-credentials grant (RFC 6749 §4.4).
//!
//! A client authenticates with its client id and secret, by HTTP Basic (each part
//! form-urlencoded, §2.3.1) or by the form fields `client_id` and `client_secret`, never both,
//! and receives a short-lived bearer token for `Authorization: Bearer`.
//!
//! - The bearer token lives [`ServiceOptions::bearer_lifetime_minutes`] (1 hour by default) and
//!   never past its credential: the lifetime is cut to the whole minutes the credential has
//!   left. A credential with less than a minute left is refused like an expired one
//!   (`invalid_client`), since no whole-minute token would fit in its lifetime.
//! - `scope` (space-separated) must be a subset of the credential's scopes; absent or empty, the
//!   bearer token receives all of them.
//! - The client is checked by the core's [`Verifier::check_client`] on the service's admin
//!   verifier: the secret is looked up by its digest through the verifier's cache (one store
//!   call per secret however many exchanges miss at once), then the client id is compared in
//!   constant time. HTTP Basic is read by the same parser as at the introspection endpoint.
//! - Unknown client id, wrong secret, revoked or expired credential: the same `invalid_client`
//!   answer, so that nobody learns whether a client id exists. The reason is logged at debug
//!   level with the client id (never the secret), like every other refusal. A store that cannot
//!   answer is a 503 problem with `Retry-After`.
//! - Failed client authentications are limited per client id and per source address
//!   ([`crate::CLIENT_FAILURE_BURST`], [`crate::SOURCE_FAILURE_BURST`]): past the quota, 429
//!   problem+json with `Retry-After`, before any secret is checked, for as long as the quota
//!   says and no longer.
//! - The body has at most [`MAX_OAUTH_BODY_BYTES`] (413 problem+json beyond), and is read in
//!   time linear in its size.
//! - Errors are JSON `{error, error_description}` (§5.2): `invalid_client` is 401 with
//!   `WWW-Authenticate: Basic realm="m2m"`, the others 400. Every answer carries
//!   `Cache-Control: no-store` and `Pragma: no-cache`.
//!
//! [`ServiceOptions::bearer_lifetime_minutes`]: crate::ServiceOptions::bearer_lifetime_minutes
//! [`Verifier::check_client`]: m2m_core::Verifier::check_client

use std::collections::HashSet;
use std::net::IpAddr;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use m2m_core::{Expiry, NewToken, TokenCheckError, TokenId, TokenKind, TokenType};
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::Source;
use crate::client_auth::{BasicError, ClientCredentials, basic_credentials};
use crate::metrics::TokenRequest;
use crate::openapi::schema::{OAuthErrorCodeSchema, TokenRequestFormSchema};
use crate::problem::Problem;
use crate::state::AppState;

const CLIENT_AUTHENTICATION_FAILED: &str = "client authentication failed";

/// The largest body of `POST /oauth/token` and `POST /oauth/introspect`; a larger one is 413
/// before anything else is read.
pub const MAX_OAUTH_BODY_BYTES: usize = 8 * 1024;

/// A name from the request, cut for an error message.
fn truncated(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    match text.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// An RFC 6749 §5.2 error, and what the debug log says about it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OAuthError {
    #[schema(value_type = OAuthErrorCodeSchema)]
    error: &'static str,
    /// What is wrong, for people.
    error_description: String,
    /// Why, for the log: the body says no more than `invalid_client`.
    #[serde(skip)]
    reason: &'static str,
    /// The public client id presented, for the log.
    #[serde(skip)]
    client_id: Option<String>,
    /// The credential's token id, when it is known.
    #[serde(skip)]
    credential_id: Option<TokenId>,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            error_description: description.into(),
            reason: error,
            client_id: None,
            credential_id: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    fn invalid_client(reason: &'static str) -> Self {
        Self {
            reason,
            ..Self::new("invalid_client", CLIENT_AUTHENTICATION_FAILED)
        }
    }

    fn client(mut self, client_id: &str, credential_id: Option<&TokenId>) -> Self {
        self.client_id = Some(client_id.to_owned());
        self.credential_id = credential_id.cloned();
        self
    }

    /// One debug event: the error, its reason and the client, never a secret.
    fn log(&self) {
        tracing::debug!(
            error = self.error,
            reason = self.reason,
            client_id = self.client_id.as_deref(),
            credential_id = self.credential_id.as_ref().map(TokenId::as_str),
            "token request refused"
        );
    }
}

fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let unauthorized = self.error == "invalid_client";
        let status = if unauthorized {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        let mut response = (status, axum::Json(self)).into_response();
        no_store(&mut response);
        if unauthorized {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"m2m\""),
            );
        }
        response
    }
}

/// The successful answer (§5.1).
// It holds the new token, so it has no `Debug`.
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenResponse {
    /// The bearer token (`m2m_cc_…`, or a JWT in JWT mode), for `Authorization: Bearer`.
    access_token: String,
    /// `Bearer`.
    #[schema(example = "Bearer")]
    token_type: &'static str,
    /// Seconds until it expires.
    expires_in: i64,
    /// The scopes granted, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// Why the exchange failed: an OAuth error, or a problem (the store's 503, a body too large).
enum Failure {
    OAuth(OAuthError),
    Problem(Problem),
}

impl From<OAuthError> for Failure {
    fn from(error: OAuthError) -> Self {
        Failure::OAuth(error)
    }
}

impl From<m2m_core::StoreError> for Failure {
    fn from(error: m2m_core::StoreError) -> Self {
        Failure::Problem(error.into())
    }
}

/// The client id and secret of an `Authorization: Basic` header, if the request has one.
fn basic_client(headers: &HeaderMap) -> Result<Option<ClientCredentials>, OAuthError> {
    match basic_credentials(headers) {
        Ok(Some(client)) => Ok(Some(client)),
        // Another scheme is no client authentication this endpoint knows.
        Ok(None) if headers.contains_key(AUTHORIZATION) => {
            Err(OAuthError::invalid_client("not_basic"))
        }
        Ok(None) => Ok(None),
        Err(BasicError::Repeated) => Err(OAuthError::invalid_request(
            "the Authorization header is repeated",
        )),
        Err(BasicError::Malformed) => Err(OAuthError::invalid_client("malformed_basic")),
    }
}

/// The form's parameters, each at most once (§3.2).
struct Parameters(Vec<(String, String)>);

impl Parameters {
    /// Checks that no name comes twice, in time linear in the form.
    fn new(pairs: Vec<(String, String)>) -> Result<Self, OAuthError> {
        let mut seen = HashSet::with_capacity(pairs.len());
        if let Some((name, _)) = pairs.iter().find(|(name, _)| !seen.insert(name.as_str())) {
            return Err(OAuthError::invalid_request(format!(
                "the parameter {} is repeated",
                truncated(name)
            )));
        }
        Ok(Self(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `POST /oauth/token`.
#[utoipa::path(
    post,
    path = "/oauth/token",
    operation_id = "token",
    tag = "oauth",
    summary = "Client-credentials grant: a client id and secret for a bearer token",
    description = "The client authenticates by HTTP Basic or by the form fields `client_id` and \
                   `client_secret`, never both (RFC 6749 §2.3.1). Errors are RFC 6749 §5.2 JSON; \
                   a body too large, too many failed attempts and an unavailable store are \
                   problems.",
    security(("basic" = []), ()),
    request_body(content = TokenRequestFormSchema, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The bearer token", body = TokenResponse,
         headers(("Cache-Control" = String, description = "`no-store`"),
                 ("Pragma" = String, description = "`no-cache`"))),
        (status = 400, description = "`invalid_request`, `unsupported_grant_type`, \
                                      `invalid_scope` or `unauthorized_client`",
         body = OAuthError, content_type = "application/json"),
        (status = 401, description = "`invalid_client`: unknown client, wrong secret, revoked or \
                                      expired credential, all alike",
         body = OAuthError, content_type = "application/json",
         headers(("WWW-Authenticate" = String, description = "`Basic realm=\"m2m\"`"))),
        (status = 413, description = "Larger than 8 KiB"),
        (status = 429, description = "Too many failed client authentications for this client \
                                      id or address",
         headers(("Retry-After" = String, description = "Seconds to wait"))),
        (status = 503, description = "The token store cannot answer",
         headers(("Retry-After" = String, description = "Seconds to wait"))),
    ),
)]
pub(crate) async fn token(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let source = source.map(|address| address.ip());
    let outcome = exchange(&state, source, &headers, form).await;
    state.service_metrics().token_request(match &outcome {
        Ok(_) => TokenRequest::Granted,
        Err(Failure::OAuth(error)) => TokenRequest::Refused(error.error),
        Err(Failure::Problem(problem)) => TokenRequest::Failed(problem.status()),
    });
    match outcome {
        Ok(body) => {
            let mut response = axum::Json(body).into_response();
            no_store(&mut response);
            response
        }
        Err(Failure::OAuth(error)) => {
            error.log();
            if error.error == "invalid_client" {
                state
                    .failure_limits()
                    .note_failure(error.client_id.as_deref(), source);
            }
            error.into_response()
        }
        Err(Failure::Problem(problem)) => problem.into_response(),
    }
}

async fn exchange(
    state: &AppState,
    source: Option<IpAddr>,
    headers: &HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<TokenResponse, Failure> {
    let Form(pairs) = match form {
        Ok(form) => form,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(Failure::Problem(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a token request has at most {MAX_OAUTH_BODY_BYTES} bytes"),
            )));
        }
        Err(rejection) => {
            return Err(OAuthError::invalid_request(format!(
                "expected an application/x-www-form-urlencoded body: {}",
                rejection.body_text()
            ))
            .into());
        }
    };
    let parameters = Parameters::new(pairs)?;

    let basic = basic_client(headers)?;
    let form_id = parameters.get("client_id");
    let form_secret = parameters.get("client_secret");
    let (client_id, secret) = match (basic, form_id, form_secret) {
        (Some(client), None, None) => (client.client_id, client.client_secret),
        (None, Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
        (Some(_), _, _) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: HTTP Basic or the client_id and \
                 client_secret form fields, not both",
            )
            .into());
        }
        (None, _, _) => return Err(OAuthError::invalid_client("no_client_authentication").into()),
    };

    // Past its quota of failures, a client id (or an address) is refused before its secret
    // is looked at.
    if let Some(wait) = state.failure_limits().wait(Some(&client_id), source) {
        tracing::debug!(client_id = %client_id, reason = "too_many_failures", "token request refused");
        return Err(Failure::Problem(Problem::too_many_requests(wait)));
    }

    match parameters.get("grant_type") {
        None => {
            return Err(OAuthError::invalid_request("the grant_type parameter is missing").into());
        }
        Some("client_credentials") => {}
        Some(_) => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "only the client_credentials grant is supported",
            )
            .into());
        }
    }

    let credential = match state
        .admin_verifier()
        .check_client(&client_id, &secret)
        .await
    {
        Ok(credential) => credential,
        Err(TokenCheckError::StoreUnavailable { retry_after }) => {
            tracing::warn!(client_id = %client_id, "token request: the token store is unavailable");
            return Err(Failure::Problem(Problem::store_unavailable(retry_after)));
        }
        Err(TokenCheckError::Inactive(reason)) => {
            return Err(OAuthError::invalid_client(reason.as_str())
                .client(&client_id, None)
                .into());
        }
        Err(_) => {
            return Err(OAuthError::invalid_client("refused")
                .client(&client_id, None)
                .into());
        }
    };
    let refused =
        |reason| OAuthError::invalid_client(reason).client(&client_id, Some(credential.token_id()));

    let now = state.now();
    let minutes_left = credential.expires_at().map(|at| (at - now).whole_minutes());
    let lifetime = match minutes_left {
        Some(left) if left < 1 => return Err(refused("expires_within_a_minute").into()),
        Some(left) => left.min(i64::from(state.options().bearer_lifetime_minutes)),
        None => i64::from(state.options().bearer_lifetime_minutes),
    };
    let expiry = Expiry::minutes(lifetime).map_err(|_| refused("no_lifetime_left"))?;

    state.reload_settings().await?;
    if !state
        .tenant_policy()
        .is_enabled(credential.tenant(), TokenType::ClientCredentials)
    {
        return Err(OAuthError::new(
            "unauthorized_client",
            "client credentials are not enabled for this client's tenant",
        )
        .client(&client_id, Some(credential.token_id()))
        .into());
    }
    // The bearer token is listed with its credential's description, which the verifier does
    // not cache.
    let description = match state.store().get(credential.token_id()).await? {
        Some(record) if record.is_active(now) => record.description,
        _ => return Err(refused("revoked").into()),
    };

    let scopes = match parameters.get("scope").map(str::split_whitespace) {
        Some(requested) if requested.clone().next().is_some() => {
            let mut granted: Vec<String> = Vec::new();
            let mut seen = HashSet::new();
            for scope in requested {
                if !credential.has_scope(scope) {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        format!("the client may not request the scope {scope:?}"),
                    )
                    .client(&client_id, Some(credential.token_id()))
                    .into());
                }
                if seen.insert(scope) {
                    granted.push(scope.to_owned());
                }
            }
            granted
        }
        _ => credential.scopes().map(str::to_owned).collect(),
    };

    let mut request =
        NewToken::new(TokenKind::BearerToken, credential.tenant(), expiry).description(description);
    request.user = credential.user().map(str::to_owned);
    request.scopes = scopes;
    request.credential = Some((credential.token_id().clone(), client_id.clone()));
    // Its requests count against the credential's budget.
    request.rate_limit = credential.rate_limit();
    // Stored only while the credential is unrevoked, serialised with its revocation: an
    // exchange racing a revocation either loses or is revoked by it.
    if state.bearer_format() == crate::jwt::BearerFormat::Jwt {
        // Signed, not stored: verifiers check it offline and refuse it once the credential's
        // revocation reaches them.
        let scope = (!request.scopes.is_empty()).then(|| request.scopes.join(" "));
        let jwt = crate::jwt::mint(
            state,
            &credential,
            &client_id,
            &request.scopes,
            lifetime,
            now,
        )
        .await?;
        return Ok(TokenResponse {
            access_token: jwt,
            token_type: "Bearer",
            expires_in: lifetime * 60,
            scope,
        });
    }
    let issued = request.generate(state.format(), now);
    if !state.store().insert_derived(issued.record.clone()).await? {
        return Err(refused("revoked").into());
    }
    Ok(TokenResponse {
        access_token: issued.token.expose_secret().to_owned(),
        token_type: "Bearer",
        expires_in: lifetime * 60,
        scope: (!issued.record.scopes.is_empty()).then(|| issued.record.scopes.join(" ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any form: accepted exactly when no name comes twice, never a panic.
        #[test]
        fn any_form_is_accepted_exactly_when_its_names_are_unique(
            pairs in proptest::collection::vec(("[a-c]{0,2}", ".{0,8}"), 0..64)
        ) {
            let unique = pairs.iter().map(|(name, _)| name).collect::<HashSet<_>>().len() == pairs.len();
            proptest::prop_assert_eq!(Parameters::new(pairs).is_ok(), unique);
        }
    }

    #[test]
    fn a_repeated_name_is_named_cut_short() {
        let long = "n".repeat(1000);
        let Err(error) = Parameters::new(vec![(long.clone(), "1".into()), (long, "2".into())])
        else {
            panic!("a repeat is refused");
        };
        assert!(
            error.error_description.len() < 120,
            "{}",
            error.error_description
        );
    }
}
