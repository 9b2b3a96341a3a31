//! [`AppState`]: the store, the admin verifier and the token-type settings the handlers share.

use std::sync::{Arc, PoisonError, RwLock};

use m2m_core::{
    Clock, Policy, StoreError, SystemClock, TokenFormat, TokenStore, TokenTypes, TypeSettings,
    Verifier,
};
use time::OffsetDateTime;

use crate::jwt::BearerFormat;

/// Default lifetime of a bearer token issued by `POST /oauth/token`, in minutes.
pub const DEFAULT_BEARER_LIFETIME_MINUTES: u32 = 60;

/// Settings of the token service that are not stored in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceOptions {
    /// Lifetime of the bearer tokens issued by the client-credentials grant, in minutes; a
    /// bearer token never outlives its credential.
    pub bearer_lifetime_minutes: u32,
    /// The address users reach the service at (`https://tokens.example.com`), for the links of
    /// portal sessions; `None` takes `http://` and the `Host` of the request that creates the
    /// session. With `https://`, the portal's session cookie is `Secure`.
    pub public_url: Option<String>,
    /// What the client-credentials grant hands out: opaque tokens (the default) or signed JWTs.
    pub bearer_format: BearerFormat,
    /// The `aud` of the JWTs; `None` takes the issuer (the public URL).
    pub jwt_audience: Option<String>,
}

/// The issuer of JWTs when no public URL is set.
pub const DEFAULT_ISSUER: &str = "http://localhost";

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            bearer_lifetime_minutes: DEFAULT_BEARER_LIFETIME_MINUTES,
            public_url: None,
            bearer_format: BearerFormat::Opaque,
            jwt_audience: None,
        }
    }
}

/// What every handler shares. Cheap to clone.
///
/// Holds two views of the token-type settings:
///
/// - the **admin verifier** accepts both types everywhere, so that the admin API cannot lock
///   itself out when a tenant or the environment disables access tokens;
/// - the **tenant policy** follows the stored settings (loaded at start, after each change, and
///   before each decision that depends on them), and governs which type users may generate and
///   whether a client credential may be exchanged.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn TokenStore>,
    admin: Verifier,
    tenant_policy: Policy,
    settings: RwLock<TypeSettings>,
    clock: Arc<dyn Clock>,
    options: ServiceOptions,
    failures: crate::limits::FailureLimits,
    signer: crate::jwt::Signer,
    /// The service's own counters, for `GET /v1/stats` and `GET /metrics`.
    metrics: crate::metrics::ServiceMetrics,
    /// Flips to `true` when the service begins to shut down.
    shutting_down: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// The state over `store`, on the system clock; loads the token-type settings.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the settings cannot be loaded.
    pub async fn new(
        store: Arc<dyn TokenStore>,
        options: ServiceOptions,
    ) -> Result<Self, StoreError> {
        Self::with_clock(store, options, SystemClock).await
    }

    /// The state over `store` with another clock (a [`ManualClock`](m2m_core::ManualClock) in
    /// tests); the admin verifier reads the same clock.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the settings cannot be loaded.
    pub async fn with_clock<C: Clock + Clone>(
        store: Arc<dyn TokenStore>,
        options: ServiceOptions,
        clock: C,
    ) -> Result<Self, StoreError> {
        let settings = store.load_settings().await?;
        let tenant_policy = Policy::default();
        settings.apply_to(&tenant_policy);
        let admin = Verifier::builder(Arc::clone(&store))
            .policy(Policy::new(TokenTypes::all()))
            .clock(clock.clone())
            .jwt_issuer(crate::jwt::own_issuer(Arc::clone(&store), &options))
            .build();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                admin,
                tenant_policy,
                settings: RwLock::new(settings),
                clock: Arc::new(clock),
                options,
                failures: crate::limits::FailureLimits::default(),
                signer: crate::jwt::Signer::default(),
                metrics: crate::metrics::ServiceMetrics::default(),
                shutting_down: tokio::sync::watch::Sender::new(false),
            }),
        })
    }

    /// The token store.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.inner.store
    }

    /// The verifier of the admin routes: both token types enabled.
    pub fn admin_verifier(&self) -> &Verifier {
        &self.inner.admin
    }

    /// The policy that follows the stored settings; share it with the verifier of an
    /// application that should honour them.
    pub fn tenant_policy(&self) -> &Policy {
        &self.inner.tenant_policy
    }

    /// The token format (prefix) of issued tokens.
    pub fn format(&self) -> &TokenFormat {
        self.inner.admin.format()
    }

    /// The options.
    pub fn options(&self) -> &ServiceOptions {
        &self.inner.options
    }

    /// What the client-credentials grant hands out: the environment's stored choice, else
    /// the service's option.
    pub fn bearer_format(&self) -> crate::jwt::BearerFormat {
        self.settings()
            .bearer_format
            .unwrap_or(self.inner.options.bearer_format)
    }

    /// The JWT signing key of this instance.
    pub(crate) fn signer(&self) -> &crate::jwt::Signer {
        &self.inner.signer
    }

    /// Whether users reach the service over https (its public URL says so): the portal's
    /// cookie is then `Secure`.
    pub fn is_https(&self) -> bool {
        self.inner
            .options
            .public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
    }

    /// Tells the long-lived responses (the revocation event streams) to end, so that a
    /// graceful shutdown does not wait for them for ever.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.send_replace(true);
    }

    /// Resolves once [`begin_shutdown`](Self::begin_shutdown) was called.
    pub(crate) fn shutting_down(&self) -> tokio::sync::watch::Receiver<bool> {
        self.inner.shutting_down.subscribe()
    }

    /// The service's own counters.
    pub(crate) fn service_metrics(&self) -> &crate::metrics::ServiceMetrics {
        &self.inner.metrics
    }

    /// The limits on failed client authentications at the token endpoint.
    pub(crate) fn failure_limits(&self) -> &crate::limits::FailureLimits {
        &self.inner.failures
    }

    /// The current time by the service's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// The settings as last loaded.
    pub fn settings(&self) -> TypeSettings {
        self.inner
            .settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Loads the settings from the store (another instance or the CLI may have changed them)
    /// and applies them to the tenant policy.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the store cannot answer.
    pub async fn reload_settings(&self) -> Result<TypeSettings, StoreError> {
        let settings = self.inner.store.load_settings().await?;
        settings.apply_to(&self.inner.tenant_policy);
        *self
            .inner
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = settings.clone();
        Ok(settings)
    }
}
