//! Where the examples' tokens live, chosen by `M2M_STORE`, and what they print at start.
//!
//! | `M2M_STORE` | store | tokens to try |
//! |---|---|---|
//! | `memory` (default) | `MemoryStore` in the process | seeded and printed at start |
//! | `sqlite://file.db`, `postgres://…` | `m2m_sql::SqlStore` (PostgreSQL: revocations by other processes arrive through `LISTEN`) | seeded and printed at start |
//! | `http://…`, `https://…` | `m2m_remote::RemoteStore`: the token service at that base URL, asked by introspection, revocations through its event stream | created with the token service |
//!
//! With a token service, `M2M_INTROSPECT_TOKEN` holds the resource server's own credential,
//! carrying the scope `m2m:introspect`: an access token (`m2m_at_…`, sent as `X-API-KEY`) or a
//! client-credentials bearer token (`m2m_cc_…`, sent as `Authorization: Bearer`). The JWTs of a
//! token service in `jwt` mode are accepted too, verified offline against its
//! `/.well-known/jwks.json`: their issuer is `M2M_JWT_ISSUER` (default: the service's base URL,
//! as `m2m serve --public-url` names it) and their audience `M2M_JWT_AUDIENCE` (default: the
//! issuer).
//!
//! `M2M_CACHE_TTL_SECS` sets the verifier's cache TTL (10 s by default): how long a revoked
//! token may still pass while no revocation event reaches this process.
//!
//! Every store keeps `last_used_at` with no code here: the verifier records the uses it sees in
//! the background, in batches (to the database, or reported to the token service).
//! `M2M_USAGE_INTERVAL_MS` sets how often (5000 ms by default).

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use m2m_core::jwt::{ACCESS_TOKEN_TYP, JwtIssuer};
use m2m_core::{
    CacheSettings, Expiry, NewToken, TokenFormat, TokenKind, TokenLookup, TokenStore, Verifier,
};
use m2m_remote::{IntrospectionCredential, RemoteStore};
use m2m_sql::SqlStore;

/// Why the store could not be set up. The message never contains a token.
#[derive(Debug)]
pub(crate) struct StoreSetupError(String);

impl std::fmt::Display for StoreSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for StoreSetupError {}

impl StoreSetupError {
    fn from_error(error: impl Error) -> Self {
        Self(error.to_string())
    }
}

impl From<&str> for StoreSetupError {
    fn from(message: &str) -> Self {
        Self(message.to_owned())
    }
}

impl From<String> for StoreSetupError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

/// The tokens seeded into a local store, shown once at start.
pub(crate) struct SeededTokens {
    /// An access token with the scope `reports:read`, for `X-API-KEY`.
    pub(crate) access: String,
    /// A client-credentials bearer token without scope, for `Authorization: Bearer`.
    pub(crate) bearer: String,
}

/// The store an example verifies against, and how to obtain tokens for it.
pub(crate) struct ExampleStore {
    /// The verifier over the chosen store.
    pub(crate) verifier: Verifier,
    /// Tokens to try, for local stores; `None` when a token service holds the tokens.
    pub(crate) seeded: Option<SeededTokens>,
    /// The token service's base URL, for the remote store.
    pub(crate) service_url: Option<String>,
    /// What the store is, for the start-up message (no secrets).
    pub(crate) description: String,
}

impl ExampleStore {
    /// The store `M2M_STORE` names; local stores get two tokens issued for tenant `acme`.
    ///
    /// # Errors
    ///
    /// An unknown `M2M_STORE`, a database that cannot be opened, a missing or malformed
    /// `M2M_INTROSPECT_TOKEN`, or a store that refuses to issue.
    pub(crate) async fn from_env(example: &str) -> Result<Self, StoreSetupError> {
        let selected = std::env::var("M2M_STORE").unwrap_or_default();
        let cache = cache_settings()?;
        let usage_interval = usage_interval()?;
        if selected.is_empty() || selected == "memory" {
            let store: Arc<dyn TokenStore> = Arc::new(m2m_core::MemoryStore::new());
            let verifier = verifier(Arc::clone(&store), cache, usage_interval);
            return Self::seeded(store, verifier, example, "memory store".to_owned()).await;
        }
        if selected.starts_with("sqlite:") || selected.starts_with("postgres") {
            let store: Arc<dyn TokenStore> = Arc::new(
                SqlStore::connect(&selected)
                    .await
                    .map_err(StoreSetupError::from_error)?,
            );
            let kind = if selected.starts_with("sqlite:") {
                "SQLite"
            } else {
                "PostgreSQL"
            };
            let verifier = verifier(Arc::clone(&store), cache, usage_interval);
            return Self::seeded(store, verifier, example, format!("{kind} store")).await;
        }
        if selected.starts_with("http://") || selected.starts_with("https://") {
            let store = RemoteStore::builder(selected.as_str(), introspection_credential()?)
                .build()
                .map_err(StoreSetupError::from_error)?;
            let issuer = std::env::var("M2M_JWT_ISSUER")
                .unwrap_or_else(|_| selected.trim_end_matches('/').to_owned());
            let audience = std::env::var("M2M_JWT_AUDIENCE").unwrap_or_else(|_| issuer.clone());
            let jwts = JwtIssuer::new(
                issuer,
                store.jwks_keys().map_err(StoreSetupError::from_error)?,
            )
            .audience(audience)
            .require_typ(ACCESS_TOKEN_TYP);
            // A lookup only: tokens are issued at the token service, uses reported to it.
            let verifier = Verifier::builder(store)
                .cache(cache)
                .usage_interval(usage_interval)
                .jwt_issuer(jwts)
                .build();
            return Ok(Self {
                verifier,
                seeded: None,
                description: format!("token service at {selected}"),
                service_url: Some(selected),
            });
        }
        Err(format!(
            "unknown M2M_STORE {selected:?}: expected memory, sqlite://FILE, postgres://… or the \
             token service's http(s):// base URL"
        )
        .into())
    }

    async fn seeded(
        store: Arc<dyn TokenStore>,
        verifier: Verifier,
        example: &str,
        description: String,
    ) -> Result<Self, StoreSetupError> {
        let now = verifier.now();
        let access = store
            .issue(
                verifier.format(),
                NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays)
                    .scope("reports:read")
                    .description(format!("{example} example access token")),
                now,
            )
            .await
            .map_err(StoreSetupError::from_error)?;
        let bearer = store
            .issue(
                verifier.format(),
                NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60))
                    .description(format!("{example} example bearer token")),
                now,
            )
            .await
            .map_err(StoreSetupError::from_error)?;
        Ok(Self {
            verifier,
            seeded: Some(SeededTokens {
                access: access.token.expose_secret().to_owned(),
                bearer: bearer.token.expose_secret().to_owned(),
            }),
            service_url: None,
            description,
        })
    }

    /// Prints where the example listens and how to try it: the seeded tokens with curl lines,
    /// or how to create a token with the token service.
    pub(crate) fn announce(&self, example: &str, url: &str) {
        println!(
            "m2m {example} example listening on {url} ({})",
            self.description
        );
        println!();
        match (&self.seeded, &self.service_url) {
            (Some(SeededTokens { access, bearer }), _) => {
                // The tokens are printed once, on purpose: trying them is what this example is for.
                println!("access token (X-API-KEY, scope reports:read, expires in 30 days):");
                println!("  {access}");
                println!(
                    "client-credentials bearer token (Authorization: Bearer, no scope, \
                     expires in 60 minutes):"
                );
                println!("  {bearer}");
                println!();
                println!("# 200, public");
                println!("curl -i {url}/health");
                println!("# 200, the caller as JSON");
                println!("curl -i {url}/v1/whoami -H 'X-API-KEY: {access}'");
                println!("curl -i {url}/v1/whoami -H 'Authorization: Bearer {bearer}'");
                println!("# 200, the access token has reports:read");
                println!("curl -i {url}/v1/reports -H 'X-API-KEY: {access}'");
                println!("# 403 insufficient_scope, the bearer token lacks reports:read");
                println!("curl -i {url}/v1/reports -H 'Authorization: Bearer {bearer}'");
                println!("# 401, no credentials");
                println!("curl -i {url}/v1/whoami");
                println!("# 400 invalid_request, a bearer token in X-API-KEY");
                println!("curl -i {url}/v1/whoami -H 'X-API-KEY: {bearer}'");
                println!("# the decisions so far, by outcome and reason (Prometheus text format)");
                println!("curl -s {url}/metrics | grep m2m_decisions_total");
            }
            (None, Some(service)) => {
                println!("Tokens live in the token service. Create one with its admin token:");
                println!();
                println!(
                    "curl -s -X POST {service}/v1/tenants/acme/tokens -H 'X-API-KEY: <admin token>' \
                     -H 'Content-Type: application/json' \
                     -d '{{\"expires\": \"30d\", \"scopes\": [\"reports:read\"]}}'"
                );
                println!(
                    "# or: m2m token create --tenant acme --type access --expires 30d --scope reports:read"
                );
                println!();
                println!("then call this API with the token it prints:");
                println!("curl -i {url}/v1/whoami -H 'X-API-KEY: <token>'");
                println!("curl -i {url}/v1/reports -H 'X-API-KEY: <token>'");
                println!("curl -s {url}/metrics | grep m2m_decisions_total");
            }
            (None, None) => {}
        }
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
}

/// The resource server's credential from `M2M_INTROSPECT_TOKEN`, by its type code.
fn introspection_credential() -> Result<IntrospectionCredential, StoreSetupError> {
    let token = std::env::var("M2M_INTROSPECT_TOKEN").map_err(|_| {
        "M2M_INTROSPECT_TOKEN is not set: the token service wants this resource server's \
         access token or bearer token, with the scope m2m:introspect"
    })?;
    let kind = TokenFormat::default()
        .parse(&token)
        .map(|parsed| parsed.kind())
        .map_err(|_| "M2M_INTROSPECT_TOKEN is not a well-formed m2m token")?;
    match kind {
        TokenKind::AccessToken => Ok(IntrospectionCredential::ApiKey(token)),
        TokenKind::BearerToken => Ok(IntrospectionCredential::Bearer(token)),
        _ => Err(
            "M2M_INTROSPECT_TOKEN must be an access token (m2m_at_…) or a bearer token \
                  (m2m_cc_…)"
                .into(),
        ),
    }
}

/// The verifier of an example over `store`.
fn verifier(store: impl TokenLookup, cache: CacheSettings, usage_interval: Duration) -> Verifier {
    Verifier::builder(store)
        .cache(cache)
        .usage_interval(usage_interval)
        .build()
}

/// How often uses are recorded: `M2M_USAGE_INTERVAL_MS`, else the verifier's default.
fn usage_interval() -> Result<Duration, StoreSetupError> {
    match std::env::var("M2M_USAGE_INTERVAL_MS") {
        Ok(text) => text.parse().map(Duration::from_millis).map_err(|_| {
            format!("M2M_USAGE_INTERVAL_MS is not a number of milliseconds: {text:?}").into()
        }),
        Err(_) => Ok(m2m_core::DEFAULT_USAGE_INTERVAL),
    }
}

/// The cache settings, with `M2M_CACHE_TTL_SECS` when set.
fn cache_settings() -> Result<CacheSettings, StoreSetupError> {
    let mut cache = CacheSettings::default();
    if let Ok(text) = std::env::var("M2M_CACHE_TTL_SECS") {
        let seconds: u64 = text
            .parse()
            .map_err(|_| format!("M2M_CACHE_TTL_SECS is not a number of seconds: {text:?}"))?;
        cache.ttl = Duration::from_secs(seconds);
    }
    Ok(cache)
}
