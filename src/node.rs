//! The running node: opens the store and the job queue, starts the DICOM listener, the
//! pipeline, the outbox sender and the HTTP endpoints, and stops them all cleanly when asked
//! (SIGTERM or Ctrl-C), letting in-flight stores finish and leaving unfinished jobs resumable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{Notify, watch};

use crate::admin::{self, AdminState};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::pipeline::jobs::Jobs;
use crate::pipeline::{Analyzer, Pipeline, Reporter, assemble::Assembler};
use crate::receive::{self, Listener};
use crate::send::{self, Sender};
use crate::store::Store;
use crate::store::index::IndexError;

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),

    #[error(transparent)]
    Index(#[from] IndexError),

    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },

    #[error("cannot load models: {0}")]
    Models(String),

    #[error("DICOM listener failed: {0}")]
    Listener(std::io::Error),
}

/// The model-facing parts of the node, built from the settings.
pub struct Engines {
    pub analyzer: Arc<dyn Analyzer>,
    pub reporter: Arc<dyn Reporter>,
}

/// Runs the node until `shutdown` turns true.
pub async fn run(
    settings: Settings,
    engines: Engines,
    shutdown: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let store = Store::open(&settings.data_dir, settings.dicom.duplicate_policy)?
        .with_max_dataset_bytes(settings.dicom.max_instance_bytes);
    let store = Arc::new(store.with_hook(Arc::new(Assembler)));
    let jobs = Jobs::open(store.database().clone())?;
    send::create_table(store.database())?;
    store.recover()?;

    let dicom = bind(settings.dicom.addr).await?;
    let http = bind(settings.http_addr).await?;
    tracing::info!(
        ae_title = %settings.dicom.ae_title,
        dicom = %dicom.local_addr().unwrap_or(settings.dicom.addr),
        http = %http.local_addr().unwrap_or(settings.http_addr),
        data_dir = %settings.data_dir.display(),
        "Argus ready: results are AI-generated and unverified"
    );

    let pipeline = Arc::new(Pipeline {
        settings: settings.clone(),
        store: store.clone(),
        jobs: jobs.clone(),
        analyzer: engines.analyzer,
        reporter: engines.reporter,
        metrics: metrics.clone(),
        wake: Arc::new(Notify::new()),
        inference_wake: Arc::new(Notify::new()),
        outbox_wake: Arc::new(Notify::new()),
        outbox_changed: Arc::new(Notify::new()),
    });
    let sender = Sender {
        db: store.database().clone(),
        settings: settings.outbox.clone(),
        peers: settings.peers.clone(),
        calling_ae: settings.dicom.ae_title.clone(),
        metrics: metrics.clone(),
        wake: pipeline.outbox_wake.clone(),
        changed: pipeline.outbox_changed.clone(),
    };
    let wake = pipeline.wake.clone();
    let store_for_checkpoints = store.clone();
    let store_for_close = store.clone();
    let listener = Listener::new(settings.dicom.clone(), store, metrics.clone())
        .on_stored(Arc::new(move |_| wake.notify_waiters()));

    let admin = admin::router(AdminState { jobs, metrics, ready: ready.clone() });
    let http_task = tokio::spawn(serve_http(http, admin, shutdown.clone()));
    let pipeline_task = tokio::spawn(pipeline.run(shutdown.clone()));
    let checkpoint_task = tokio::spawn(checkpoints(store_for_checkpoints, shutdown.clone()));
    let sender_task = tokio::spawn(sender.run(shutdown.clone()));
    ready.store(true, Ordering::Relaxed);

    let served = receive::serve(dicom, Arc::new(listener), shutdown).await;
    let _ = tokio::join!(http_task, pipeline_task, sender_task, checkpoint_task);
    store_for_close.close()?;
    served.map_err(NodeError::Listener)
}

/// Flushes the index a few times a second, so that little is left to re-index after a crash.
async fn checkpoints(store: Arc<Store>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let store = store.clone();
        if let Ok(Err(err)) = tokio::task::spawn_blocking(move || store.checkpoint()).await {
            tracing::error!(error = %err, "index checkpoint failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            _ = receive::stopped(&mut shutdown) => return,
        }
    }
}

async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, NodeError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| NodeError::Bind { addr, source })
}

async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let stop = async move { receive::stopped(&mut shutdown).await };
    if let Err(err) = axum::serve(listener, router).with_graceful_shutdown(stop).await {
        tracing::error!(error = %err, "HTTP server failed");
    }
}
