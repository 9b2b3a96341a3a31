//! A running `m2m serve` for the tests that drive the real binary.

#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The `m2m` binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_m2m");

/// How long a start may take before the test calls it hung.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `m2m serve`; killed when dropped, so no test leaves a server behind.
pub(crate) struct Server {
    child: Child,
    /// `http://host:port`, as the service printed it.
    pub(crate) base: String,
    /// What it printed until it listened, the listen line included.
    pub(crate) stdout: Vec<String>,
}

impl Server {
    /// Starts `command` (an `m2m serve …`) and waits until it prints its address.
    pub(crate) fn start(command: Command) -> Server {
        Server::try_start(command)
            .unwrap_or_else(|stdout| panic!("m2m ended before it listened: {stdout:?}"))
    }

    /// Starts `command` and waits until it prints its address; what it printed when it ended
    /// before listening (its port taken, say).
    pub(crate) fn try_start(mut command: Command) -> Result<Server, Vec<String>> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the m2m binary starts");
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            stdout: Vec::new(),
        };
        loop {
            match lines.recv_timeout(START_TIMEOUT) {
                Ok(line) => {
                    let listening = line.strip_prefix("m2m listening on ").map(str::to_owned);
                    server.stdout.push(line);
                    if let Some(base) = listening {
                        server.base = base;
                        return Ok(server);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = server.child.wait();
                    return Err(std::mem::take(&mut server.stdout));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no listen address in {:?}", server.stdout)
                }
            }
        }
    }

    /// The bootstrap admin token, if this start printed one.
    pub(crate) fn bootstrap_token(&self) -> Option<String> {
        self.stdout
            .iter()
            .map(|line| line.trim())
            .find(|line| line.starts_with("m2m_at_"))
            .map(str::to_owned)
    }

    /// The address of `path` on this service.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the service with SIGTERM and checks that it shuts down cleanly.
    pub(crate) fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "m2m exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("m2m did not stop on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The service's router over `state`, served on 127.0.0.1 in this process: its base URL, and
/// the server's task.
pub(crate) async fn serve_in_process(
    state: m2m_server::AppState,
) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = m2m_server::app(state);
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (base, server)
}

/// A service on a fresh memory store, served in this process: its base URL, the bootstrap
/// admin token and the server's task.
pub(crate) async fn memory_service() -> (String, String, tokio::task::JoinHandle<()>) {
    let store: std::sync::Arc<dyn m2m_core::TokenStore> =
        std::sync::Arc::new(m2m_core::MemoryStore::new());
    let state = m2m_server::AppState::new(store, m2m_server::ServiceOptions::default())
        .await
        .unwrap();
    let admin = m2m_server::bootstrap_admin(&state).await.unwrap().unwrap();
    let (base, server) = serve_in_process(state).await;
    (base, admin.token.expose_secret().to_owned(), server)
}
