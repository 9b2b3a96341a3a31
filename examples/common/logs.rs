//! The examples' log output: `tracing` events on stderr, filtered by `RUST_LOG` (default
//! `info`). `RUST_LOG=m2m=debug` adds one line per refused request, with its reason and, when
//! the store knows the token, its id and tenant; tokens never appear in it.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// Installs the subscriber; call once, first thing in `main`.
pub(crate) fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
