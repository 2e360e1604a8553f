//! A Storage SCU (PS3.4 B.2, PS3.7 9.1.1): sends one Part 10 file to a peer over a fresh
//! association, proposing the file's own transfer syntax and both uncompressed little endian
//! ones, and re-encoding the data set only when the peer accepts no syntax it is stored in.

use std::path::Path;
use std::time::Duration;

use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::ClientAssociationOptions;
use dicom_ul::association::{AsyncClientAssociation, Error as UlError};
use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu, PresentationContextResultReason};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::config::Peer;
use crate::dimse::{self, Command};
use crate::store::files::split_part10;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";

/// Why a send failed, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },

    #[error("{peer} is unreachable: {reason}")]
    Unreachable { peer: String, reason: String },

    #[error("{peer} rejected the association: {reason}")]
    Rejected { peer: String, reason: String, permanent: bool },

    #[error("{peer} accepted no transfer syntax for SOP class {sop_class}")]
    NoContext { peer: String, sop_class: String },

    #[error("{peer} answered C-STORE with status {status:#06X}: {comment}")]
    Status { peer: String, status: u16, comment: String },

    #[error("exchange with {peer} failed: {reason}")]
    Protocol { peer: String, reason: String },
}

impl SendError {
    /// Failures that will not change by themselves: retrying only repeats them.
    pub fn is_permanent(&self) -> bool {
        match self {
            SendError::Read { .. } | SendError::NoContext { .. } => true,
            SendError::Rejected { permanent, .. } => *permanent,
            // Out of resources (A7xx) and processing failures (0110) may pass; data set
            // errors (A9xx, Cxxx) and refusals such as duplicates will not.
            SendError::Status { status, .. } => !(status & 0xFF00 == 0xA700 || *status == 0x0110),
            SendError::Unreachable { .. } | SendError::Protocol { .. } => false,
        }
    }
}

/// The instance a file holds, read once.
struct Outgoing {
    sop_class: String,
    sop_instance: String,
    transfer_syntax: String,
    raw_dataset: Vec<u8>,
}

/// Sends `path` to `peer` as `calling_ae`; `Ok` carries the (success or warning) status.
pub async fn store_file(
    peer: &Peer,
    calling_ae: &str,
    path: &Path,
    timeout: Duration,
) -> Result<u16, SendError> {
    let outgoing = read_outgoing(path)?;
    let name = format!("{}@{}:{}", peer.ae_title, peer.host, peer.port);

    let mut association = associate(peer, calling_ae, &outgoing, timeout, &name).await?;
    let result = exchange(&mut association, &outgoing, &name).await;
    match &result {
        Ok(_) | Err(SendError::Status { .. }) => {
            let _ = association.release().await;
        }
        Err(_) => {
            let _ = association.abort().await;
        }
    }
    result
}

fn read_outgoing(path: &Path) -> Result<Outgoing, SendError> {
    let read_err = |reason: String| SendError::Read { path: path.display().to_string(), reason };
    let bytes = std::fs::read(path).map_err(|e| read_err(e.to_string()))?;
    let (meta, dataset) = split_part10(&bytes).map_err(read_err)?;
    let trim = |s: &str| s.trim_end_matches(['\0', ' ']).to_string();

    Ok(Outgoing {
        sop_class: trim(meta.media_storage_sop_class_uid()),
        sop_instance: trim(meta.media_storage_sop_instance_uid()),
        transfer_syntax: trim(meta.transfer_syntax()),
        raw_dataset: dataset.to_vec(),
    })
}

async fn associate(
    peer: &Peer,
    calling_ae: &str,
    outgoing: &Outgoing,
    timeout: Duration,
    name: &str,
) -> Result<AsyncClientAssociation<TcpStream>, SendError> {
    let mut syntaxes = vec![outgoing.transfer_syntax.as_str()];
    for ts in [EXPLICIT_LE, IMPLICIT_LE] {
        if !syntaxes.contains(&ts) {
            syntaxes.push(ts);
        }
    }
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(calling_ae)
        .called_ae_title(peer.ae_title.as_str())
        .read_timeout(timeout)
        .write_timeout(timeout)
        .connection_timeout(timeout);
    // One context per syntax, so the peer may accept the file's own one when it can.
    for ts in &syntaxes {
        options = options.with_presentation_context(outgoing.sop_class.as_str(), vec![*ts]);
    }

    let mut association = options
        .establish_async((peer.host.as_str(), peer.port))
        .await
        .map_err(|e| classify(e, name))?;
    // Without TCP_NODELAY every C-STORE waits for a delayed ACK.
    let _ = association.inner_stream().set_nodelay(true);
    Ok(association)
}

fn classify(error: UlError, name: &str) -> SendError {
    match error {
        UlError::Rejected { association_rj, .. } => SendError::Rejected {
            peer: name.to_string(),
            permanent: association_rj.result == dicom_ul::pdu::AssociationRJResult::Permanent,
            reason: format!("{:?}", association_rj.source),
        },
        UlError::Connect { .. } | UlError::ToAddress { .. } => {
            SendError::Unreachable { peer: name.to_string(), reason: error.to_string() }
        }
        other => SendError::Protocol { peer: name.to_string(), reason: other.to_string() },
    }
}

async fn exchange(
    association: &mut AsyncClientAssociation<TcpStream>,
    outgoing: &Outgoing,
    name: &str,
) -> Result<u16, SendError> {
    let (context_id, payload) = choose_payload(association, outgoing, name)?;
    let protocol = |reason: String| SendError::Protocol { peer: name.to_string(), reason };

    let command = dimse::store_request(1, &outgoing.sop_class, &outgoing.sop_instance);
    let command_pdu = Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: context_id,
            value_type: PDataValueType::Command,
            is_last: true,
            data: command,
        }],
    };
    association.send(&command_pdu).await.map_err(|e| protocol(e.to_string()))?;

    // The writer splits the data set into PDUs no larger than the peer's maximum.
    let mut writer = association.send_pdata(context_id);
    writer.write_all(&payload).await.map_err(|e| protocol(e.to_string()))?;
    writer.finish().await.map_err(|e| protocol(e.to_string()))?;

    read_status(association, name).await
}

/// Picks the accepted context, preferring the file's own syntax, and the bytes to send in it.
fn choose_payload(
    association: &AsyncClientAssociation<TcpStream>,
    outgoing: &Outgoing,
    name: &str,
) -> Result<(u8, Vec<u8>), SendError> {
    let accepted: Vec<_> = association
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .collect();
    let no_context =
        || SendError::NoContext { peer: name.to_string(), sop_class: outgoing.sop_class.clone() };

    let trimmed = |ts: &str| ts.trim_end_matches(['\0', ' ']).to_string();
    if let Some(pc) =
        accepted.iter().find(|pc| trimmed(&pc.transfer_syntax) == outgoing.transfer_syntax)
    {
        return Ok((pc.id, outgoing.raw_dataset.clone()));
    }

    let pc = accepted.first().ok_or_else(no_context)?;
    let ts = TransferSyntaxRegistry.get(&trimmed(&pc.transfer_syntax)).ok_or_else(no_context)?;
    Ok((pc.id, transcode(outgoing, ts, name)?))
}

/// The data set re-encoded in `ts`, parsed only now since most peers take the file's own syntax.
fn transcode(
    outgoing: &Outgoing,
    ts: &dicom_encoding::TransferSyntax,
    name: &str,
) -> Result<Vec<u8>, SendError> {
    let protocol = |reason: String| SendError::Protocol { peer: name.to_string(), reason };
    let source = TransferSyntaxRegistry.get(&outgoing.transfer_syntax).ok_or_else(|| {
        protocol(format!("transfer syntax {} is not known", outgoing.transfer_syntax))
    })?;
    let object = InMemDicomObject::read_dataset_with_ts(outgoing.raw_dataset.as_slice(), source)
        .map_err(|e| protocol(e.to_string()))?;

    let mut bytes = Vec::new();
    object.write_dataset_with_ts(&mut bytes, ts).map_err(|e| protocol(e.to_string()))?;
    Ok(bytes)
}

async fn read_status(
    association: &mut AsyncClientAssociation<TcpStream>,
    name: &str,
) -> Result<u16, SendError> {
    let protocol = |reason: String| SendError::Protocol { peer: name.to_string(), reason };
    let mut command_bytes = Vec::new();
    loop {
        match association.receive().await.map_err(|e| protocol(e.to_string()))? {
            Pdu::PData { data } => {
                for value in data {
                    command_bytes.extend_from_slice(&value.data);
                    if value.is_last && value.value_type == PDataValueType::Command {
                        return status_of(&command_bytes, name);
                    }
                }
            }
            other => {
                return Err(protocol(format!("unexpected PDU instead of C-STORE-RSP: {other:?}")));
            }
        }
    }
}

fn status_of(command_bytes: &[u8], name: &str) -> Result<u16, SendError> {
    let protocol = |reason: String| SendError::Protocol { peer: name.to_string(), reason };
    let command = Command::decode(command_bytes).map_err(|e| protocol(e.to_string()))?;
    let status = command.status().map_err(|e| protocol(e.to_string()))?;
    if dimse::status::is_stored(status) {
        return Ok(status);
    }
    Err(SendError::Status {
        peer: name.to_string(),
        status,
        comment: command.error_comment().unwrap_or_default(),
    })
}
