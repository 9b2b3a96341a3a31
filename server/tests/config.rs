//! The layered configuration of the real `m2m` binary: a TOML file, `M2M_*` environment
//! variables and flags, each overriding the one before, and `m2m config show`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use m2m_server::config::{CONFIG_ENV, ENV_PREFIX, KEYS, REDACTED};
use reqwest::StatusCode;
use tempfile::TempDir;

mod support;

use support::{BIN, Server};

/// An address no test machine has (TEST-NET-1, RFC 5737): binding it fails, so a service
/// that comes up was not listening where the file said.
const UNBINDABLE: &str = "192.0.2.1:8080";

/// The `m2m` command with none of the configuration's environment variables inherited, so
/// that only what a test sets counts.
fn m2m(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir).stdin(Stdio::null());
    command.env_remove(CONFIG_ENV);
    for key in KEYS {
        command.env_remove(format!("{ENV_PREFIX}{}", key.to_ascii_uppercase()));
    }
    command
}

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

/// `m2m config show` as parsed TOML, and its text.
fn show(command: &mut Command) -> (toml::Table, String) {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let table = text
        .parse::<toml::Table>()
        .unwrap_or_else(|error| panic!("not TOML: {error}\n{text}"));
    (table, text)
}

/// The bootstrap admin token that a start on a fresh database printed.
fn admin_token(server: &Server) -> String {
    server
        .bootstrap_token()
        .expect("a fresh database prints the bootstrap token")
}

/// The line of `key` in the output of `config show`.
fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|line| line.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in\n{text}"))
}

#[tokio::test]
async fn serve_reads_the_file_and_the_environment_overrides_it() {
    let dir = TempDir::new().unwrap();
    let database = dir.path().join("tokens.db");
    let file = write(
        &dir,
        "m2m.toml",
        &format!(
            "listen = \"{UNBINDABLE}\"\ndatabase_url = \"sqlite://{}\"\n\
             bearer_lifetime_minutes = 5\n",
            database.display()
        ),
    );

    let mut command = m2m(dir.path());
    command
        .args(["serve", "--config"])
        .arg(&file)
        .env("M2M_LISTEN", "127.0.0.1:0");
    let server = Server::start(command);

    // The environment's address, not the file's.
    assert!(
        server.base.starts_with("http://127.0.0.1:"),
        "{}",
        server.base
    );
    // The file's database: created there, and holding the admin token the service printed.
    assert!(database.is_file(), "no database at {}", database.display());
    let admin = admin_token(&server);
    let http = reqwest::Client::new();
    let settings = http
        .get(format!("{}/v1/settings", server.base))
        .header("x-api-key", &admin)
        .send()
        .await
        .unwrap();
    assert_eq!(settings.status(), StatusCode::OK);
    // The file's bearer lifetime reaches the service: the token endpoint's metadata is not
    // where it shows, so check the exchange itself.
    let credential = http
        .post(format!("{}/v1/tenants/acme/tokens", server.base))
        .header("x-api-key", &admin)
        .json(&serde_json::json!({"type": "client_credentials", "expires": "7d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(credential.status(), StatusCode::CREATED);
    let credential: serde_json::Value = credential.json().await.unwrap();
    let exchange = http
        .post(format!("{}/oauth/token", server.base))
        .basic_auth(
            credential["client_id"].as_str().unwrap(),
            credential["client_secret"].as_str(),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(exchange.status(), StatusCode::OK);
    let exchange: serde_json::Value = exchange.json().await.unwrap();
    assert_eq!(exchange["expires_in"], 5 * 60, "{exchange}");
    server.stop();

    // The other commands read the same file's database, here named by M2M_CONFIG.
    let listing = m2m(dir.path())
        .args(["token", "list", "--tenant", "m2m"])
        .env(CONFIG_ENV, &file)
        .output()
        .unwrap();
    assert!(listing.status.success(), "{}", stderr(&listing));
    assert!(
        stdout(&listing).contains("tok_bootstrap_admin"),
        "{}",
        stdout(&listing)
    );
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_file() {
    let dir = TempDir::new().unwrap();
    let file = write(
        &dir,
        "m2m.toml",
        "listen = \"127.0.0.1:7001\"\nbearer_lifetime_minutes = 15\nlog_format = \"json\"\n\
         public_url = \"https://tokens.example.com\"\n",
    );
    let mut command = m2m(dir.path());
    command
        .args(["config", "show", "--config"])
        .arg(&file)
        .args(["--listen", "127.0.0.1:7003"])
        .env("M2M_LISTEN", "127.0.0.1:7002")
        .env("M2M_BEARER_LIFETIME_MINUTES", "20");
    let (shown, text) = show(&mut command);

    assert_eq!(shown["listen"].as_str(), Some("127.0.0.1:7003"), "{text}");
    assert_eq!(shown["bearer_lifetime_minutes"].as_integer(), Some(20));
    assert_eq!(shown["log_format"].as_str(), Some("json"));
    assert_eq!(
        shown["public_url"].as_str(),
        Some("https://tokens.example.com")
    );
    assert_eq!(shown["database_url"].as_str(), Some("sqlite://m2m.db"));
    assert_eq!(shown["bearer_format"].as_str(), Some("opaque"));
    assert!(!shown.contains_key("jwt_audience"));

    // Each value says where it came from.
    assert!(line(&text, "listen").ends_with("# flag --listen"), "{text}");
    assert!(
        line(&text, "bearer_lifetime_minutes")
            .ends_with("# environment M2M_BEARER_LIFETIME_MINUTES"),
        "{text}"
    );
    assert!(
        line(&text, "log_format").ends_with(&format!("# file {}", file.display())),
        "{text}"
    );
    assert!(line(&text, "database_url").ends_with("# default"), "{text}");

    // Without the flag, the environment wins over the file.
    let mut command = m2m(dir.path());
    command
        .args(["config", "show"])
        .env(CONFIG_ENV, &file)
        .env("M2M_LISTEN", "127.0.0.1:7002");
    let (shown, _) = show(&mut command);
    assert_eq!(shown["listen"].as_str(), Some("127.0.0.1:7002"));
}

#[test]
fn config_show_redacts_the_database_password_and_reads_back() {
    let dir = TempDir::new().unwrap();
    let file = write(
        &dir,
        "m2m.toml",
        "database_url = \"postgres://m2m:s3cret-Pa55@db.internal:5432/m2m?sslmode=verify-full\"\n\
         bearer_format = \"jwt\"\njwt_audience = \"https://api.example\"\n",
    );
    let mut command = m2m(dir.path());
    command.args(["config", "show", "--config"]).arg(&file);
    let (shown, text) = show(&mut command);

    assert!(!text.contains("s3cret-Pa55"), "{text}");
    assert_eq!(
        shown["database_url"].as_str(),
        Some(
            format!("postgres://m2m:{REDACTED}@db.internal:5432/m2m?sslmode=verify-full").as_str()
        )
    );
    assert_eq!(shown["bearer_format"].as_str(), Some("jwt"));
    assert_eq!(shown["jwt_audience"].as_str(), Some("https://api.example"));

    // The output is a configuration file: read back, it gives the same configuration.
    let again = write(&dir, "shown.toml", &text);
    let mut command = m2m(dir.path());
    command.args(["config", "show", "--config"]).arg(&again);
    let (reread, _) = show(&mut command);
    assert_eq!(reread, shown);

    // The password given as a parameter, from the environment, is redacted too.
    let mut command = m2m(dir.path());
    command.args(["config", "show"]).env(
        "M2M_DATABASE_URL",
        "postgres://m2m@db.internal/m2m?password=s3cret-Pa55&sslmode=verify-full",
    );
    let (_, text) = show(&mut command);
    assert!(!text.contains("s3cret-Pa55"), "{text}");
    assert!(text.contains(&format!("password={REDACTED}")), "{text}");
}

#[test]
fn mistakes_are_refused_with_the_key_and_where_it_came_from() {
    let dir = TempDir::new().unwrap();
    let refused = |command: &mut Command| {
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
        stderr(&output)
    };

    // A key the file does not know.
    let typo = write(&dir, "typo.toml", "lisen = \"127.0.0.1:7000\"\n");
    for subcommand in [&["config", "show"][..], &["serve"][..]] {
        let message = refused(m2m(dir.path()).args(subcommand).arg("--config").arg(&typo));
        assert!(message.contains("\"lisen\""), "{message}");
        assert!(message.contains("typo.toml"), "{message}");
    }

    // A value of the wrong type, in the file and in the environment.
    let wrong = write(&dir, "wrong.toml", "bearer_lifetime_minutes = \"soon\"\n");
    let message = refused(
        m2m(dir.path())
            .args(["config", "show", "--config"])
            .arg(&wrong),
    );
    assert!(message.contains("bearer_lifetime_minutes"), "{message}");
    assert!(message.contains("wrong.toml"), "{message}");
    let message = refused(
        m2m(dir.path())
            .args(["config", "show"])
            .env("M2M_BEARER_LIFETIME_MINUTES", "soon"),
    );
    assert!(message.contains("M2M_BEARER_LIFETIME_MINUTES"), "{message}");

    // Out of range, and a file that does not exist.
    let message = refused(
        m2m(dir.path())
            .args(["config", "show"])
            .env("M2M_BEARER_LIFETIME_MINUTES", "0"),
    );
    assert!(message.contains("M2M_BEARER_LIFETIME_MINUTES"), "{message}");
    let message = refused(m2m(dir.path()).args(["serve", "--config", "missing.toml"]));
    assert!(message.contains("missing.toml"), "{message}");
    assert!(
        !dir.path().join("m2m.db").exists(),
        "a refused configuration starts nothing"
    );
}

/// Sends failed client authentications to `/oauth/token` as the client `forwarded_for` names,
/// with a new client id each, until the source's failure limit answers 429.
async fn spend_failures(http: &reqwest::Client, base: &str, forwarded_for: &str) {
    for attempt in 0..(4 * m2m_server::SOURCE_FAILURE_BURST) {
        let response = http
            .post(format!("{base}/oauth/token"))
            .header("x-forwarded-for", forwarded_for)
            .basic_auth(format!("nobody-{attempt}"), Some("wrong"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => return,
            other => panic!("a failed authentication answered {other}"),
        }
    }
    panic!("the failure limit per source never answered 429");
}

/// A client credential of tenant `acme`, issued with the bootstrap admin token by the client
/// `forwarded_for` names.
async fn client_credential(
    http: &reqwest::Client,
    server: &Server,
    forwarded_for: &str,
) -> (String, String) {
    let credential = http
        .post(format!("{}/v1/tenants/acme/tokens", server.base))
        .header("x-api-key", admin_token(server))
        .header("x-forwarded-for", forwarded_for)
        .json(&serde_json::json!({"type": "client_credentials", "expires": "7d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(credential.status(), StatusCode::CREATED);
    let credential: serde_json::Value = credential.json().await.unwrap();
    (
        credential["client_id"].as_str().unwrap().to_owned(),
        credential["client_secret"].as_str().unwrap().to_owned(),
    )
}

async fn exchange(
    http: &reqwest::Client,
    base: &str,
    forwarded_for: &str,
    (client_id, secret): &(String, String),
) -> StatusCode {
    http.post(format!("{base}/oauth/token"))
        .header("x-forwarded-for", forwarded_for)
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn behind_a_trusted_proxy_one_clients_failures_do_not_lock_out_another() {
    let http = reqwest::Client::new();

    // The file trusts this machine as the proxy: X-Forwarded-For names the client.
    let dir = TempDir::new().unwrap();
    let file = write(
        &dir,
        "m2m.toml",
        &format!(
            "listen = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://{}\"\n\
             trusted_proxies = [\"127.0.0.0/8\", \"::1\"]\n",
            dir.path().join("tokens.db").display()
        ),
    );
    let mut command = m2m(dir.path());
    command.args(["serve", "--config"]).arg(&file);
    let server = Server::start(command);
    let credential = client_credential(&http, &server, "198.51.100.9").await;
    spend_failures(&http, &server.base, "203.0.113.1").await;
    // The spent source is the forwarded client, not the proxy.
    assert_eq!(
        exchange(&http, &server.base, "203.0.113.1", &credential).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        exchange(&http, &server.base, "203.0.113.2", &credential).await,
        StatusCode::OK
    );
    // The audit log names the forwarded client as the source of the credential's creation.
    let audit: serde_json::Value = http
        .get(format!("{}/v1/audit", server.base))
        .header("x-api-key", admin_token(&server))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        audit.to_string().contains("\"198.51.100.9\""),
        "the creation's source is not the forwarded client: {audit}"
    );
    server.stop();

    // Without trusted proxies the header is not believed: every caller here shares the peer's
    // address, so the spent limit refuses the other client too.
    let dir = TempDir::new().unwrap();
    let mut command = m2m(dir.path());
    command.args(["serve", "--listen", "127.0.0.1:0", "--database-url"]);
    command.arg(format!(
        "sqlite://{}",
        dir.path().join("tokens.db").display()
    ));
    let server = Server::start(command);
    let credential = client_credential(&http, &server, "198.51.100.9").await;
    spend_failures(&http, &server.base, "203.0.113.1").await;
    assert_eq!(
        exchange(&http, &server.base, "203.0.113.2", &credential).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    server.stop();
}

#[test]
fn trusted_proxies_come_from_the_file_the_environment_and_repeated_flags() {
    let dir = TempDir::new().unwrap();
    let file = write(&dir, "m2m.toml", "trusted_proxies = [\"10.0.0.0/8\"]\n");
    let (_, text) = show(
        m2m(dir.path())
            .args(["config", "show", "--config"])
            .arg(&file),
    );
    assert!(
        line(&text, "trusted_proxies").starts_with("trusted_proxies = [\"10.0.0.0/8\"]"),
        "{text}"
    );
    let (_, text) = show(
        m2m(dir.path())
            .args(["config", "show", "--config"])
            .arg(&file)
            .env("M2M_TRUSTED_PROXIES", "192.168.0.0/16, 172.16.0.1"),
    );
    assert!(
        line(&text, "trusted_proxies")
            .starts_with("trusted_proxies = [\"192.168.0.0/16\", \"172.16.0.1/32\"]"),
        "{text}"
    );
    let (_, text) = show(m2m(dir.path()).args([
        "config",
        "show",
        "--trusted-proxy",
        "10.1.0.0/16",
        "--trusted-proxy",
        "fd00::/8",
    ]));
    assert!(
        line(&text, "trusted_proxies")
            .starts_with("trusted_proxies = [\"10.1.0.0/16\", \"fd00::/8\"]"),
        "{text}"
    );
    let refused = m2m(dir.path())
        .args(["config", "show"])
        .env("M2M_TRUSTED_PROXIES", "10.0.0.0/33")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("M2M_TRUSTED_PROXIES")
            && stderr(&refused).contains("10.0.0.0/33"),
        "{}",
        stderr(&refused)
    );
}
