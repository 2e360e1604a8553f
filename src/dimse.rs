//! DIMSE command sets (PS3.7 9.3 and Annex E): the group 0000 elements that head every C-ECHO
//! and C-STORE message, always encoded in Implicit VR Little Endian (PS3.7 6.3.1).
//!
//! The command set is small and fixed, so it is read and written here directly rather than
//! through a general data set parser; both the SCP and the outbox's SCU use it.

use std::collections::BTreeMap;

/// Command Field values (PS3.7 E.1).
pub mod command_field {
    pub const C_STORE_RQ: u16 = 0x0001;
    pub const C_STORE_RSP: u16 = 0x8001;
    pub const C_ECHO_RQ: u16 = 0x0030;
    pub const C_ECHO_RSP: u16 = 0x8030;
}

/// Status codes Argus returns or reads (PS3.4 B.2.3, PS3.7 C).
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    /// Warning: Coercion of Data Elements. Argus uses it when it kept an earlier, different
    /// instance under the same SOP Instance UID.
    pub const WARNING_COERCION: u16 = 0xB000;
    /// Failure: Refused, out of resources.
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: Data Set does not match SOP Class.
    pub const DATASET_MISMATCH: u16 = 0xA900;
    /// Error: Cannot understand.
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Failure: SOP Class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    /// Failure: Duplicate SOP Instance (PS3.7 C.5.8).
    pub const DUPLICATE_SOP_INSTANCE: u16 = 0x0111;
    /// Failure: Processing failure.
    pub const PROCESSING_FAILURE: u16 = 0x0110;

    /// Whether a C-STORE status means the instance was stored (success or warning).
    pub fn is_stored(code: u16) -> bool {
        code == SUCCESS || code & 0xF000 == 0xB000 || code == 0x0107 || code == 0x0116
    }
}

const COMMAND_DATA_SET_TYPE_NONE: u16 = 0x0101;
const COMMAND_DATA_SET_TYPE_PRESENT: u16 = 0x0000;

/// Element numbers of group 0000 that Argus reads or writes.
mod tag {
    pub const GROUP_LENGTH: u16 = 0x0000;
    pub const AFFECTED_SOP_CLASS_UID: u16 = 0x0002;
    pub const COMMAND_FIELD: u16 = 0x0100;
    pub const MESSAGE_ID: u16 = 0x0110;
    pub const MESSAGE_ID_RESPONDED: u16 = 0x0120;
    pub const PRIORITY: u16 = 0x0700;
    pub const DATA_SET_TYPE: u16 = 0x0800;
    pub const STATUS: u16 = 0x0900;
    pub const ERROR_COMMENT: u16 = 0x0902;
    pub const AFFECTED_SOP_INSTANCE_UID: u16 = 0x1000;
}

/// Why a command set could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    #[error("command set is truncated at byte {offset}")]
    Truncated { offset: usize },

    #[error("command set element (0000,{element:04X}) is missing")]
    Missing { element: u16 },

    #[error("command set holds an element of group {group:04X}, not 0000")]
    WrongGroup { group: u16 },
}

/// A decoded command set: element number to raw value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    elements: BTreeMap<u16, Vec<u8>>,
}

impl Command {
    /// Reads a command set encoded in Implicit VR Little Endian.
    pub fn decode(bytes: &[u8]) -> Result<Command, CommandError> {
        let mut elements = BTreeMap::new();
        let mut offset = 0;
        while offset < bytes.len() {
            let header = bytes.get(offset..offset + 8).ok_or(CommandError::Truncated { offset })?;
            let group = u16::from_le_bytes([header[0], header[1]]);
            let element = u16::from_le_bytes([header[2], header[3]]);
            let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
            if group != 0 {
                return Err(CommandError::WrongGroup { group });
            }

            let start = offset + 8;
            let value = start
                .checked_add(len)
                .and_then(|end| bytes.get(start..end))
                .ok_or(CommandError::Truncated { offset })?;
            elements.insert(element, value.to_vec());
            offset = start + len;
        }
        Ok(Command { elements })
    }

    pub fn command_field(&self) -> Result<u16, CommandError> {
        self.u16(tag::COMMAND_FIELD)
    }

    pub fn message_id(&self) -> Result<u16, CommandError> {
        self.u16(tag::MESSAGE_ID)
    }

    pub fn message_id_responded(&self) -> Result<u16, CommandError> {
        self.u16(tag::MESSAGE_ID_RESPONDED)
    }

    pub fn status(&self) -> Result<u16, CommandError> {
        self.u16(tag::STATUS)
    }

    pub fn has_data_set(&self) -> bool {
        self.u16(tag::DATA_SET_TYPE).map(|t| t != COMMAND_DATA_SET_TYPE_NONE).unwrap_or(false)
    }

    pub fn affected_sop_class_uid(&self) -> Result<String, CommandError> {
        self.uid(tag::AFFECTED_SOP_CLASS_UID)
    }

    pub fn affected_sop_instance_uid(&self) -> Result<String, CommandError> {
        self.uid(tag::AFFECTED_SOP_INSTANCE_UID)
    }

    pub fn error_comment(&self) -> Option<String> {
        self.elements.get(&tag::ERROR_COMMENT).map(|v| text(v))
    }

    fn u16(&self, element: u16) -> Result<u16, CommandError> {
        self.elements
            .get(&element)
            .and_then(|v| v.get(..2))
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or(CommandError::Missing { element })
    }

    fn uid(&self, element: u16) -> Result<String, CommandError> {
        self.elements.get(&element).map(|v| text(v)).ok_or(CommandError::Missing { element })
    }
}

fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).trim_end_matches(['\0', ' ']).to_string()
}

/// Builds a command set element by element and encodes it with its group length.
#[derive(Debug, Default)]
struct Encoder {
    body: Vec<u8>,
}

impl Encoder {
    fn u16(mut self, element: u16, value: u16) -> Self {
        self.element(element, &value.to_le_bytes());
        self
    }

    /// UIDs are padded with NUL and text with a space to an even length (PS3.5 6.2).
    fn text(mut self, element: u16, value: &str, pad: u8) -> Self {
        let mut bytes = value.as_bytes().to_vec();
        if bytes.len() % 2 == 1 {
            bytes.push(pad);
        }
        self.element(element, &bytes);
        self
    }

    fn element(&mut self, element: u16, value: &[u8]) {
        self.body.extend_from_slice(&0u16.to_le_bytes());
        self.body.extend_from_slice(&element.to_le_bytes());
        self.body.extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.body.extend_from_slice(value);
    }

    fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 12);
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&tag::GROUP_LENGTH.to_le_bytes());
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// A C-ECHO-RSP with status Success (PS3.7 9.3.5.2).
pub fn echo_response(message_id: u16, sop_class_uid: &str) -> Vec<u8> {
    Encoder::default()
        .text(tag::AFFECTED_SOP_CLASS_UID, sop_class_uid, 0)
        .u16(tag::COMMAND_FIELD, command_field::C_ECHO_RSP)
        .u16(tag::MESSAGE_ID_RESPONDED, message_id)
        .u16(tag::DATA_SET_TYPE, COMMAND_DATA_SET_TYPE_NONE)
        .u16(tag::STATUS, status::SUCCESS)
        .finish()
}

/// A C-STORE-RSP (PS3.7 9.3.1.2), with an Error Comment when the status is not success.
pub fn store_response(
    message_id: u16,
    sop_class_uid: &str,
    sop_instance_uid: &str,
    status_code: u16,
    comment: Option<&str>,
) -> Vec<u8> {
    let mut encoder = Encoder::default()
        .text(tag::AFFECTED_SOP_CLASS_UID, sop_class_uid, 0)
        .u16(tag::COMMAND_FIELD, command_field::C_STORE_RSP)
        .u16(tag::MESSAGE_ID_RESPONDED, message_id)
        .u16(tag::DATA_SET_TYPE, COMMAND_DATA_SET_TYPE_NONE)
        .u16(tag::STATUS, status_code);
    if let Some(comment) = comment {
        // Error Comment is LO: at most 64 characters.
        let short: String = comment.chars().filter(|c| *c != '\\').take(64).collect();
        encoder = encoder.text(tag::ERROR_COMMENT, &short, b' ');
    }
    encoder.text(tag::AFFECTED_SOP_INSTANCE_UID, sop_instance_uid, 0).finish()
}

/// A C-STORE-RQ with medium priority (PS3.7 9.3.1.1).
pub fn store_request(message_id: u16, sop_class_uid: &str, sop_instance_uid: &str) -> Vec<u8> {
    Encoder::default()
        .text(tag::AFFECTED_SOP_CLASS_UID, sop_class_uid, 0)
        .u16(tag::COMMAND_FIELD, command_field::C_STORE_RQ)
        .u16(tag::MESSAGE_ID, message_id)
        .u16(tag::PRIORITY, 0)
        .u16(tag::DATA_SET_TYPE, COMMAND_DATA_SET_TYPE_PRESENT)
        .text(tag::AFFECTED_SOP_INSTANCE_UID, sop_instance_uid, 0)
        .finish()
}

/// A C-ECHO-RQ (PS3.7 9.3.5.1).
pub fn echo_request(message_id: u16) -> Vec<u8> {
    Encoder::default()
        .text(tag::AFFECTED_SOP_CLASS_UID, "1.2.840.10008.1.1", 0)
        .u16(tag::COMMAND_FIELD, command_field::C_ECHO_RQ)
        .u16(tag::MESSAGE_ID, message_id)
        .u16(tag::DATA_SET_TYPE, COMMAND_DATA_SET_TYPE_NONE)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_request_round_trips() {
        let bytes = store_request(7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3");
        let command = Command::decode(&bytes).unwrap();

        assert_eq!(command.command_field().unwrap(), command_field::C_STORE_RQ);
        assert_eq!(command.message_id().unwrap(), 7);
        assert_eq!(command.affected_sop_instance_uid().unwrap(), "1.2.3");
        assert!(command.has_data_set());
    }

    #[test]
    fn group_length_counts_the_rest() {
        let bytes = echo_response(1, "1.2.840.10008.1.1");
        let length = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(length, bytes.len() - 12);
    }

    #[test]
    fn response_carries_status_and_comment() {
        let bytes = store_response(3, "1.2", "1.2.3", status::CANNOT_UNDERSTAND, Some("bad\\data"));
        let command = Command::decode(&bytes).unwrap();

        assert_eq!(command.status().unwrap(), status::CANNOT_UNDERSTAND);
        assert_eq!(command.error_comment().as_deref(), Some("baddata"));
        assert!(!command.has_data_set());
    }

    #[test]
    fn truncated_command_is_an_error() {
        let bytes = echo_request(1);
        let err = Command::decode(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(matches!(err, CommandError::Truncated { .. }));
    }
}
