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
//! - Unknown client id, wrong secret, revoked or expired credential: the same `invalid_client`
//!   answer, so that nobody learns whether a client id exists.
//! - Errors are JSON `{error, error_description}` (§5.2): `invalid_client` is 401 with
//!   `WWW-Authenticate: Basic realm="m2m"`, the others 400. Every answer carries
//!   `Cache-Control: no-store` and `Pragma: no-cache`.
//!
//! [`ServiceOptions::bearer_lifetime_minutes`]: crate::ServiceOptions::bearer_lifetime_minutes

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{AUTHORIZATION, CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use m2m_core::{Expiry, NewToken, TokenDigest, TokenKind, TokenType};
use serde::Serialize;

use crate::problem::Problem;
use crate::state::AppState;

const CLIENT_AUTHENTICATION_FAILED: &str = "client authentication failed";

/// An RFC 6749 §5.2 error.
#[derive(Debug, Serialize)]
struct OAuthError {
    error: &'static str,
    error_description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            error_description: description.into(),
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    fn invalid_client() -> Self {
        Self::new("invalid_client", CLIENT_AUTHENTICATION_FAILED)
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

/// The successful answer (§5.1). It holds the new token, so it has no `Debug`.
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// Why the exchange failed: an OAuth error, or the store (a 503 problem).
enum Failure {
    OAuth(OAuthError),
    Store(Problem),
}

impl From<OAuthError> for Failure {
    fn from(error: OAuthError) -> Self {
        Failure::OAuth(error)
    }
}

impl From<m2m_core::StoreError> for Failure {
    fn from(error: m2m_core::StoreError) -> Self {
        Failure::Store(error.into())
    }
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte.
pub(crate) fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The client id and secret of an `Authorization: Basic` header, if the request has one.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::invalid_request(
            "the Authorization header is repeated",
        ));
    }
    let value = value.to_str().map_err(|_| OAuthError::invalid_client())?;
    let (scheme, encoded) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client());
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .map_err(|_| OAuthError::invalid_client())?;
    let decoded = String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client())?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(OAuthError::invalid_client)?;
    let id = form_decode(id).ok_or_else(OAuthError::invalid_client)?;
    let secret = form_decode(secret).ok_or_else(OAuthError::invalid_client)?;
    Ok(Some((id, secret)))
}

/// The form's parameters, each at most once (§3.2).
struct Parameters(Vec<(String, String)>);

impl Parameters {
    fn new(pairs: Vec<(String, String)>) -> Result<Self, OAuthError> {
        for (i, (name, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(OAuthError::invalid_request(format!(
                    "the parameter {name} is repeated"
                )));
            }
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
pub(crate) async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    match exchange(&state, &headers, form).await {
        Ok(body) => {
            let mut response = axum::Json(body).into_response();
            no_store(&mut response);
            response
        }
        Err(Failure::OAuth(error)) => error.into_response(),
        Err(Failure::Store(problem)) => problem.into_response(),
    }
}

async fn exchange(
    state: &AppState,
    headers: &HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<TokenResponse, Failure> {
    let Form(pairs) = form.map_err(|rejection| {
        OAuthError::invalid_request(format!(
            "expected an application/x-www-form-urlencoded body: {}",
            rejection.body_text()
        ))
    })?;
    let parameters = Parameters::new(pairs)?;

    let basic = basic_credentials(headers)?;
    let form_id = parameters.get("client_id");
    let form_secret = parameters.get("client_secret");
    let (client_id, secret) = match (basic, form_id, form_secret) {
        (Some(pair), None, None) => pair,
        (None, Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
        (Some(_), _, _) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: HTTP Basic or the client_id and \
                 client_secret form fields, not both",
            )
            .into());
        }
        (None, _, _) => return Err(OAuthError::invalid_client().into()),
    };

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

    let now = state.now();
    let digest = TokenDigest::of(&secret);
    let credential = state
        .store()
        .find_client(&client_id)
        .await?
        .filter(|record| {
            record.kind == TokenKind::ClientSecret
                && record.digest == digest
                && record.is_active(now)
        })
        .ok_or_else(OAuthError::invalid_client)?;

    let minutes_left = credential.expires_at.map(|at| (at - now).whole_minutes());
    let lifetime = match minutes_left {
        Some(left) if left < 1 => return Err(OAuthError::invalid_client().into()),
        Some(left) => left.min(i64::from(state.options().bearer_lifetime_minutes)),
        None => i64::from(state.options().bearer_lifetime_minutes),
    };
    let expiry = Expiry::minutes(lifetime).map_err(|_| OAuthError::invalid_client())?;

    state.reload_settings().await?;
    if !state
        .tenant_policy()
        .is_enabled(&credential.tenant, TokenType::ClientCredentials)
    {
        return Err(OAuthError::new(
            "unauthorized_client",
            "client credentials are not enabled for this client's tenant",
        )
        .into());
    }

    let scopes = match parameters.get("scope").map(str::split_whitespace) {
        Some(requested) if requested.clone().next().is_some() => {
            let mut granted: Vec<String> = Vec::new();
            for scope in requested {
                if !credential.scopes.iter().any(|s| s == scope) {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        format!("the client may not request the scope {scope:?}"),
                    )
                    .into());
                }
                if !granted.iter().any(|s| s == scope) {
                    granted.push(scope.to_owned());
                }
            }
            granted
        }
        _ => credential.scopes.clone(),
    };

    let mut request = NewToken::new(TokenKind::BearerToken, credential.tenant.clone(), expiry)
        .description(credential.description.clone());
    request.user = credential.user.clone();
    request.scopes = scopes;
    request.credential = Some((credential.id.clone(), client_id));
    let issued = state.store().issue(state.format(), request, now).await?;
    Ok(TokenResponse {
        access_token: issued.token.expose_secret().to_owned(),
        token_type: "Bearer",
        expires_in: lifetime * 60,
        scope: (!issued.record.scopes.is_empty()).then(|| issued.record.scopes.join(" ")),
    })
}
