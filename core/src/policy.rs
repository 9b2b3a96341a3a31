//! Which token types are enabled: an environment default and per-tenant overrides.
//!
//! An environment (or one tenant) chooses which type of token its users may generate, and the
//! verifier accepts only tokens of an enabled type. The policy is a shared handle: an admin
//! change made through one clone is seen at once by every verifier holding another.
//!
//! # Example
//!
//! ```
//! use m2m_core::{Policy, TokenType, TokenTypes};
//!
//! let policy = Policy::new(TokenTypes::only(TokenType::AccessToken));
//! policy.set_tenant("acme", TokenTypes::only(TokenType::ClientCredentials));
//!
//! assert!(policy.is_enabled("globex", TokenType::AccessToken));
//! assert!(!policy.is_enabled("acme", TokenType::AccessToken));
//! assert!(policy.is_enabled("acme", TokenType::ClientCredentials));
//! ```

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};

use crate::placement::Placement;

/// The two types of machine-to-machine token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// Access tokens, sent in `X-API-KEY`; serde name `access`.
    #[serde(rename = "access")]
    AccessToken,
    /// Client credentials exchanged for bearer tokens sent as `Authorization: Bearer`; serde
    /// name `client_credentials`.
    ClientCredentials,
}

impl TokenType {
    /// Both types.
    pub const ALL: [TokenType; 2] = [TokenType::AccessToken, TokenType::ClientCredentials];

    /// The header this type's tokens travel in.
    ///
    /// ```
    /// use m2m_core::{Placement, TokenType};
    /// assert_eq!(TokenType::AccessToken.placement(), Placement::ApiKey);
    /// ```
    pub const fn placement(self) -> Placement {
        match self {
            TokenType::AccessToken => Placement::ApiKey,
            TokenType::ClientCredentials => Placement::Bearer,
        }
    }

    /// The serde name.
    pub const fn name(self) -> &'static str {
        match self {
            TokenType::AccessToken => "access",
            TokenType::ClientCredentials => "client_credentials",
        }
    }
}

impl fmt::Display for TokenType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a token type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown token type: expected access or client_credentials")]
pub struct InvalidTokenType;

impl FromStr for TokenType {
    type Err = InvalidTokenType;

    /// Accepts the serde names and the command-line spelling `client-credentials`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "access" => Ok(TokenType::AccessToken),
            "client_credentials" | "client-credentials" => Ok(TokenType::ClientCredentials),
            _ => Err(InvalidTokenType),
        }
    }
}

/// A set of token types.
///
/// ```
/// use m2m_core::{TokenType, TokenTypes};
/// let all = TokenTypes::all();
/// assert!(all.contains(TokenType::AccessToken) && all.contains(TokenType::ClientCredentials));
/// assert_eq!(TokenTypes::only(TokenType::AccessToken).iter().count(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TokenTypes {
    access: bool,
    client_credentials: bool,
}

impl TokenTypes {
    /// Both types.
    pub const fn all() -> Self {
        Self {
            access: true,
            client_credentials: true,
        }
    }

    /// No type: every token is refused.
    pub const fn none() -> Self {
        Self {
            access: false,
            client_credentials: false,
        }
    }

    /// Just one type.
    pub const fn only(token_type: TokenType) -> Self {
        match token_type {
            TokenType::AccessToken => Self {
                access: true,
                client_credentials: false,
            },
            TokenType::ClientCredentials => Self {
                access: false,
                client_credentials: true,
            },
        }
    }

    /// Whether `token_type` is in the set.
    pub const fn contains(self, token_type: TokenType) -> bool {
        match token_type {
            TokenType::AccessToken => self.access,
            TokenType::ClientCredentials => self.client_credentials,
        }
    }

    /// The types in the set.
    pub fn iter(self) -> impl Iterator<Item = TokenType> {
        TokenType::ALL
            .into_iter()
            .filter(move |t| self.contains(*t))
    }
}

impl Default for TokenTypes {
    fn default() -> Self {
        Self::all()
    }
}

#[derive(Debug, Default)]
struct Settings {
    default: TokenTypes,
    tenants: HashMap<Box<str>, TokenTypes>,
}

/// Which token types are enabled, for the environment and per tenant; clones share one policy.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    settings: Arc<RwLock<Settings>>,
}

impl Policy {
    /// A policy enabling `default` everywhere until a tenant overrides it.
    pub fn new(default: TokenTypes) -> Self {
        Self {
            settings: Arc::new(RwLock::new(Settings {
                default,
                tenants: HashMap::new(),
            })),
        }
    }

    /// The environment default.
    pub fn default_types(&self) -> TokenTypes {
        self.read(|s| s.default)
    }

    /// Replaces the environment default.
    pub fn set_default(&self, types: TokenTypes) {
        self.write(|s| s.default = types);
    }

    /// Overrides the default for one tenant.
    pub fn set_tenant(&self, tenant: &str, types: TokenTypes) {
        self.write(|s| {
            s.tenants.insert(tenant.into(), types);
        });
    }

    /// Removes a tenant's override, so that it follows the default again.
    pub fn clear_tenant(&self, tenant: &str) {
        self.write(|s| {
            s.tenants.remove(tenant);
        });
    }

    /// The types enabled for `tenant`: its override, or the default.
    pub fn types_for(&self, tenant: &str) -> TokenTypes {
        self.read(|s| s.tenants.get(tenant).copied().unwrap_or(s.default))
    }

    /// Whether tokens of `token_type` are accepted for `tenant`.
    pub fn is_enabled(&self, tenant: &str, token_type: TokenType) -> bool {
        self.types_for(tenant).contains(token_type)
    }

    fn read<T>(&self, f: impl FnOnce(&Settings) -> T) -> T {
        // The settings are plain values: a panic elsewhere cannot leave them half-written.
        f(&self.settings.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write(&self, f: impl FnOnce(&mut Settings)) {
        f(&mut self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_override_wins_and_can_be_cleared() {
        let policy = Policy::new(TokenTypes::only(TokenType::AccessToken));
        let clone = policy.clone();
        clone.set_tenant("acme", TokenTypes::only(TokenType::ClientCredentials));
        assert!(!policy.is_enabled("acme", TokenType::AccessToken));
        assert!(policy.is_enabled("acme", TokenType::ClientCredentials));
        assert!(!policy.is_enabled("other", TokenType::ClientCredentials));
        policy.clear_tenant("acme");
        assert!(clone.is_enabled("acme", TokenType::AccessToken));
        policy.set_default(TokenTypes::none());
        assert!(!clone.is_enabled("acme", TokenType::AccessToken));
    }

    #[test]
    fn token_type_names() {
        assert_eq!(
            serde_json::to_string(&TokenType::ClientCredentials).unwrap(),
            "\"client_credentials\""
        );
        assert_eq!(
            serde_json::to_string(&TokenType::AccessToken).unwrap(),
            "\"access\""
        );
        assert_eq!(
            "client-credentials".parse(),
            Ok(TokenType::ClientCredentials)
        );
        assert!("bearer".parse::<TokenType>().is_err());
    }
}
