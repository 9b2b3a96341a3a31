//! The token service's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and served at `GET /openapi.json` (public).
//!
//! Every route of [`app`](crate::app) is in it, with its parameters, request body, answers and
//! the schemes it accepts:
//!
//! | scheme | what | where |
//! |---|---|---|
//! | `api_key` | an access token in `X-API-KEY` | the admin API, the resource-server routes |
//! | `client_credentials` | a bearer token from `POST /oauth/token`, in `Authorization: Bearer` | the same |
//! | `basic` | HTTP Basic with a client id and secret | `/oauth/token`, and a resource server's credential |
//! | `portal_session` | the portal's session cookie ([`SESSION_COOKIE`](crate::SESSION_COOKIE)); changes also carry [`CSRF_HEADER`](crate::CSRF_HEADER) | the routes a tenant user reaches from the portal |
//!
//! The first two come from [`m2m_core::openapi::SecuritySchemes`], the modifier applications
//! use for their own APIs, so the names agree. Each operation lists the scopes it needs per
//! scheme (the environment's, `m2m:admin` and `m2m:introspect`, count only in the reserved
//! tenant).
//!
//! Errors are `application/problem+json` (RFC 9457, the `Problem` schema: `type`, `title`,
//! `status`, `detail`, and `error` with the RFC 6750 code where the auth layer refuses a
//! credential). Rather than repeat them on every operation, the document's modifier gives
//! every error answer without content the problem body, and every operation that takes a
//! credential the refusals of the HTTP contract it lacks: 400 `invalid_request`, 401 with its
//! `WWW-Authenticate` challenges, 403, 429 and 503 with `Retry-After`. The token endpoint's
//! errors are the RFC 6749 §5.2 JSON instead, as its annotation says.
//!
//! # Example
//!
//! ```
//! let document = serde_json::to_value(m2m_server::openapi::document()).unwrap();
//! assert_eq!(document["openapi"], "3.1.0");
//! assert!(document["paths"]["/oauth/token"]["post"].is_object());
//! let schemes = &document["components"]["securitySchemes"];
//! assert_eq!(schemes["api_key"]["name"], "X-API-KEY");
//! assert_eq!(schemes["client_credentials"]["flows"]["clientCredentials"]["tokenUrl"], "/oauth/token");
//! ```

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use m2m_core::PROBLEM_JSON;
use m2m_core::openapi::{API_KEY, CLIENT_CREDENTIALS, SecuritySchemes};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Content, ContentBuilder, Ref, RefOr, Response as ResponseObject, ResponseBuilder, Type,
};
use utoipa::{Modify, OpenApi as _};

use crate::api::ADMIN_SCOPE;
use crate::client_auth::INTROSPECT_SCOPE;
use crate::rights::{METRICS_SCOPE, TENANT_ADMIN_SCOPE};

/// The scheme of HTTP Basic client authentication (client id and secret).
pub const BASIC: &str = "basic";

/// The scheme of the portal's session cookie.
pub const PORTAL_SESSION: &str = "portal_session";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "m2m token service",
        description = "Issues, lists and revokes machine-to-machine tokens; exchanges client \
                       credentials for bearer tokens (OAuth 2.0 client-credentials grant); \
                       answers resource servers (RFC 7662 introspection, revocation events).",
    ),
    paths(
        crate::api::settings::get_environment,
        crate::api::settings::put_environment,
        crate::api::portal::get,
        crate::api::portal::put,
        crate::api::settings::get_tenant,
        crate::api::settings::put_tenant,
        crate::api::settings::delete_tenant,
        crate::api::tokens::create,
        crate::api::tokens::list,
        crate::api::tokens::revoke,
        crate::api::users::remove,
        crate::api::sessions::create,
        crate::api::sessions::revoke,
        crate::api::sessions::me,
        crate::api::sessions::logout,
        crate::audit::list,
        crate::jwt::list,
        crate::jwt::rotate_route,
        crate::introspect::introspect,
        crate::introspect::stats,
        crate::revocations::stream,
        crate::api::usage::record,
        crate::oauth::token,
        crate::api::health,
        crate::jwt::jwks,
        crate::jwt::metadata,
        crate::admin_page::index,
        crate::admin_page::common,
        crate::admin_page::script,
        crate::admin_page::style,
        crate::portal_page::page,
        crate::portal_page::script,
        crate::portal_page::enter,
        serve,
        crate::metrics::scrape,
    ),
    components(schemas(crate::problem::ProblemBody)),
    modifiers(&Schemes, &Problems),
    tags(
        (name = "settings", description = "Which token type users generate; what tenant users may grant"),
        (name = "tokens", description = "A tenant's tokens: issue, list, revoke"),
        (name = "portal", description = "The tenant portal: sessions and the portal page"),
        (name = "audit", description = "Who changed what"),
        (name = "keys", description = "The keys JWT access tokens are signed with"),
        (name = "oauth", description = "The client-credentials grant and its metadata"),
        (name = "resource servers", description = "Introspection, revocation events and usage reports for the APIs that accept the tokens"),
        (name = "service", description = "Health, metrics and this document"),
        (name = "admin page", description = "The environment's admin web page"),
    ),
)]
struct ApiDoc;

/// The token service's OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as served, rendered once.
static DOCUMENT_JSON: LazyLock<String> = LazyLock::new(|| document().to_json().unwrap_or_default());

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "service",
    summary = "This OpenAPI 3.1 document",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)),
)]
pub(crate) async fn serve() -> Response {
    if DOCUMENT_JSON.is_empty() {
        tracing::error!("the OpenAPI document does not serialize");
        return crate::Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the OpenAPI document is not available",
        )
        .into_response();
    }
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, DOCUMENT_JSON.as_str()).into_response()
}

/// The security schemes: the two of the token types, shared with applications, and the
/// service's own for client authentication and the portal.
struct Schemes;

impl Modify for Schemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        SecuritySchemes::new("/oauth/token")
            .scope(
                ADMIN_SCOPE,
                "Environment admin (tokens of the reserved tenant)",
            )
            .scope(
                INTROSPECT_SCOPE,
                "Resource server: introspect, follow revocations, report usage (reserved tenant)",
            )
            .scope(TENANT_ADMIN_SCOPE, "Manage the own tenant's tokens")
            .scope(METRICS_SCOPE, "Read the metrics (reserved tenant)")
            .modify(openapi);
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BASIC,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "A client id and secret, each form-urlencoded first (RFC 6749 §2.3.1)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            PORTAL_SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::SESSION_COOKIE.to_owned(),
                format!(
                    "The portal's session cookie, set by `GET /portal/enter`. A request that \
                     changes something also sends the session's CSRF token (`GET /v1/portal/me`) \
                     in `{}`.",
                    crate::CSRF_HEADER
                ),
            ))),
        );
    }
}

/// The problem answers: content for every error answer that has none, and the HTTP
/// contract's refusals for every operation that takes a credential.
struct Problems;

/// The refusals of an operation that takes a credential: status, component name, and what.
const REFUSALS: [(&str, &str, &str); 5] = [
    (
        "400",
        "InvalidRequest",
        "`invalid_request`: both credential headers, a repeated, empty or overlong one, or a \
         token in the other type's header",
    ),
    (
        "401",
        "Unauthorized",
        "No credential, or an unknown, revoked or expired one (`invalid_token`)",
    ),
    (
        "403",
        "Forbidden",
        "The credential lacks the right (`insufficient_scope`, or another tenant's)",
    ),
    (
        "429",
        "TooManyRequests",
        "The token's rate limit is spent; retry after `Retry-After`",
    ),
    (
        "503",
        "StoreUnavailable",
        "The token store cannot answer; retry after `Retry-After`",
    ),
];

fn problem_content() -> Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build()
}

fn header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(utoipa::openapi::schema::Object::with_type(Type::String))
        .description(Some(description))
        .build()
}

fn refusal(status: &str, description: &str) -> ResponseObject {
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, problem_content())
        .header("Cache-Control", header("`no-store`"));
    match status {
        "401" => {
            response = response.header(
                "WWW-Authenticate",
                header("One challenge per enabled token type (`ApiKey`, `Bearer`), with the RFC 6750 `error` when a credential was presented"),
            );
        }
        "403" => {
            response = response.header(
                "WWW-Authenticate",
                header("`error=\"insufficient_scope\"` and the `scope` required, when the auth layer refuses"),
            );
        }
        "429" => {
            response = response
                .header("Retry-After", header("Seconds to wait"))
                .header("RateLimit-Policy", header("The token's quota and window"))
                .header("RateLimit", header("What is left and when it resets"));
        }
        "503" => response = response.header("Retry-After", header("Seconds to wait")),
        _ => {}
    }
    response.build()
}

impl Modify for Problems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (status, name, description) in REFUSALS {
            components
                .responses
                .insert(name.to_owned(), RefOr::T(refusal(status, description)));
        }
        let credentialed = [API_KEY, CLIENT_CREDENTIALS, PORTAL_SESSION];
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                for (status, response) in responses.iter_mut() {
                    let is_error = status.starts_with('4') || status.starts_with('5');
                    if let (true, RefOr::T(response)) = (is_error, response)
                        && response.content.is_empty()
                    {
                        response
                            .content
                            .insert(PROBLEM_JSON.to_owned(), problem_content());
                    }
                }
                let takes_credential = operation.security.iter().flatten().any(|requirement| {
                    let json = serde_json::to_value(requirement).unwrap_or_default();
                    credentialed.iter().any(|name| json.get(name).is_some())
                });
                if takes_credential {
                    for (status, name, _) in REFUSALS {
                        responses
                            .entry(status.to_owned())
                            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                    }
                }
            }
        }
    }
}

/// Shapes of the core's types and of answers built as JSON values, described for the
/// document only: never built.
#[allow(dead_code)]
pub(crate) mod schema {
    use utoipa::ToSchema;

    /// Which token type users may generate.
    #[derive(ToSchema)]
    #[schema(as = TokenType)]
    #[serde(rename_all = "snake_case")]
    pub(crate) enum TokenTypeSchema {
        /// Access tokens, in `X-API-KEY`.
        #[serde(rename = "access")]
        AccessToken,
        /// Client credentials, exchanged for bearer tokens.
        ClientCredentials,
    }

    /// What the client-credentials grant hands out.
    #[derive(ToSchema)]
    #[schema(as = BearerFormat)]
    #[serde(rename_all = "lowercase")]
    pub(crate) enum BearerFormatSchema {
        /// Opaque `m2m_cc_…` tokens.
        Opaque,
        /// Signed JWTs (RFC 9068).
        Jwt,
    }

    /// Which of the four formats a token is.
    #[derive(ToSchema)]
    #[schema(as = TokenKind)]
    #[serde(rename_all = "snake_case")]
    pub(crate) enum TokenKindSchema {
        /// `m2m_at_…`.
        AccessToken,
        /// `m2m_cc_…`, from the client-credentials grant.
        BearerToken,
        /// `m2m_ci_…`.
        ClientId,
        /// `m2m_cs_…`.
        ClientSecret,
    }

    /// What a portal user may do in the tenant.
    #[derive(ToSchema)]
    #[schema(as = PortalRole)]
    #[serde(rename_all = "snake_case")]
    pub(crate) enum PortalRoleSchema {
        /// Manages the tenant's API tokens and its own personal tokens.
        Admin,
        /// Reads the tenant's API tokens, manages its own personal tokens.
        Member,
    }

    /// At most `limit` requests per `window_seconds`, for one token.
    #[derive(ToSchema)]
    #[schema(as = RateLimit)]
    pub(crate) struct RateLimitSchema {
        /// Requests per window: 1 to 1,000,000.
        #[schema(minimum = 1, maximum = 1_000_000)]
        limit: u32,
        /// The window: 1 s to a day.
        #[schema(minimum = 1, maximum = 86_400)]
        window_seconds: u32,
    }

    /// A scope tenant users may grant, with what it allows.
    #[derive(ToSchema)]
    #[schema(as = GrantableScope)]
    pub(crate) struct GrantableScopeSchema {
        /// The scope, as tokens carry it.
        name: String,
        /// What it allows, for people.
        #[serde(default)]
        description: String,
    }

    /// What the environment lets its tenants' users see and grant.
    #[derive(ToSchema)]
    #[schema(as = PortalSettings)]
    pub(crate) struct PortalSettingsSchema {
        /// The scopes tenant users may grant (besides the rights they hold).
        #[serde(default)]
        grantable_scopes: Vec<GrantableScopeSchema>,
        /// Whether tenant users see and create the tenant's API tokens (default: yes).
        #[serde(default)]
        api_tokens_visible: bool,
        /// Whether tenant users see and create their personal tokens (default: yes).
        #[serde(default)]
        personal_tokens_visible: bool,
    }

    /// The RFC 7662 answer: `{"active": false}` alone, or an active token's owner.
    #[derive(ToSchema)]
    #[schema(as = IntrospectionAnswer)]
    pub(crate) struct IntrospectionAnswerSchema {
        /// Whether the token may be used now.
        active: bool,
        /// The token's id.
        jti: Option<String>,
        /// The token's format.
        kind: Option<TokenKindSchema>,
        /// The tenant.
        tenant_id: Option<String>,
        /// The user of a personal token.
        sub: Option<String>,
        /// The client id of a bearer token's credential.
        client_id: Option<String>,
        /// The scopes, space-separated.
        scope: Option<String>,
        /// Expiry, unix seconds.
        exp: Option<i64>,
        /// Issued at, unix seconds.
        iat: Option<i64>,
        /// A bearer token's credential's token id.
        credential_id: Option<String>,
        /// The token's rate limit.
        rate_limit: Option<RateLimitSchema>,
    }

    /// Token uses seen by a resource server.
    #[derive(ToSchema)]
    #[schema(as = UsageReport)]
    pub(crate) struct UsageReportSchema {
        /// At most 1000 uses.
        #[schema(max_items = 1000)]
        uses: Vec<ReportedUseSchema>,
    }

    /// One use.
    #[derive(ToSchema)]
    #[schema(as = ReportedUse)]
    pub(crate) struct ReportedUseSchema {
        /// The token id (`tok_…`).
        token_id: String,
        /// When, in unix seconds.
        #[schema(minimum = 0)]
        used_at: i64,
    }

    /// `GET /v1/stats`: counters of this service since it started.
    #[derive(ToSchema)]
    #[schema(as = Stats)]
    pub(crate) struct StatsSchema {
        introspections: u64,
        active: u64,
        inactive: u64,
        refused_callers: u64,
        token_grants: u64,
        token_refusals: u64,
        event_streams: u64,
        revocation_events: u64,
    }

    /// The `application/x-www-form-urlencoded` body of `POST /oauth/introspect`.
    #[derive(ToSchema)]
    #[schema(as = IntrospectionRequest)]
    pub(crate) struct IntrospectionRequestSchema {
        /// The token to judge.
        token: String,
        /// Ignored: the token's own type code decides.
        token_type_hint: Option<String>,
    }

    /// The `application/x-www-form-urlencoded` body of `POST /oauth/token`.
    #[derive(ToSchema)]
    #[schema(as = TokenRequestForm)]
    pub(crate) struct TokenRequestFormSchema {
        /// `client_credentials`.
        grant_type: String,
        /// Space-separated scopes, a subset of the credential's; all of them when absent.
        scope: Option<String>,
        /// The client id, when not sent by HTTP Basic.
        client_id: Option<String>,
        /// The client secret, with `client_id`.
        client_secret: Option<String>,
    }

    /// An RFC 6749 §5.2 error code.
    #[derive(ToSchema)]
    #[schema(as = OAuthErrorCode)]
    #[serde(rename_all = "snake_case")]
    pub(crate) enum OAuthErrorCodeSchema {
        InvalidRequest,
        InvalidClient,
        UnauthorizedClient,
        UnsupportedGrantType,
        InvalidScope,
    }

    /// An Ed25519 public key (RFC 8037).
    #[derive(ToSchema)]
    #[schema(as = Jwk)]
    pub(crate) struct JwkSchema {
        /// `OKP`.
        kty: String,
        /// `Ed25519`.
        crv: String,
        /// `sig`.
        #[serde(rename = "use")]
        usage: String,
        /// `EdDSA`.
        alg: String,
        /// The key id JWT headers name.
        kid: String,
        /// The public key, base64url.
        x: String,
    }
}
