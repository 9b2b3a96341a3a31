//! The admin web page: `GET /` and its two assets, compiled into the binary.
//!
//! The page holds no data of its own, so its routes are public: after sign-in it keeps the
//! admin token in the browser's `sessionStorage` and sends it as `X-API-KEY` to the REST API
//! under `/v1`, which does all the checking. There is no build step and nothing is loaded from
//! elsewhere; every response carries a strict `Content-Security-Policy` (same origin only, no
//! inline script or style), so an injected string can never run as code.
//!
//! | route | content |
//! |---|---|
//! | `GET /` | the page (`text/html`) |
//! | `GET /assets/common.js` | what it shares with the tenant portal: the REST client, copying a secret (`text/javascript`) |
//! | `GET /assets/app.js` | its script (`text/javascript`) |
//! | `GET /assets/app.css` | its style sheet (`text/css`) |
//!
//! # Example
//!
//! ```
//! use axum::body::Body;
//! use http::{Request, StatusCode};
//! use tower::ServiceExt as _;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let router: axum::Router = m2m_server::admin_page::routes();
//! let page = router
//!     .oneshot(Request::get("/").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(page.status(), StatusCode::OK);
//! assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
//! assert_eq!(page.headers()["x-frame-options"], "DENY");
//! # });
//! ```

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use http::{HeaderName, HeaderValue};

/// The page's HTML.
const INDEX_HTML: &str = include_str!("../assets/index.html");
/// What the admin page and the tenant portal share.
const COMMON_JS: &str = include_str!("../assets/common.js");
/// The page's script.
const APP_JS: &str = include_str!("../assets/app.js");
/// The page's style sheet.
const APP_CSS: &str = include_str!("../assets/app.css");

/// The `Content-Security-Policy` of every page response: scripts, styles, images and API
/// calls from the same origin only; no plugins, no frames, no form submissions elsewhere.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The page's routes, for any router state: `GET /`, `GET /assets/common.js`,
/// `GET /assets/app.js` and `GET /assets/app.css`. Merge them into the token service's router.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", get(index))
        .route("/assets/common.js", get(common))
        .route("/assets/app.js", get(script))
        .route("/assets/app.css", get(style))
}

#[utoipa::path(
    get,
    path = "/",
    operation_id = "admin_page",
    tag = "admin page",
    summary = "The admin page",
    responses((status = 200, description = "The admin page", content_type = "text/html; charset=utf-8", body = String)),
)]
async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

#[utoipa::path(
    get,
    path = "/assets/common.js",
    operation_id = "page_common_script",
    tag = "admin page",
    summary = "What the admin page and the portal share: the REST client, copying a secret",
    responses((status = 200, description = "What the admin page and the portal share: the REST client, copying a secret", content_type = "text/javascript; charset=utf-8", body = String)),
)]
async fn common() -> Response {
    asset("text/javascript; charset=utf-8", COMMON_JS)
}

#[utoipa::path(
    get,
    path = "/assets/app.js",
    operation_id = "admin_page_script",
    tag = "admin page",
    summary = "The admin page's script",
    responses((status = 200, description = "The admin page's script", content_type = "text/javascript; charset=utf-8", body = String)),
)]
async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

#[utoipa::path(
    get,
    path = "/assets/app.css",
    operation_id = "page_style",
    tag = "admin page",
    summary = "The style sheet of the admin page and the portal",
    responses((status = 200, description = "The style sheet of the admin page and the portal", content_type = "text/css; charset=utf-8", body = String)),
)]
async fn style() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// A static asset with its content type and the page's security headers. `no-cache`: the
/// browser revalidates, so a new binary's page is never mixed with an old script.
pub(crate) fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 7] = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
        ),
        (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::{Request, StatusCode};
    use tower::ServiceExt as _;

    async fn get_path(path: &str) -> Response {
        let router: Router = routes();
        router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_asset_has_its_type_and_the_security_headers() {
        for (path, content_type) in [
            ("/", "text/html; charset=utf-8"),
            ("/assets/common.js", "text/javascript; charset=utf-8"),
            ("/assets/app.js", "text/javascript; charset=utf-8"),
            ("/assets/app.css", "text/css; charset=utf-8"),
        ] {
            let response = get_path(path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers();
            assert_eq!(headers[CONTENT_TYPE], content_type, "{path}");
            assert_eq!(
                headers[CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY_VALUE
            );
            assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(headers[REFERRER_POLICY], "no-referrer");
            assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
            assert_eq!(headers[CACHE_CONTROL], "no-cache");
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_runs_no_inline_script() {
        for asset in [INDEX_HTML, APP_CSS] {
            assert!(!asset.contains("://"), "no absolute URLs");
            assert!(!asset.contains("@import"));
        }
        assert!(INDEX_HTML.contains(
            "<script src=\"/assets/common.js\" defer></script>\n<script src=\"/assets/app.js\" defer></script>"
        ));
        assert_eq!(INDEX_HTML.matches("<script").count(), 2);
        assert!(!INDEX_HTML.contains(" style="));
        let handlers = INDEX_HTML.match_indices(" on").filter(|(at, _)| {
            let rest = &INDEX_HTML[at + 3..];
            let name_end = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            name_end > 0 && rest[name_end..].starts_with('=')
        });
        assert_eq!(handlers.count(), 0, "no inline event handlers");
    }
}
