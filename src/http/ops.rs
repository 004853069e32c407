//! Operator endpoints: liveness, readiness, Prometheus metrics.

use actix_web::{HttpResponse, web};

use super::api_types::*;
use crate::error::ApiError;
use crate::server::AppState;

/// The process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    summary = "Liveness",
    responses((status = 200, description = "Alive", body = Health))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Ready for traffic: the store answers and the node is not draining.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    summary = "Readiness: the store answers and the node is not draining",
    responses((status = 200, description = "Ready", body = Readiness), (status = 503, description = "unavailable", body = ErrorBody))
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::Unavailable);
    }
    state.store.ping().await?;
    // The object store is named, not probed: a network round trip to S3 on every readiness
    // probe would cost more than it tells (uploads report their own failures).
    Ok(HttpResponse::Ok().json(Readiness {
        status: "ready",
        database: format!("{:?}", state.store.kind()).to_lowercase(),
        storage: state.objects.kind(),
    }))
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    metrics::gauge!(crate::metrics::PERSIST_QUEUE_DEPTH).set(state.persister.depth() as f64);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
