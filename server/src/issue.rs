//! Issuing tokens for users, shared by the REST API and the CLI: the input rules and the
//! token-type setting that decides what may be generated.

use m2m_core::{
    Expiry, IssuedToken, NewToken, RateLimit, StoreError, TokenFormat, TokenKind, TokenStore,
    TokenType, TypeSettings,
};
use time::OffsetDateTime;

/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 256;
/// Most scopes on one token.
pub const MAX_SCOPES: usize = 32;
/// Longest scope, in characters.
pub const MAX_SCOPE_CHARS: usize = 64;
/// Longest tenant name, in characters.
pub const MAX_TENANT_CHARS: usize = 64;
/// Longest user id, in characters.
pub const MAX_USER_CHARS: usize = 128;

/// Why a token was not issued.
#[derive(Debug)]
pub enum IssueError {
    /// A value breaks an input rule; the text says which and why.
    Invalid(String),
    /// The tenant may not generate tokens of the requested type.
    TypeNotEnabled {
        /// The tenant.
        tenant: String,
        /// What was asked for.
        requested: TokenType,
        /// What the tenant may generate.
        enabled: TokenType,
    },
    /// The store failed.
    Store(StoreError),
}

impl std::fmt::Display for IssueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IssueError::Invalid(detail) => f.write_str(detail),
            IssueError::TypeNotEnabled {
                tenant,
                requested,
                enabled,
            } => write!(
                f,
                "tenant {tenant} may generate only {enabled} tokens, not {requested}: change the \
                 setting first"
            ),
            IssueError::Store(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for IssueError {}

impl From<StoreError> for IssueError {
    fn from(error: StoreError) -> Self {
        IssueError::Store(error)
    }
}

/// Checks a tenant name: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
///
/// # Errors
///
/// A text saying what is wrong.
pub fn check_tenant(tenant: &str) -> Result<(), String> {
    let valid_chars = tenant
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if tenant.is_empty() || tenant.len() > MAX_TENANT_CHARS || !valid_chars {
        return Err(format!(
            "invalid tenant name: use 1 to {MAX_TENANT_CHARS} characters of A-Z, a-z, 0-9, '.', \
             '_' and '-'"
        ));
    }
    Ok(())
}

/// The expiry from the two ways of giving it: a named choice (`never`, `1d`, `7d`, `30d`,
/// `90d`, `365d`) or a number of minutes; exactly one of them.
///
/// # Errors
///
/// A text saying what is wrong.
pub fn expiry_from(expires: Option<&str>, minutes: Option<i64>) -> Result<Expiry, String> {
    match (expires, minutes) {
        (Some(_), Some(_)) => Err("give either expires or expires_in_minutes, not both".to_owned()),
        (None, None) => Err(
            "the expiry is missing: give expires (never, 1d, 7d, 30d, 90d or 365d) or \
             expires_in_minutes"
                .to_owned(),
        ),
        (Some(name), None) => Expiry::CHOICES
            .into_iter()
            .find(|choice| choice.name() == Some(name))
            .ok_or_else(|| {
                format!("unknown expiry {name:?}: expected never, 1d, 7d, 30d, 90d or 365d")
            }),
        (None, Some(minutes)) => Expiry::minutes(minutes).map_err(|_| {
            format!(
                "invalid expires_in_minutes {minutes}: expected 1 to {} minutes",
                m2m_core::MAX_EXPIRY_MINUTES
            )
        }),
    }
}

/// A user's request for a token, before the rules are checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenRequest {
    /// The tenant the token is for.
    pub tenant: String,
    /// The type asked for; `None` takes the tenant's enabled type (access when none is set).
    pub token_type: Option<TokenType>,
    /// Free text shown in listings.
    pub description: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// The user it is created for.
    pub user: Option<String>,
    /// Who creates it, as listings show it.
    pub created_by: Option<String>,
    /// Requests it may authenticate per window; none by default.
    pub rate_limit: Option<RateLimit>,
}

impl TokenRequest {
    /// Checks every input rule and returns the request for the store, or says what is wrong.
    ///
    /// # Errors
    ///
    /// [`IssueError::Invalid`] for a broken rule; [`IssueError::TypeNotEnabled`] when the
    /// tenant may not generate the requested type.
    pub fn check(
        self,
        expiry: Expiry,
        settings: &TypeSettings,
    ) -> Result<(TokenType, NewToken), IssueError> {
        check_tenant(&self.tenant).map_err(IssueError::Invalid)?;
        let description_chars = self.description.chars().count();
        if description_chars > MAX_DESCRIPTION_CHARS {
            return Err(IssueError::Invalid(format!(
                "the description has {description_chars} characters, at most \
                 {MAX_DESCRIPTION_CHARS} are allowed"
            )));
        }
        if self.description.chars().any(char::is_control) {
            return Err(IssueError::Invalid(
                "the description contains control characters".to_owned(),
            ));
        }
        let scopes = check_scopes(self.scopes).map_err(IssueError::Invalid)?;
        check_environment_scopes(&self.tenant, &scopes).map_err(IssueError::Invalid)?;
        if let Some(user) = &self.user {
            check_user(user).map_err(IssueError::Invalid)?;
        }
        let enabled = settings.token_type_for(&self.tenant);
        let token_type = match (enabled, self.token_type) {
            (Some(enabled), Some(requested)) if enabled != requested => {
                return Err(IssueError::TypeNotEnabled {
                    tenant: self.tenant,
                    requested,
                    enabled,
                });
            }
            (Some(enabled), _) => enabled,
            (None, requested) => requested.unwrap_or(TokenType::AccessToken),
        };
        let kind = match token_type {
            TokenType::AccessToken => TokenKind::AccessToken,
            TokenType::ClientCredentials => TokenKind::ClientSecret,
        };
        let mut request = NewToken::new(kind, self.tenant, expiry).description(self.description);
        request.scopes = scopes;
        request.user = self.user;
        request.created_by = self.created_by;
        request.rate_limit = self.rate_limit;
        Ok((token_type, request))
    }

    /// Checks the request against the rules and the tenant's setting, then issues the token.
    ///
    /// # Errors
    ///
    /// See [`check`](Self::check); [`IssueError::Store`] when the store fails (nothing is
    /// stored then).
    pub async fn issue(
        self,
        expiry: Expiry,
        store: &dyn TokenStore,
        format: &TokenFormat,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, IssueError> {
        let settings = store.load_settings().await?;
        let (_, request) = self.check(expiry, &settings)?;
        Ok(store.issue(format, request, now).await?)
    }
}

/// Checks scopes: at most 32, each 1 to 64 visible ASCII characters other than `"` and `\`
/// (RFC 6749 §3.3). Drops repeats, keeping the first.
///
/// # Errors
///
/// A text saying what is wrong.
pub fn check_scopes(scopes: Vec<String>) -> Result<Vec<String>, String> {
    if scopes.len() > MAX_SCOPES {
        return Err(format!(
            "{} scopes given, at most {MAX_SCOPES} are allowed",
            scopes.len()
        ));
    }
    let mut kept: Vec<String> = Vec::with_capacity(scopes.len());
    for scope in scopes {
        if scope.is_empty() || scope.chars().count() > MAX_SCOPE_CHARS {
            return Err(format!(
                "invalid scope {scope:?}: a scope has 1 to {MAX_SCOPE_CHARS} characters"
            ));
        }
        if scope.chars().any(char::is_whitespace) {
            return Err(format!(
                "invalid scope {scope:?}: a scope contains no whitespace"
            ));
        }
        let valid = scope
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        if !valid {
            return Err(format!(
                "invalid scope {scope:?}: use visible ASCII characters other than '\"' and '\\'"
            ));
        }
        if !kept.contains(&scope) {
            kept.push(scope);
        }
    }
    Ok(kept)
}

/// Checks a user id: 1 to [`MAX_USER_CHARS`] characters, no control character.
///
/// # Errors
///
/// The message saying what a user id must be.
pub fn check_user(user: &str) -> Result<(), String> {
    let chars = user.chars().count();
    if chars == 0 || chars > MAX_USER_CHARS || user.chars().any(char::is_control) {
        return Err(format!(
            "invalid user id: use 1 to {MAX_USER_CHARS} characters without control characters"
        ));
    }
    Ok(())
}

/// Refuses the environment's own scopes ([`ENVIRONMENT_SCOPES`](crate::ENVIRONMENT_SCOPES))
/// in a token of any tenant but [`ADMIN_TENANT`](crate::ADMIN_TENANT).
///
/// # Errors
///
/// The message naming the first such scope.
pub fn check_environment_scopes(tenant: &str, scopes: &[String]) -> Result<(), String> {
    if tenant == crate::ADMIN_TENANT {
        return Ok(());
    }
    match scopes
        .iter()
        .find(|s| crate::ENVIRONMENT_SCOPES.contains(&s.as_str()))
    {
        Some(scope) => Err(format!(
            "the scope {scope} is the environment's: it can only be issued to the tenant {}",
            crate::ADMIN_TENANT
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        assert!(check_tenant("acme-1.eu_west").is_ok());
        assert!(check_tenant("").is_err());
        assert!(check_tenant("a b").is_err());
        assert!(check_tenant("ümlaut").is_err());
        assert!(check_tenant(&"a".repeat(64)).is_ok());
        assert!(check_tenant(&"a".repeat(65)).is_err());
    }

    #[test]
    fn expiry_choices_and_minutes() {
        assert_eq!(expiry_from(Some("7d"), None), Ok(Expiry::SevenDays));
        assert_eq!(expiry_from(None, Some(90)), Ok(Expiry::Minutes(90)));
        assert!(expiry_from(Some("14d"), None).is_err());
        assert!(expiry_from(Some("90m"), None).is_err());
        assert!(expiry_from(None, Some(0)).is_err());
        assert!(expiry_from(None, Some(-5)).is_err());
        assert!(expiry_from(Some("1d"), Some(5)).is_err());
        assert!(expiry_from(None, None).is_err());
    }

    #[test]
    fn scopes() {
        let ok = check_scopes(vec!["a:read".into(), "b".into(), "a:read".into()]).unwrap();
        assert_eq!(ok, ["a:read", "b"]);
        assert!(check_scopes(vec!["has space".into()]).is_err());
        assert!(check_scopes(vec![String::new()]).is_err());
        assert!(check_scopes(vec!["x".repeat(65)]).is_err());
        assert!(check_scopes((0..33).map(|i| format!("s{i}")).collect()).is_err());
    }

    #[test]
    fn the_tenant_setting_decides_the_type() {
        let request = |token_type| TokenRequest {
            tenant: "acme".into(),
            token_type,
            ..TokenRequest::default()
        };
        let none = TypeSettings::default();
        let (ty, new) = request(None).check(Expiry::Never, &none).unwrap();
        assert_eq!(
            (ty, new.kind),
            (TokenType::AccessToken, TokenKind::AccessToken)
        );
        let (ty, new) = request(Some(TokenType::ClientCredentials))
            .check(Expiry::Never, &none)
            .unwrap();
        assert_eq!(
            (ty, new.kind),
            (TokenType::ClientCredentials, TokenKind::ClientSecret)
        );

        let credentials_only = TypeSettings {
            default: Some(TokenType::ClientCredentials),
            ..TypeSettings::default()
        };
        let (ty, _) = request(None)
            .check(Expiry::Never, &credentials_only)
            .unwrap();
        assert_eq!(ty, TokenType::ClientCredentials);
        let refused = request(Some(TokenType::AccessToken)).check(Expiry::Never, &credentials_only);
        assert!(matches!(refused, Err(IssueError::TypeNotEnabled { .. })));
    }
}
