//! The running node: opens the store, starts the DICOM listener, and stops everything cleanly
//! when asked (SIGTERM or Ctrl-C), letting in-flight stores finish.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::receive::{self, Listener};
use crate::store::Store;

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),

    #[error("cannot listen for DICOM on {addr}: {source}")]
    BindDicom { addr: std::net::SocketAddr, source: std::io::Error },

    #[error("DICOM listener failed: {0}")]
    Listener(std::io::Error),
}

/// Runs the node until `shutdown` turns true.
pub async fn run(settings: Settings, shutdown: watch::Receiver<bool>) -> Result<(), NodeError> {
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(Store::open(&settings.data_dir, settings.dicom.duplicate_policy)?);

    let tcp = receive::bind(&settings.dicom)
        .await
        .map_err(|source| NodeError::BindDicom { addr: settings.dicom.addr, source })?;
    tracing::info!(
        ae_title = %settings.dicom.ae_title,
        addr = %tcp.local_addr().map_err(NodeError::Listener)?,
        data_dir = %settings.data_dir.display(),
        "DICOM listener ready"
    );

    let listener = Arc::new(Listener::new(settings.dicom.clone(), store, metrics));
    receive::serve(tcp, listener, shutdown).await.map_err(NodeError::Listener)
}
