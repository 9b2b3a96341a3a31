//! A reports API over gRPC, protected by m2m tokens through the tower layer.
//!
//! The tonic server runs every call through [`M2mAuthLayer`] with the gRPC responder
//! ([`M2mAuthLayer::grpc`]): a refused call ends with a gRPC status (`UNAUTHENTICATED`,
//! `PERMISSION_DENIED`, `INVALID_ARGUMENT`, `UNAVAILABLE`, `RESOURCE_EXHAUSTED`) whose message
//! is the reason the HTTP contract gives, and an admitted call reaches [`ReportsApi`] with the
//! caller's [`Principal`] in its extensions.
//!
//! Clients send the token as metadata: `x-api-key` for access tokens, `authorization: Bearer …`
//! for client-credentials bearer tokens, exactly as over HTTP.
//!
//! # Example
//!
//! ```no_run
//! use m2m_core::{MemoryStore, Verifier};
//! use tonic::transport::server::TcpIncoming;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder(MemoryStore::new()).build();
//! let incoming = TcpIncoming::bind("127.0.0.1:50051".parse()?)?;
//! m2m_example_grpc::server(verifier)
//!     .serve_with_incoming(incoming)
//!     .await?;
//! # Ok(())
//! # }
//! ```

use m2m_core::{Principal, Rejection, Verifier};
use m2m_tower::{GrpcOnRejection, M2mAuthLayer};
use tonic::transport::server::Router;
use tonic::{Request, Response, Status};
use tower_layer::{Identity, Stack};

/// The messages, server and client generated from `proto/reports.proto`.
#[allow(
    clippy::missing_errors_doc,
    reason = "generated client methods, documented by the .proto file"
)]
pub mod proto {
    tonic::include_proto!("m2m.example.reports.v1");
}

use proto::reports_server::{Reports, ReportsServer};
use proto::{Caller, ListReportsRequest, ListReportsResponse, Report};

/// The scope every call needs.
pub const REQUIRED_SCOPE: &str = "reports:read";

/// The service's handlers: they read the caller the layer admitted.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReportsApi;

#[tonic::async_trait]
impl Reports for ReportsApi {
    async fn list_reports(
        &self,
        request: Request<ListReportsRequest>,
    ) -> Result<Response<ListReportsResponse>, Status> {
        let caller = caller(&request)?;
        Ok(Response::new(ListReportsResponse {
            caller: Some(Caller {
                tenant: caller.tenant().to_owned(),
                token_id: caller.token_id().as_str().to_owned(),
                token_kind: caller.kind().name().to_owned(),
                scopes: caller.scopes().map(str::to_owned).collect(),
            }),
            reports: vec![Report {
                id: 1,
                title: "Monthly usage".to_owned(),
            }],
        }))
    }
}

/// The caller the layer put in the request's extensions.
///
/// # Errors
///
/// `INTERNAL`, with the core's "no middleware ran" reason, when no [`M2mAuthLayer`] ran for
/// the call: a mistake in the server's wiring.
pub fn caller<T>(request: &Request<T>) -> Result<&Principal, Status> {
    request.extensions().get::<Principal>().ok_or_else(|| {
        let rejection = Rejection::middleware_missing();
        m2m_core::log_refusal(&rejection);
        Status::internal(rejection.detail())
    })
}

/// The server's layers: the m2m layer, requiring [`REQUIRED_SCOPE`], with gRPC refusals.
pub type Layers = Stack<M2mAuthLayer<GrpcOnRejection>, Identity>;

/// The gRPC server: [`ReportsApi`] behind the m2m layer, which verifies with `verifier`.
///
/// Serve it with `serve_with_incoming` (or `serve`) of the returned router.
pub fn server(verifier: Verifier) -> Router<Layers> {
    tonic::transport::Server::builder()
        .layer(
            M2mAuthLayer::new(verifier)
                .require_scopes([REQUIRED_SCOPE])
                .grpc(),
        )
        .add_service(ReportsServer::new(ReportsApi))
}
