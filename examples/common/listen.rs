//! The address an example listens on, shared by the three framework examples.

use std::net::SocketAddr;

/// Where the examples listen unless told otherwise.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// `--listen ADDR` (or `--listen=ADDR`), else `M2M_LISTEN`, else [`DEFAULT_LISTEN`].
pub(crate) fn listen_address(example: &str) -> Result<SocketAddr, String> {
    let mut args = std::env::args().skip(1);
    let mut listen = None;
    while let Some(arg) = args.next() {
        if arg == "--listen" {
            let value = args
                .next()
                .ok_or("--listen needs an address, such as 127.0.0.1:3000")?;
            listen = Some(value);
        } else if let Some(value) = arg.strip_prefix("--listen=") {
            listen = Some(value.to_owned());
        } else {
            return Err(format!(
                "unknown argument {arg:?}; usage: {example} [--listen ADDR]"
            ));
        }
    }
    let listen = listen
        .or_else(|| std::env::var("M2M_LISTEN").ok())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    listen
        .parse()
        .map_err(|_| format!("not a socket address: {listen:?}"))
}
