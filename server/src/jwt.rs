//! JWT access tokens for the client-credentials grant (`--bearer-format jwt`), their signing
//! keys, the JWKS and the authorization server metadata.
//!
//! - **Minting** (RFC 9068): header `typ: at+jwt`, `alg: EdDSA`, `kid`; claims `iss`, `sub` (the
//!   credential's user, else its client id), `aud`, `exp`, `iat`, `jti`, `client_id`, `scope`,
//!   and `tenant_id`, `cid` (the credential id) and `user_id` when there is one. Nothing is
//!   written per exchange.
//! - **Keys**: Ed25519, generated here, kept by the store (private key as PKCS#8). The newest
//!   key not retired signs; [`rotate`] makes a new one sign at once and retires the others,
//!   which stay published in the JWKS until every token they signed has expired (the longest
//!   bearer lifetime past their retirement). Each instance reloads the keys at most every
//!   [`KEY_RELOAD`], so a rotation on one instance reaches the others within it.
//! - **Routes**: `GET /.well-known/jwks.json` (cacheable for [`JWKS_MAX_AGE`]),
//!   `GET /.well-known/oauth-authorization-server` (RFC 8414), `GET /v1/keys` and
//!   `POST /v1/keys/rotate` (environment admin).

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::sync::Arc;

use m2m_core::jwt::{JwtIssuer, JwtKey, JwtKeys, KeySource};
use m2m_core::{Principal, SigningKey, StoreError, TokenId, TokenStore};

pub use m2m_core::BearerFormat;
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::RwLock;
use utoipa::ToSchema;

use crate::audit::{Source, record_call};
use crate::caller::Caller;
use crate::openapi::schema::{BearerFormatSchema, JwkSchema};
use crate::problem::Problem;
use crate::rights::require_environment_admin;
use crate::state::AppState;

/// How long a JWKS answer may be cached by its readers.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(300);
/// How often an instance reloads the signing keys from the store.
pub const KEY_RELOAD: Duration = Duration::from_secs(30);
/// The algorithm of the keys generated here.
pub const SIGNING_ALGORITHM: &str = "EdDSA";

/// The key that signs, as loaded.
struct Current {
    kid: String,
    key: EncodingKey,
    loaded: Instant,
}

/// The signing key of one instance, reloaded from the store now and then.
#[derive(Default)]
pub(crate) struct Signer {
    current: RwLock<Option<Current>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

/// A new Ed25519 key, made at `now`.
pub(crate) fn generate(now: OffsetDateTime) -> Result<SigningKey, StoreError> {
    let rng = SystemRandom::new();
    let unavailable = |what: &str| StoreError::Unavailable(format!("cannot generate {what}"));
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| unavailable("a key"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| unavailable("a key pair"))?;
    let mut id = [0u8; 12];
    rng.fill(&mut id).map_err(|_| unavailable("a key id"))?;
    let kid = URL_SAFE_NO_PAD.encode(id);
    let public_jwk = json!({
        "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": SIGNING_ALGORITHM, "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
    });
    Ok(SigningKey {
        kid,
        algorithm: SIGNING_ALGORITHM.to_owned(),
        private_key: pkcs8.as_ref().to_vec(),
        public_jwk: public_jwk.to_string(),
        created_at: now,
        retired_at: None,
    })
}

/// The longest a bearer token of this service lives, and a minute: how long a retired key
/// stays published, and how far back credential revocations are sent again after a gap.
pub(crate) fn longest_lifetime(options: &crate::ServiceOptions) -> time::Duration {
    time::Duration::minutes(i64::from(options.bearer_lifetime_minutes) + 1)
}

fn publication(state: &AppState) -> time::Duration {
    longest_lifetime(state.options())
}

/// Stores a new key that signs from `now` on and retires the others; returns it.
pub(crate) async fn rotate_in(
    store: &dyn TokenStore,
    now: OffsetDateTime,
) -> Result<SigningKey, StoreError> {
    let key = generate(now)?;
    store.insert_signing_key(&key).await?;
    let retired = store.retire_signing_keys(&key.kid, now).await?;
    tracing::info!(target: "m2m::keys", kid = %key.kid, retired, "signing key rotated");
    Ok(key)
}

/// Makes a new key sign from now on, on this instance at once; returns it.
pub(crate) async fn rotate(state: &AppState) -> Result<SigningKey, StoreError> {
    let key = rotate_in(state.store().as_ref(), state.now()).await?;
    *state.signer().current.write().await = None;
    Ok(key)
}

impl Signer {
    /// The signing key: the cached one while fresh, else the newest of the store's (one is
    /// made when there is none).
    async fn current(&self, state: &AppState) -> Result<(String, EncodingKey), StoreError> {
        if let Some(current) = &*self.current.read().await
            && current.loaded.elapsed() < KEY_RELOAD
        {
            return Ok((current.kid.clone(), current.key.clone()));
        }
        let mut slot = self.current.write().await;
        let now = state.now();
        let keys = state.store().signing_keys(now).await?;
        let newest = match keys.into_iter().find(|k| k.retired_at.is_none()) {
            Some(key) => key,
            None => {
                let key = generate(now)?;
                match state.store().insert_signing_key(&key).await {
                    Ok(()) | Err(StoreError::Conflict) => key,
                    Err(error) => return Err(error),
                }
            }
        };
        let key = EncodingKey::from_ed_der(&newest.private_key);
        *slot = Some(Current {
            kid: newest.kid.clone(),
            key: key.clone(),
            loaded: Instant::now(),
        });
        Ok((newest.kid, key))
    }
}

/// The issuer (`iss`) of this service's JWTs: its public URL.
pub(crate) fn issuer(state: &AppState) -> String {
    issuer_of(state.options())
}

fn issuer_of(options: &crate::ServiceOptions) -> String {
    options
        .public_url
        .clone()
        .unwrap_or_else(|| crate::state::DEFAULT_ISSUER.to_owned())
}

/// The audience (`aud`) of this service's JWTs.
pub(crate) fn audience(state: &AppState) -> String {
    audience_of(state.options())
}

fn audience_of(options: &crate::ServiceOptions) -> String {
    options
        .jwt_audience
        .clone()
        .unwrap_or_else(|| issuer_of(options))
}

/// The public keys of this service's own JWTs, read from the store: the admin verifier
/// accepts the JWTs the service mints, like its opaque tokens. Reloaded at most every
/// [`KEY_RELOAD`], and for an unknown `kid` at most once a second.
pub(crate) struct StoreKeys {
    store: Arc<dyn TokenStore>,
    window: time::Duration,
    loaded: RwLock<Option<(Instant, JwtKeys)>>,
}

impl std::fmt::Debug for StoreKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreKeys").finish_non_exhaustive()
    }
}

impl StoreKeys {
    async fn reload(&self) -> Result<JwtKeys, StoreError> {
        let since = OffsetDateTime::now_utc() - self.window;
        let keys = self.store.signing_keys(since).await?;
        let published: Vec<Value> = keys
            .iter()
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect();
        let keys = JwtKeys::from_jwks(&json!({ "keys": published }).to_string())
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        *self.loaded.write().await = Some((Instant::now(), keys.clone()));
        Ok(keys)
    }
}

#[async_trait::async_trait]
impl KeySource for StoreKeys {
    async fn key(&self, kid: Option<&str>) -> Result<Option<Arc<JwtKey>>, StoreError> {
        let (found, age) = match &*self.loaded.read().await {
            Some((at, keys)) => (keys.find(kid), Some(at.elapsed())),
            None => (None, None),
        };
        let reload = match (&found, age) {
            (_, None) => true,
            (Some(_), Some(age)) => age >= KEY_RELOAD,
            (None, Some(age)) => age >= Duration::from_secs(1),
        };
        if !reload {
            return Ok(found);
        }
        Ok(self.reload().await?.find(kid))
    }
}

/// The issuer the admin verifier trusts: this service, with its keys from `store`.
pub(crate) fn own_issuer(store: Arc<dyn TokenStore>, options: &crate::ServiceOptions) -> JwtIssuer {
    let keys = StoreKeys {
        store,
        window: longest_lifetime(options),
        loaded: RwLock::new(None),
    };
    JwtIssuer::new(issuer_of(options), keys)
        .audience(audience_of(options))
        .require_typ(m2m_core::jwt::ACCESS_TOKEN_TYP)
}

/// A signed JWT for the client `credential` authenticates, with `scopes`, valid `lifetime`
/// minutes from `now`.
pub(crate) async fn mint(
    state: &AppState,
    credential: &Principal,
    client_id: &str,
    scopes: &[String],
    lifetime_minutes: i64,
    now: OffsetDateTime,
) -> Result<String, StoreError> {
    let (kid, key) = state.signer().current(state).await?;
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some(m2m_core::jwt::ACCESS_TOKEN_TYP.to_owned());
    header.kid = Some(kid);
    let iat = now.unix_timestamp();
    let mut claims = json!({
        "iss": issuer(state),
        "sub": credential.user().unwrap_or(client_id),
        "aud": audience(state),
        "iat": iat,
        "exp": iat + lifetime_minutes * 60,
        "jti": TokenId::generate().as_str(),
        "client_id": client_id,
        "scope": scopes.join(" "),
        "tenant_id": credential.tenant(),
        "cid": credential.token_id().as_str(),
    });
    if let Some(user) = credential.user() {
        claims["user_id"] = user.into();
    }
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|error| StoreError::Unavailable(format!("cannot sign: {error}")))
}

/// A JWK Set (RFC 7517).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JwkSet {
    /// The keys, as stored when they were made.
    #[schema(value_type = Vec<JwkSchema>)]
    keys: Vec<Value>,
}

/// `GET /.well-known/jwks.json`: the public keys, current and recently retired.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "jwks",
    tag = "oauth",
    summary = "The public keys JWT access tokens are signed with",
    responses(
        (status = 200, description = "The current key and those retired within the longest \
                                      bearer lifetime", body = JwkSet,
         headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
        (status = 503, description = "The token store does not answer"),
    ),
)]
pub(crate) async fn jwks(State(state): State<AppState>) -> Result<Response, Problem> {
    let since = state.now() - publication(&state);
    let mut keys = state.store().signing_keys(since).await?;
    if keys.is_empty() {
        // Publish the key the first token will be signed with.
        state.signer().current(&state).await?;
        keys = state.store().signing_keys(since).await?;
    }
    let keys: Vec<Value> = keys
        .iter()
        .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
        .collect();
    let mut response = Json(JwkSet { keys }).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={}", JWKS_MAX_AGE.as_secs()))
    {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    Ok(response)
}

/// The authorization server metadata (RFC 8414).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuthorizationServerMetadata {
    /// The service's public URL, the `iss` of its JWTs.
    issuer: String,
    token_endpoint: String,
    introspection_endpoint: String,
    jwks_uri: String,
    /// `client_credentials`.
    grant_types_supported: [&'static str; 1],
    /// `client_secret_basic`, `client_secret_post`.
    token_endpoint_auth_methods_supported: [&'static str; 2],
    /// `client_secret_basic`, `bearer`.
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    /// None: there is no authorization endpoint.
    response_types_supported: [&'static str; 0],
    token_endpoint_auth_signing_alg_values_supported: [&'static str; 0],
    /// What the client-credentials grant hands out now.
    #[schema(value_type = BearerFormatSchema)]
    access_token_format: &'static str,
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    operation_id = "authorization_server_metadata",
    tag = "oauth",
    summary = "Where the token, introspection and key endpoints are, and what they support",
    responses((status = 200, description = "The metadata", body = AuthorizationServerMetadata)),
)]
pub(crate) async fn metadata(State(state): State<AppState>) -> Json<AuthorizationServerMetadata> {
    let issuer = issuer(&state);
    let base = issuer.trim_end_matches('/').to_owned();
    Json(AuthorizationServerMetadata {
        token_endpoint: format!("{base}/oauth/token"),
        introspection_endpoint: format!("{base}/oauth/introspect"),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        issuer,
        grant_types_supported: ["client_credentials"],
        token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
        introspection_endpoint_auth_methods_supported: ["client_secret_basic", "bearer"],
        response_types_supported: [],
        token_endpoint_auth_signing_alg_values_supported: [],
        access_token_format: state.bearer_format().name(),
    })
}

/// A signing key as the admin API shows it: never the private key.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyView {
    /// The key id JWT headers name.
    kid: String,
    /// `EdDSA`.
    algorithm: String,
    /// RFC 3339.
    #[schema(format = DateTime)]
    created_at: String,
    /// RFC 3339; `null` for the key that signs.
    #[schema(format = DateTime)]
    retired_at: Option<String>,
}

impl KeyView {
    fn new(key: &SigningKey) -> Self {
        let rfc3339 = |at: OffsetDateTime| crate::api::rfc3339(at);
        Self {
            kid: key.kid.clone(),
            algorithm: key.algorithm.clone(),
            created_at: rfc3339(key.created_at),
            retired_at: key.retired_at.map(rfc3339),
        }
    }
}

/// The answer of `GET /v1/keys`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct KeyList {
    /// Newest first.
    items: Vec<KeyView>,
}

/// `GET /v1/keys`: the published signing keys, newest first (environment admin).
#[utoipa::path(
    get,
    path = "/v1/keys",
    operation_id = "list_keys",
    tag = "keys",
    summary = "The published signing keys, newest first",
    security(("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"])),
    responses((status = 200, description = "The keys", body = KeyList)),
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<KeyList>, Problem> {
    require_environment_admin(&caller)?;
    let since = state.now() - publication(&state);
    let keys = state.store().signing_keys(since).await?;
    Ok(Json(KeyList {
        items: keys.iter().map(KeyView::new).collect(),
    }))
}

/// `POST /v1/keys/rotate`: a new key signs from now on (environment admin); 201.
#[utoipa::path(
    post,
    path = "/v1/keys/rotate",
    operation_id = "rotate_key",
    tag = "keys",
    summary = "Make a new key sign from now on; the others stay published until their tokens expire",
    security(("api_key" = ["m2m:admin"]), ("client_credentials" = ["m2m:admin"])),
    responses((status = 201, description = "The new key", body = KeyView)),
)]
pub(crate) async fn rotate_route(
    State(state): State<AppState>,
    caller: Caller,
    source: Source,
) -> Result<Response, Problem> {
    require_environment_admin(&caller)?;
    let key = rotate(&state).await?;
    record_call(&state, &caller, source, "keys.rotate", None, Some(&key.kid)).await;
    Ok((StatusCode::CREATED, Json(KeyView::new(&key))).into_response())
}
