//! `POST /v1/usage`: resource servers report which tokens were used, so that the listing shows
//! `last_used_at` for tokens that are only ever verified elsewhere (`m2m-remote` sends these
//! reports in batches, in the background).
//!
//! - **Caller authentication**: as for introspection (the same function): the resource
//!   server's own credential with the scope [`INTROSPECT_SCOPE`](crate::INTROSPECT_SCOPE), as
//!   an access token, a bearer token or HTTP Basic. Refusals are 401/403 problem+json, before
//!   the body is read.
//! - **Request**: `Content-Type: application/json` (else 415), at most [`MAX_USAGE_BODY_BYTES`]
//!   (else 413), `{"uses": [{"token_id": "tok_…", "used_at": <unix seconds>}, …]}` with at most
//!   [`MAX_USAGE_BATCH`] uses (else 422). Malformed JSON is 400; a field of the wrong type, an
//!   id that is not a token id or a time before 1970 is 422. Unknown token ids are ignored; a
//!   time in the future counts as now.
//! - **Answer**: 204 once the uses are recorded (each token keeps its latest use); 503 with
//!   `Retry-After` when the store cannot record them.

use axum::body::Bytes;
use axum::extract::{FromRequest as _, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::CONTENT_TYPE;
use m2m_core::TokenId;
use m2m_core::wire::UsageReport;
use time::OffsetDateTime;

use crate::client_auth::authenticate_resource_server;
use crate::openapi::schema::UsageReportSchema;
use crate::problem::Problem;
use crate::state::AppState;

/// The largest usage report body accepted, in bytes.
pub const MAX_USAGE_BODY_BYTES: usize = 256 * 1024;

/// The most uses accepted in one report.
pub const MAX_USAGE_BATCH: usize = 1000;

/// The longest token id accepted.
const MAX_TOKEN_ID_LEN: usize = 64;

/// `POST /v1/usage`.
#[utoipa::path(
    post,
    path = "/v1/usage",
    operation_id = "report_usage",
    tag = "resource servers",
    summary = "Report token uses seen by a resource server, for `last_used_at`",
    security(
        ("api_key" = ["m2m:introspect"]), ("client_credentials" = ["m2m:introspect"]),
        ("basic" = []),
    ),
    request_body = UsageReportSchema,
    responses(
        (status = 204, description = "Recorded; unknown token ids are ignored"),
        (status = 413, description = "Larger than 256 KiB"),
        (status = 415, description = "Not `application/json`"),
        (status = 422, description = "Not a usage report, more than 1000 uses, or a bad id or time"),
    ),
)]
pub(crate) async fn record(State(app): State<AppState>, request: Request) -> Response {
    let caller = match authenticate_resource_server(app.admin_verifier(), request.headers()).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let is_json = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a usage report is application/json",
        )
        .into_response();
    }
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a usage report is at most {MAX_USAGE_BODY_BYTES} bytes"),
            )
            .into_response();
        }
        Err(rejection) => {
            return Problem::new(rejection.status(), rejection.body_text()).into_response();
        }
    };
    let uses = match parse(&body, app.now()) {
        Ok(uses) => uses,
        Err(problem) => return problem.into_response(),
    };
    if let Err(error) = app.store().record_usage(&uses).await {
        return Problem::from(error).into_response();
    }
    tracing::debug!(caller = %caller, uses = uses.len(), "usage report recorded");
    StatusCode::NO_CONTENT.into_response()
}

/// The uses of a report body, checked; times after `now` become `now`.
fn parse(body: &[u8], now: OffsetDateTime) -> Result<Vec<(TokenId, OffsetDateTime)>, Problem> {
    // The position only: serde's messages can quote the values sent.
    let report: UsageReport = serde_json::from_slice(body).map_err(|error| {
        let at = format!("line {}, column {}", error.line(), error.column());
        if error.is_data() {
            Problem::invalid(format!("not a usage report ({at})"))
        } else {
            Problem::bad_request(format!("malformed JSON ({at})"))
        }
    })?;
    if report.uses.len() > MAX_USAGE_BATCH {
        return Err(Problem::invalid(format!(
            "a usage report holds at most {MAX_USAGE_BATCH} uses; send them in several"
        )));
    }
    report
        .uses
        .into_iter()
        .map(|entry| {
            let id = entry.token_id.as_str();
            let id_ok = id.starts_with("tok_")
                && id.len() <= MAX_TOKEN_ID_LEN
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !id_ok {
                return Err(Problem::invalid("a token_id is not a token id (tok_…)"));
            }
            let used_at = (entry.used_at >= 0)
                .then(|| OffsetDateTime::from_unix_timestamp(entry.used_at).ok())
                .flatten()
                .ok_or_else(|| Problem::invalid("a used_at is not a time in unix seconds"))?;
            Ok((entry.token_id, used_at.min(now)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-06-01 08:00 UTC);

    #[test]
    fn reports_are_checked_and_future_times_count_as_now() {
        let body = br#"{"uses": [{"token_id": "tok_a1", "used_at": 1780000000},
                                 {"token_id": "tok_b2", "used_at": 99999999999}], "more": 1}"#;
        let uses = parse(body, NOW).unwrap();
        assert_eq!(uses[0].0, TokenId::new("tok_a1"));
        assert_eq!(uses[0].1.unix_timestamp(), 1_780_000_000);
        assert_eq!(uses[1].1, NOW, "the future counts as now");

        let status = |body: &[u8]| parse(body, NOW).unwrap_err().status();
        assert_eq!(status(b"{\"uses\": ["), StatusCode::BAD_REQUEST);
        assert_eq!(status(b"{\"uses\": 3}"), StatusCode::UNPROCESSABLE_ENTITY);
        for entry in [
            r#"{"token_id": "m2m_at_secret", "used_at": 1}"#,
            r#"{"token_id": "tok_a b", "used_at": 1}"#,
            r#"{"token_id": "tok_a", "used_at": -1}"#,
            r#"{"token_id": "tok_a", "used_at": "yesterday"}"#,
        ] {
            let body = format!("{{\"uses\": [{entry}]}}");
            assert_eq!(
                status(body.as_bytes()),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{entry}"
            );
        }
        for body in [
            r#"{"uses": [{"token_id": "m2m_at_secret", "used_at": 1}]}"#,
            r#"{"uses": [{"token_id": "tok_a", "used_at": "m2m_at_secret"}]}"#,
        ] {
            let problem = parse(body.as_bytes(), NOW).unwrap_err();
            assert!(
                !problem.detail().contains("secret"),
                "never echoes what was sent"
            );
        }
    }
}
