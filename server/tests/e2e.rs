//! The real `m2m` binary on 127.0.0.1 with a SQLite file: bootstrap, REST and CLI, restart,
//! and the client-credentials exchange.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use m2m_core::{Expiry, NewToken, TokenFormat, TokenKind, TokenStore};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

mod support;

use support::{BIN, Server};

/// Starts the service on a free port with the database at `database_url`.
fn start(workdir: &Path, database_url: &str) -> Server {
    let mut command = Command::new(BIN);
    command
        .args([
            "serve",
            "--database-url",
            database_url,
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(workdir);
    Server::start(command)
}

fn database(dir: &TempDir) -> (PathBuf, String) {
    let path = dir.path().join("tokens.db");
    let url = format!("sqlite://{}", path.display());
    (path, url)
}

fn cli(database_url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--database-url", database_url])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

struct Admin {
    http: reqwest::Client,
    token: String,
}

impl Admin {
    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request
            .header("x-api-key", &self.token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn create(&self, server: &Server, tenant: &str, body: Value) -> Value {
        let url = server.url(&format!("/v1/tenants/{tenant}/tokens"));
        let (status, body) = self.send(self.http.post(url).json(&body)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    async fn list(&self, server: &Server, tenant: &str) -> Vec<Value> {
        let url = server.url(&format!("/v1/tenants/{tenant}/tokens"));
        let (status, body) = self.send(self.http.get(url)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().unwrap().clone()
    }
}

fn find<'a>(items: &'a [Value], id: &str) -> &'a Value {
    items
        .iter()
        .find(|item| item["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed"))
}

/// The "Expires in" of a token listed with `expires_in` seconds left: the nearest whole day.
fn assert_days_left(item: &Value, days: i64) {
    let seconds = item["expires_in"].as_i64().unwrap();
    assert!(
        (days * 86_400 - 300..=days * 86_400).contains(&seconds),
        "{item}"
    );
    assert_eq!(item["expires_in_text"], format!("in {days} days"));
}

#[tokio::test]
async fn tokens_from_rest_and_cli_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (db_path, url) = database(&dir);
    let server = start(dir.path(), &url);
    assert!(db_path.exists(), "the SQLite file is created");
    let token = server
        .bootstrap_token()
        .expect("the first start prints the admin token");
    let curl = format!("curl -H 'X-API-KEY: {token}' {}/v1/settings", server.base);
    assert!(
        server.stdout.iter().any(|line| line.trim() == curl),
        "{:?}",
        server.stdout
    );
    let http = reqwest::Client::new();
    let admin = Admin {
        http: http.clone(),
        token,
    };

    let (status, body) = admin.send(http.get(server.url("/v1/settings"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let health = http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // Each type through REST.
    let rest_access = admin
        .create(
            &server,
            "acme",
            json!({"description": "rest access", "expires": "7d", "scopes": ["m2m:tenant-admin"]}),
        )
        .await;
    let rest_credential = admin
        .create(&server, "acme", json!({"description": "rest credential", "expires": "30d", "type": "client_credentials"}))
        .await;
    assert!(
        rest_credential["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("m2m_cs_")
    );

    // Each type through the CLI, against the same database while the service runs.
    let output = cli(
        &url,
        &[
            "token",
            "create",
            "--tenant",
            "acme",
            "--type",
            "access",
            "--expires",
            "7d",
            "--scope",
            "m2m:tenant-admin",
            "--description",
            "cli access",
            "--rate-limit",
            "100/60",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1);
    let cli_access = lines[0].clone();
    assert!(cli_access.starts_with("m2m_at_"));
    let output = cli(
        &url,
        &[
            "token",
            "create",
            "--tenant",
            "acme",
            "--type",
            "client-credentials",
            "--expires",
            "90d",
            "--description",
            "cli credential",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("m2m_ci_") && lines[1].starts_with("m2m_cs_"));
    assert!(!String::from_utf8_lossy(&output.stderr).contains(&lines[1]));

    // Both access tokens work against the running service, for their own tenant.
    for key in [rest_access["token"].as_str().unwrap(), &cli_access] {
        let response = http
            .get(server.url("/v1/tenants/acme/tokens"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    // The listing shows what is left.
    let items = admin.list(&server, "acme").await;
    assert_eq!(items.len(), 4);
    let rest_access_id = rest_access["id"].as_str().unwrap();
    assert_days_left(find(&items, rest_access_id), 7);
    let cli_access_id = items
        .iter()
        .find(|item| item["description"] == "cli access")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_days_left(find(&items, &cli_access_id), 7);
    assert_eq!(
        find(&items, &cli_access_id)["rate_limit"],
        json!({"limit": 100, "window_seconds": 60})
    );
    assert!(find(&items, rest_access_id).get("rate_limit").is_none());
    let cli_credential = items
        .iter()
        .find(|item| item["description"] == "cli credential")
        .unwrap();
    assert_eq!(cli_credential["client_id"], lines[0].as_str());
    assert_days_left(cli_credential, 90);
    assert!(
        !Value::Array(items.clone())
            .to_string()
            .contains(&cli_access)
    );

    let output = cli(&url, &["token", "list", "--tenant", "acme"]);
    assert!(output.status.success());
    let table = stdout_lines(&output);
    for column in [
        "ID",
        "TYPE",
        "STUB",
        "DESCRIPTION",
        "SCOPES",
        "EXPIRES IN",
        "REVOKED",
    ] {
        assert!(table[0].contains(column), "{}", table[0]);
    }
    let row = table
        .iter()
        .find(|line| line.contains(rest_access_id))
        .unwrap();
    assert!(row.contains("in 7 days"), "{row}");
    assert!(
        row.contains("rest access") && row.contains("m2m:tenant-admin"),
        "{row}"
    );

    // Revoke one through REST and one through the CLI.
    let (status, _) = admin
        .send(http.delete(server.url(&format!("/v1/tenants/acme/tokens/{rest_access_id}"))))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let output = cli(&url, &["token", "revoke", &cli_access_id]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let response = http
        .get(server.url("/v1/tenants/acme/tokens"))
        .header("x-api-key", rest_access["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let output = cli(&url, &["token", "list", "--tenant", "acme"]);
    let table = stdout_lines(&output);
    let row = table
        .iter()
        .find(|line| line.contains(&cli_access_id))
        .unwrap();
    assert!(!row.trim_end().ends_with(" no"), "{row}");

    // Restart: no second admin token, every token still there, revoked ones still revoked.
    server.stop();
    let server = start(dir.path(), &url);
    assert_eq!(server.bootstrap_token(), None, "{:?}", server.stdout);
    let items = admin.list(&server, "acme").await;
    assert_eq!(items.len(), 4);
    for item in &items {
        let revoked = item["id"] == rest_access_id || item["id"] == cli_access_id.as_str();
        assert_eq!(item["revoked_at"].is_string(), revoked, "{item}");
    }
    for key in [rest_access["token"].as_str().unwrap(), &cli_access] {
        let response = http
            .get(server.url("/v1/tenants/acme/tokens"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    // The bootstrap token was used, and that was recorded before the first stop.
    let admin_items = admin.list(&server, "m2m").await;
    assert!(
        admin_items[0]["last_used_at"].is_string(),
        "{admin_items:?}"
    );
    server.stop();
}

#[tokio::test]
async fn the_cli_refuses_bad_input_with_an_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url) = database(&dir);
    let cases: [(&[&str], i32); 10] = [
        (
            &[
                "token",
                "create",
                "--tenant",
                "acme",
                "--expires",
                "1d",
                "--rate-limit",
                "0/60",
            ],
            2,
        ),
        (
            &[
                "token",
                "create",
                "--tenant",
                "acme",
                "--expires",
                "1d",
                "--rate-limit",
                "100",
            ],
            2,
        ),
        (
            &["token", "create", "--tenant", "acme", "--expires", "14d"],
            2,
        ),
        (
            &[
                "token",
                "create",
                "--tenant",
                "acme",
                "--expires-in-minutes",
                "-5",
            ],
            2,
        ),
        (&["token", "create", "--tenant", "acme"], 2),
        (
            &[
                "token",
                "create",
                "--tenant",
                "acme",
                "--expires",
                "1d",
                "--expires-in-minutes",
                "5",
            ],
            2,
        ),
        (
            &["token", "create", "--tenant", "bad name", "--expires", "1d"],
            2,
        ),
        (
            &[
                "token",
                "create",
                "--tenant",
                "acme",
                "--type",
                "bearer",
                "--expires",
                "1d",
            ],
            2,
        ),
        (&["token", "revoke", "tok_unknown"], 1),
        (&["settings", "set-type", "password"], 2),
    ];
    for (args, code) in cases {
        let output = cli(&url, args);
        assert_eq!(output.status.code(), Some(code), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.is_empty() && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }

    // The tenant's setting is respected: nothing issued, a non-zero exit.
    let output = cli(
        &url,
        &[
            "settings",
            "set-type",
            "--tenant",
            "acme",
            "client-credentials",
        ],
    );
    assert!(output.status.success());
    let output = cli(
        &url,
        &[
            "token",
            "create",
            "--tenant",
            "acme",
            "--type",
            "access",
            "--expires",
            "1d",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("client_credentials"));
    let output = cli(&url, &["token", "list", "--tenant", "acme"]);
    assert_eq!(stdout_lines(&output).len(), 1, "only the header");
    let output = cli(
        &url,
        &["token", "create", "--tenant", "acme", "--expires", "never"],
    );
    assert!(output.status.success());
    assert!(stdout_lines(&output)[0].starts_with("m2m_ci_"));

    let output = cli("mysql://nowhere", &["token", "list", "--tenant", "acme"]);
    assert_eq!(output.status.code(), Some(1));
}

#[tokio::test]
async fn client_credentials_are_exchanged_against_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url) = database(&dir);
    let server = start(dir.path(), &url);
    let http = reqwest::Client::new();
    let admin = Admin {
        http: http.clone(),
        token: server.bootstrap_token().unwrap(),
    };
    let credential = admin
        .create(
            &server,
            "acme",
            json!({"expires": "7d", "scopes": ["reports:read"], "type": "client_credentials"}),
        )
        .await;
    let client_id = credential["client_id"].as_str().unwrap();
    let secret = credential["client_secret"].as_str().unwrap();
    let exchange = |id: &str, secret: &str| {
        http.post(server.url("/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };

    let response = exchange(client_id, secret).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "reports:read");
    let bearer = body["access_token"].as_str().unwrap().to_owned();
    let response = http
        .get(server.url("/v1/settings"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "authenticated, not an environment admin"
    );

    // The form fields work too.
    let response = http
        .post(server.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A wrong secret and an unknown client get the same answer.
    let wrong = exchange(client_id, "m2m_cs_wrong").await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.headers()["www-authenticate"], "Basic realm=\"m2m\"");
    let wrong: Value = wrong.json().await.unwrap();
    assert_eq!(wrong["error"], "invalid_client");
    let unknown: Value = exchange("m2m_ci_unknown", secret)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unknown, wrong);

    // An expired credential: written to the database as if created ten minutes ago for five.
    {
        let store = m2m_sql::SqlStore::connect(&url).await.unwrap();
        let created = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
        let request = NewToken::new(TokenKind::ClientSecret, "acme", Expiry::Minutes(5));
        let expired = store
            .issue(&TokenFormat::default(), request, created)
            .await
            .unwrap();
        let expired_id = expired.record.client_id.clone().unwrap();
        let response = exchange(&expired_id, expired.token.expose_secret())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, wrong);
        store.close().await;
    }

    // Access tokens only for acme, set through the CLI: the credential can no longer be exchanged.
    let output = cli(
        &url,
        &["settings", "set-type", "--tenant", "acme", "access"],
    );
    assert!(output.status.success());
    let response = exchange(client_id, secret).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");

    // Clearing acme's own choice through the CLI: it follows the environment again; then the
    // access-only choice is restored for the rest of the scenario.
    let output = cli(&url, &["settings", "clear-type", "--tenant", "acme"]);
    assert!(output.status.success());
    let shown = cli(&url, &["settings", "show"]);
    assert!(shown.status.success());
    assert!(!String::from_utf8_lossy(&shown.stdout).contains("tenant acme"));
    let output = cli(
        &url,
        &["settings", "set-type", "--tenant", "acme", "access"],
    );
    assert!(output.status.success());
    let shown = cli(&url, &["settings", "show"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("tenant acme: access"));

    // The listing shows the bearer tokens; revoking the credential revokes them.
    let items = admin.list(&server, "acme").await;
    let bearers = items
        .iter()
        .filter(|item| item["kind"] == "bearer_token")
        .count();
    assert_eq!(bearers, 2);
    let (status, _) = admin
        .send(http.delete(server.url(&format!(
            "/v1/tenants/acme/tokens/{}",
            credential["id"].as_str().unwrap()
        ))))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let items = admin.list(&server, "acme").await;
    for item in items.iter().filter(|item| item["kind"] == "bearer_token") {
        assert!(item["revoked_at"].is_string(), "{item}");
    }
    let response = http
        .get(server.url("/v1/settings"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    server.stop();
}

#[tokio::test]
async fn the_cli_removes_a_user_and_revokes_the_users_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url) = database(&dir);
    let create = |user: &str| {
        let output = cli(
            &url,
            &[
                "token",
                "create",
                "--tenant",
                "acme",
                "--type",
                "access",
                "--expires",
                "7d",
                "--user",
                user,
            ],
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    create("alice");
    create("alice");
    create("bob");
    let output = cli(&url, &["user", "remove", "--tenant", "acme", "alice"]);
    assert!(output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("2 tokens revoked"), "{said}");
    let listing = stdout_lines(&cli(&url, &["token", "list", "--tenant", "acme"]));
    let revoked = listing
        .iter()
        .skip(1)
        .filter(|line| !line.trim_end().ends_with(" no"))
        .count();
    assert_eq!(revoked, 2, "{listing:#?}");

    let output = cli(&url, &["user", "remove", "--tenant", "acme", "\u{1}"]);
    assert!(!output.status.success(), "a bad user id is refused");
}

#[tokio::test]
async fn the_cli_keeps_the_portal_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url) = database(&dir);
    let run = |args: &[&str]| {
        let output = cli(&url, args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    };
    run(&[
        "settings",
        "grantable",
        "reports:read",
        "--description",
        "Read the reports",
    ]);
    run(&["settings", "grantable", "reports:write"]);
    run(&["settings", "not-grantable", "reports:write"]);
    run(&["settings", "sections", "--api-tokens", "off"]);
    let shown = stdout_lines(&run(&["settings", "show"]));
    assert!(
        shown.contains(&"api tokens: hidden".to_owned()),
        "{shown:#?}"
    );
    assert!(
        shown.contains(&"personal tokens: shown".to_owned()),
        "{shown:#?}"
    );
    assert!(
        shown.contains(&"grantable: reports:read Read the reports".to_owned()),
        "{shown:#?}"
    );
    assert!(!shown.iter().any(|line| line.contains("reports:write")));

    // The environment's scopes are never grantable, and a switch is on or off.
    assert!(
        !cli(&url, &["settings", "grantable", "m2m:admin"])
            .status
            .success()
    );
    assert!(
        !cli(&url, &["settings", "sections", "--api-tokens", "maybe"])
            .status
            .success()
    );
}

#[tokio::test]
async fn the_cli_signs_a_user_in_to_the_portal_of_the_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url) = database(&dir);
    let server = start(dir.path(), &url);
    let create = |user: &str, role: &str| {
        cli(
            &url,
            &[
                "session",
                "create",
                "--tenant",
                "acme",
                "--user",
                user,
                "--name",
                "Alice Admin",
                "--role",
                role,
                "--permission",
                "reports:read",
                "--public-url",
                &server.base,
            ],
        )
    };
    let output = create("alice", "admin");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let link = stdout_lines(&output).remove(0);
    assert!(
        link.starts_with(&format!("{}/portal/enter?code=", server.base)),
        "{link}"
    );
    let said = String::from_utf8_lossy(&output.stderr);
    let id = said
        .split_whitespace()
        .find(|word| word.starts_with("ps_"))
        .unwrap_or_else(|| panic!("a session id in {said}"))
        .to_owned();

    // The service, reading the same database, opens the link once.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let opened = http.get(&link).send().await.unwrap();
    assert_eq!(opened.status(), StatusCode::SEE_OTHER);
    let cookie = opened.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me = |cookie: String| {
        let http = &http;
        let server = &server;
        async move {
            http.get(server.url("/v1/portal/me"))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
        }
    };
    let profile: Value = me(cookie.clone()).await.json().await.unwrap();
    assert_eq!(profile["display_name"], "Alice Admin");
    assert_eq!(profile["role"], "admin");
    assert_eq!(
        http.get(&link).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // Revoked from the CLI: the service refuses the cookie at once.
    let output = cli(&url, &["session", "revoke", &id]);
    assert!(output.status.success());
    assert_eq!(me(cookie).await.status(), StatusCode::UNAUTHORIZED);
    assert!(
        !cli(&url, &["session", "revoke", &id]).status.success(),
        "an ended session cannot end twice"
    );

    // Bad input is a usage error with its reason.
    let output = create("alice", "owner");
    assert_eq!(output.status.code(), Some(2));
    let output = cli(
        &url,
        &[
            "session",
            "create",
            "--tenant",
            "m2m",
            "--user",
            "u",
            "--name",
            "U",
            "--role",
            "admin",
            "--public-url",
            &server.base,
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("environment's own"));

    // The command line's changes are in the audit log, by `cli`, from no address.
    let admin = server
        .bootstrap_token()
        .expect("a fresh database's admin token");
    let created = http
        .post(server.url("/v1/tenants/acme/tokens"))
        .header("x-api-key", &admin)
        .json(&json!({"expires": "1d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let audit: Value = http
        .get(server.url("/v1/audit"))
        .header("x-api-key", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = audit["items"].as_array().unwrap();
    // Over the network: the caller's address.
    assert_eq!(items[0]["action"], "token.create");
    assert_eq!(items[0]["source"], "127.0.0.1");
    assert_eq!(items[1]["action"], "portal_session.revoke");
    assert_eq!(items[1]["target"], id.as_str());
    assert_eq!(items[2]["action"], "portal_session.create");
    assert_eq!(items[2]["tenant"], "acme");
    for item in &items[1..3] {
        assert_eq!(item["actor"], "cli");
        assert_eq!(item["source"], Value::Null);
    }
    server.stop();
}

#[tokio::test]
async fn the_service_stops_on_sigterm_while_a_revocation_stream_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let (_, url) = database(&dir);
    let server = start(dir.path(), &url);
    let admin = server
        .bootstrap_token()
        .expect("a fresh database's admin token");
    let http = reqwest::Client::new();
    let created: Value = http
        .post(server.url("/v1/tenants/m2m/tokens"))
        .header("x-api-key", &admin)
        .json(&json!({"expires": "1d", "scopes": [m2m_server::INTROSPECT_SCOPE]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut stream = http
        .get(server.url("/v1/revocations"))
        .header("x-api-key", created["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let first = stream
        .chunk()
        .await
        .unwrap()
        .expect("the stream's first event");
    assert!(String::from_utf8_lossy(&first).contains("event: reset"));
    // A graceful shutdown ends the stream instead of waiting for it for ever.
    let stopping = std::thread::spawn(move || server.stop());
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ended with the service");
    stopping.join().expect("m2m stopped cleanly on SIGTERM");
}
