//! The `m2m` command line: `serve`, `config show`, `token create|list|revoke`,
//! `settings …`, `user remove`, `session create|revoke` and `keys rotate|list`.
//!
//! `serve` takes its settings from flags, `M2M_*` environment variables and a TOML file
//! (`--config` or `M2M_CONFIG`), in that order of precedence ([`crate::config`]); `config
//! show` prints what it would run with. The commands that work on the database take
//! `--database-url` (or `M2M_DATABASE_URL`, or the file's `database_url`) the same way.
//!
//! `token create` prints the secret alone on stdout's first line (for client credentials the
//! client id on the first line and the client secret on the second) and the details on stderr,
//! so that scripts can capture it:
//!
//! ```text
//! TOKEN=$(m2m token create --tenant acme --type access --expires 30d --scope reports:read)
//! ```
//!
//! Errors go to stderr; the exit code is 2 for bad input (as for clap's usage errors) and 1 for
//! everything else.
//!
//! Log events go to stderr through a `tracing` subscriber: the filter comes from `RUST_LOG`
//! (default `info`; `RUST_LOG=m2m_server=debug` shows every refused introspection and token
//! request with its reason), and `serve --log-format json` (or `M2M_LOG_FORMAT=json`) writes
//! one JSON object per line instead of text. What the commands print for the user (a new
//! token's secret, the listen address, confirmations) is not logging and stays as it is.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgGroup, Args, Parser, Subcommand};
use m2m_core::{
    ExpiresIn, PortalRole, RateLimit, TokenFormat, TokenId, TokenKind, TokenRecord, TokenStore,
    TokenType,
};
use m2m_sql::SqlStore;
use time::OffsetDateTime;

use crate::api::sessions::{CreateSession, start};
use crate::config::{CONFIG_ENV, Config, EffectiveConfig, Flags, check_public_url};
use crate::issue::{IssueError, TokenRequest, check_tenant, expiry_from};
use crate::jwt::BearerFormat;

/// Machine-to-machine token service.
#[derive(Debug, Parser)]
#[command(name = "m2m", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the token service (REST admin API, OAuth token endpoint).
    Serve(ServeArgs),
    #[command(flatten)]
    Store(StoreCommand),
    /// The configuration of `m2m serve`.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// The commands that work on the token database directly.
#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Issue, list and revoke tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Which token type users may generate.
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// The users of a tenant.
    #[command(subcommand)]
    User(UserCommand),
    /// Portal sessions: sign a tenant user in to the tenant portal.
    #[command(subcommand)]
    Session(SessionCommand),
    /// The keys JWT access tokens are signed with.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the configuration `m2m serve` would run with, given the same file, environment
    /// and flags: TOML in the shape of the file, where each value comes from as a comment,
    /// the database password redacted.
    Show(ServeArgs),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Sign with a new key from now on; the old keys stay published until their tokens expire.
    /// Prints the new key id.
    Rotate {
        #[command(flatten)]
        database: Database,
    },
    /// The signing keys, newest first.
    List {
        #[command(flatten)]
        database: Database,
    },
}

#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// Create a session; prints its single-use link on stdout (valid for a few minutes), the
    /// details on stderr.
    Create(SessionArgs),
    /// End a session at once.
    Revoke {
        #[command(flatten)]
        database: Database,
        /// The session id (ps_…).
        id: String,
    },
}

#[derive(Debug, Args)]
struct SessionArgs {
    #[command(flatten)]
    database: Database,
    /// The tenant the user belongs to.
    #[arg(long)]
    tenant: String,
    /// The user's id in your system; the user's personal tokens carry it.
    #[arg(long)]
    user: String,
    /// The name the portal shows and records as the creator of tokens.
    #[arg(long)]
    name: String,
    /// admin (manages the tenant's API tokens) or member (reads them, manages its own).
    #[arg(long, value_parser = parse_role)]
    role: PortalRole,
    /// A scope the user holds and may grant (repeatable).
    #[arg(long = "permission")]
    permissions: Vec<String>,
    /// How long the session lasts once opened, in minutes.
    #[arg(long, default_value_t = crate::DEFAULT_SESSION_MINUTES)]
    lifetime_minutes: i64,
    /// Where users reach the service, as `m2m serve --public-url`.
    #[arg(long, env = "M2M_PUBLIC_URL", value_parser = check_public_url)]
    public_url: String,
}

fn parse_role(name: &str) -> Result<PortalRole, String> {
    PortalRole::from_name(name).ok_or_else(|| format!("unknown role {name:?}: admin or member"))
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// A user leaves a tenant: every token of the user there is revoked (personal tokens, and
    /// the bearer tokens of the user's client credentials).
    Remove {
        #[command(flatten)]
        database: Database,
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The user id.
        user: String,
    },
}

#[derive(Debug, Args)]
struct Database {
    /// The token database: sqlite://FILE (created if absent) or postgres://… [default: the
    /// configuration's database_url, else sqlite://m2m.db]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// The configuration file of `m2m serve`, for its database_url (M2M_DATABASE_URL and
    /// --database-url override it).
    #[arg(long, env = CONFIG_ENV, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl Database {
    /// The database URL: the flag, else `M2M_DATABASE_URL`, else the file's, else the default.
    fn url(&self) -> Result<String, Failure> {
        let flags = Flags {
            database_url: self.database_url.clone(),
            ..Flags::default()
        };
        let effective = Config::load(self.config.as_deref(), &flags)
            .map_err(|error| Failure::usage(error.to_string()))?;
        Ok(effective.config().database_url.clone())
    }
}

/// How log events are written (to stderr).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global `tracing` subscriber: filter from `RUST_LOG` (default `info`), events
/// to stderr as text or JSON. Returns `false` when a subscriber was installed already.
pub fn install_subscriber(format: LogFormat) -> bool {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
    installed.is_ok()
}

/// How `serve --help` explains the layers.
const SERVE_LAYERS: &str = "\
Every flag can also be set in the configuration file under its name in snake_case \
(--database-url is database_url) and in the environment as M2M_ and its name in upper case \
(M2M_DATABASE_URL). A flag overrides the environment, which overrides the file, which \
overrides the defaults. `m2m config show` prints the result.";

#[derive(Debug, Args)]
#[command(after_help = SERVE_LAYERS)]
struct ServeArgs {
    /// A TOML file of settings, keyed by the flags' names in snake_case.
    #[arg(long, env = CONFIG_ENV, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The token database: sqlite://FILE (created if absent) or postgres://… [default:
    /// sqlite://m2m.db]
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// How log events are written to stderr (filter them with RUST_LOG). [default: text]
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// The address to listen on (port 0 picks a free port). [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Lifetime of bearer tokens issued for client credentials, in minutes. [default: 60]
    #[arg(
        long,
        value_name = "MINUTES",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(m2m_core::MAX_EXPIRY_MINUTES))
    )]
    bearer_lifetime_minutes: Option<u32>,
    /// The address users reach the service at, for the links of portal sessions
    /// (`https://tokens.example.com`); with https the portal's cookie is `Secure`. Without it,
    /// links use `http://` and the Host of the request that creates the session.
    #[arg(long, value_name = "URL", value_parser = check_public_url)]
    public_url: Option<String>,
    /// What the client-credentials grant hands out: opaque tokens or signed JWTs (RFC 9068,
    /// verified offline against /.well-known/jwks.json; their issuer is the public URL).
    /// [default: opaque]
    #[arg(long, value_parser = clap::value_parser!(BearerFormat))]
    bearer_format: Option<BearerFormat>,
    /// The audience (`aud`) of the JWTs (default: the issuer).
    #[arg(long, value_name = "AUD")]
    jwt_audience: Option<String>,
    /// A network of proxies (a load balancer) whose connections name the client in
    /// X-Forwarded-For, as an address or CIDR (`10.0.0.0/8`); repeat for several. [default:
    /// none: the TCP peer is the client]
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = parse_network)]
    trusted_proxies: Vec<ipnet::IpNet>,
}

/// A network in CIDR notation, or one address.
fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    crate::config::parse_network(text)
}

impl ServeArgs {
    /// The configuration: these flags over the environment over the file over the defaults.
    fn load(&self) -> Result<EffectiveConfig, Failure> {
        let flags = Flags {
            listen: self.listen.clone(),
            database_url: self.database_url.clone(),
            public_url: self.public_url.clone(),
            bearer_format: self.bearer_format,
            bearer_lifetime_minutes: self.bearer_lifetime_minutes,
            jwt_audience: self.jwt_audience.clone(),
            log_format: self.log_format,
            trusted_proxies: (!self.trusted_proxies.is_empty())
                .then(|| self.trusted_proxies.clone()),
        };
        Config::load(self.config.as_deref(), &flags)
            .map_err(|error| Failure::usage(error.to_string()))
    }
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Issue a token; prints the secret on stdout, the details on stderr.
    Create(CreateArgs),
    /// List a tenant's tokens.
    List {
        #[command(flatten)]
        database: Database,
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a token (a client credential's bearer tokens too).
    Revoke {
        #[command(flatten)]
        database: Database,
        /// The token id (tok_…).
        id: String,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("lifetime").required(true).args(["expires", "expires_in_minutes"])))]
struct CreateArgs {
    #[command(flatten)]
    database: Database,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// access or client-credentials; must be the type enabled for the tenant (default: that
    /// type).
    #[arg(long = "type", value_parser = parse_token_type)]
    token_type: Option<TokenType>,
    /// never, 1d, 7d, 30d, 90d or 365d.
    #[arg(long)]
    expires: Option<String>,
    /// A lifetime in minutes instead of --expires.
    #[arg(long, allow_negative_numbers = true)]
    expires_in_minutes: Option<i64>,
    /// A scope to grant; repeat for more.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// The user the token is created for.
    #[arg(long)]
    user: Option<String>,
    /// Free text shown in listings.
    #[arg(long, default_value = "")]
    description: String,
    /// At most N requests per S seconds, written N/S (default: no limit).
    #[arg(long, value_name = "N/S")]
    rate_limit: Option<RateLimit>,
}

#[derive(Debug, Subcommand)]
enum SettingsCommand {
    /// Set the token type users may generate, for the environment or one tenant.
    SetType {
        #[command(flatten)]
        database: Database,
        /// The tenant; without it, the environment default.
        #[arg(long)]
        tenant: Option<String>,
        /// access or client-credentials.
        #[arg(value_parser = parse_token_type)]
        token_type: TokenType,
    },
    /// Remove a tenant's own token type, so that it follows the environment again.
    ClearType {
        #[command(flatten)]
        database: Database,
        /// The tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Show the environment default, the tenant overrides and the portal settings.
    Show {
        #[command(flatten)]
        database: Database,
    },
    /// Declare a scope grantable by tenant users (or change its description).
    Grantable {
        #[command(flatten)]
        database: Database,
        /// The scope.
        name: String,
        /// What it allows, as the portal shows it.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Remove a scope from the grantable ones.
    NotGrantable {
        #[command(flatten)]
        database: Database,
        /// The scope.
        name: String,
    },
    /// Show or hide the tenant users' API tokens and personal tokens.
    Sections {
        #[command(flatten)]
        database: Database,
        /// on or off: tenant users see and create the tenant's API tokens.
        #[arg(long, value_parser = parse_switch)]
        api_tokens: Option<bool>,
        /// on or off: tenant users see and create their personal tokens.
        #[arg(long, value_parser = parse_switch)]
        personal_tokens: Option<bool>,
    },
}

fn parse_switch(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("{other:?}: expected on or off")),
    }
}

fn parse_token_type(text: &str) -> Result<TokenType, String> {
    text.parse()
        .map_err(|_| format!("unknown token type {text:?}: expected access or client-credentials"))
}

/// A failed command: the message for stderr and the exit code.
#[derive(Debug)]
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 2,
        }
    }

    fn runtime(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            code: 1,
        }
    }
}

impl From<IssueError> for Failure {
    fn from(error: IssueError) -> Self {
        match error {
            IssueError::Invalid(detail) => Failure::usage(detail),
            other => Failure::runtime(other),
        }
    }
}

impl From<m2m_core::StoreError> for Failure {
    fn from(error: m2m_core::StoreError) -> Self {
        Failure::runtime(error)
    }
}

/// Parses the command line, runs the command and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        // The configuration is read before anything else: it chooses the log format.
        Command::Serve(args) => args.load().and_then(|effective| {
            let config = effective.config();
            install_subscriber(config.log_format);
            block_on(async {
                crate::serve(config.serve_config())
                    .await
                    .map_err(Failure::runtime)
            })
        }),
        Command::Config(ConfigCommand::Show(args)) => args.load().map(|effective| {
            print!("{}", effective.to_toml());
        }),
        Command::Store(command) => {
            install_subscriber(LogFormat::Text);
            block_on(run(command))
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("m2m: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Runs `command` to its end on a multi-threaded runtime.
fn block_on(command: impl Future<Output = Result<(), Failure>>) -> Result<(), Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::runtime(format!("cannot start the runtime: {error}")))?
        .block_on(command)
}

async fn open(database: &Database) -> Result<Arc<dyn TokenStore>, Failure> {
    let store = SqlStore::connect(&database.url()?)
        .await
        .map_err(|error| Failure::runtime(format!("cannot open the database: {error}")))?;
    Ok(Arc::new(store))
}

async fn run(command: StoreCommand) -> Result<(), Failure> {
    match command {
        StoreCommand::Token(TokenCommand::Create(args)) => create(args).await,
        StoreCommand::Token(TokenCommand::List { database, tenant }) => {
            check_tenant(&tenant).map_err(Failure::usage)?;
            let store = open(&database).await?;
            let records = store.list(&tenant).await?;
            print!("{}", table(&records, OffsetDateTime::now_utc()));
            Ok(())
        }
        StoreCommand::Token(TokenCommand::Revoke { database, id }) => {
            let store = open(&database).await?;
            let id = TokenId::new(id);
            let Some(record) = store.get(&id).await? else {
                return Err(Failure::runtime(format!("no token with id {id}")));
            };
            if record.revoked_at.is_some() {
                eprintln!("{id} was already revoked");
                return Ok(());
            }
            store.revoke(&id, OffsetDateTime::now_utc()).await?;
            let target = Some(id.as_str());
            audit(store.as_ref(), "token.revoke", Some(&record.tenant), target).await;
            if record.kind == TokenKind::ClientSecret {
                eprintln!("revoked {id} and the bearer tokens issued from it");
            } else {
                eprintln!("revoked {id}");
            }
            Ok(())
        }
        StoreCommand::Settings(SettingsCommand::SetType {
            database,
            tenant,
            token_type,
        }) => {
            if let Some(tenant) = &tenant {
                check_tenant(tenant).map_err(Failure::usage)?;
            }
            let store = open(&database).await?;
            store.save_token_type(tenant.as_deref(), token_type).await?;
            let action = match tenant {
                Some(_) => "tenant_settings.update",
                None => "settings.update",
            };
            audit(
                store.as_ref(),
                action,
                tenant.as_deref(),
                Some(token_type.name()),
            )
            .await;
            match tenant {
                Some(tenant) => eprintln!("tenant {tenant} may generate {token_type} tokens"),
                None => eprintln!("the environment may generate {token_type} tokens"),
            }
            Ok(())
        }
        StoreCommand::Settings(SettingsCommand::ClearType { database, tenant }) => {
            check_tenant(&tenant).map_err(Failure::usage)?;
            let store = open(&database).await?;
            if store.clear_token_type(&tenant).await? {
                audit(store.as_ref(), "tenant_settings.clear", Some(&tenant), None).await;
                eprintln!("tenant {tenant} follows the environment again");
            } else {
                eprintln!("tenant {tenant} had no token type of its own");
            }
            Ok(())
        }
        StoreCommand::User(UserCommand::Remove {
            database,
            tenant,
            user,
        }) => {
            check_tenant(&tenant).map_err(Failure::usage)?;
            crate::issue::check_user(&user).map_err(Failure::usage)?;
            let store = open(&database).await?;
            let now = OffsetDateTime::now_utc();
            let sessions = store
                .revoke_user_portal_sessions(&tenant, &user, now)
                .await?;
            let revoked = store.revoke_user(&tenant, &user, now).await?;
            audit(store.as_ref(), "user.remove", Some(&tenant), Some(&user)).await;
            eprintln!(
                "user {user} left tenant {tenant}: {revoked} tokens revoked, {sessions} portal \
                 sessions ended"
            );
            Ok(())
        }
        StoreCommand::Session(SessionCommand::Create(args)) => {
            let store = open(&args.database).await?;
            let request = CreateSession {
                tenant: args.tenant,
                user_id: args.user,
                display_name: args.name,
                role: args.role,
                permissions: args.permissions,
                lifetime_minutes: Some(args.lifetime_minutes),
            };
            let created = start(
                store.as_ref(),
                OffsetDateTime::now_utc(),
                request,
                &args.public_url,
            )
            .await
            .map_err(|problem| {
                if problem.status().is_client_error() {
                    Failure::usage(problem.detail())
                } else {
                    Failure::runtime(problem.detail())
                }
            })?;
            let (tenant, id) = (&created.session.tenant, &created.session.id);
            audit(
                store.as_ref(),
                "portal_session.create",
                Some(tenant),
                Some(id),
            )
            .await;
            println!("{}", created.url);
            eprintln!(
                "portal session {} for tenant {} ({}); the link opens once, until {}",
                created.session.id,
                created.session.tenant,
                created.session.role.name(),
                created.url_expires_at
            );
            Ok(())
        }
        StoreCommand::Keys(KeysCommand::Rotate { database }) => {
            let store = open(&database).await?;
            let key = crate::jwt::rotate_in(store.as_ref(), OffsetDateTime::now_utc()).await?;
            audit(store.as_ref(), "keys.rotate", None, Some(&key.kid)).await;
            println!("{}", key.kid);
            Ok(())
        }
        StoreCommand::Keys(KeysCommand::List { database }) => {
            let store = open(&database).await?;
            for key in store.signing_keys(OffsetDateTime::UNIX_EPOCH).await? {
                println!(
                    "{}  {}  created {}  {}",
                    key.kid,
                    key.algorithm,
                    crate::api::rfc3339(key.created_at),
                    key.retired_at.map_or_else(
                        || "signing".to_owned(),
                        |at| format!("retired {}", crate::api::rfc3339(at))
                    )
                );
            }
            Ok(())
        }
        StoreCommand::Session(SessionCommand::Revoke { database, id }) => {
            let store = open(&database).await?;
            if store
                .revoke_portal_session(&id, OffsetDateTime::now_utc())
                .await?
            {
                audit(store.as_ref(), "portal_session.revoke", None, Some(&id)).await;
                eprintln!("portal session {id} ended");
                Ok(())
            } else {
                Err(Failure::usage(format!(
                    "no live portal session has the id {id}"
                )))
            }
        }
        StoreCommand::Settings(SettingsCommand::Show { database }) => {
            let store = open(&database).await?;
            let settings = store.load_settings().await?;
            let name =
                |t: Option<TokenType>| t.map_or("access, client_credentials", TokenType::name);
            println!("environment: {}", name(settings.default));
            for (tenant, token_type) in &settings.tenants {
                println!("tenant {tenant}: {token_type}");
            }
            let portal = store.load_portal_settings().await?;
            let shown = |visible: bool| if visible { "shown" } else { "hidden" };
            println!("api tokens: {}", shown(portal.api_tokens_visible));
            println!("personal tokens: {}", shown(portal.personal_tokens_visible));
            for scope in &portal.grantable_scopes {
                println!("grantable: {} {}", scope.name, scope.description);
            }
            Ok(())
        }
        StoreCommand::Settings(SettingsCommand::Grantable {
            database,
            name,
            description,
        }) => {
            let store = open(&database).await?;
            let mut portal = store.load_portal_settings().await?;
            match portal.grantable_scopes.iter_mut().find(|s| s.name == name) {
                Some(scope) => scope.description = description,
                None => portal
                    .grantable_scopes
                    .push(m2m_core::GrantableScope::new(name.clone(), description)),
            }
            crate::api::portal::check(&portal).map_err(Failure::usage)?;
            store.save_portal_settings(&portal).await?;
            audit(store.as_ref(), "portal_settings.update", None, Some(&name)).await;
            eprintln!("tenant users may grant {name}");
            Ok(())
        }
        StoreCommand::Settings(SettingsCommand::NotGrantable { database, name }) => {
            let store = open(&database).await?;
            let mut portal = store.load_portal_settings().await?;
            let before = portal.grantable_scopes.len();
            portal.grantable_scopes.retain(|s| s.name != name);
            if portal.grantable_scopes.len() == before {
                eprintln!("{name} was not grantable");
                return Ok(());
            }
            store.save_portal_settings(&portal).await?;
            audit(store.as_ref(), "portal_settings.update", None, Some(&name)).await;
            eprintln!("tenant users may no longer grant {name}");
            Ok(())
        }
        StoreCommand::Settings(SettingsCommand::Sections {
            database,
            api_tokens,
            personal_tokens,
        }) => {
            let store = open(&database).await?;
            let mut portal = store.load_portal_settings().await?;
            if let Some(visible) = api_tokens {
                portal.api_tokens_visible = visible;
            }
            if let Some(visible) = personal_tokens {
                portal.personal_tokens_visible = visible;
            }
            store.save_portal_settings(&portal).await?;
            audit(store.as_ref(), "portal_settings.update", None, None).await;
            let shown = |visible: bool| if visible { "shown" } else { "hidden" };
            eprintln!(
                "api tokens {}, personal tokens {}",
                shown(portal.api_tokens_visible),
                shown(portal.personal_tokens_visible)
            );
            Ok(())
        }
    }
}

/// Records a change made from the command line in the audit log (actor `cli`).
async fn audit(
    store: &dyn TokenStore,
    action: &'static str,
    tenant: Option<&str>,
    target: Option<&str>,
) {
    let now = OffsetDateTime::now_utc();
    crate::audit::record(store, now, "cli".to_owned(), None, action, tenant, target).await;
}

async fn create(args: CreateArgs) -> Result<(), Failure> {
    let expiry =
        expiry_from(args.expires.as_deref(), args.expires_in_minutes).map_err(Failure::usage)?;
    let request = TokenRequest {
        tenant: args.tenant,
        token_type: args.token_type,
        description: args.description,
        scopes: args.scopes,
        user: args.user,
        created_by: Some("m2m token create".to_owned()),
        rate_limit: args.rate_limit,
    };
    let store = open(&args.database).await?;
    let now = OffsetDateTime::now_utc();
    let issued = request
        .issue(expiry, store.as_ref(), &TokenFormat::default(), now)
        .await?;
    let record = &issued.record;
    let target = Some(record.id.as_str());
    audit(store.as_ref(), "token.create", Some(&record.tenant), target).await;
    if record.kind == TokenKind::ClientSecret {
        println!("{}", record.client_id.as_deref().unwrap_or_default());
    }
    println!("{}", issued.token.expose_secret());
    eprintln!(
        "created {} {} for tenant {} ({}, expires: {}, scopes: {})",
        record.token_type(),
        record.id,
        record.tenant,
        record.stub,
        record.expires_in(now),
        if record.scopes.is_empty() {
            "none".to_owned()
        } else {
            record.scopes.join(" ")
        },
    );
    Ok(())
}

/// The listing as a text table.
fn table(records: &[TokenRecord], now: OffsetDateTime) -> String {
    let header = [
        "ID",
        "TYPE",
        "STUB",
        "DESCRIPTION",
        "SCOPES",
        "EXPIRES IN",
        "REVOKED",
    ];
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|record| {
            [
                record.id.to_string(),
                crate::api::kind_name(record.kind).to_owned(),
                record.stub.clone(),
                record.description.clone(),
                record.scopes.join(" "),
                ExpiresIn::at(record.expires_at, now).to_string(),
                record
                    .revoked_at
                    .map_or_else(|| "no".to_owned(), crate::api::rfc3339),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_format(args: &[&str]) -> Option<LogFormat> {
        match Cli::try_parse_from(args).unwrap().command {
            Command::Serve(serve) => serve.log_format,
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn serve_takes_a_log_format() {
        // Not given: the environment, the file or the default decide.
        assert_eq!(log_format(&["m2m", "serve"]), None);
        assert_eq!(
            log_format(&["m2m", "serve", "--log-format", "json"]),
            Some(LogFormat::Json)
        );
        assert!(Cli::try_parse_from(["m2m", "serve", "--log-format", "xml"]).is_err());
    }
}
