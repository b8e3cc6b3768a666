//! One listener: accepts connections on a bound `TcpListener`, serves them with hyper around a
//! warp filter, and wraps every request — routed, rejected or not found alike — with:
//! - an `x-request-id` (the client's when it sends a sane one, a fresh UUID otherwise), put on
//!   the request for the handlers and on the response for the client;
//! - a tracing span carrying that id, so every log line of the request (actors included) has it;
//! - the HTTP metrics, labelled by route *template* so label values stay bounded;
//! - the authentication gate (`http::gate`): who may call the route, rate limits, and the
//!   security headers on every answer.
//!
//! On shutdown it stops accepting, lets in-flight requests finish within the grace period, and
//! then cuts what is left.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower_service::Service;
use tracing::Instrument;
use warp::http::header::ORIGIN;
use warp::http::{HeaderValue, Request};
use warp::reply::Response;

use super::gate::{Gate, Route, Verdict};

pub const REQUEST_ID: &str = "x-request-id";

/// How one listener behaves.
#[derive(Debug, Clone, Copy)]
pub struct ListenerConfig {
    /// Metric label and log field: "core" or "crawler".
    pub port: &'static str,
    /// The route table: templates (`/v1/crawl/{id}`) are the bounded `route` label.
    pub routes: &'static [Route],
    pub grace: Duration,
    pub header_read_timeout: Duration,
}

pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    config: ListenerConfig,
    gate: Arc<Gate>,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, port = config.port, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection_service = service.clone();
        let watcher = graceful.watcher();
        let gate = gate.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request| {
                handle(
                    connection_service.clone(),
                    request,
                    peer,
                    config,
                    gate.clone(),
                )
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(config.header_read_timeout);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), handler);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(
        port = config.port,
        grace_secs = config.grace.as_secs_f64(),
        "listener closed; draining in-flight requests"
    );
    if tokio::time::timeout(config.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            port = config.port,
            "grace period over; cutting the connections still open"
        );
    }
}

async fn handle<S>(
    mut service: S,
    mut request: Request<Incoming>,
    peer: SocketAddr,
    config: ListenerConfig,
    gate: Arc<Gate>,
) -> Result<Response, Infallible>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible>,
{
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .filter(|v| is_sane_request_id(v.as_bytes()))
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("invalid"))
        });
    request.headers_mut().insert(REQUEST_ID, request_id.clone());

    let method = request.method().clone();
    let route = route_label(config.routes, request.uri().path());
    let span = tracing::info_span!(
        "request",
        request_id = %String::from_utf8_lossy(request_id.as_bytes()),
        port = config.port,
        method = %method,
        path = %request.uri().path(),
    );
    let _in_flight = InFlight::enter(config.port);
    let started = Instant::now();
    let origin = request.headers().get(ORIGIN).cloned();
    let client = gate.client_ip(peer.ip(), request.headers());
    let admission = gate
        .admit(&mut request, client)
        .instrument(span.clone())
        .await;
    let (mut response, passed) = match admission {
        Verdict::Pass(passed) => {
            let Ok(response) = service.call(request).instrument(span.clone()).await;
            (response, Some(passed))
        }
        Verdict::Refuse(response) => (response, None),
    };
    gate.finish(&mut response, origin.as_ref(), passed);
    response.headers_mut().insert(REQUEST_ID, request_id);

    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics::counter!(
        "aurora_http_requests_total",
        "port" => config.port,
        "route" => route,
        "method" => method_label(&method),
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!(
        "aurora_http_request_duration_seconds",
        "port" => config.port,
        "route" => route,
        "method" => method_label(&method),
    )
    .record(elapsed.as_secs_f64());
    let _entered = span.enter();
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    if matches!(route, "/health" | "/ready" | "/metrics") {
        tracing::debug!(status, elapsed_ms, "request finished");
    } else {
        tracing::info!(status, elapsed_ms, "request finished");
    }
    Ok(response)
}

/// Counts a request in flight for as long as it is being served, even if the client hangs up.
struct InFlight(&'static str);

impl InFlight {
    fn enter(port: &'static str) -> Self {
        metrics::gauge!("aurora_http_requests_in_flight", "port" => port).increment(1.0);
        Self(port)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("aurora_http_requests_in_flight", "port" => self.0).decrement(1.0);
    }
}

/// Up to 128 visible ASCII characters without spaces: safe to echo and to log.
fn is_sane_request_id(value: &[u8]) -> bool {
    (1..=128).contains(&value.len()) && value.iter().all(|b| b.is_ascii_graphic())
}

fn method_label(method: &warp::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// The template in `routes` that `path` matches (`{…}` matches one segment), else "unmatched".
pub fn route_label(routes: &'static [Route], path: &str) -> &'static str {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    routes
        .iter()
        .map(|route| route.path)
        .find(|template| {
            // Trimmed alike, so the root `/` matches itself.
            let parts: Vec<&str> = template.trim_end_matches('/').split('/').collect();
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| p == s || (p.starts_with('{') && !s.is_empty()))
        })
        .unwrap_or("unmatched")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_templates() {
        use crate::http::gate::{Access, route};
        const ROUTES: &[Route] = &[
            route("GET", "/health", Access::Public),
            route("GET", "/v1/crawl/{id}", Access::Public),
            route("GET", "/v1/crawl/{id}/errors", Access::Public),
        ];
        assert_eq!(route_label(ROUTES, "/health"), "/health");
        assert_eq!(route_label(ROUTES, "/v1/crawl/abc"), "/v1/crawl/{id}");
        assert_eq!(
            route_label(ROUTES, "/v1/crawl/abc/errors"),
            "/v1/crawl/{id}/errors"
        );
        assert_eq!(route_label(ROUTES, "/v1/crawl/"), "unmatched");
        assert_eq!(route_label(ROUTES, "/etc/passwd"), "unmatched");
        const ROOT: &[Route] = &[route("GET", "/", Access::Public)];
        assert_eq!(route_label(ROOT, "/"), "/");
        assert_eq!(route_label(ROOT, "/x"), "unmatched");
    }

    #[test]
    fn request_ids_are_sanitised() {
        assert!(is_sane_request_id(b"abc-123_X.y:z"));
        assert!(!is_sane_request_id(b""));
        assert!(!is_sane_request_id(b"has space"));
        assert!(!is_sane_request_id(&[b'a'; 129]));
    }
}
