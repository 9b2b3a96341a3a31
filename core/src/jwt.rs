//! Offline verification of signed JWT access tokens (feature `jwt`).
//!
//! A [`Verifier`](crate::Verifier) given one or more [`JwtIssuer`]s accepts, besides opaque
//! tokens, an `Authorization: Bearer` value shaped as a JWT (three base64url parts): it picks
//! the issuer named by the token's `iss`, takes the key named by its `kid` from that issuer's
//! [`KeySource`], checks the signature with an algorithm on the issuer's allow-list (never
//! `none`, never a symmetric one), then `iss`, `aud`, `exp` and `nbf` with the issuer's leeway,
//! and maps the claims to a [`Principal`](crate::Principal) with the issuer's [`ClaimMapping`].
//! The result is cached under the token's SHA-256 digest until `exp`, so that the same JWT
//! costs a cache hit afterwards, not a signature check; it then goes through the same decision
//! as an opaque token (expiry, type policy, scopes) and the same rejections. A JWT sent in
//! `X-API-KEY` is a wrong placement (400 naming `Authorization`).
//!
//! Revoking a client credential reaches JWTs too: the verifier remembers the ids in the
//! revocation events it hears (for [`VerifierBuilder::jwt_revocation_memory`], by default a
//! day) and refuses a JWT whose `jti` or credential id is among them.
//!
//! [`VerifierBuilder::jwt_revocation_memory`]: crate::VerifierBuilder::jwt_revocation_memory
//!
//! # Third-party issuers
//!
//! An identity provider's tokens name the tenant, the scopes and the client in claims of their
//! own; a [`ClaimMapping`] says which. Three common shapes:
//!
//! ```
//! use m2m_core::jwt::{Algorithm, ClaimMapping, JwtIssuer, JwtKeys, ScopeClaim};
//!
//! // A tenant-aware SaaS identity provider: tenantId, roles and permissions.
//! let saas = ClaimMapping::default()
//!     .tenant("tenantId")
//!     .user("sub")
//!     .scopes_list("permissions")
//!     .also_scopes(ScopeClaim::List("roles".into()));
//! // Auth0-style: the organization is the tenant, permissions are the scopes, RS256.
//! let auth0 = ClaimMapping::default()
//!     .tenant("org_id")
//!     .user("sub")
//!     .client_id("azp")
//!     .scopes_list("permissions");
//! let auth0 = JwtIssuer::new("https://acme.auth0.example/", JwtKeys::default())
//!     .audience("https://api.example")
//!     .algorithms([Algorithm::RS256])
//!     .claims(auth0);
//! // Keycloak-style: one realm per tenant, the client in azp, realm roles as scopes.
//! let keycloak = ClaimMapping::default()
//!     .fixed_tenant("globex")
//!     .client_id("azp")
//!     .scopes_spaced("scope")
//!     .also_scopes(ScopeClaim::List("realm_access.roles".into()));
//! # let _ = (saas, auth0, keycloak);
//! ```
//!
//! # Example
//!
//! ```
//! use m2m_core::jwt::{JwtIssuer, JwtKeys};
//! use m2m_core::{MemoryStore, Verifier};
//!
//! // The issuer's published keys, as `/.well-known/jwks.json` serves them.
//! let jwks = r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA",
//!                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
//! let issuer = JwtIssuer::new("https://tokens.example", JwtKeys::from_jwks(jwks).unwrap())
//!     .audience("https://api.example");
//! let verifier = Verifier::builder(MemoryStore::new()).jwt_issuer(issuer).build();
//! # let _ = verifier;
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;

pub use jsonwebtoken::Algorithm;

use crate::record::TokenRecord;
use crate::store::StoreError;
use crate::token::{TokenDigest, TokenId, TokenKind};

/// The `typ` of a JWT access token (RFC 9068 §2.1), with or without `application/`.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
/// The longest JWT accepted, in bytes; longer ones are refused before any decoding.
pub const MAX_JWT_LEN: usize = 4096;
/// The most scopes a JWT may carry.
const MAX_SCOPES: usize = 256;

/// A public key an issuer signs with: its `kid`, its algorithm and the key.
#[derive(Clone)]
pub struct JwtKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// A key that cannot be used to verify signatures.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unusable key: {0}")]
pub struct JwtKeyError(String);

impl JwtKey {
    /// The key of one JWK (RFC 7517): an Ed25519 (`OKP`), P-256/P-384 (`EC`) or RSA key. Its
    /// algorithm is the JWK's `alg`, or the one its key type implies (`EdDSA`, `ES256`/`ES384`,
    /// `RS256`).
    ///
    /// # Errors
    ///
    /// [`JwtKeyError`] for a symmetric (`oct`) key, an encryption key, or one the algorithm
    /// does not fit.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, JwtKeyError> {
        use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Err(JwtKeyError("an encryption key".into()));
        }
        let implied = match &jwk.algorithm {
            AlgorithmParameters::OctetKey(_) => {
                return Err(JwtKeyError("a symmetric key is never trusted".into()));
            }
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            AlgorithmParameters::EllipticCurve(params) => match params.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err(JwtKeyError("an unsupported curve".into())),
            },
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
        };
        let algorithm = match &jwk.common.key_algorithm {
            None => implied,
            Some(named) => {
                let name = serde_json::to_value(named)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                name.parse::<Algorithm>()
                    .map_err(|_| JwtKeyError(format!("algorithm {name:?}")))?
            }
        };
        if is_symmetric(algorithm) || family(algorithm) != family(implied) {
            return Err(JwtKeyError(format!(
                "algorithm {algorithm:?} does not fit the key type"
            )));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| JwtKeyError(e.to_string()))?;
        Ok(Self {
            kid: jwk.common.key_id.clone(),
            algorithm,
            key,
        })
    }

    /// The key's `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm the key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn is_symmetric(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
}

fn family(algorithm: Algorithm) -> u8 {
    match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => 0,
        Algorithm::ES256 | Algorithm::ES384 => 1,
        Algorithm::EdDSA => 2,
        _ => 3,
    }
}

/// Where an issuer's public keys come from: given in code ([`JwtKeys`]) or fetched from a
/// JWKS URL and refreshed (`m2m_remote::JwksKeys`).
#[async_trait]
pub trait KeySource: Send + Sync + fmt::Debug + 'static {
    /// The key named `kid` (or the only key, when the token names none); `Ok(None)` when the
    /// source has no such key, even after a refresh it allowed itself.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] when the keys cannot be fetched: the request is then a 503,
    /// never a 401.
    async fn key(&self, kid: Option<&str>) -> Result<Option<Arc<JwtKey>>, StoreError>;
}

/// Keys given in code: a fixed set, never refreshed.
///
/// ```
/// use m2m_core::jwt::JwtKeys;
/// let keys = JwtKeys::from_jwks(r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).unwrap();
/// assert!(keys.is_empty(), "symmetric keys are skipped");
/// ```
#[derive(Clone, Debug, Default)]
pub struct JwtKeys {
    keys: Vec<Arc<JwtKey>>,
}

impl JwtKeys {
    /// The usable keys of a JWK set; keys it cannot use (symmetric, for encryption, of an
    /// unknown type) are skipped.
    pub fn from_set(set: &JwkSet) -> Self {
        let keys = set
            .keys
            .iter()
            .filter_map(|jwk| match JwtKey::from_jwk(jwk) {
                Ok(key) => Some(Arc::new(key)),
                Err(error) => {
                    tracing::debug!(target: "m2m::jwt", kid = ?jwk.common.key_id, %error, "key skipped");
                    None
                }
            })
            .collect();
        Self { keys }
    }

    /// The usable keys of a JWK set in JSON (`{"keys": [...]}`).
    ///
    /// # Errors
    ///
    /// [`JwtKeyError`] when the text is not a JWK set.
    pub fn from_jwks(json: &str) -> Result<Self, JwtKeyError> {
        let set: JwkSet =
            serde_json::from_str(json).map_err(|e| JwtKeyError(format!("not a JWK set: {e}")))?;
        Ok(Self::from_set(&set))
    }

    /// These keys and `key`.
    #[must_use]
    pub fn with(mut self, key: JwtKey) -> Self {
        self.keys.push(Arc::new(key));
        self
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key named `kid`; without a `kid`, the only key there is.
    pub fn find(&self, kid: Option<&str>) -> Option<Arc<JwtKey>> {
        match kid {
            Some(kid) => self.keys.iter().find(|k| k.kid() == Some(kid)).cloned(),
            None if self.keys.len() == 1 => self.keys.first().cloned(),
            None => None,
        }
    }
}

#[async_trait]
impl KeySource for JwtKeys {
    async fn key(&self, kid: Option<&str>) -> Result<Option<Arc<JwtKey>>, StoreError> {
        Ok(self.find(kid))
    }
}

/// Where scopes are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeClaim {
    /// A space-separated string, such as RFC 9068's `scope`.
    Spaced(String),
    /// An array of strings, such as `permissions` or `realm_access.roles`.
    List(String),
}

/// Which claims name the tenant, the user, the scopes, the client and the credential of a
/// token. A name may be a dotted path into nested objects (`realm_access.roles`).
///
/// ```
/// use m2m_core::jwt::ClaimMapping;
/// // Auth0-style: the organisation is the tenant, permissions are the scopes.
/// let auth0 = ClaimMapping::default().tenant("org_id").scopes_list("permissions");
/// # let _ = auth0;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimMapping {
    tenant: String,
    fixed_tenant: Option<String>,
    user: Option<String>,
    scopes: Vec<ScopeClaim>,
    client_id: String,
    credential_id: Option<String>,
}

impl Default for ClaimMapping {
    /// The claims of the m2m token service's own JWTs: `tenant_id`, `user_id`, `scope`,
    /// `client_id` and `cid` (the credential id).
    fn default() -> Self {
        Self {
            tenant: "tenant_id".to_owned(),
            fixed_tenant: None,
            user: Some("user_id".to_owned()),
            scopes: vec![ScopeClaim::Spaced("scope".to_owned())],
            client_id: "client_id".to_owned(),
            credential_id: Some("cid".to_owned()),
        }
    }
}

impl ClaimMapping {
    /// The claim naming the tenant (default `tenant_id`).
    #[must_use]
    pub fn tenant(mut self, claim: impl Into<String>) -> Self {
        self.tenant = claim.into();
        self
    }

    /// Every token of this issuer belongs to `tenant`, whatever its claims say (an issuer
    /// that serves one tenant).
    #[must_use]
    pub fn fixed_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.fixed_tenant = Some(tenant.into());
        self
    }

    /// The claim naming the user (default `user_id`; `sub` for most identity providers).
    #[must_use]
    pub fn user(mut self, claim: impl Into<String>) -> Self {
        self.user = Some(claim.into());
        self
    }

    /// Scopes from this space-separated claim instead of `scope`.
    #[must_use]
    pub fn scopes_spaced(mut self, claim: impl Into<String>) -> Self {
        self.scopes = vec![ScopeClaim::Spaced(claim.into())];
        self
    }

    /// Scopes from this array claim instead of `scope`.
    #[must_use]
    pub fn scopes_list(mut self, claim: impl Into<String>) -> Self {
        self.scopes = vec![ScopeClaim::List(claim.into())];
        self
    }

    /// Scopes from this claim as well as those already named.
    #[must_use]
    pub fn also_scopes(mut self, claim: ScopeClaim) -> Self {
        self.scopes.push(claim);
        self
    }

    /// The claim naming the client (default `client_id`; `azp` for Keycloak).
    #[must_use]
    pub fn client_id(mut self, claim: impl Into<String>) -> Self {
        self.client_id = claim.into();
        self
    }

    /// The claim naming the credential the token was minted from (default `cid`): revoking
    /// that credential refuses the token.
    #[must_use]
    pub fn credential_id(mut self, claim: impl Into<String>) -> Self {
        self.credential_id = Some(claim.into());
        self
    }
}

fn claim<'v>(claims: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(claims, |value, part| value.as_object()?.get(part))
}

fn string_claim(claims: &Value, path: &str) -> Option<String> {
    claim(claims, path)?.as_str().map(str::to_owned)
}

/// A trusted issuer: its name (`iss`), keys, audience, algorithms, claim mapping and leeway.
#[derive(Clone, Debug)]
pub struct JwtIssuer {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    keys: Arc<dyn KeySource>,
    claims: ClaimMapping,
    leeway: Duration,
    typ: Option<String>,
}

impl JwtIssuer {
    /// Trusts the JWTs whose `iss` is `issuer`, signed by a key of `keys`: by default with
    /// `EdDSA` or `ES256`, no audience check until [`audience`](Self::audience) names one, a
    /// leeway of 30 s, the m2m token service's claims and any `typ`.
    pub fn new(issuer: impl Into<String>, keys: impl KeySource) -> Self {
        Self::with_shared_keys(issuer, Arc::new(keys))
    }

    /// As [`new`](Self::new), with keys shared with other issuers or the application.
    pub fn with_shared_keys(issuer: impl Into<String>, keys: Arc<dyn KeySource>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences: Vec::new(),
            algorithms: vec![Algorithm::EdDSA, Algorithm::ES256],
            keys,
            claims: ClaimMapping::default(),
            leeway: Duration::from_secs(30),
            typ: None,
        }
    }

    /// The `iss` trusted.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Requires `aud` to hold `audience` (or one of the audiences named so far).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The algorithms accepted, replacing the default. Symmetric ones (`HS*`) are dropped: a
    /// public key is never used as an HMAC secret.
    #[must_use]
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms
            .into_iter()
            .filter(|a| !is_symmetric(*a))
            .collect();
        self
    }

    /// How far `exp` and `nbf` may be off the verifier's clock (default 30 s).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Which claims say what (default: the m2m token service's).
    #[must_use]
    pub fn claims(mut self, claims: ClaimMapping) -> Self {
        self.claims = claims;
        self
    }

    /// Requires this `typ` in the header (compared without case, `application/` optional),
    /// such as [`ACCESS_TOKEN_TYP`].
    #[must_use]
    pub fn require_typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }
}

/// Why a JWT was not accepted.
#[derive(Debug)]
pub(crate) enum JwtRefusal {
    /// Past `exp` (plus the leeway).
    Expired,
    /// Anything else wrong with it, for the logs; the client sees `invalid_token`.
    Invalid(&'static str),
    /// The keys could not be fetched.
    KeysUnavailable(StoreError),
}

/// The issuers a verifier trusts, by `iss`.
#[derive(Debug, Default)]
pub(crate) struct Issuers {
    by_name: HashMap<String, JwtIssuer>,
}

/// Whether `value` is shaped as a compact JWS: three base64url parts, the header a JSON object.
pub(crate) fn looks_like_jwt(value: &[u8]) -> bool {
    value.starts_with(b"eyJ")
        && value.len() <= MAX_JWT_LEN
        && value.iter().filter(|b| **b == b'.').count() == 2
}

fn decode_part(part: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn seconds(value: Option<&Value>) -> Option<i64> {
    let value = value?;
    value.as_i64().or_else(|| value.as_f64().map(|f| f as i64))
}

impl Issuers {
    pub(crate) fn add(&mut self, issuer: JwtIssuer) {
        self.by_name.insert(issuer.issuer.clone(), issuer);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Verifies `jwt` at `now` (Unix seconds): the record it stands for, never stored.
    pub(crate) async fn verify(
        &self,
        jwt: &str,
        digest: &TokenDigest,
        now: i64,
    ) -> Result<(TokenRecord, Arc<str>), JwtRefusal> {
        let mut parts = jwt.split('.');
        let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
            return Err(JwtRefusal::Invalid("not a JWT"));
        };
        let header = decode_part(header).ok_or(JwtRefusal::Invalid("unreadable header"))?;
        let unverified = decode_part(payload).ok_or(JwtRefusal::Invalid("unreadable claims"))?;
        let name = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(JwtRefusal::Invalid("no iss"))?;
        let issuer = self
            .by_name
            .get(name)
            .ok_or(JwtRefusal::Invalid("issuer not trusted"))?;
        let algorithm: Algorithm = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(|alg| alg.parse().ok())
            .ok_or(JwtRefusal::Invalid("unknown alg"))?;
        if !issuer.algorithms.contains(&algorithm) {
            return Err(JwtRefusal::Invalid("alg not allowed for this issuer"));
        }
        if let Some(required) = &issuer.typ {
            let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
            let typ = typ
                .strip_prefix("application/")
                .or_else(|| typ.strip_prefix("APPLICATION/"))
                .unwrap_or(typ);
            if !typ.eq_ignore_ascii_case(required) {
                return Err(JwtRefusal::Invalid("wrong typ"));
            }
        }
        let kid = header.get("kid").and_then(Value::as_str);
        let key = issuer
            .keys
            .key(kid)
            .await
            .map_err(JwtRefusal::KeysUnavailable)?
            .ok_or(JwtRefusal::Invalid("unknown kid"))?;
        if key.algorithm != algorithm {
            return Err(JwtRefusal::Invalid("alg does not match the key"));
        }
        let mut validation = Validation::new(algorithm);
        // Time is checked below, on the verifier's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = HashSet::new();
        validation.set_issuer(&[&issuer.issuer]);
        if issuer.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&issuer.audiences);
        }
        let claims = jsonwebtoken::decode::<Value>(jwt, &key.key, &validation)
            .map_err(|error| {
                use jsonwebtoken::errors::ErrorKind;
                JwtRefusal::Invalid(match error.kind() {
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::InvalidAudience => "wrong aud",
                    ErrorKind::InvalidIssuer => "wrong iss",
                    ErrorKind::InvalidAlgorithm => "alg does not match the key",
                    _ => "malformed",
                })
            })?
            .claims;
        let leeway = i64::try_from(issuer.leeway.as_secs()).unwrap_or(i64::MAX);
        let exp = seconds(claims.get("exp")).ok_or(JwtRefusal::Invalid("no exp"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(JwtRefusal::Expired);
        }
        if let Some(nbf) = seconds(claims.get("nbf"))
            && now.saturating_add(leeway) < nbf
        {
            return Err(JwtRefusal::Invalid("not yet valid"));
        }
        let record = issuer.record(&claims, digest, now, exp.saturating_add(leeway))?;
        Ok((record, Arc::from(issuer.issuer.as_str())))
    }
}

impl JwtIssuer {
    fn record(
        &self,
        claims: &Value,
        digest: &TokenDigest,
        now: i64,
        exp: i64,
    ) -> Result<TokenRecord, JwtRefusal> {
        let mapping = &self.claims;
        let tenant = match &mapping.fixed_tenant {
            Some(tenant) => tenant.clone(),
            None => {
                string_claim(claims, &mapping.tenant).ok_or(JwtRefusal::Invalid("no tenant"))?
            }
        };
        let mut scopes: Vec<String> = Vec::new();
        for source in &mapping.scopes {
            match source {
                ScopeClaim::Spaced(name) => {
                    if let Some(text) = claim(claims, name).and_then(Value::as_str) {
                        scopes.extend(text.split_whitespace().map(str::to_owned));
                    }
                }
                ScopeClaim::List(name) => {
                    if let Some(list) = claim(claims, name).and_then(Value::as_array) {
                        scopes.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                }
            }
            if scopes.len() > MAX_SCOPES {
                return Err(JwtRefusal::Invalid("too many scopes"));
            }
        }
        let id = match string_claim(claims, "jti") {
            Some(jti) if !jti.is_empty() && jti.len() <= 128 => TokenId::new(jti),
            // Without a jti, the digest names the token in logs.
            _ => TokenId::new(format!("jwt_{}", &digest.to_hex()[..20])),
        };
        let at = |unix: i64| time::OffsetDateTime::from_unix_timestamp(unix).ok();
        Ok(TokenRecord {
            id,
            digest: *digest,
            stub: String::new(),
            kind: TokenKind::BearerToken,
            tenant,
            user: mapping
                .user
                .as_deref()
                .and_then(|c| string_claim(claims, c)),
            description: String::new(),
            scopes,
            created_at: seconds(claims.get("iat"))
                .and_then(at)
                .or_else(|| at(now))
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            expires_at: Some(at(exp).ok_or(JwtRefusal::Invalid("exp out of range"))?),
            revoked_at: None,
            last_used_at: None,
            client_id: string_claim(claims, &mapping.client_id),
            credential_id: mapping
                .credential_id
                .as_deref()
                .and_then(|c| string_claim(claims, c))
                .map(TokenId::new),
            created_by: None,
            rate_limit: None,
        })
    }
}
