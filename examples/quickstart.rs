//! Issues one token of each type into a `MemoryStore`, verifies a handful of header sets and
//! prints each outcome as the HTTP status and challenge it would produce.
//!
//! Run with `cargo run --example quickstart`.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use m2m::{Clock, Expiry, ManualClock, MemoryStore, NewToken, TokenKind, TokenStore, Verifier};
use time::{Duration, OffsetDateTime};

fn api_key(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-api-key",
        HeaderValue::from_str(token).expect("tokens are visible ASCII"),
    );
    headers
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = format!("Bearer {token}");
    headers.insert(
        "authorization",
        HeaderValue::from_str(&value).expect("tokens are visible ASCII"),
    );
    headers
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(MemoryStore::new());
    // A clock the example can move, to show an expired token without waiting for one.
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let verifier = Verifier::builder(store.clone())
        .clock(clock.clone())
        .build();
    let format = verifier.format().clone();
    let issue = |request: NewToken| {
        let store = store.clone();
        let format = format.clone();
        let now = clock.now();
        async move { store.issue(&format, request, now).await }
    };

    let access = issue(
        NewToken::new(TokenKind::AccessToken, "acme", Expiry::ThirtyDays)
            .scope("reports:read")
            .description("nightly export"),
    )
    .await?;
    let client_credentials = issue(
        NewToken::new(TokenKind::BearerToken, "acme", Expiry::Minutes(60))
            .description("billing sync"),
    )
    .await?;
    let short_lived = issue(NewToken::new(
        TokenKind::AccessToken,
        "acme",
        Expiry::Minutes(1),
    ))
    .await?;
    let revoked = issue(NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never)).await?;

    println!("Issued into a MemoryStore (tenant acme):");
    println!(
        "  {:<12} {:<18} {:<16} Expires in",
        "Token", "Type", "Scopes"
    );
    for issued in [&access, &client_credentials, &short_lived, &revoked] {
        let record = &issued.record;
        println!(
            "  {:<12} {:<18} {:<16} {}",
            record.stub,
            record.token_type().name(),
            format!("[{}]", record.scopes.join(" ")),
            record.expires_in(clock.now())
        );
    }

    store.revoke(&revoked.record.id, clock.now()).await?;
    clock.advance(Duration::minutes(2));
    println!(
        "\nRevoked {}, and moved the clock two minutes on.\n",
        revoked.record.stub
    );

    let access = access.token.expose_secret();
    let bearer_token = client_credentials.token.expose_secret();
    let cases: [(&str, HeaderMap, &[&str]); 9] = [
        ("access token in X-API-KEY", api_key(access), &[]),
        (
            "bearer token as Authorization: Bearer",
            bearer(bearer_token),
            &[],
        ),
        (
            "access token with the scope the route requires",
            api_key(access),
            &["reports:read"],
        ),
        (
            "bearer token without that scope",
            bearer(bearer_token),
            &["reports:read"],
        ),
        ("access token in the wrong header", bearer(access), &[]),
        (
            "bearer token in the wrong header",
            api_key(bearer_token),
            &[],
        ),
        ("no credentials", HeaderMap::new(), &[]),
        (
            "expired token",
            api_key(short_lived.token.expose_secret()),
            &[],
        ),
        ("revoked token", api_key(revoked.token.expose_secret()), &[]),
    ];
    for (case, headers, scopes) in cases {
        println!("{case}:");
        match verifier.verify(&headers, scopes).await {
            Ok(principal) => println!(
                "  200 OK  caller: tenant {}, {} token {}",
                principal.tenant(),
                principal.token_type(),
                principal.token_id()
            ),
            Err(rejection) => {
                println!(
                    "  {} {}",
                    rejection.status().as_u16(),
                    rejection.status().canonical_reason().unwrap_or_default()
                );
                if let Some(challenge) = rejection.www_authenticate() {
                    println!("  WWW-Authenticate: {challenge}");
                }
            }
        }
    }
    Ok(())
}
