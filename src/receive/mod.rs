//! The DICOM listener: a Verification and Storage SCP (PS3.4 Annexes A and B) over the upper
//! layer protocol of PS3.8.
//!
//! The accept loop caps concurrent associations with a semaphore; a request over the cap gets a
//! transient A-ASSOCIATE-RJ ("local limit exceeded", PS3.8 9.3.4). Each association runs in its
//! own task inside a span carrying the peer and AE titles. A shutdown signal stops the accept
//! loop; idle associations are aborted, and a message in progress is finished and answered first.

mod access;
mod association;
pub mod sop_classes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dicom_ul::ServerAssociationOptions;
use dicom_ul::association::server::DefaultNegotiation;
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJSource, Pdu,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::config::DicomSettings;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::store::tags::InstanceTags;
pub use access::AePolicy;
use association::Session;

/// Called after each instance is stored, for example to wake the study assembler.
pub type OnStored = Arc<dyn Fn(&InstanceTags) + Send + Sync>;

/// Everything an association needs, shared by all of them.
pub struct Listener {
    settings: DicomSettings,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    options: ServerAssociationOptions<'static, AePolicy, DefaultNegotiation>,
    on_stored: Option<OnStored>,
}

impl Listener {
    pub fn new(settings: DicomSettings, store: Arc<Store>, metrics: Arc<Metrics>) -> Listener {
        let options = association_options(&settings);
        Listener { settings, store, metrics, options, on_stored: None }
    }

    /// Registers a callback run after each stored instance.
    pub fn on_stored(mut self, callback: OnStored) -> Listener {
        self.on_stored = Some(callback);
        self
    }

    fn notify(&self, tags: &InstanceTags) {
        if let Some(callback) = &self.on_stored {
            callback(tags);
        }
    }
}

/// The negotiation policy: every Storage SOP class and Verification, in every transfer syntax
/// that dicom-rs can parse, choosing the first one the requestor proposes.
fn association_options(
    settings: &DicomSettings,
) -> ServerAssociationOptions<'static, AePolicy, DefaultNegotiation> {
    let policy = AePolicy {
        allowed_callers: settings.allowed_callers.clone(),
        accept_any_called: settings.accept_any_called_ae,
    };
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(policy)
        .ae_title(settings.ae_title.clone())
        .max_pdu_length(settings.max_pdu_length)
        .read_timeout(settings.idle_timeout)
        .write_timeout(settings.idle_timeout)
        .with_abstract_syntax("1.2.840.10008.1.1");
    for (uid, _) in sop_classes::STORAGE_SOP_CLASSES {
        options = options.with_abstract_syntax(*uid);
    }
    options
}

/// Binds the configured address.
pub async fn bind(settings: &DicomSettings) -> std::io::Result<TcpListener> {
    TcpListener::bind(settings.addr).await
}

/// Accepts associations until `shutdown` turns true, then waits for open ones to end.
pub async fn serve(
    tcp: TcpListener,
    listener: Arc<Listener>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(listener.settings.max_associations));
    let mut tasks = JoinSet::new();
    let mut stop = shutdown.clone();

    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            _ = stopped(&mut stop) => break,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Running out of file descriptors must not end the node: back off and retry.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };

        let _ = socket.set_nodelay(true);
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                tasks.spawn(handle(socket, peer, listener.clone(), permit, shutdown.clone()));
            }
            Err(_) => reject_busy(socket, peer, &listener.metrics).await,
        }
        while tasks.try_join_next().is_some() {}
    }

    while tasks.try_join_next().is_some() {}
    tracing::info!(open = tasks.len(), "DICOM listener stopped accepting; draining associations");
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn handle(
    socket: TcpStream,
    peer: SocketAddr,
    listener: Arc<Listener>,
    _permit: OwnedSemaphorePermit,
    shutdown: watch::Receiver<bool>,
) {
    let span = tracing::info_span!(
        "association",
        %peer,
        calling_ae = tracing::field::Empty,
        called_ae = tracing::field::Empty
    );
    let task = async {
        let request = listener.options.establish_async(socket);
        let association = match tokio::time::timeout(listener.settings.request_timeout, request)
            .await
        {
            Ok(Ok(association)) => association,
            Ok(Err(err)) => {
                listener.metrics.associations_rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %err, "association not established");
                return;
            }
            Err(_) => {
                tracing::warn!("no association request within dicom.request_timeout_secs; closed");
                return;
            }
        };

        let session = Session::new(association, listener.clone());
        let span = tracing::Span::current();
        span.record("calling_ae", session.calling_ae());
        span.record("called_ae", session.called_ae());
        session.log_established();

        listener.metrics.associations_open.fetch_add(1, Ordering::Relaxed);
        session.run(shutdown).await;
        listener.metrics.associations_open.fetch_sub(1, Ordering::Relaxed);
    };
    task.instrument(span).await
}

/// Refuses an association over the cap with a transient rejection, so the peer retries later.
async fn reject_busy(mut socket: TcpStream, peer: SocketAddr, metrics: &Metrics) {
    metrics.associations_rejected.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(%peer, "association rejected: too many open associations");

    let pdu = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    let mut bytes = Vec::new();
    if dicom_ul::write_pdu(&mut bytes, &pdu).is_ok() {
        let _ = socket.write_all(&bytes).await;
    }
    let _ = socket.shutdown().await;
}

/// Resolves once the shutdown flag is true; never, if its sender is gone without setting it.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
