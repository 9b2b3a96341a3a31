//! `GET /metrics` of the token service on 127.0.0.1: after admitted and refused requests, the
//! decision counters carry the right labels and values, the output is read by an independent
//! parser of the Prometheus text format (the Python `prometheus_client` package, from the venv
//! `M2M_TEST_PYTHON` names), and only a scraper or an environment admin may read it.
//!
//! The recorder is global to the process, so the test compares two scrapes: what its own
//! requests added. A real `m2m-remote` store in the same process then follows the revocation
//! stream, and its counts appear beside the service's.

mod support;

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use m2m_core::{TokenFormat, TokenKind, Verifier};
use m2m_remote::{IntrospectionCredential, RemoteStore};
use m2m_server::{INTROSPECT_SCOPE, METRICS_SCOPE, TENANT_ADMIN_SCOPE};
use serde_json::{Value, json};

/// The Python interpreter with `prometheus_client`; the test fails without it.
fn python() -> String {
    std::env::var("M2M_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "M2M_TEST_PYTHON is not set: it names the Python interpreter of a venv with \
             prometheus_client (and the packages of the other Python tests). Run `.ci/test`, \
             which creates that venv in target/python-venv and sets the variable."
        )
    })
}

/// Parses the text format with `prometheus_client` and prints every sample as JSON.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        samples.append({"family": family.name, "type": family.type,
                        "help": family.documentation, "name": sample.name,
                        "labels": sample.labels, "value": sample.value})
json.dump(samples, sys.stdout)
"#;

/// One sample, as the Python parser read it.
#[derive(Debug)]
struct Sample {
    family: String,
    kind: String,
    help: String,
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// A scrape, parsed by the independent parser; panics when it refuses the text.
struct Scrape(Vec<Sample>);

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut child = Command::new(python())
            .args(["-c", PARSE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the Python interpreter starts");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "prometheus_client refused the output: {}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        );
        let samples: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
        Self(
            samples
                .into_iter()
                .map(|sample| Sample {
                    family: sample["family"].as_str().unwrap().to_owned(),
                    kind: sample["type"].as_str().unwrap().to_owned(),
                    help: sample["help"].as_str().unwrap().to_owned(),
                    name: sample["name"].as_str().unwrap().to_owned(),
                    labels: serde_json::from_value(sample["labels"].clone()).unwrap(),
                    value: sample["value"].as_f64().unwrap(),
                })
                .collect(),
        )
    }

    /// The value of the sample `name` with exactly these labels; 0 when there is none.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut found = self
            .0
            .iter()
            .filter(|s| s.name == name && s.labels == wanted);
        let value = found.next().map_or(0.0, |s| s.value);
        assert!(found.next().is_none(), "{name} {labels:?} appears twice");
        value
    }

    fn family(&self, family: &str) -> Vec<&Sample> {
        self.0.iter().filter(|s| s.family == family).collect()
    }
}

struct Service {
    base: String,
    admin: String,
    http: reqwest::Client,
    _server: tokio::task::JoinHandle<()>,
}

impl Service {
    async fn start() -> Self {
        let (base, admin, server) = support::memory_service().await;
        Self {
            base,
            admin,
            http: reqwest::Client::new(),
            _server: server,
        }
    }

    /// Issues a token with the admin token: the status and the body.
    async fn create(&self, credential: &str, tenant: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/v1/tenants/{tenant}/tokens", self.base))
            .header("x-api-key", credential)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn access_token(&self, tenant: &str, scope: &str) -> String {
        let body = json!({"expires": "30d", "scopes": [scope]});
        let (status, created) = self.create(&self.admin, tenant, body).await;
        assert_eq!(status, 201, "{created}");
        created["token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    /// `GET /metrics` with the scraper's token: the text, checked for status and type.
    async fn scrape(&self, scraper: &str) -> String {
        let response = self.get("/metrics", &[("x-api-key", scraper)]).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        assert_eq!(response.headers()["cache-control"], "no-store");
        response.text().await.unwrap()
    }

    async fn exchange(&self, client_id: &str, secret: &str) -> u16 {
        self.http
            .post(format!("{}/oauth/token", self.base))
            .basic_auth(client_id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

const DECISIONS: &str = "m2m_decisions_total";

/// How long the test waits for what must happen before it calls the run hung. A guard against
/// hanging, not a speed requirement.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Waits until `done`, polling; a run that never gets there is hung, and stopped after
/// [`HANG_GUARD`].
async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let happened = async {
        while !done().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(HANG_GUARD, happened)
        .await
        .unwrap_or_else(|_| panic!("{what}: never happened"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_each_decision_with_its_labels_and_only_to_a_scraper() {
    let service = Service::start().await;
    let scraper = service.access_token("m2m", METRICS_SCOPE).await;
    let tenant_admin = service.access_token("acme", TENANT_ADMIN_SCOPE).await;
    let resource_server = service.access_token("m2m", INTROSPECT_SCOPE).await;
    let (status, credential) = service
        .create(
            &service.admin,
            "acme",
            json!({"type": "client_credentials", "expires": "never", "scopes": []}),
        )
        .await;
    assert_eq!(status, 201, "{credential}");
    let client_id = credential["client_id"].as_str().unwrap();
    let client_secret = credential["client_secret"].as_str().unwrap();
    let unknown = TokenFormat::default().generate(TokenKind::AccessToken);
    let unknown = unknown.expose_secret();
    let unknown_secret = TokenFormat::default().generate(TokenKind::ClientSecret);

    let before = Scrape::parse(&service.scrape(&scraper).await);

    // Admitted: an access token of acme's tenant admin.
    let listed = service
        .get("/v1/tenants/acme/tokens", &[("x-api-key", &tenant_admin)])
        .await;
    assert_eq!(listed.status(), 200);
    // Refused: an unknown token (invalid_token), both headers (invalid_request).
    let forged = service.get("/v1/settings", &[("x-api-key", unknown)]).await;
    assert_eq!(forged.status(), 401);
    let bearer = format!("Bearer {unknown}");
    let both = [
        ("x-api-key", tenant_admin.as_str()),
        ("authorization", &bearer),
    ];
    assert_eq!(service.get("/v1/settings", &both).await.status(), 400);
    // Anonymous: no credentials on the admin API, whose layer lets them through to the handler
    // (which wants a portal session, and answers 401).
    assert_eq!(service.get("/v1/settings", &[]).await.status(), 401);
    // The token endpoint: one grant, one refusal.
    assert_eq!(service.exchange(client_id, client_secret).await, 200);
    let wrong = service
        .exchange(client_id, unknown_secret.expose_secret())
        .await;
    assert_eq!(wrong, 401);
    // Introspection: the caller is admitted by the verifier, the token checked active.
    let introspected: Value = service
        .http
        .post(format!("{}/oauth/introspect", service.base))
        .header("x-api-key", &resource_server)
        .form(&[("token", tenant_admin.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true);

    let text = service.scrape(&scraper).await;
    let after = Scrape::parse(&text);
    let added = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    // The listing, the introspection's caller and this scrape.
    let admitted = [("outcome", "admitted"), ("kind", "access_token")];
    assert_eq!(added(DECISIONS, &admitted), 3.0, "{text}");
    let refused = |reason| [("outcome", "refused"), ("reason", reason)];
    assert_eq!(added(DECISIONS, &refused("invalid_token")), 1.0, "{text}");
    assert_eq!(added(DECISIONS, &refused("invalid_request")), 1.0, "{text}");
    assert_eq!(added(DECISIONS, &refused("missing_credentials")), 0.0);
    assert_eq!(added(DECISIONS, &refused("rate_limited")), 0.0);
    assert_eq!(added(DECISIONS, &[("outcome", "anonymous")]), 1.0, "{text}");
    assert_eq!(
        added(
            DECISIONS,
            &[("outcome", "admitted"), ("kind", "bearer_token")]
        ),
        0.0
    );
    let checks = "m2m_token_checks_total";
    let check = |check, outcome| [("check", check), ("outcome", outcome)];
    assert_eq!(added(checks, &check("client", "active")), 1.0, "{text}");
    assert_eq!(added(checks, &check("token", "active")), 1.0, "{text}");
    let unknown_client = [
        ("check", "client"),
        ("outcome", "inactive"),
        ("reason", "unknown"),
    ];
    assert_eq!(added(checks, &unknown_client), 1.0, "{text}");
    let requests = "m2m_service_token_requests_total";
    assert_eq!(added(requests, &[("outcome", "granted")]), 1.0, "{text}");
    let invalid_client = [("outcome", "refused"), ("error", "invalid_client")];
    assert_eq!(added(requests, &invalid_client), 1.0, "{text}");
    let introspections = "m2m_service_introspections_total";
    assert_eq!(
        added(introspections, &[("outcome", "active")]),
        1.0,
        "{text}"
    );
    // The store was asked for the unknown token, and answered.
    let not_found = [("operation", "find_token"), ("outcome", "not_found")];
    assert!(added("m2m_store_call_duration_seconds_count", &not_found) >= 1.0);
    assert!(after.value("m2m_cache_misses_total", &[]) >= 1.0);
    assert!(after.value("m2m_cache_entries", &[("room", "known")]) >= 1.0);

    // Each family is typed and described; the latency is a histogram with buckets.
    for (family, kind) in [
        ("m2m_decisions", "counter"),
        ("m2m_token_checks", "counter"),
        ("m2m_cache_hits", "counter"),
        ("m2m_cache_entries", "gauge"),
        ("m2m_store_call_duration_seconds", "histogram"),
        ("m2m_service_token_requests", "counter"),
        ("m2m_service_revocation_streams", "gauge"),
    ] {
        let samples = after.family(family);
        assert!(!samples.is_empty(), "{family} is missing:\n{text}");
        assert!(
            samples.iter().all(|s| s.kind == kind),
            "{family}: {samples:?}"
        );
        assert!(samples.iter().all(|s| !s.help.is_empty()), "{family}");
    }
    assert!(
        after
            .family("m2m_store_call_duration_seconds")
            .iter()
            .any(|s| s.name.ends_with("_bucket") && s.labels.contains_key("le"))
    );

    // No label value names a token, a token id or a tenant.
    let created: Value = service
        .get("/v1/tenants/acme/tokens", &[("x-api-key", &tenant_admin)])
        .await
        .json()
        .await
        .unwrap();
    let token_ids: Vec<&str> = created["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|token| token["id"].as_str().unwrap())
        .collect();
    assert!(!token_ids.is_empty());
    let secrets = [&tenant_admin, &scraper, &resource_server].map(String::as_str);
    for secret in secrets
        .into_iter()
        .chain([client_secret])
        .chain(token_ids)
        .chain([client_id, "acme"])
    {
        assert!(!text.contains(secret), "the metrics name {secret}");
    }

    // Only a scraper or an environment admin reads them.
    assert_eq!(service.get("/metrics", &[]).await.status(), 401);
    for refused in [&tenant_admin, &resource_server] {
        let response = service.get("/metrics", &[("x-api-key", refused)]).await;
        assert_eq!(response.status(), 403);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let admin = service
        .get("/metrics", &[("x-api-key", &service.admin)])
        .await;
    assert_eq!(admin.status(), 200);
    // The scraper's scope is the environment's: it is never issued into a tenant, and the
    // scraper itself can do nothing else.
    let body = json!({"expires": "30d", "scopes": [METRICS_SCOPE]});
    let (status, _) = service.create(&service.admin, "acme", body.clone()).await;
    assert_eq!(status, 422);
    let (status, _) = service.create(&scraper, "m2m", body).await;
    assert_eq!(status, 403);
    let settings = service
        .get("/v1/settings", &[("x-api-key", &scraper)])
        .await;
    assert_eq!(settings.status(), 403);
    let stats = service.get("/v1/stats", &[("x-api-key", &scraper)]).await;
    assert_eq!(stats.status(), 403);

    // A resource server in this process follows the revocation stream: its store's counts
    // reach the same recorder.
    let credential = IntrospectionCredential::ApiKey(resource_server.clone());
    let remote = RemoteStore::builder(service.base.as_str(), credential)
        .build()
        .unwrap();
    let verifier = Verifier::builder(remote.clone()).build();
    let value = async |name: &str, labels: &[(&str, &str)]| {
        Scrape::parse(&service.scrape(&scraper).await).value(name, labels)
    };
    wait_for("the event stream opens", async || {
        remote.event_stream_connected() && value("m2m_service_revocation_streams", &[]).await == 1.0
    })
    .await;
    // The first connection cannot resume anywhere: a reset, and the caches drop what they hold.
    assert_eq!(
        value("m2m_remote_revocation_stream_connected", &[]).await,
        1.0
    );
    assert!(value("m2m_remote_revocation_stream_gaps_total", &[]).await >= 1.0);
    assert!(value("m2m_cache_flushes_total", &[]).await >= 1.0);
    let id = created["items"][0]["id"].as_str().unwrap().to_owned();
    let revoked = service
        .http
        .delete(format!("{}/v1/tenants/acme/tokens/{id}", service.base))
        .header("x-api-key", &service.admin)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    wait_for("the revocation reaches the remote store", async || {
        value("m2m_remote_revocation_events_total", &[]).await >= 1.0
    })
    .await;
    assert!(value("m2m_service_revocation_events_total", &[]).await >= 1.0);
    drop(verifier);
}
