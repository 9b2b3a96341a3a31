//! The admin web page and the tenant portal end to end in headless Chromium, driven over
//! WebDriver: the real `m2m` binary on 127.0.0.1 with a SQLite file, Debian's `chromium` and
//! `chromium-driver`.
//!
//! The admin scenario signs in, switches the token type, generates a 7-day access token, uses
//! the secret the dialog shows against the service itself, checks that no secret is left in the
//! page once the dialog is closed, revokes the token, sees the route refuse it and opens the
//! tenant's portal. The portal scenario signs tenant users in through single-use links, lets
//! them generate and revoke API and personal tokens, and checks over HTTP what each session and
//! each token may do. Each step leaves a screenshot in `target/browser-screenshots/admin/` or
//! `target/browser-screenshots/portal/`.
//!
//! These tests fail (never skip) when Chromium or chromedriver is missing.

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError, mpsc};
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

/// One browser at a time: two Chromium instances on a small machine slow each other's pages
/// down. Each test runs on its own runtime and thread, so holding this lock across the test's
/// awaits only makes the other test's thread wait for it.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

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

/// Screenshots of one scenario's steps, in a folder of their own.
struct Screenshots {
    dir: PathBuf,
    next: u32,
}

impl Screenshots {
    fn new(scenario: &str) -> Self {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        let dir = target.join("browser-screenshots").join(scenario);
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

/// Like [`wait_for`], but a script that fails while the page navigates is tried again.
async fn wait_across_navigation(browser: &Client, what: &str, script: &str) -> Value {
    let mut last_error = None;
    let truthy = async {
        loop {
            match browser.execute(script, vec![]).await {
                Ok(Value::Null | Value::Bool(false)) => {}
                Ok(Value::String(text)) if text.is_empty() => {}
                Ok(value) => return value,
                Err(error) => last_error = Some(error.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let outcome = tokio::time::timeout(WAIT, truthy).await;
    outcome.unwrap_or_else(|_| panic!("{what} never happened (last error: {last_error:?})"))
}

/// "in 7 days": the nearest whole day of what is left, a moment after creation.
fn says_seven_days(text: &str) -> bool {
    text == "in 7 days"
}

/// Runs `scenario` against a fresh service and a fresh Chromium, its screenshots in
/// `target/browser-screenshots/{name}/`. The scenario runs in its own task so that the browser
/// session is ended even when an assertion fails; the failure is raised again afterwards.
#[allow(clippy::await_holding_lock)] // see ONE_BROWSER
async fn in_chromium<F, Fut>(name: &'static str, scenario: F)
where
    F: FnOnce(Client, Service, reqwest::Client, Screenshots) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let _one = ONE_BROWSER.lock().unwrap_or_else(PoisonError::into_inner);
    let (chromium, driver) = browser_tools();
    let workdir = TempDir::new().unwrap();
    let profile = TempDir::new().unwrap();
    let service = start_service(workdir.path());
    let http = reqwest::Client::new();
    let (_driver, driver_url) = start_chromedriver(&driver, &http).await;
    let browser = start_browser(&chromium, &driver_url, profile.path()).await;
    let outcome = tokio::spawn(scenario(
        browser.clone(),
        service,
        http,
        Screenshots::new(name),
    ))
    .await;
    let _ = browser.close().await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_page_in_chromium() {
    in_chromium("admin", |browser, service, http, mut shots| async move {
        scenario(&browser, &service, &http, &mut shots).await;
    })
    .await;
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

    // The table lists it: "in 7 days".
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

    // The tenant's portal, opened from the admin page: the service signs an environment admin
    // in through a single-use link, and the portal lists the tenant's tokens.
    click(browser, "#open-portal").await;
    wait_across_navigation(
        browser,
        "the portal of acme",
        "return location.pathname === '/portal' \
             && document.querySelector('#who-name')?.textContent === 'Environment admin' \
             && document.querySelector('#who-tenant')?.textContent === 'acme' \
             && document.querySelector('#api-tokens')?.getAttribute('aria-busy') === 'false';",
    )
    .await;
    let listed = browser
        .execute(
            "return Array.from(document.querySelectorAll('#api-table tbody tr')) \
                 .map(row => [row.querySelector('td.description').textContent, \
                              row.querySelector('td.status').textContent]);",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .contains(&json!(["nightly export", "Revoked"])),
        "{listed}"
    );
    shots.take(browser, "portal-from-admin").await;

    // Back on the admin page, still signed in (the admin token is in this tab's storage).
    browser.goto(&format!("{}/", service.base)).await.unwrap();
    wait_for(
        browser,
        "the console again",
        "return !document.querySelector('#console').hidden \
             && !document.querySelector('#sign-out').hidden;",
    )
    .await;

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

// ---- the tenant portal ---------------------------------------------------------------------------

/// The name of the portal's session cookie.
const PORTAL_COOKIE: &str = "m2m_portal";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_portal_in_chromium() {
    in_chromium("portal", |browser, service, http, mut shots| async move {
        portal_scenario(&browser, &service, &http, &mut shots).await;
    })
    .await;
}

/// `PUT {path}` with the environment admin token: 200.
async fn admin_put(http: &reqwest::Client, service: &Service, path: &str, body: Value) {
    let reply = http
        .put(format!("{}{path}", service.base))
        .header("x-api-key", &service.admin_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = reply.status();
    assert_eq!(
        status,
        StatusCode::OK,
        "PUT {path}: {}",
        reply.text().await.unwrap_or_default()
    );
}

/// The portal settings with the API-token section on or off.
fn portal_settings(api_tokens_visible: bool) -> Value {
    json!({
        "grantable_scopes": [{"name": "reports:read", "description": "Read reports"}],
        "api_tokens_visible": api_tokens_visible,
        "personal_tokens_visible": true,
    })
}

/// The vendor signs a tenant user in: `POST /v1/portal/sessions`, 201 with the single-use link.
async fn vendor_session(http: &reqwest::Client, service: &Service, user: Value) -> String {
    let reply = http
        .post(format!("{}/v1/portal/sessions", service.base))
        .header("x-api-key", &service.admin_token)
        .json(&user)
        .send()
        .await
        .unwrap();
    let status = reply.status();
    let body: Value = reply.json().await.unwrap_or(Value::Null);
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a portal session for {user}: {body}"
    );
    assert!(body["id"].is_string(), "the session has an id: {body}");
    let url = body["url"].as_str().expect("the session's link").to_owned();
    assert!(
        url.starts_with(&format!("{}/portal/enter?code=", service.base)),
        "{url}"
    );
    url
}

/// Opens a session's link in a browser without any cookie of an earlier session, and waits
/// until the portal shows `name` with its lists loaded.
async fn enter_portal(browser: &Client, link: &str, name: &str) {
    browser.delete_all_cookies().await.expect("no cookies left");
    browser.goto(link).await.expect("the link opens");
    let script = format!(
        "if (location.pathname !== '/portal' || location.search) return false; \
         const who = document.querySelector('#who-name'); \
         if (document.querySelector('#portal').hidden || !who || who.textContent !== {}) \
             return false; \
         return ['#api-tokens', '#personal-tokens'].every(s => {{ \
             const e = document.querySelector(s); \
             return e.hidden || e.getAttribute('aria-busy') === 'false'; }});",
        json!(name)
    );
    wait_across_navigation(browser, &format!("the portal of {name}"), &script).await;
}

/// The portal session cookie as the browser holds it, with its flags checked.
async fn portal_cookie(browser: &Client) -> String {
    let cookies = browser.get_all_cookies().await.expect("the cookies");
    let cookie = cookies
        .iter()
        .find(|cookie| cookie.name() == PORTAL_COOKIE)
        .unwrap_or_else(|| panic!("no {PORTAL_COOKIE} cookie in {cookies:?}"));
    assert_eq!(cookie.http_only(), Some(true), "{cookie}");
    assert_eq!(
        format!("{:?}", cookie.same_site()),
        "Some(Strict)",
        "{cookie}"
    );
    cookie.value().to_owned()
}

/// The session's CSRF token, as the page itself learns it.
async fn csrf_token(browser: &Client) -> String {
    let token = browser
        .execute_async(
            "const done = arguments[arguments.length - 1]; \
             fetch('/v1/portal/me', {credentials: 'same-origin', cache: 'no-store'}) \
                 .then(r => r.ok ? r.json() : null) \
                 .then(me => done(me && me.csrf_token), () => done(null));",
            vec![],
        )
        .await
        .expect("the session's own answer");
    token.as_str().expect("a csrf token").to_owned()
}

/// A request with a portal session's cookie and CSRF token, as another page would send it.
async fn with_session(
    http: &reqwest::Client,
    request: reqwest::RequestBuilder,
    cookie: &str,
    csrf: &str,
) -> StatusCode {
    let request = request
        .header("cookie", format!("{PORTAL_COOKIE}={cookie}"))
        .header("x-csrf-token", csrf)
        .build()
        .unwrap();
    http.execute(request).await.unwrap().status()
}

/// `GET /v1/tenants/acme/tokens` with an access token.
async fn list_with(http: &reqwest::Client, service: &Service, secret: &str) -> StatusCode {
    http.get(format!("{}/v1/tenants/acme/tokens", service.base))
        .header("x-api-key", secret)
        .send()
        .await
        .unwrap()
        .status()
}

/// Generates a token in the page's dialog and returns the secret it shows.
async fn generate_in_page(
    browser: &Client,
    opener: &str,
    description: &str,
    expiry: &str,
    scopes: &[&str],
    shots: &mut Screenshots,
) -> String {
    click(browser, opener).await;
    wait_for(
        browser,
        "the generate dialog",
        "return document.querySelector('#generate-dialog').open;",
    )
    .await;
    type_into(browser, "#generate-description", description).await;
    css(browser, "#generate-expiry")
        .await
        .select_by_value(expiry)
        .await
        .expect("the expiry choice");
    for scope in scopes {
        click(
            browser,
            &format!("input[name=generate-scope][value={}]", json!(scope)),
        )
        .await;
    }
    shots
        .take(
            browser,
            &format!("generate-{}", description.replace(' ', "-")),
        )
        .await;
    click(browser, "#generate-submit").await;
    let secret = text_of(browser, "#secret-value").await;
    assert!(secret.starts_with("m2m_at_"), "an access token is shown");
    secret
}

/// Closes the secret dialog and checks that the secret is gone from the page.
async fn close_secret(browser: &Client, secret: &str) {
    click(browser, "#secret-close").await;
    wait_for(
        browser,
        "the secret dialog to close",
        "return !document.querySelector('#secret-dialog').open \
             && !document.querySelector('#secret-body').hasChildNodes();",
    )
    .await;
    assert_no_secret(browser, secret).await;
}

/// The id of the row of `table` described as `description`.
async fn row_id(browser: &Client, table: &str, description: &str) -> String {
    let script = format!(
        "const row = Array.from(document.querySelectorAll('{table} tbody tr')) \
             .find(r => r.querySelector('td.description').textContent === {}); \
         return row ? row.dataset.id : null;",
        json!(description)
    );
    wait_for(browser, &format!("{description:?} in {table}"), &script)
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

/// The descriptions of the rows of `table`.
async fn descriptions(browser: &Client, table: &str) -> Vec<String> {
    let script = format!(
        "return Array.from(document.querySelectorAll('{table} tbody tr')) \
             .map(r => r.querySelector('td.description').textContent);"
    );
    serde_json::from_value(browser.execute(&script, vec![]).await.unwrap()).unwrap()
}

async fn portal_scenario(
    browser: &Client,
    service: &Service,
    http: &reqwest::Client,
    shots: &mut Screenshots,
) {
    browser
        .set_window_size(DESKTOP.0, DESKTOP.1)
        .await
        .expect("window size");
    admin_put(http, service, "/v1/settings/portal", portal_settings(true)).await;
    admin_put(
        http,
        service,
        "/v1/settings",
        json!({"token_type": "access"}),
    )
    .await;

    // 1. The vendor signs alice in; her link opens the portal once, and only once.
    let alice = vendor_session(
        http,
        service,
        json!({"tenant": "acme", "user_id": "alice", "display_name": "Alice Admin",
               "role": "admin", "permissions": ["reports:read"]}),
    )
    .await;
    enter_portal(browser, &alice, "Alice Admin").await;
    let header = text_of(browser, "header").await;
    assert!(
        header.contains("m2m") && header.contains("portal") && header.contains("acme"),
        "{header}"
    );
    assert_eq!(text_of(browser, "#who-role").await, "Admin");
    let page = browser
        .execute("return [document.cookie, location.href];", vec![])
        .await
        .unwrap();
    assert_eq!(
        page[0], "",
        "the session cookie is not readable by the page"
    );
    assert!(!page[1].as_str().unwrap().contains("code="), "{page}");
    shots.take(browser, "alice-signed-in").await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let again = no_redirects.get(&alice).send().await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::UNAUTHORIZED,
        "a used link is refused"
    );

    // 2. Alice generates an API token for 30 days with the tenant-admin scope.
    click(browser, "#api-generate").await;
    let offered = browser
        .execute(
            "return { \
                 expiry: Array.from(document.querySelectorAll('#generate-expiry option')) \
                     .map(o => [o.value, o.textContent]), \
                 scopes: Array.from(document.querySelectorAll('input[name=generate-scope]')) \
                     .map(b => [b.value, b.closest('label').textContent]), \
                 type: document.querySelector('#generate-type-fixed')?.textContent ?? null, \
                 choice: document.querySelectorAll('input[name=generate-type]').length };",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        offered["expiry"],
        json!([
            ["never", "Never"],
            ["1d", "1 day"],
            ["7d", "7 days"],
            ["30d", "30 days"],
            ["90d", "90 days"],
            ["365d", "365 days"]
        ])
    );
    let scopes = offered["scopes"].as_array().unwrap();
    assert!(
        scopes
            .iter()
            .any(|s| s[0] == "reports:read" && s[1].as_str().unwrap().contains("Read reports")),
        "{offered}"
    );
    assert!(
        scopes.iter().any(|s| s[0] == "m2m:tenant-admin"),
        "an admin may grant m2m:tenant-admin: {offered}"
    );
    assert!(
        offered["type"].as_str().unwrap().contains("Access token"),
        "{offered}"
    );
    assert_eq!(offered["choice"], 0, "the tenant's type is fixed");
    click(browser, "#generate-dialog [data-close]").await;
    let secret = generate_in_page(
        browser,
        "#api-generate",
        "nightly export",
        "30d",
        &["m2m:tenant-admin"],
        shots,
    )
    .await;
    shots.take(browser, "api-secret-shown").await;
    close_secret(browser, &secret).await;
    notice(browser, "nightly export").await;
    let api_id = row_id(browser, "#api-table", "nightly export").await;
    let row = format!("#api-table tr[data-id='{api_id}']");
    let expires = text_of(browser, &format!("{row} td.expires-in")).await;
    assert!(expires == "in 30 days", "Expires in: {expires:?}");
    assert_eq!(
        text_of(browser, &format!("{row} td.created-by")).await,
        "Alice Admin"
    );
    assert_eq!(
        text_of(browser, &format!("{row} td.last-used")).await,
        "Never"
    );
    assert_eq!(
        text_of(browser, &format!("{row} td.status")).await,
        "Active"
    );
    let stub = text_of(browser, &format!("{row} td.client")).await;
    assert!(secret.starts_with(stub.trim_end_matches('…')), "{stub}");
    css(browser, &format!("{row} button.revoke")).await;
    shots.take(browser, "api-token-listed").await;

    // 3. The token works, and its use shows up as "Last used" once recorded.
    assert_eq!(list_with(http, service, &secret).await, StatusCode::OK);
    let last_used = wait_for(
        browser,
        "the use to show in Last used",
        &format!(
            "const cell = document.querySelector(\"{row} td.last-used\"); \
             const text = cell ? cell.textContent : ''; \
             if (text && text !== 'Never') return text; \
             const refresh = document.querySelector('#refresh'); \
             const now = Date.now(); \
             if (!refresh.disabled && !(window.lastRefresh > now - 500)) {{ \
                 window.lastRefresh = now; refresh.click(); }} \
             return null;"
        ),
    )
    .await;
    assert_ne!(last_used, "Never");
    shots.take(browser, "api-token-used").await;

    // The search box filters both tables.
    type_into(browser, "#filter", "NIGHTLY").await;
    wait_for(
        browser,
        "a matching row to stay",
        &format!("return !document.querySelector(\"{row}\").hidden;"),
    )
    .await;
    type_into(browser, "#filter", "no such token").await;
    wait_for(
        browser,
        "the row to be filtered out",
        &format!("return document.querySelector(\"{row}\").hidden;"),
    )
    .await;
    type_into(browser, "#filter", "alice admin").await;
    wait_for(
        browser,
        "a row by its creator",
        &format!("return !document.querySelector(\"{row}\").hidden;"),
    )
    .await;
    css(browser, "#filter").await.clear().await.unwrap();

    // 4. A personal token: in the personal table only; then revoked, and refused at once.
    let personal = generate_in_page(
        browser,
        "#personal-generate",
        "alice laptop",
        "7d",
        &[],
        shots,
    )
    .await;
    close_secret(browser, &personal).await;
    let personal_id = row_id(browser, "#personal-table", "alice laptop").await;
    let personal_row = format!("#personal-table tr[data-id='{personal_id}']");
    let expires = text_of(browser, &format!("{personal_row} td.expires-in")).await;
    assert!(says_seven_days(&expires), "Expires in: {expires:?}");
    assert_eq!(
        descriptions(browser, "#api-table").await,
        ["nightly export"]
    );
    assert_eq!(
        descriptions(browser, "#personal-table").await,
        ["alice laptop"]
    );
    shots.take(browser, "personal-token-listed").await;

    browser.set_window_size(PHONE.0, PHONE.1).await.unwrap();
    let fits = wait_for(
        browser,
        "the portal to fit a phone",
        "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
    )
    .await;
    assert_eq!(fits, true);
    shots.take(browser, "phone-width").await;
    browser
        .execute(
            "document.querySelector('#personal-tokens').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    shots.take(browser, "phone-width-personal").await;
    browser.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();

    click(browser, &format!("{personal_row} button.revoke")).await;
    let question = text_of(browser, "#revoke-text").await;
    assert!(question.contains("alice laptop"), "{question}");
    shots.take(browser, "revoke-confirm").await;
    click(browser, "#revoke-confirm").await;
    notice(browser, "revoked").await;
    wait_for(
        browser,
        "the personal token to show as revoked",
        &format!(
            "const e = document.querySelector(\"{personal_row} td.status\"); \
             return e && e.textContent === 'Revoked';"
        ),
    )
    .await;
    assert_eq!(
        list_with(http, service, &personal).await,
        StatusCode::UNAUTHORIZED
    );
    shots.take(browser, "personal-token-revoked").await;

    // 5. Bob, a member: he sees the tenant's API token but may neither revoke nor create one.
    let bob = vendor_session(
        http,
        service,
        json!({"tenant": "acme", "user_id": "bob", "display_name": "Bob Member",
               "role": "member", "permissions": []}),
    )
    .await;
    enter_portal(browser, &bob, "Bob Member").await;
    assert_eq!(text_of(browser, "#who-role").await, "Member");
    assert_eq!(
        descriptions(browser, "#api-table").await,
        ["nightly export"]
    );
    assert!(
        descriptions(browser, "#personal-table").await.is_empty(),
        "bob sees none of alice's personal tokens"
    );
    let controls = browser
        .execute(
            "const generate = document.querySelector('#api-generate'); \
             return [document.querySelectorAll('#api-table button.revoke').length, \
                     !generate || generate.hidden || generate.offsetParent === null];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(controls, json!([0, true]), "a member manages no API tokens");
    shots.take(browser, "bob-member").await;
    let bob_cookie = portal_cookie(browser).await;
    let bob_csrf = csrf_token(browser).await;
    let refused = with_session(
        http,
        http.delete(format!("{}/v1/tenants/acme/tokens/{api_id}", service.base)),
        &bob_cookie,
        &bob_csrf,
    )
    .await;
    assert_eq!(
        refused,
        StatusCode::FORBIDDEN,
        "a member revokes no API token"
    );
    assert_eq!(
        list_with(http, service, &secret).await,
        StatusCode::OK,
        "the API token still works"
    );

    // 6. Bob's own personal token: it authenticates, and holds no rights.
    let bobs = generate_in_page(
        browser,
        "#personal-generate",
        "bob script",
        "7d",
        &[],
        shots,
    )
    .await;
    close_secret(browser, &bobs).await;
    row_id(browser, "#personal-table", "bob script").await;
    assert_eq!(list_with(http, service, &bobs).await, StatusCode::FORBIDDEN);
    shots.take(browser, "bob-personal-token").await;

    // 7. Carol, an admin of globex, sees nothing of acme.
    let carol = vendor_session(
        http,
        service,
        json!({"tenant": "globex", "user_id": "carol", "display_name": "Carol Admin",
               "role": "admin", "permissions": []}),
    )
    .await;
    enter_portal(browser, &carol, "Carol Admin").await;
    assert!(descriptions(browser, "#api-table").await.is_empty());
    assert!(descriptions(browser, "#personal-table").await.is_empty());
    let body = browser
        .execute("return document.body.innerText;", vec![])
        .await
        .unwrap();
    let body = body.as_str().unwrap();
    for of_acme in ["nightly export", "alice laptop", "bob script", "acme"] {
        assert!(!body.contains(of_acme), "{of_acme:?} in globex's portal");
    }
    assert!(body.contains("globex"), "{body}");
    shots.take(browser, "carol-globex").await;

    // 8. Bob leaves acme: his personal token is refused at once.
    let removed = http
        .delete(format!("{}/v1/tenants/acme/users/bob", service.base))
        .header("x-api-key", &service.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::OK);
    assert_eq!(
        list_with(http, service, &bobs).await,
        StatusCode::UNAUTHORIZED
    );

    // 9. The environment hides API tokens: the section is gone, and the API refuses them too.
    admin_put(http, service, "/v1/settings/portal", portal_settings(false)).await;
    let alice = vendor_session(
        http,
        service,
        json!({"tenant": "acme", "user_id": "alice", "display_name": "Alice Admin",
               "role": "admin", "permissions": ["reports:read"]}),
    )
    .await;
    enter_portal(browser, &alice, "Alice Admin").await;
    let sections = browser
        .execute(
            "return [document.querySelector('#api-tokens').hidden, \
                     document.querySelector('#personal-tokens').hidden];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        sections,
        json!([true, false]),
        "only personal tokens are shown"
    );
    assert_eq!(
        descriptions(browser, "#personal-table").await,
        ["alice laptop"]
    );
    shots.take(browser, "api-tokens-hidden").await;
    let alice_cookie = portal_cookie(browser).await;
    let alice_csrf = csrf_token(browser).await;
    let refused = with_session(
        http,
        http.post(format!("{}/v1/tenants/acme/tokens", service.base))
            .json(&json!({"expires": "7d"})),
        &alice_cookie,
        &alice_csrf,
    )
    .await;
    assert_eq!(refused, StatusCode::FORBIDDEN, "no API tokens while hidden");

    // Sign out: the page says the session ended, and the cookie no longer works.
    click(browser, "#sign-out").await;
    let ended = text_of(browser, "#ended").await;
    assert!(
        ended.contains("Your portal session has ended. Ask for a new link."),
        "{ended}"
    );
    notice(browser, "Signed out.").await;
    shots.take(browser, "signed-out").await;
    let me = with_session(
        http,
        http.get(format!("{}/v1/portal/me", service.base)),
        &alice_cookie,
        &alice_csrf,
    )
    .await;
    assert_eq!(me, StatusCode::UNAUTHORIZED, "the session is over");

    // The portal without a session says so, and shows nothing else.
    browser
        .goto(&format!("{}/portal", service.base))
        .await
        .unwrap();
    let ended = text_of(browser, "#ended").await;
    assert!(ended.contains("Ask for a new link."), "{ended}");
    let hidden = browser
        .execute(
            "return ['#portal', '#who', '#sign-out'] \
                 .every(s => document.querySelector(s).hidden);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(hidden, true);
    shots.take(browser, "no-session").await;
}
