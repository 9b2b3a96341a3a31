//! [`serve`]: the token service on a SQL database, until Ctrl-C or SIGTERM.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use m2m_core::{StoreError, TokenStore};
use m2m_sql::{SqlError, SqlStore};
use tokio::net::TcpListener;

use crate::TrustedProxies;
use crate::state::{AppState, ServiceOptions};

/// The database when none is given: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://m2m.db";
/// The listen address when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Where and how to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeConfig {
    /// `sqlite://file.db` (created if absent), `sqlite::memory:` or `postgres://…`.
    pub database_url: String,
    /// `host:port` to listen on; port 0 picks a free one (the address is printed).
    pub listen: String,
    /// Service options.
    pub options: ServiceOptions,
    /// The proxies whose connections name the client in `X-Forwarded-For`.
    pub trusted_proxies: TrustedProxies,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            listen: DEFAULT_LISTEN.to_owned(),
            options: ServiceOptions::default(),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// Why the service could not start or stopped with an error.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The database could not be opened or migrated.
    Database(SqlError),
    /// The store failed.
    Store(StoreError),
    /// Binding or serving failed.
    Io(std::io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Database(error) => write!(f, "cannot open the database: {error}"),
            ServeError::Store(error) => write!(f, "{error}"),
            ServeError::Io(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Opens the database, issues the bootstrap admin token on a fresh one (printed once to
/// stdout with a curl line), prints the listen address and serves until Ctrl-C or SIGTERM.
///
/// # Errors
///
/// [`ServeError`] when the database cannot be opened, the address cannot be bound, or the
/// server fails.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let store = SqlStore::connect(&config.database_url)
        .await
        .map_err(ServeError::Database)?;
    let store: Arc<dyn TokenStore> = Arc::new(store);
    let state = AppState::new(store, config.options)
        .await
        .map_err(ServeError::Store)?;
    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(ServeError::Io)?;
    let address = listener.local_addr().map_err(ServeError::Io)?;
    let base_url = format!("http://{}", reachable(address));

    if let Some(issued) = crate::bootstrap_admin(&state)
        .await
        .map_err(ServeError::Store)?
    {
        let token = issued.token.expose_secret();
        println!("Created the bootstrap admin token (scope m2m:admin). It is shown only once:");
        println!();
        println!("    {token}");
        println!();
        println!("Try it:");
        println!();
        println!("    curl -H 'X-API-KEY: {token}' {base_url}/v1/settings");
        println!();
    }
    println!("m2m listening on {base_url}");
    tracing::info!(address = %address, "listening");
    let _ = std::io::stdout().flush();

    let mut app = crate::app(state.clone());
    if !config.trusted_proxies.is_empty() {
        tracing::info!(
            networks = ?config.trusted_proxies.networks(),
            "the client of a request from these proxies is read from X-Forwarded-For"
        );
        app = app.layer(axum::middleware::from_fn_with_state(
            config.trusted_proxies.clone(),
            crate::client_address::resolve,
        ));
    }
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown({
        let state = state.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down: open revocation streams end, requests finish");
            state.begin_shutdown();
        }
    })
    .await;
    // The admin verifier records uses in the background; record the last ones before the
    // runtime stops (a failure is logged by the verifier).
    let _ = state.admin_verifier().record_usage().await;
    tracing::info!("m2m stopped");
    served.map_err(ServeError::Io)
}

/// The address to show in URLs: a wildcard bind is reached on loopback.
fn reachable(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), address.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), address.port())
        }
        _ => address,
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
