//! The reports API over gRPC, protected by m2m tokens, on tonic.
//!
//! One service, `m2m.example.reports.v1.Reports` (`proto/reports.proto`), whose every call
//! needs a token with the scope `reports:read`; `ListReports` answers the caller and its
//! tenant's reports. Refusals are gRPC statuses with the HTTP contract's reason as message.
//!
//! The store comes from `M2M_STORE`, as for the other examples: in memory by default, a SQLite
//! or PostgreSQL database, or the m2m token service. With a local store it issues one access
//! token (scope `reports:read`) and one client-credentials bearer token (no scope) at start,
//! and prints them with `grpcurl` lines to try.
//!
//! ```text
//! cargo run -p m2m-example-grpc -- --listen 127.0.0.1:50051    # or M2M_LISTEN
//! M2M_STORE=http://127.0.0.1:8080 M2M_INTROSPECT_TOKEN=m2m_at_… cargo run -p m2m-example-grpc
//! ```

#[path = "../../common/listen.rs"]
mod listen;
#[path = "../../common/logs.rs"]
mod logs;
#[allow(
    dead_code,
    reason = "the HTTP examples' announcement; this one prints grpcurl lines"
)]
#[path = "../../common/store.rs"]
mod store;

use std::error::Error;
use std::io::Write as _;

use store::{ExampleStore, SeededTokens};
use tonic::transport::server::TcpIncoming;

/// The method to call, as grpcurl names it.
const METHOD: &str = "m2m.example.reports.v1.Reports/ListReports";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    logs::init();
    let listen = listen::listen_address("m2m-example-grpc")?;
    let store = ExampleStore::from_env("grpc").await?;
    let incoming = TcpIncoming::bind(listen)?;
    announce(&store, &incoming.local_addr()?.to_string());
    m2m_example_grpc::server(store.verifier)
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}

/// Prints where the example listens and how to call it: with the seeded tokens, or how to
/// create a token with the token service.
fn announce(store: &ExampleStore, address: &str) {
    println!(
        "m2m grpc example listening on {address} ({})",
        store.description
    );
    println!();
    let grpcurl = |metadata: &str| {
        format!(
            "grpcurl -plaintext -import-path examples/grpc/proto -proto reports.proto \
             {metadata}{address} {METHOD}"
        )
    };
    match (&store.seeded, &store.service_url) {
        (Some(SeededTokens { access, bearer }), _) => {
            // The tokens are printed once, on purpose: trying them is what this example is for.
            println!("access token (x-api-key, scope reports:read, expires in 30 days):");
            println!("  {access}");
            println!(
                "client-credentials bearer token (authorization: Bearer, no scope, \
                 expires in 60 minutes):"
            );
            println!("  {bearer}");
            println!();
            println!("# OK: the caller and its tenant's reports");
            println!("{}", grpcurl(&format!("-H 'x-api-key: {access}' ")));
            println!("# PermissionDenied: the bearer token lacks reports:read");
            println!(
                "{}",
                grpcurl(&format!("-H 'authorization: Bearer {bearer}' "))
            );
            println!("# Unauthenticated: no credentials");
            println!("{}", grpcurl(""));
            println!("# InvalidArgument: a bearer token in x-api-key");
            println!("{}", grpcurl(&format!("-H 'x-api-key: {bearer}' ")));
        }
        (None, Some(service)) => {
            println!("Tokens live in the token service. Create one with its admin token:");
            println!();
            println!(
                "curl -s -X POST {service}/v1/tenants/acme/tokens -H 'X-API-KEY: <admin token>' \
                 -H 'Content-Type: application/json' \
                 -d '{{\"expires\": \"30d\", \"scopes\": [\"reports:read\"]}}'"
            );
            println!();
            println!("then call this API with the token it prints:");
            println!("{}", grpcurl("-H 'x-api-key: <token>' "));
        }
        (None, None) => {}
    }
    let _ = std::io::stdout().flush();
}
