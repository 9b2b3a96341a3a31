//! The admin web page end to end in headless Chromium, driven over WebDriver: the real `m2m`
//! binary on 127.0.0.1 with a SQLite file, Debian's `chromium` and `chromium-driver`.
//!
//! The scenario signs in, switches the token type, generates a 7-day access token, uses the
//! secret the dialog shows against the service itself, checks that no secret is left in the
//! page once the dialog is closed, revokes the token and sees the route refuse it. Each step
//! leaves a screenshot in `target/browser-screenshots/`.
//!
//! This test fails (never skips) when Chromium or chromedriver is missing.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_m2m");
/// How long the test waits for the page or chromedriver before it calls the run hung: a guard
/// against hanging, not a speed requirement.
const WAIT: Duration = Duration::from_secs(30);
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

/// A child process killed when dropped, so no test leaves one behind.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The running token service and the bootstrap admin token it printed.
struct Service {
    _process: Process,
    base: String,
    admin_token: String,
}

fn start_service(workdir: &Path) -> Service {
    let database_url = format!("sqlite://{}", workdir.join("m2m.db").display());
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--database-url",
            &database_url,
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the m2m binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let process = Process(child);
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut admin_token = None;
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("m2m serve prints its listen address");
        let trimmed = line.trim();
        if trimmed.starts_with("m2m_at_") {
            admin_token = Some(trimmed.to_owned());
        }
        if let Some(base) = trimmed.strip_prefix("m2m listening on ") {
            return Service {
                _process: process,
                base: base.to_owned(),
                admin_token: admin_token.expect("a fresh database prints a bootstrap admin token"),
            };
        }
    }
}

/// The first executable called `name` on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Chromium and chromedriver, or a failure that says what to install.
fn browser_tools() -> (PathBuf, PathBuf) {
    let chromium = on_path("chromium").or_else(|| on_path("chromium-browser"));
    let driver = on_path("chromedriver");
    match (chromium, driver) {
        (Some(chromium), Some(driver)) => (chromium, driver),
        (chromium, driver) => panic!(
            "the browser test needs Chromium and chromedriver on PATH (found chromium: {}, \
             chromedriver: {}); install them with `apt-get update && apt-get install -y chromium \
             chromium-driver`",
            chromium.is_some(),
            driver.is_some()
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

/// chromedriver on a free port, answering `/status`.
async fn start_chromedriver(driver: &Path, http: &reqwest::Client) -> (Process, String) {
    let port = free_port();
    let process = Process(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let answering = async {
        loop {
            if let Ok(reply) = http.get(format!("{url}/status")).send().await
                && reply.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(WAIT, answering)
        .await
        .expect("chromedriver never answered");
    (process, url)
}

async fn start_browser(chromium: &Path, driver_url: &str, profile: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect::<Vec<_>>();
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": args,
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(driver_url)
        .await
        .expect("a Chromium session through chromedriver")
}

/// Screenshots of the scenario's steps.
struct Screenshots {
    dir: PathBuf,
    next: u32,
}

impl Screenshots {
    fn new() -> Self {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let dir = target.join("browser-screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshot folder");
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|ext| ext == "png") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Self { dir, next: 1 }
    }

    async fn take(&mut self, browser: &Client, step: &str) {
        let png = browser.screenshot().await.expect("a screenshot");
        let path = self.dir.join(format!("{:02}-{step}.png", self.next));
        self.next += 1;
        std::fs::write(&path, png).expect("the screenshot is written");
        println!("screenshot: {}", path.display());
    }
}

async fn css(browser: &Client, selector: &str) -> Element {
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(selector))
        .await
        .unwrap_or_else(|error| panic!("no element {selector}: {error}"))
}

/// Runs `script` (a function body returning a value) until it returns something truthy.
async fn wait_for(browser: &Client, what: &str, script: &str) -> Value {
    let truthy = async {
        loop {
            let value = browser
                .execute(script, vec![])
                .await
                .unwrap_or_else(|error| panic!("{what}: {error}"));
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(text) => !text.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(WAIT, truthy)
        .await
        .unwrap_or_else(|_| panic!("{what} never happened"))
}

async fn text_of(browser: &Client, selector: &str) -> String {
    let script = format!(
        "const e = document.querySelector({}); return e && !e.hidden ? e.textContent : null;",
        json!(selector)
    );
    wait_for(browser, selector, &script)
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until a notice saying `contains` is shown.
async fn notice(browser: &Client, contains: &str) {
    let script = format!(
        "const e = document.querySelector('#notice'); \
         return !e.hidden && e.textContent.includes({});",
        json!(contains)
    );
    wait_for(browser, &format!("the notice {contains:?}"), &script).await;
}

async fn type_into(browser: &Client, selector: &str, text: &str) {
    let input = css(browser, selector).await;
    input.clear().await.expect("clear");
    input.send_keys(text).await.expect("typing");
}

async fn click(browser: &Client, selector: &str) {
    css(browser, selector)
        .await
        .click()
        .await
        .unwrap_or_else(|error| panic!("click {selector}: {error}"));
}

async fn settings(http: &reqwest::Client, service: &Service, path: &str) -> Value {
    let reply = http
        .get(format!("{}{path}", service.base))
        .header("x-api-key", &service.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    reply.json().await.unwrap()
}

/// Escape, as the keyboard sends it to the focused element.
async fn press_escape(browser: &Client) {
    browser
        .active_element()
        .await
        .expect("a focused element")
        .send_keys("\u{e00c}")
        .await
        .expect("Escape");
}

/// Fails when `secret` (or most of it) is anywhere in the page: markup, text or a field.
async fn assert_no_secret(browser: &Client, secret: &str) {
    let found = browser
        .execute(
            "const [secret, most] = arguments; \
             const values = Array.from(document.querySelectorAll('input, textarea, select')) \
                 .map(e => e.value); \
             const html = document.documentElement.outerHTML; \
             return html.includes(secret) || html.includes(most) \
                 || document.body.innerText.includes(secret) \
                 || values.some(v => v.includes(secret) || v.includes(most));",
            vec![json!(secret), json!(&secret[..secret.len() - 6])],
        )
        .await
        .unwrap();
    assert_eq!(found, false, "a secret is left in the page");
}

/// "in 7 days" right after creation, "in 6 days" once a moment has passed: both are right.
fn says_seven_days(text: &str) -> bool {
    text == "in 7 days" || text == "in 6 days"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_page_in_chromium() {
    let (chromium, driver) = browser_tools();
    let workdir = TempDir::new().unwrap();
    let profile = TempDir::new().unwrap();
    let service = start_service(workdir.path());
    let http = reqwest::Client::new();
    let (_driver, driver_url) = start_chromedriver(&driver, &http).await;
    let browser = start_browser(&chromium, &driver_url, profile.path()).await;

    // The scenario runs in its own task so that the browser session is ended even when an
    // assertion fails; the failure is raised again afterwards.
    let session = browser.clone();
    let outcome = tokio::spawn(async move {
        let mut shots = Screenshots::new();
        scenario(&session, &service, &http, &mut shots).await;
    })
    .await;
    let _ = browser.close().await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

async fn scenario(
    browser: &Client,
    service: &Service,
    http: &reqwest::Client,
    shots: &mut Screenshots,
) {
    browser
        .set_window_size(DESKTOP.0, DESKTOP.1)
        .await
        .expect("window size");
    browser.goto(&format!("{}/", service.base)).await.unwrap();
    css(browser, "#admin-token").await;
    shots.take(browser, "sign-in").await;

    // A wrong token: the API's 401 detail, and no way in.
    type_into(browser, "#admin-token", "m2m_at_not-a-real-token").await;
    click(browser, "#sign-in-form button[type=submit]").await;
    let refused = text_of(browser, "#error").await;
    assert!(
        refused.starts_with("The admin token was refused:"),
        "{refused}"
    );
    assert!(!refused.contains("not-a-real-token"), "{refused}");
    shots.take(browser, "wrong-token").await;

    // The real one: kept in sessionStorage, not in the URL or a cookie.
    type_into(browser, "#admin-token", &service.admin_token).await;
    click(browser, "#sign-in-form button[type=submit]").await;
    wait_for(
        browser,
        "the console",
        "return !document.querySelector('#console').hidden;",
    )
    .await;
    let stored = browser
        .execute(
            "return [sessionStorage.getItem('m2m.adminToken'), document.cookie, location.href];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(stored[0], service.admin_token.as_str());
    assert_eq!(stored[1], "");
    assert!(!stored[2].as_str().unwrap().contains(&service.admin_token));

    // Environment → access tokens.
    click(browser, "input[name=environment-type][value=access]").await;
    notice(browser, "Environment: users may now generate access tokens").await;
    assert_eq!(
        settings(http, service, "/v1/settings").await["token_type"],
        "access"
    );

    // Tenant acme → client credentials, then back to access tokens.
    type_into(browser, "#tenant", "acme").await;
    click(browser, "#tenant-form button[type=submit]").await;
    wait_for(
        browser,
        "the tenant view",
        "return !document.querySelector('#tenant-view').hidden;",
    )
    .await;
    click(browser, "input[name=tenant-type][value=client_credentials]").await;
    notice(
        browser,
        "Tenant acme: users may now generate client credentials",
    )
    .await;
    let acme = settings(http, service, "/v1/tenants/acme/settings").await;
    assert_eq!(acme["token_type"], "client_credentials");
    assert_eq!(acme["inherited"], false);
    shots.take(browser, "settings-client-credentials").await;

    // While the tenant is on client credentials, the dialog offers those: client id and
    // secret, the exchange line, and the exchange works; Escape closes and forgets them.
    click(browser, "#open-generate").await;
    let offered = text_of(browser, "#generate-type-fixed").await;
    assert!(offered.contains("Client credentials"), "{offered}");
    type_into(browser, "#generate-description", "billing sync").await;
    css(browser, "#generate-expires")
        .await
        .select_by_value("never")
        .await
        .expect("the never choice");
    click(browser, "#generate-submit").await;
    let client_id = text_of(browser, "#client-id-value").await;
    let client_secret = text_of(browser, "#client-secret-value").await;
    assert!(client_id.starts_with("m2m_ci_"), "a client id is shown");
    assert!(
        client_secret.starts_with("m2m_cs_"),
        "a client secret is shown"
    );
    assert_eq!(
        text_of(browser, "#curl-value").await,
        format!(
            "curl -u '{client_id}:{client_secret}' -d grant_type=client_credentials {}/oauth/token",
            service.base
        )
    );
    shots.take(browser, "client-credentials-shown").await;
    let exchange = http
        .post(format!("{}/oauth/token", service.base))
        .basic_auth(&client_id, Some(&client_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(exchange.status(), StatusCode::OK, "the exchange works");
    press_escape(browser).await;
    wait_for(
        browser,
        "Escape to close the dialog",
        "return !document.querySelector('#generate-dialog').open \
             && !document.querySelector('#generate-result').hasChildNodes();",
    )
    .await;
    assert_no_secret(browser, &client_secret).await;
    click(browser, "input[name=tenant-type][value=access]").await;
    notice(browser, "Tenant acme: users may now generate access tokens").await;
    assert_eq!(
        settings(http, service, "/v1/tenants/acme/settings").await["token_type"],
        "access"
    );
    shots.take(browser, "settings-access").await;

    // Back to following the environment (access tokens): the tenant's own choice is removed.
    click(browser, "#follow-environment").await;
    notice(browser, "Tenant acme follows the environment again").await;
    let acme = settings(http, service, "/v1/tenants/acme/settings").await;
    assert_eq!(acme["inherited"], true);
    assert_eq!(acme["token_type"], "access");
    wait_for(
        browser,
        "the follow button to hide",
        "return document.querySelector('#follow-environment').hidden;",
    )
    .await;

    // Generate a 7-day access token with the admin scope.
    click(browser, "#open-generate").await;
    let offered = text_of(browser, "#generate-type-fixed").await;
    assert!(offered.contains("Access tokens"), "{offered}");
    assert!(offered.contains("X-API-KEY"), "{offered}");
    type_into(browser, "#generate-description", "nightly export").await;

    // A scope the API refuses: its problem detail is shown in the dialog, nothing is issued.
    type_into(browser, "#generate-scopes", "bad\"scope").await;
    click(browser, "#generate-submit").await;
    let refused = text_of(browser, "#generate-error").await;
    assert!(
        refused.contains("invalid scope") && refused.ends_with("(HTTP 422)"),
        "{refused}"
    );
    shots.take(browser, "generate-refused").await;
    type_into(browser, "#generate-scopes", "m2m:tenant-admin").await;
    css(browser, "#generate-expires")
        .await
        .select_by_value("7d")
        .await
        .expect("the 7-day choice");
    shots.take(browser, "generate-dialog").await;
    click(browser, "#generate-submit").await;
    let secret = text_of(browser, "#secret-value").await;
    assert!(secret.starts_with("m2m_at_"), "an access token is shown");
    let curl = text_of(browser, "#curl-value").await;
    assert_eq!(
        curl,
        format!(
            "curl -H 'X-API-KEY: {secret}' {}/v1/tenants/acme/tokens",
            service.base
        )
    );
    shots.take(browser, "secret-shown").await;

    // The shown secret works against a protected route: its own tenant's tokens, and no
    // other tenant's, nor the environment's settings.
    let get = |path: &str| {
        http.get(format!("{}{path}", service.base))
            .header("x-api-key", &secret)
            .send()
    };
    let reply = get("/v1/tenants/acme/tokens").await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK, "the new token is accepted");
    for elsewhere in ["/v1/tenants/globex/tokens", "/v1/settings"] {
        let reply = get(elsewhere).await.unwrap();
        assert_eq!(reply.status(), StatusCode::FORBIDDEN, "{elsewhere}");
    }

    // Closing the dialog removes the secret from the page for good.
    click(browser, "#generate-done").await;
    wait_for(
        browser,
        "the dialog to close",
        "return !document.querySelector('#generate-dialog').open \
             && !document.querySelector('#generate-result').hasChildNodes();",
    )
    .await;
    assert_no_secret(browser, &secret).await;

    // The table lists it: "in 7 days" or "in 6 days", never a race.
    let row = "#tokens tbody tr:last-child";
    let description = text_of(browser, &format!("{row} td[data-label=Description]")).await;
    assert_eq!(description, "nightly export");
    let expires = text_of(browser, &format!("{row} td[data-label='Expires in']")).await;
    assert!(says_seven_days(&expires), "Expires in: {expires:?}");
    assert_eq!(
        text_of(browser, &format!("{row} td[data-label=Type]")).await,
        "Access token"
    );
    assert_eq!(
        text_of(browser, &format!("{row} td[data-label=Scopes]")).await,
        "m2m:tenant-admin"
    );
    assert_eq!(
        text_of(browser, &format!("{row} td[data-label=Status]")).await,
        "Active"
    );
    let stub = text_of(browser, &format!("{row} td[data-label=Stub]")).await;
    assert!(secret.starts_with(stub.trim_end_matches('…')), "{stub}");
    browser
        .execute(
            "document.querySelector('#tokens').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    shots.take(browser, "token-listed").await;

    // The same page at phone width: the table stacks into one card per token.
    browser.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    let fits = wait_for(
        browser,
        "the page to fit a phone",
        "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
    )
    .await;
    assert_eq!(fits, true);
    browser
        .execute(
            "document.querySelector('#tokens').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    shots.take(browser, "phone-width").await;
    browser.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();

    // Revoke it, with confirmation; Escape closes the dialog without revoking.
    click(browser, &format!("{row} button.revoke")).await;
    let question = text_of(browser, "#revoke-text").await;
    assert!(question.contains("nightly export"), "{question}");
    shots.take(browser, "revoke-confirm").await;
    press_escape(browser).await;
    wait_for(
        browser,
        "Escape to close the dialog",
        "return !document.querySelector('#revoke-dialog').open;",
    )
    .await;
    assert_eq!(
        text_of(browser, &format!("{row} td[data-label=Status]")).await,
        "Active"
    );
    click(browser, &format!("{row} button.revoke")).await;
    click(browser, "#revoke-confirm").await;
    notice(browser, "Token revoked.").await;
    let status = wait_for(
        browser,
        "the row to show the revocation",
        &format!(
            "const e = document.querySelector(\"{row} td[data-label=Status]\"); \
             return e && e.textContent === 'Revoked' ? e.textContent : null;"
        ),
    )
    .await;
    assert_eq!(status, "Revoked");
    shots.take(browser, "revoked").await;

    // The route refuses it at once: the service's own cache heard of the revocation before the
    // DELETE answered, and the page showed "Revoked" only after that answer.
    let reply = http
        .get(format!("{}/v1/settings", service.base))
        .header("x-api-key", &secret)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);

    // Sign out forgets the admin token.
    click(browser, "#sign-out").await;
    notice(browser, "Signed out.").await;
    let forgotten = browser
        .execute("return sessionStorage.getItem('m2m.adminToken');", vec![])
        .await
        .unwrap();
    assert_eq!(forgotten, Value::Null);
    shots.take(browser, "signed-out").await;
}
