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
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::placement::Placement;

/// The two types of machine-to-machine token.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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

impl TokenTypes {
    const fn bits(self) -> u8 {
        (self.access as u8) | ((self.client_credentials as u8) << 1)
    }

    const fn from_bits(bits: u8) -> Self {
        Self {
            access: bits & 1 != 0,
            client_credentials: bits & 2 != 0,
        }
    }
}

#[derive(Debug)]
struct Settings {
    /// The environment default, readable without a lock.
    default: AtomicU8,
    /// Whether any tenant overrides the default; while none does, no lock is taken.
    has_overrides: AtomicBool,
    tenants: RwLock<HashMap<Box<str>, TokenTypes>>,
}

/// Which token types are enabled, for the environment and per tenant; clones share one policy.
#[derive(Clone, Debug)]
pub struct Policy {
    settings: Arc<Settings>,
}

impl Default for Policy {
    fn default() -> Self {
        Self::new(TokenTypes::all())
    }
}

impl Policy {
    /// A policy enabling `default` everywhere until a tenant overrides it.
    pub fn new(default: TokenTypes) -> Self {
        Self {
            settings: Arc::new(Settings {
                default: AtomicU8::new(default.bits()),
                has_overrides: AtomicBool::new(false),
                tenants: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// The environment default.
    pub fn default_types(&self) -> TokenTypes {
        TokenTypes::from_bits(self.settings.default.load(Ordering::Acquire))
    }

    /// Replaces the environment default.
    pub fn set_default(&self, types: TokenTypes) {
        self.settings.default.store(types.bits(), Ordering::Release);
    }

    /// Overrides the default for one tenant.
    pub fn set_tenant(&self, tenant: &str, types: TokenTypes) {
        let mut tenants = self.write();
        tenants.insert(tenant.into(), types);
        self.settings.has_overrides.store(true, Ordering::Release);
    }

    /// Removes a tenant's override, so that it follows the default again.
    pub fn clear_tenant(&self, tenant: &str) {
        let mut tenants = self.write();
        tenants.remove(tenant);
        self.settings
            .has_overrides
            .store(!tenants.is_empty(), Ordering::Release);
    }

    /// Replaces the default and every override at once.
    pub fn replace<'a>(
        &self,
        default: TokenTypes,
        tenants: impl IntoIterator<Item = (&'a str, TokenTypes)>,
    ) {
        let mut map = self.write();
        *map = tenants
            .into_iter()
            .map(|(tenant, types)| (tenant.into(), types))
            .collect();
        self.set_default(default);
        self.settings
            .has_overrides
            .store(!map.is_empty(), Ordering::Release);
    }

    /// The types enabled for `tenant`: its override, or the default.
    pub fn types_for(&self, tenant: &str) -> TokenTypes {
        if self.settings.has_overrides.load(Ordering::Acquire) {
            let tenants = self
                .settings
                .tenants
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(types) = tenants.get(tenant) {
                return *types;
            }
        }
        self.default_types()
    }

    /// Whether tokens of `token_type` are accepted for `tenant`.
    pub fn is_enabled(&self, tenant: &str, token_type: TokenType) -> bool {
        self.types_for(tenant).contains(token_type)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Box<str>, TokenTypes>> {
        // The map holds plain values: a panic elsewhere cannot leave it half-written.
        self.settings
            .tenants
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The scopes a route requires, as middleware holds them: cheap to clone, and lent to the
/// verifier as `&[&str]` without an allocation for up to eight scopes.
///
/// ```
/// use m2m_core::RequiredScopes;
///
/// let scopes = RequiredScopes::new(["reports:read", "reports:write"]);
/// assert_eq!(scopes.with(|scopes| scopes.join(" ")), "reports:read reports:write");
/// assert_eq!(scopes.and(["admin"]).iter().count(), 3);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequiredScopes(Arc<[Box<str>]>);

impl RequiredScopes {
    /// Scopes lent on the stack; more are collected into a vector.
    const INLINE: usize = 8;

    /// These scopes.
    pub fn new<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self(
            scopes
                .into_iter()
                .map(|s| s.into().into_boxed_str())
                .collect(),
        )
    }

    /// These scopes and `more`.
    #[must_use]
    pub fn and<I>(&self, more: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self(
            self.0
                .iter()
                .cloned()
                .chain(more.into_iter().map(|s| s.into().into_boxed_str()))
                .collect(),
        )
    }

    /// The scopes, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.iter().map(|s| &**s)
    }

    /// Runs `f` with the scopes as the `&[&str]` that
    /// [`Verifier::verify`](crate::Verifier::verify) takes.
    pub fn with<T>(&self, f: impl FnOnce(&[&str]) -> T) -> T {
        let mut inline = [""; Self::INLINE];
        if self.0.len() <= inline.len() {
            for (slot, scope) in inline.iter_mut().zip(self.iter()) {
                *slot = scope;
            }
            f(&inline[..self.0.len()])
        } else {
            f(&self.iter().collect::<Vec<_>>())
        }
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
    fn required_scopes_lend_every_scope_in_order() {
        let few = RequiredScopes::new(["a", "b"]);
        assert_eq!(few.with(|scopes| scopes.join(",")), "a,b");
        let many = RequiredScopes::new((0..12).map(|i| format!("s{i}")));
        let lent = many.with(|scopes| scopes.join(","));
        assert_eq!(
            lent,
            (0..12)
                .map(|i| format!("s{i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(RequiredScopes::default().with(|scopes| scopes.is_empty()));
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
