//! The parts every service process shares, so that a service crate only
//! adds its domain: the HTTP server (liveness, readiness, Prometheus
//! metrics, request tracing), the gRPC server (standard health service,
//! reflection, trace context), gRPC clients to the other services, the
//! mapping of domain errors to gRPC status and HTTP problem responses, and
//! shutdown on signals.

pub mod deps;
pub mod errors;
pub mod grpc;
pub mod health;
pub mod host;
pub mod http;
pub mod testkit;

pub use deps::{Deps, Listeners, RunError};
pub use tokio_util::sync::CancellationToken;

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        token.cancel();
    });
}

/// Binds a TCP listener, naming the setting when the address is taken.
pub fn bind(setting: &str, addr: std::net::SocketAddr) -> Result<std::net::TcpListener, String> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| format!("{setting}: cannot listen on {addr}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| format!("{setting}: {e}"))?;
    Ok(listener)
}
