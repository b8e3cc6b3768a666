//! Routes both ports serve: liveness, readiness, Prometheus metrics, and the OpenAPI document.

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::{AppState, with_state};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always "ok" while the process serves requests.
    pub status: &'static str,
    pub version: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// "ready" or "not_ready".
    pub status: &'static str,
    pub checks: Vec<ReadinessCheck>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessCheck {
    /// `actor:router`, `actor:scraper`, `redis`, `chroma`…
    pub name: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/health", tag = "system",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn health() -> Result<Response, Rejection> {
    Ok(warp::reply::json(&Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
    .into_response())
}

/// Readiness: every actor is running and every configured backend answers.
#[utoipa::path(get, path = "/ready", tag = "system", responses(
    (status = 200, description = "Ready to serve", body = Readiness),
    (status = 503, description = "An actor is restarting or a backend is down", body = Readiness)))]
pub async fn ready(state: AppState) -> Result<Response, Rejection> {
    let checks: Vec<ReadinessCheck> = state
        .handles
        .readiness()
        .await
        .into_iter()
        .map(|c| ReadinessCheck {
            name: c.name,
            ok: c.ok,
            detail: c.detail,
        })
        .collect();
    let ready = checks.iter().all(|c| c.ok);
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(warp::reply::with_status(warp::reply::json(&body), status).into_response())
}

/// Prometheus text exposition of every Aurora metric.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(state: AppState) -> Result<Response, Rejection> {
    // Upkeep drains histogram buffers; without it they grow between scrapes.
    state.metrics.run_upkeep();
    Ok(warp::reply::with_header(
        state.metrics.render(),
        "content-type",
        "text/plain; version=0.0.4; charset=utf-8",
    )
    .into_response())
}

/// The system routes, with `openapi` as this port's document.
pub fn routes(
    state: AppState,
    openapi: String,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let health = warp::path!("health").and(warp::get()).and_then(health);
    let ready = warp::path!("ready")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and_then(ready);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state(state))
        .and_then(metrics);
    // Built once per listener; each request shares it.
    let openapi: std::sync::Arc<str> = openapi.into();
    let openapi = warp::path!("openapi.json").and(warp::get()).map(move || {
        warp::reply::with_header(openapi.to_string(), "content-type", "application/json")
            .into_response()
    });
    health
        .or(ready)
        .unify()
        .or(metrics)
        .unify()
        .or(openapi)
        .unify()
}
