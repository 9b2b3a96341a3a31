//! The two ways a client presents an m2m token, as OpenAPI 3.1 security schemes for an API
//! documented with [`utoipa`].
//!
//! [`SecuritySchemes`] is a [`utoipa::Modify`] that adds them to a document:
//!
//! | name | scheme | a client sends |
//! |---|---|---|
//! | [`API_KEY`] (`api_key`) | `apiKey` in the header `X-API-KEY` | an access token (`m2m_at_…`) |
//! | [`CLIENT_CREDENTIALS`] (`client_credentials`) | `oauth2`, flow `clientCredentials` with the token service's token URL | `Authorization: Bearer` with a token obtained there |
//!
//! and, on request ([`SecuritySchemes::bearer`]), [`BEARER`] (`bearer`): HTTP `bearer`, for
//! bearer tokens that come from another issuer (a JWT of an identity provider the verifier
//! trusts).
//!
//! The token service's own document (`GET /openapi.json`) is built with the same modifier, so
//! an application's operations and the service's name their schemes alike. In
//! `#[utoipa::path(security(...))]` the names are written as string literals: `"api_key"`,
//! `"client_credentials"`, `"bearer"`. An operation that requires scopes lists them for each
//! scheme; OpenAPI 3.1 allows that for `apiKey` and `http` schemes too.
//!
//! # Example
//!
//! ```
//! use m2m_core::openapi::{API_KEY, CLIENT_CREDENTIALS, SecuritySchemes};
//! use utoipa::{Modify as _, OpenApi as _};
//!
//! #[derive(utoipa::OpenApi)]
//! #[openapi(paths(reports), modifiers(&Schemes))]
//! struct ApiDoc;
//!
//! struct Schemes;
//!
//! impl utoipa::Modify for Schemes {
//!     fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
//!         SecuritySchemes::new("https://tokens.example.com/oauth/token")
//!             .scope("reports:read", "Read the reports")
//!             .modify(openapi);
//!     }
//! }
//!
//! /// The reports.
//! #[utoipa::path(
//!     get,
//!     path = "/v1/reports",
//!     security(("api_key" = ["reports:read"]), ("client_credentials" = ["reports:read"])),
//!     responses((status = 200, description = "The reports"))
//! )]
//! #[allow(dead_code)]
//! async fn reports() {}
//!
//! let json = serde_json::to_value(ApiDoc::openapi()).unwrap();
//! let schemes = &json["components"]["securitySchemes"];
//! assert_eq!(schemes[API_KEY]["type"], "apiKey");
//! assert_eq!(schemes[API_KEY]["in"], "header");
//! assert_eq!(schemes[API_KEY]["name"], "X-API-KEY");
//! let flow = &schemes[CLIENT_CREDENTIALS]["flows"]["clientCredentials"];
//! assert_eq!(flow["tokenUrl"], "https://tokens.example.com/oauth/token");
//! assert_eq!(flow["scopes"]["reports:read"], "Read the reports");
//! let operation = &json["paths"]["/v1/reports"]["get"];
//! assert_eq!(operation["security"][0][API_KEY][0], "reports:read");
//! ```

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Scopes,
    SecurityRequirement, SecurityScheme,
};

/// The name of the scheme of access tokens: `apiKey` in the header `X-API-KEY`.
pub const API_KEY: &str = "api_key";

/// The name of the scheme of client-credentials bearer tokens: OAuth 2.0, flow
/// `clientCredentials`, at the token service's token URL.
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

/// The name of the scheme of bearer tokens from other issuers: HTTP `bearer`.
pub const BEARER: &str = "bearer";

/// Adds the m2m security schemes ([`API_KEY`], [`CLIENT_CREDENTIALS`], and [`BEARER`] when
/// asked for) to an OpenAPI document's components; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecuritySchemes {
    token_url: String,
    scopes: Vec<(String, String)>,
    bearer_format: Option<String>,
}

impl SecuritySchemes {
    /// The two schemes, with `token_url` the token service's `/oauth/token` (absolute, or
    /// relative to the document's server).
    pub fn new(token_url: impl Into<String>) -> Self {
        Self {
            token_url: token_url.into(),
            scopes: Vec::new(),
            bearer_format: None,
        }
    }

    /// Declares a scope of the client-credentials flow, with what it allows.
    #[must_use]
    pub fn scope(mut self, name: impl Into<String>, description: impl Into<String>) -> Self {
        self.scopes.push((name.into(), description.into()));
        self
    }

    /// Also declares [`BEARER`], an HTTP `bearer` scheme with the format hint `bearer_format`
    /// (`"JWT"`), for bearer tokens of issuers other than the token service.
    #[must_use]
    pub fn bearer(mut self, bearer_format: impl Into<String>) -> Self {
        self.bearer_format = Some(bearer_format.into());
        self
    }

    /// The security of an operation that accepts either token type carrying `scopes`: one
    /// alternative per declared token scheme.
    ///
    /// ```
    /// use m2m_core::openapi::SecuritySchemes;
    ///
    /// let schemes = SecuritySchemes::new("/oauth/token");
    /// let json = serde_json::to_value(schemes.requirements(["reports:read"])).unwrap();
    /// assert_eq!(
    ///     json,
    ///     serde_json::json!([
    ///         {"api_key": ["reports:read"]},
    ///         {"client_credentials": ["reports:read"]},
    ///     ])
    /// );
    /// ```
    pub fn requirements<I, S>(&self, scopes: I) -> Vec<SecurityRequirement>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        let mut names = vec![API_KEY, CLIENT_CREDENTIALS];
        if self.bearer_format.is_some() {
            names.push(BEARER);
        }
        names
            .into_iter()
            .map(|name| SecurityRequirement::new(name, scopes.clone()))
            .collect()
    }

    fn api_key() -> SecurityScheme {
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            // `X_API_KEY` as clients write it; header names are case-insensitive.
            "X-API-KEY".to_owned(),
            "An access token (`m2m_at_…`) in the `X-API-KEY` header.".to_owned(),
        )))
    }

    fn client_credentials(&self) -> SecurityScheme {
        let scopes: Scopes = self
            .scopes
            .iter()
            .map(|(name, description)| (name.as_str(), description.as_str()))
            .collect();
        SecurityScheme::OAuth2(OAuth2::with_description(
            [Flow::ClientCredentials(ClientCredentials::new(
                self.token_url.clone(),
                scopes,
            ))],
            "A bearer token (`m2m_cc_…`, or a JWT when the token service issues them) in \
             `Authorization: Bearer`, obtained with a client id and secret by the OAuth 2.0 \
             client-credentials grant (RFC 6749 §4.4).",
        ))
    }
}

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(API_KEY, Self::api_key());
        components.add_security_scheme(CLIENT_CREDENTIALS, self.client_credentials());
        if let Some(format) = &self.bearer_format {
            components.add_security_scheme(
                BEARER,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format(format.clone())
                        .description(Some(
                            "A bearer token of another trusted issuer in `Authorization: Bearer`.",
                        ))
                        .build(),
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::{InfoBuilder, OpenApiBuilder};

    #[test]
    fn the_bearer_scheme_is_added_only_when_asked_for() {
        let document = || {
            OpenApiBuilder::new()
                .info(InfoBuilder::new().title("api").version("1").build())
                .build()
        };
        let mut two = document();
        SecuritySchemes::new("/oauth/token").modify(&mut two);
        let json = serde_json::to_value(&two).unwrap();
        let schemes = json["components"]["securitySchemes"].as_object().unwrap();
        assert_eq!(schemes.len(), 2);
        assert!(schemes[CLIENT_CREDENTIALS]["flows"]["clientCredentials"]["scopes"].is_object());

        let mut three = document();
        let with_bearer = SecuritySchemes::new("/oauth/token").bearer("JWT");
        with_bearer.modify(&mut three);
        let json = serde_json::to_value(&three).unwrap();
        let bearer = &json["components"]["securitySchemes"][BEARER];
        assert_eq!(bearer["type"], "http");
        assert_eq!(bearer["scheme"], "bearer");
        assert_eq!(bearer["bearerFormat"], "JWT");
        assert_eq!(with_bearer.requirements(["a"]).len(), 3);
    }
}
