//! The HTTP side for operators: liveness and readiness probes, the jobs with their stages,
//! timings and errors, and Prometheus metrics. Errors become plain status codes; internals never
//! reach the response body.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::metrics::Metrics;
use crate::pipeline::jobs::{Job, Jobs, Stage};
use crate::send::{self, OutboxItem};

/// What the handlers read.
#[derive(Clone)]
pub struct AdminState {
    pub jobs: Jobs,
    pub metrics: Arc<Metrics>,
    /// True once the store is open, models are loaded and the listener is up.
    pub ready: Arc<AtomicBool>,
}

/// The router; served by the node, tested without a socket.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(job_detail))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AdminState>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response()
    }
}

async fn list_jobs(State(state): State<AdminState>) -> Result<Json<Vec<Job>>, StatusCode> {
    state.jobs.all().map(Json).map_err(internal)
}

#[derive(Serialize)]
struct JobDetail {
    job: Job,
    outbox: Vec<OutboxItem>,
}

async fn job_detail(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<JobDetail>, StatusCode> {
    let job = state.jobs.get(&id).map_err(internal)?.ok_or(StatusCode::NOT_FOUND)?;
    let outbox = send::items_of_job(state.jobs.database(), &id).map_err(internal)?;
    Ok(Json(JobDetail { job, outbox }))
}

async fn metrics(State(state): State<AdminState>) -> Result<Response, StatusCode> {
    let jobs = state.jobs.all().map_err(internal)?;
    for stage in Stage::ALL {
        let count = jobs.iter().filter(|j| j.stage == stage).count();
        state.metrics.set("argus_jobs", &format!("state=\"{}\"", stage.name()), count as f64);
    }
    let body = state.metrics.render();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

fn internal(err: impl std::fmt::Display) -> StatusCode {
    tracing::error!(error = %err, "HTTP request failed");
    StatusCode::INTERNAL_SERVER_ERROR
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn state() -> (tempfile::TempDir, AdminState) {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("db")).unwrap());
        let jobs = Jobs::open(db.clone()).unwrap();
        send::create_table(&db).unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        (dir, AdminState { jobs, metrics: Arc::new(Metrics::new()), ready })
    }

    async fn get(router: Router, uri: &str) -> (StatusCode, String) {
        let response =
            router.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&body).to_string())
    }

    #[tokio::test]
    async fn readiness_follows_the_flag() {
        let (_dir, state) = state();
        let ready = state.ready.clone();

        assert_eq!(get(router(state.clone()), "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        ready.store(true, Ordering::Relaxed);
        assert_eq!(get(router(state), "/readyz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_list_jobs_by_state() {
        let (_dir, state) = state();

        let (status, body) = get(router(state), "/metrics").await;

        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("argus_jobs{state=\"done\"} 0"), "{body}");
        assert!(body.contains("argus_instances_received_total"));
    }

    #[tokio::test]
    async fn unknown_job_is_not_found() {
        let (_dir, state) = state();
        assert_eq!(get(router(state), "/jobs/nope").await.0, StatusCode::NOT_FOUND);
    }
}
