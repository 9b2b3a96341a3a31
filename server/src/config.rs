//! The configuration of `m2m serve`, in layers: built-in defaults, then a TOML file, then
//! `M2M_*` environment variables, then command-line flags, each overriding the one before.
//!
//! Every setting has one name per layer: the flag `--database-url` is `database_url` in the
//! file and `M2M_DATABASE_URL` in the environment, and so on for each of [`KEYS`]. The layers
//! are merged by [`figment`]; a flag that was not given leaves the layers below it alone.
//!
//! Mistakes are refused before anything starts, naming the key and where it came from: a key
//! the file does not know (a typo would otherwise be ignored silently), a value of the wrong
//! type, a value out of range, a file that was named but does not exist or does not parse.
//! Environment variables with the prefix that are not settings (`M2M_STORE`, `M2M_CONFIG`, …)
//! are not read.
//!
//! [`EffectiveConfig::to_toml`] writes the result in the shape of the file, with where each
//! value came from as a comment and the database password shown as [`REDACTED`].
//!
//! # Example
//!
//! ```
//! use m2m_server::config::{Config, Flags, Origin};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let file = dir.path().join("m2m.toml");
//! std::fs::write(&file, "listen = \"0.0.0.0:8080\"\nbearer_lifetime_minutes = 15\n")?;
//!
//! // A flag beats the file; what no layer sets keeps its default.
//! let flags = Flags { listen: Some("127.0.0.1:9000".into()), ..Flags::default() };
//! let effective = Config::load(Some(&file), &flags)?;
//! assert_eq!(effective.config().listen, "127.0.0.1:9000");
//! assert_eq!(effective.origin("listen"), Some(&Origin::Flag("--listen".into())));
//! assert_eq!(effective.config().bearer_lifetime_minutes, 15);
//! assert_eq!(effective.config().database_url, "sqlite://m2m.db");
//!
//! // A key the file does not know is refused with its name.
//! std::fs::write(&file, "lisen = \"0.0.0.0:8080\"\n")?;
//! let refused = Config::load(Some(&file), &Flags::default()).unwrap_err();
//! assert!(refused.to_string().contains("lisen"));
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Data, Env, Format as _, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::cli::LogFormat;
use crate::jwt::BearerFormat;
use crate::serve::{DEFAULT_DATABASE_URL, DEFAULT_LISTEN, ServeConfig};
use crate::state::{DEFAULT_BEARER_LIFETIME_MINUTES, ServiceOptions};

/// The prefix of the environment variables that set the configuration.
pub const ENV_PREFIX: &str = "M2M_";

/// The environment variable that names the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "M2M_CONFIG";

/// What [`EffectiveConfig::to_toml`] shows instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Every key of the file, in the order [`EffectiveConfig::to_toml`] writes them.
pub const KEYS: [&str; 8] = [
    "listen",
    "database_url",
    "public_url",
    "bearer_format",
    "bearer_lifetime_minutes",
    "jwt_audience",
    "log_format",
    "trusted_proxies",
];

/// The names the layers' metadata carry, so that a value's origin can be told.
const DEFAULTS_NAME: &str = "built-in default";
const ENVIRONMENT_NAME: &str = "environment variable";
const FLAGS_NAME: &str = "command-line flag";

/// The settings of `m2m serve`, as the file writes them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on; port 0 picks a free one.
    pub listen: String,
    /// The token database: `sqlite://FILE` (created if absent) or `postgres://…`.
    pub database_url: String,
    /// Where users reach the service (`https://tokens.example.com`): portal links and the
    /// issuer of JWTs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// What the client-credentials grant hands out: `opaque` or `jwt`.
    pub bearer_format: BearerFormat,
    /// Lifetime of the bearer tokens of the client-credentials grant, in minutes.
    pub bearer_lifetime_minutes: u32,
    /// The audience (`aud`) of the JWTs; without it, the issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_audience: Option<String>,
    /// How log events are written to stderr: `text` or `json`.
    pub log_format: LogFormat,
    /// The networks of proxies whose connections name the client in `X-Forwarded-For`
    /// (see [`TrustedProxies`](crate::TrustedProxies)); empty: the TCP peer is the client.
    #[serde(default, deserialize_with = "networks")]
    pub trusted_proxies: Vec<IpNet>,
}

/// A list of networks, or one text of networks separated by commas (as an environment variable
/// gives them).
fn networks<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Networks {
        List(Vec<String>),
        Text(String),
    }
    let texts = match Networks::deserialize(deserializer)? {
        Networks::List(list) => list,
        Networks::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    texts
        .iter()
        .map(|text| parse_network(text).map_err(serde::de::Error::custom))
        .collect()
}

/// A network in CIDR notation (`10.0.0.0/8`), or one address (a network of one).
///
/// # Errors
///
/// What is wrong with `text`.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an address or a network like 10.0.0.0/8"))
}

impl Default for Config {
    fn default() -> Self {
        let options = ServiceOptions::default();
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            public_url: options.public_url,
            bearer_format: options.bearer_format,
            bearer_lifetime_minutes: DEFAULT_BEARER_LIFETIME_MINUTES,
            jwt_audience: options.jwt_audience,
            log_format: LogFormat::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// The database password stays out of `Debug`.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &redact_database_url(&self.database_url))
            .field("public_url", &self.public_url)
            .field("bearer_format", &self.bearer_format)
            .field("bearer_lifetime_minutes", &self.bearer_lifetime_minutes)
            .field("jwt_audience", &self.jwt_audience)
            .field("log_format", &self.log_format)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

/// The built-in defaults, as the lowest layer.
impl Provider for Config {
    fn metadata(&self) -> Metadata {
        Metadata::named(DEFAULTS_NAME)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(self).data()
    }
}

impl Config {
    /// Merges the layers: the defaults, the `file` when one is given, the `M2M_*` environment
    /// variables and the `flags`, each overriding the one before; then checks the values.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when the file is missing, unreadable or holds a key that is not one of
    /// [`KEYS`], or when a value has the wrong type or is out of range.
    pub fn load(file: Option<&Path>, flags: &Flags) -> Result<EffectiveConfig, ConfigError> {
        let mut figment = Figment::from(Config::default());
        if let Some(path) = file {
            figment = figment.merge(read_file(path)?);
        }
        let figment = figment.merge(Environment).merge(flags.clone());
        let config: Config = figment.extract().map_err(ConfigError::from_figment)?;
        let origins = KEYS
            .iter()
            .filter_map(|key| {
                let metadata = figment.find_metadata(key)?;
                Some((*key, Origin::of(metadata, key)))
            })
            .collect();
        let effective = EffectiveConfig { config, origins };
        effective.check()?;
        Ok(effective)
    }

    /// What [`serve`](crate::serve) needs of it.
    pub fn serve_config(&self) -> ServeConfig {
        ServeConfig {
            database_url: self.database_url.clone(),
            listen: self.listen.clone(),
            options: ServiceOptions {
                bearer_lifetime_minutes: self.bearer_lifetime_minutes,
                public_url: self.public_url.clone(),
                bearer_format: self.bearer_format,
                jwt_audience: self.jwt_audience.clone(),
            },
            trusted_proxies: self.trusted_proxies.iter().copied().collect(),
        }
    }
}

/// The file's layer, after checking that it exists, parses and holds only known keys.
fn read_file(path: &Path) -> Result<Data<Toml>, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::MissingFile(path.to_owned()));
    }
    let file = Toml::file_exact(path);
    let data = file.data().map_err(|error| ConfigError::Unreadable {
        path: path.to_owned(),
        reason: error.kind.to_string(),
    })?;
    if let Some(key) = data
        .values()
        .flat_map(Dict::keys)
        .find(|key| !KEYS.contains(&key.as_str()))
    {
        return Err(ConfigError::UnknownKey {
            key: key.clone(),
            path: path.to_owned(),
        });
    }
    Ok(file)
}

/// The `M2M_*` environment variables named after [`KEYS`]; the others are not read.
struct Environment;

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named(ENVIRONMENT_NAME).interpolater(|_, path| env_var(&path.join("_")))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Env::prefixed(ENV_PREFIX).only(&KEYS).data()
    }
}

/// The environment variable of `key`.
fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// The flag of `key`.
fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// The values given on the command line; `None` leaves the layers below alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Flags {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--public-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// `--bearer-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_format: Option<BearerFormat>,
    /// `--bearer-lifetime-minutes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_lifetime_minutes: Option<u32>,
    /// `--jwt-audience`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_audience: Option<String>,
    /// `--log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// `--trusted-proxy`, repeated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<Vec<IpNet>>,
}

impl Provider for Flags {
    fn metadata(&self) -> Metadata {
        Metadata::named(FLAGS_NAME).interpolater(|_, path| flag(&path.join("_")))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(self).data()
    }
}

/// Where a value of the effective configuration came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable, named.
    Environment(String),
    /// A command-line flag, named.
    Flag(String),
}

impl Origin {
    fn of(metadata: &Metadata, key: &str) -> Origin {
        if let Some(figment::Source::File(path)) = &metadata.source {
            return Origin::File(path.clone());
        }
        match metadata.name.as_ref() {
            ENVIRONMENT_NAME => Origin::Environment(env_var(key)),
            FLAGS_NAME => Origin::Flag(flag(key)),
            _ => Origin::Default,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Environment(name) => write!(f, "environment {name}"),
            Origin::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// The merged configuration and where each value came from.
#[derive(Clone, Debug)]
pub struct EffectiveConfig {
    config: Config,
    origins: BTreeMap<&'static str, Origin>,
}

impl EffectiveConfig {
    /// The values.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the value of `key` came from; `None` for an optional key no layer sets.
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.origins.get(key)
    }

    /// The values that cannot be checked by their type alone.
    fn check(&self) -> Result<(), ConfigError> {
        let config = &self.config;
        let max = m2m_core::MAX_EXPIRY_MINUTES;
        if !(1..=max).contains(&config.bearer_lifetime_minutes) {
            return Err(self.invalid(
                "bearer_lifetime_minutes",
                format!(
                    "{} is not in 1..={max} minutes",
                    config.bearer_lifetime_minutes
                ),
            ));
        }
        if let Some(url) = &config.public_url {
            check_public_url(url).map_err(|reason| self.invalid("public_url", reason))?;
        }
        Ok(())
    }

    fn invalid(&self, key: &str, reason: String) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_owned(),
            origin: self.origin(key).cloned().unwrap_or(Origin::Default),
            reason,
        }
    }

    /// The configuration in the shape of the file, each value followed by a comment that says
    /// where it came from; the database password is [`REDACTED`]. Keys no layer sets are
    /// comments.
    pub fn to_toml(&self) -> String {
        let mut shown = self.config.clone();
        shown.database_url = redact_database_url(&shown.database_url);
        let table = toml::Table::try_from(&shown).unwrap_or_default();
        let mut out = String::from(
            "# The effective configuration of `m2m serve`: command-line flags override M2M_*\n\
             # environment variables, which override the file, which overrides the defaults.\n",
        );
        for key in KEYS {
            match (table.get(key), self.origin(key)) {
                (Some(value), Some(origin)) => {
                    out.push_str(&format!("{key} = {value} # {origin}\n"));
                }
                (Some(value), None) => out.push_str(&format!("{key} = {value}\n")),
                (None, _) => out.push_str(&format!("# {key} is not set\n")),
            }
        }
        out
    }
}

/// A public URL: `http://` or `https://` and a host, nothing after the path.
///
/// # Errors
///
/// What is wrong with it.
pub(crate) fn check_public_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("the public URL starts with https:// or http://")?;
    let valid = !rest.is_empty()
        && !rest.starts_with('/')
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:/[]_~".contains(&b));
    if !valid {
        return Err("the public URL is a scheme, a host and an optional path, nothing more".into());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The database URL with its password (in the user part or as a `password` parameter) replaced
/// by [`REDACTED`]; a URL that cannot be parsed is redacted whole.
pub fn redact_database_url(raw: &str) -> String {
    use url::Position;

    let Ok(url) = url::Url::parse(raw) else {
        return REDACTED.to_owned();
    };
    let has_parameter = url.query_pairs().any(|(name, _)| name == "password");
    if url.password().is_none() && !has_parameter {
        return raw.to_owned();
    }
    // (The password positions are only asked of a URL that has a password.)
    let mut out = if url.password().is_some() {
        format!(
            "{}{REDACTED}{}",
            &url[..Position::BeforePassword],
            &url[Position::AfterPassword..Position::BeforeQuery]
        )
    } else {
        url[..Position::BeforeQuery].to_owned()
    };
    if let Some(query) = url.query() {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| {
                let name = parameter
                    .split_once('=')
                    .map_or(parameter, |(name, _)| name);
                let decoded = url::form_urlencoded::parse(name.as_bytes()).next();
                if decoded.is_some_and(|(name, _)| name == "password") {
                    format!("{name}={REDACTED}")
                } else {
                    parameter.to_owned()
                }
            })
            .collect();
        out.push_str(&parameters.join("&"));
    }
    out.push_str(&url[Position::AfterQuery..]);
    out
}

/// Why the configuration was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file named by `--config` (or `M2M_CONFIG`) does not exist.
    MissingFile(PathBuf),
    /// The file could not be read or is not TOML.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong, with the line.
        reason: String,
    },
    /// The file holds a key that is not one of [`KEYS`].
    UnknownKey {
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
    },
    /// A value has the wrong type or is out of range.
    Invalid {
        /// The key.
        key: String,
        /// Where the value came from.
        origin: Origin,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    fn from_figment(error: figment::Error) -> Self {
        let key = error.path.join(".");
        let origin = error
            .metadata
            .as_ref()
            .map_or(Origin::Default, |metadata| Origin::of(metadata, &key));
        ConfigError::Invalid {
            key,
            origin,
            reason: error.kind.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::MissingFile(path) => {
                write!(
                    f,
                    "the configuration file {} does not exist",
                    path.display()
                )
            }
            ConfigError::Unreadable { path, reason } => {
                write!(
                    f,
                    "cannot read the configuration file {}: {reason}",
                    path.display()
                )
            }
            ConfigError::UnknownKey { key, path } => write!(
                f,
                "unknown key {key:?} in the configuration file {}; the keys are {}",
                path.display(),
                KEYS.join(", ")
            ),
            ConfigError::Invalid {
                key,
                origin,
                reason,
            } => match origin {
                Origin::Environment(name) | Origin::Flag(name) => {
                    write!(f, "invalid {name}: {reason}")
                }
                Origin::File(path) => write!(
                    f,
                    "invalid {key} in the configuration file {}: {reason}",
                    path.display()
                ),
                Origin::Default => write!(f, "invalid {key}: {reason}"),
            },
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_of_a_database_url_is_redacted() {
        assert_eq!(
            redact_database_url("postgres://m2m:s3cret@db.internal:5432/m2m?sslmode=verify-full"),
            "postgres://m2m:<redacted>@db.internal:5432/m2m?sslmode=verify-full"
        );
        assert_eq!(
            redact_database_url("postgres://m2m@db/m2m?password=s3cret&sslmode=require"),
            "postgres://m2m@db/m2m?password=<redacted>&sslmode=require"
        );
        assert_eq!(
            redact_database_url("postgres://m2m:a%40b@db/m2m?pass%77ord=x"),
            "postgres://m2m:<redacted>@db/m2m?pass%77ord=<redacted>"
        );
        assert_eq!(redact_database_url("sqlite://m2m.db"), "sqlite://m2m.db");
        assert_eq!(redact_database_url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(redact_database_url("not a url s3cret"), REDACTED);
    }

    #[test]
    fn debug_leaves_the_password_out() {
        let config = Config {
            database_url: "postgres://m2m:s3cret@db/m2m".into(),
            ..Config::default()
        };
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains(REDACTED), "{debug}");
    }

    #[test]
    fn public_urls_are_checked() {
        assert_eq!(
            check_public_url("https://tokens.example.com/").as_deref(),
            Ok("https://tokens.example.com")
        );
        assert!(check_public_url("ftp://tokens.example.com").is_err());
        assert!(check_public_url("https://user:pw@tokens.example.com").is_err());
    }
}
