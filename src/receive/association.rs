//! One accepted association (PS3.8 9.3, PS3.7 9.1): P-DATA fragments are joined into DIMSE
//! messages, C-ECHO is answered, C-STORE data sets go to the [`Store`], and the association ends
//! on A-RELEASE, A-ABORT, silence past the idle timeout, or node shutdown.
//!
//! A data set is only handed to the store once its last fragment has arrived, so an association
//! aborted mid-transfer leaves nothing behind.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use dicom_ul::association::{Association, AsyncServerAssociation};
use dicom_ul::pdu::{
    AbortRQSource, PDataValue, PDataValueType, Pdu, PresentationContextNegotiated,
    PresentationContextResultReason,
};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Listener;
use crate::dimse::{self, Command, command_field, status};
use crate::store::{Incoming, Outcome, StoreError, Written};

/// Why an association ended before a release.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssociationError {
    #[error("receiving from the peer failed: {0}")]
    Receive(dicom_ul::association::Error),

    #[error("sending to the peer failed: {0}")]
    Send(dicom_ul::association::Error),

    #[error("malformed DIMSE command: {0}")]
    Command(#[from] dimse::CommandError),

    #[error("P-DATA used presentation context {0}, which was not accepted")]
    UnknownContext(u8),

    #[error("unexpected {0} PDU during the association")]
    UnexpectedPdu(&'static str),

    #[error("DIMSE command {0:#06X} is not supported")]
    UnsupportedCommand(u16),
}

/// A DIMSE message being assembled from P-DATA fragments.
#[derive(Default)]
struct Message {
    context_id: u8,
    command_bytes: Vec<u8>,
    command: Option<Command>,
    data: Vec<u8>,
    oversized: bool,
}

/// The state of one established association.
pub(super) struct Session {
    association: AsyncServerAssociation<TcpStream>,
    listener: Arc<Listener>,
    calling_ae: String,
    called_ae: String,
    message: Option<Message>,
    // The index commit of the last answered instance, still running.
    indexing: Option<tokio::task::JoinHandle<()>>,
}

impl Session {
    pub(super) fn new(
        association: AsyncServerAssociation<TcpStream>,
        listener: Arc<Listener>,
    ) -> Self {
        Session {
            calling_ae: association.peer_ae_title().trim().to_string(),
            called_ae: association.called_ae_title().trim().to_string(),
            association,
            listener,
            message: None,
            indexing: None,
        }
    }

    pub(super) fn calling_ae(&self) -> &str {
        &self.calling_ae
    }

    pub(super) fn called_ae(&self) -> &str {
        &self.called_ae
    }

    pub(super) fn log_established(&self) {
        let accepted = self
            .association
            .presentation_contexts()
            .iter()
            .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
            .count();
        tracing::info!(
            contexts_accepted = accepted,
            peer_max_pdu = self.association.requestor_max_pdu_length(),
            "association established"
        );
    }

    /// Serves DIMSE messages until the association ends.
    pub(super) async fn run(mut self, shutdown: watch::Receiver<bool>) {
        let ended = self.serve(shutdown).await;
        self.finish_indexing().await;
        if let Err(err) = ended {
            tracing::warn!(error = %err, "aborting the association");
            let _ = self.association.abort().await;
        }
    }

    /// Handles PDUs until a release, an abort or node shutdown; an error means the association
    /// must be aborted.
    async fn serve(&mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), AssociationError> {
        loop {
            let idle = self.message.is_none();
            let pdu = tokio::select! {
                pdu = self.association.receive() => pdu,
                _ = super::stopped(&mut shutdown), if idle => {
                    self.close_for_shutdown().await;
                    return Ok(());
                }
            };
            if !self.on_pdu(pdu).await? {
                return Ok(());
            }
        }
    }

    /// At shutdown, gives the peer a moment to release (it often does right after its last
    /// answer) before aborting.
    async fn close_for_shutdown(&mut self) {
        let grace = std::time::Duration::from_secs(1);
        if let Ok(Ok(Pdu::ReleaseRQ)) =
            tokio::time::timeout(grace, self.association.receive()).await
        {
            self.finish_indexing().await;
            let _ = self.association.send(&Pdu::ReleaseRP).await;
            tracing::info!("association released at shutdown");
            return;
        }
        tracing::info!("node is stopping: aborting the idle association");
        let reason = dicom_ul::pdu::AbortRQServiceProviderReason::ReasonNotSpecified;
        let abort = Pdu::AbortRQ { source: AbortRQSource::ServiceProvider(reason) };
        let _ = self.association.send(&abort).await;
    }

    /// Handles one PDU; `Ok(false)` ends the association.
    async fn on_pdu(
        &mut self,
        pdu: Result<Pdu, dicom_ul::association::Error>,
    ) -> Result<bool, AssociationError> {
        match pdu.map_err(AssociationError::Receive)? {
            Pdu::PData { data } => {
                for value in data {
                    self.on_fragment(value).await?;
                }
                Ok(true)
            }
            Pdu::ReleaseRQ => {
                self.finish_indexing().await;
                self.association.send(&Pdu::ReleaseRP).await.map_err(AssociationError::Send)?;
                tracing::info!("association released");
                Ok(false)
            }
            Pdu::AbortRQ { source } => {
                let partial = self.message.is_some();
                tracing::warn!(source = ?abort_source(&source), partial_message = partial, "peer aborted the association");
                Ok(false)
            }
            other => Err(AssociationError::UnexpectedPdu(pdu_name(&other))),
        }
    }

    async fn on_fragment(&mut self, value: PDataValue) -> Result<(), AssociationError> {
        let max = self.listener.settings.max_instance_bytes;
        let message = self.message.get_or_insert_with(|| Message {
            context_id: value.presentation_context_id,
            ..Message::default()
        });

        match value.value_type {
            PDataValueType::Command => {
                message.command_bytes.extend_from_slice(&value.data);
                if value.is_last {
                    message.command = Some(Command::decode(&message.command_bytes)?);
                }
            }
            PDataValueType::Data if message.data.len() as u64 + value.data.len() as u64 > max => {
                message.oversized = true;
                message.data = Vec::new();
            }
            PDataValueType::Data if !message.oversized => {
                message.data.extend_from_slice(&value.data)
            }
            PDataValueType::Data => {}
        }

        if message_complete(message, &value) {
            let message = self.message.take().expect("message is present");
            self.on_message(message).await?;
        }
        Ok(())
    }

    async fn on_message(&mut self, message: Message) -> Result<(), AssociationError> {
        let command = message.command.clone().expect("complete messages have a command");
        match command.command_field()? {
            command_field::C_ECHO_RQ => self.on_echo(&message, &command).await,
            command_field::C_STORE_RQ => self.on_store(message, &command).await,
            other => Err(AssociationError::UnsupportedCommand(other)),
        }
    }

    async fn on_echo(
        &mut self,
        message: &Message,
        command: &Command,
    ) -> Result<(), AssociationError> {
        let response = dimse::echo_response(command.message_id()?, "1.2.840.10008.1.1");
        tracing::debug!("C-ECHO answered");
        self.send_command(message.context_id, response).await
    }

    async fn on_store(
        &mut self,
        message: Message,
        command: &Command,
    ) -> Result<(), AssociationError> {
        let context = self.context(message.context_id)?.clone();
        let sop_class = command.affected_sop_class_uid()?;
        let sop_instance = command.affected_sop_instance_uid()?;

        let (code, comment, written) = if message.oversized {
            tracing::warn!(sop_instance_uid = %sop_instance, "instance refused: larger than dicom.max_instance_mib");
            let comment = "instance exceeds the configured size limit".to_string();
            (status::OUT_OF_RESOURCES, Some(comment), None)
        } else {
            self.finish_indexing().await;
            self.store(message.data, &context, &sop_class, &sop_instance).await
        };

        let metric = if status::is_stored(code) {
            &self.listener.metrics.instances_received
        } else {
            &self.listener.metrics.instances_refused
        };
        metric.fetch_add(1, Ordering::Relaxed);

        let response = dimse::store_response(
            command.message_id()?,
            &sop_class,
            &sop_instance,
            code,
            comment.as_deref(),
        );
        self.send_command(message.context_id, response).await?;

        if let Some(written) = written {
            self.index_in_background(written).await;
        }
        Ok(())
    }

    /// Makes a complete data set durable on a blocking thread and maps the result to a C-STORE
    /// status with an error comment. The instance is indexed after the answer, by
    /// [`Session::index_in_background`].
    async fn store(
        &self,
        dataset: Vec<u8>,
        context: &PresentationContextNegotiated,
        sop_class: &str,
        sop_instance: &str,
    ) -> (u16, Option<String>, Option<Written>) {
        let store = self.listener.store.clone();
        let (ts, calling, called) =
            (context.transfer_syntax.clone(), self.calling_ae.clone(), self.called_ae.clone());
        let (class, instance) = (sop_class.to_string(), sop_instance.to_string());

        let result = tokio::task::spawn_blocking(move || {
            store.write(&Incoming {
                dataset: &dataset,
                transfer_syntax: ts.trim_end_matches('\0'),
                sop_class_uid: &class,
                sop_instance_uid: &instance,
                calling_ae: &calling,
                called_ae: &called,
            })
        })
        .await;

        match result {
            Ok(Ok(written)) => {
                let (code, comment) =
                    outcome_status(&written.outcome, sop_instance, &written.tags.study_uid);
                (code, comment, Some(written))
            }
            Ok(Err(err)) => {
                let (code, comment) = failure_status(&err, sop_instance);
                (code, comment, None)
            }
            Err(join) => {
                tracing::error!(sop_instance_uid = %sop_instance, error = %join, "store task failed");
                (status::PROCESSING_FAILURE, Some("internal error while storing".into()), None)
            }
        }
    }

    /// Indexes an answered instance on a blocking thread while the peer sends its next one. At
    /// most one index commit per association is in flight.
    async fn index_in_background(&mut self, written: Written) {
        self.finish_indexing().await;
        let listener = self.listener.clone();
        self.indexing = Some(tokio::task::spawn_blocking(move || index(&listener, written)));
    }

    /// Waits for the index commit in flight, if any.
    async fn finish_indexing(&mut self) {
        if let Some(task) = self.indexing.take()
            && let Err(join) = task.await
        {
            tracing::error!(error = %join, "index task failed");
        }
    }

    fn context(&self, id: u8) -> Result<&PresentationContextNegotiated, AssociationError> {
        self.association
            .presentation_contexts()
            .iter()
            .find(|pc| pc.id == id && pc.reason == PresentationContextResultReason::Acceptance)
            .ok_or(AssociationError::UnknownContext(id))
    }

    /// Sends a command set in one P-DATA PDU; command sets are far below any peer's maximum
    /// PDU length (at least 4096 bytes by PS3.8 D.1).
    async fn send_command(
        &mut self,
        context_id: u8,
        bytes: Vec<u8>,
    ) -> Result<(), AssociationError> {
        let pdu = Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context_id,
                value_type: PDataValueType::Command,
                is_last: true,
                data: bytes,
            }],
        };
        self.association.send(&pdu).await.map_err(AssociationError::Send)
    }
}

/// Indexes an answered instance and tells the listener about it. A failure is logged: the file
/// is durable, and the store indexes it again at the next start.
fn index(listener: &Listener, written: Written) {
    let sop_instance = written.tags.sop_instance_uid.clone();
    match listener.store.index_written(written) {
        Ok((_, tags)) if tags.is_identified() => listener.notify(&tags),
        Ok(_) => {}
        Err(err) => {
            tracing::error!(sop_instance_uid = %sop_instance, error = %err, "stored instance not indexed; the next start indexes it")
        }
    }
}

/// A message is complete when its command is, and its data set too if it has one.
fn message_complete(message: &Message, last: &PDataValue) -> bool {
    let Some(command) = &message.command else {
        return false;
    };
    if !command.has_data_set() {
        return true;
    }
    last.value_type == PDataValueType::Data && last.is_last
}

fn outcome_status(outcome: &Outcome, sop_instance: &str, study_uid: &str) -> (u16, Option<String>) {
    match outcome {
        Outcome::Stored | Outcome::ConflictReplaced => {
            tracing::debug!(sop_instance_uid = %sop_instance, study_uid, ?outcome, "instance stored");
            (status::SUCCESS, None)
        }
        Outcome::Duplicate => {
            tracing::info!(sop_instance_uid = %sop_instance, study_uid, "identical instance already stored");
            (status::SUCCESS, None)
        }
        Outcome::StoredUnidentified => {
            tracing::warn!(sop_instance_uid = %sop_instance, "instance stored without a Study or Series Instance UID; it will not be analysed");
            (
                status::WARNING_COERCION,
                Some("stored; no Study or Series Instance UID, so not analysed".into()),
            )
        }
        Outcome::ConflictKeptFirst => {
            tracing::warn!(sop_instance_uid = %sop_instance, study_uid, "different instance under a stored SOP Instance UID: kept the first");
            (
                status::WARNING_COERCION,
                Some("SOP Instance UID already stored with other content; kept the first".into()),
            )
        }
    }
}

fn failure_status(err: &StoreError, sop_instance: &str) -> (u16, Option<String>) {
    tracing::warn!(sop_instance_uid = %sop_instance, error = %err, "instance refused");
    let code = match err {
        StoreError::Parse { .. } | StoreError::MissingIdentifier { .. } => {
            status::CANNOT_UNDERSTAND
        }
        StoreError::Mismatch { .. } => status::DATASET_MISMATCH,
        StoreError::DuplicateRejected { .. } => status::DUPLICATE_SOP_INSTANCE,
        StoreError::UnknownTransferSyntax { .. } => status::CANNOT_UNDERSTAND,
        StoreError::File(crate::store::files::FileError::BadUid { .. }) => {
            status::CANNOT_UNDERSTAND
        }
        _ => status::OUT_OF_RESOURCES,
    };
    (code, Some(err.to_string()))
}

fn abort_source(source: &AbortRQSource) -> &'static str {
    match source {
        AbortRQSource::ServiceUser => "service-user",
        AbortRQSource::ServiceProvider(_) => "service-provider",
        AbortRQSource::Reserved => "reserved",
    }
}

fn pdu_name(pdu: &Pdu) -> &'static str {
    match pdu {
        Pdu::AssociationRQ { .. } => "A-ASSOCIATE-RQ",
        Pdu::AssociationAC { .. } => "A-ASSOCIATE-AC",
        Pdu::AssociationRJ { .. } => "A-ASSOCIATE-RJ",
        Pdu::ReleaseRP => "A-RELEASE-RP",
        _ => "unknown",
    }
}
