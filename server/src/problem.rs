//! [`Problem`]: every error of the admin API as `application/problem+json` (RFC 9457).
//!
//! axum's own rejections (malformed JSON, a bad path or query, an unknown route) are turned
//! into problems too, so a client never has to parse two error formats.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use m2m_core::{PROBLEM_JSON, StoreError};
use serde::Serialize;

/// How long a client is asked to wait when the store is unavailable, unless told otherwise.
const STORE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// An error response: status and a detail saying what is wrong. Never carries a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    status: StatusCode,
    detail: String,
    /// `Retry-After` in whole seconds, for a 503.
    retry_after: u64,
}

impl Problem {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            retry_after: STORE_RETRY_AFTER.as_secs(),
        }
    }

    /// 503 with `Retry-After` (whole seconds, at least one): the token store cannot answer.
    ///
    /// ```
    /// use axum::response::IntoResponse as _;
    /// use m2m_server::Problem;
    /// use std::time::Duration;
    ///
    /// let response = Problem::store_unavailable(Duration::from_secs(7)).into_response();
    /// assert_eq!(response.status(), 503);
    /// assert_eq!(response.headers()["retry-after"], "7");
    /// ```
    pub fn store_unavailable(retry_after: Duration) -> Self {
        Self {
            retry_after: retry_after.as_secs().max(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the token store is unavailable; try again later",
            )
        }
    }

    /// 429: too many attempts; `Retry-After` says when to come back (whole seconds, at least
    /// one).
    pub fn too_many_requests(wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut problem = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts: try again after the time Retry-After gives",
        );
        problem.retry_after = seconds.max(1);
        problem
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 422: the request is well-formed but a value is not acceptable.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// 403: the caller is known but may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404: nothing with that name or id.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the request conflicts with the settings or the stored state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What is wrong.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => Self::conflict("a token with this id exists already"),
            other => {
                tracing::error!(error = %other, "the token store failed");
                Self::store_unavailable(STORE_RETRY_AFTER)
            }
        }
    }
}

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Self {
        let status = match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, rejection.body_text())
    }
}

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl From<FormRejection> for Problem {
    fn from(rejection: FormRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

/// The body of every problem answer (RFC 9457), the service's and the auth layer's alike; the
/// auth layer's also carry `error` (and, for `insufficient_scope`, `scope`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub(crate) struct ProblemBody {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    kind: &'static str,
    /// The status's reason phrase.
    #[schema(example = "Unauthorized")]
    title: &'static str,
    /// The HTTP status.
    #[schema(example = 401)]
    status: u16,
    /// What is wrong, for people. Never a token.
    detail: String,
    /// The RFC 6750 error code, on refusals of a credential by the auth layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<BearerError>)]
    error: Option<&'static str>,
    /// The scopes required, with `insufficient_scope`.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// An RFC 6750 error code.
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // described for the document; the core's rejections send these codes
pub(crate) enum BearerError {
    /// Malformed credentials (400).
    InvalidRequest,
    /// Unknown, revoked, expired or disabled token (401).
    InvalidToken,
    /// A required scope is missing (403).
    InsufficientScope,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            detail: self.detail,
            error: None,
            scope: None,
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            headers.insert(RETRY_AFTER, HeaderValue::from(self.retry_after));
        }
        response
    }
}

/// The answer for a path no route matches.
pub(crate) async fn route_not_found() -> Problem {
    Problem::not_found("no such route")
}

/// The answer for a known path called with a method it does not take.
pub(crate) async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take that method",
    )
}
