//! Findings back as DICOM: a Structured Report that viewers overlay (PS3.16 TID 1500 in a
//! Comprehensive SR, PS3.3 A.35.3, or a Comprehensive 3D SR, A.35.13, when regions are in patient
//! coordinates) and a secondary capture of the Grad-CAM heatmap (PS3.3 A.8.1, A.8.5).
//!
//! Both objects join the source study in new series, carry the source's patient and study
//! attributes, and say that they are AI-generated and unverified. The rest of Argus hands over
//! an [`Analysis`] and one source instance's data set and gets Part 10 objects back, encoded as
//! Explicit VR Little Endian.

mod codes;
mod common;
mod content;
mod items;
mod sc;
mod sr;
#[cfg(test)]
mod testing;

use dicom_object::{FileDicomObject, InMemDicomObject};

use crate::findings::Analysis;
use crate::store::files::IMPLEMENTATION_CLASS_UID;

/// Series number of the SR series, after the scanner's usual range.
pub const DEFAULT_SR_SERIES_NUMBER: i32 = 9001;

/// Series number of the heatmap series.
pub const DEFAULT_SC_SERIES_NUMBER: i32 = 9002;

/// How reports are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSettings {
    /// The root under which every new UID is made ([`crate::uid::generate`]).
    pub uid_root: String,
    /// The Device Observer UID (PS3.16 TID 1004) naming this Argus node in every SR.
    pub device_uid: String,
    pub sr_series_number: i32,
    pub sc_series_number: i32,
}

impl ReportSettings {
    /// Settings with the default series numbers and Argus's implementation UID as the device.
    pub fn new(uid_root: impl Into<String>) -> ReportSettings {
        // TODO(#4): The device observer UID should identify each node and come from the
        // configuration; until then every node uses the implementation class UID.
        ReportSettings {
            uid_root: uid_root.into(),
            device_uid: IMPLEMENTATION_CLASS_UID.to_string(),
            sr_series_number: DEFAULT_SR_SERIES_NUMBER,
            sc_series_number: DEFAULT_SC_SERIES_NUMBER,
        }
    }
}

/// An earlier SR that a new one amends (Predecessor Documents Sequence, PS3.3 C.17.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredecessorRef {
    pub study_uid: String,
    pub series_uid: String,
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("source instance is in study {source_study}, the analysis is of {analysis_study}")]
    StudyMismatch { analysis_study: String, source_study: String },

    #[error("the analysis of study {study_uid} has no finding to report")]
    NoFindings { study_uid: String },

    #[error("a finding is located on {sop_instance_uid}, which is not among the analysed images")]
    UnknownImage { sop_instance_uid: String },

    #[error(
        "heatmap of {sop_instance_uid} has maps {maps:?} but windowed image {windowed:?}, or a \
         size a DICOM image cannot have"
    )]
    HeatmapShape {
        sop_instance_uid: String,
        windowed: (usize, usize, usize),
        maps: (usize, usize, usize),
    },

    #[error(
        "heatmap of {sop_instance_uid} is {heatmap:?} (rows, columns), the source {source_size:?}"
    )]
    HeatmapSize { sop_instance_uid: String, heatmap: (usize, usize), source_size: (usize, usize) },

    #[error("cannot build the file meta group of {sop_instance_uid}: {source}")]
    FileMeta { sop_instance_uid: String, source: Box<dicom_object::WithMetaError> },
}

/// Writes the TID 1500 SR of `analysis`. `source` is one analysed instance, whose patient and
/// study attributes the SR copies; `predecessor` is the SR this one amends, if any.
///
/// Every finding becomes a measurement group with its probability and a Present or Absent
/// evaluation, so a study without any finding above the threshold still gets a report that
/// says so.
pub fn structured_report(
    analysis: &Analysis,
    source: &InMemDicomObject,
    predecessor: Option<&PredecessorRef>,
    settings: &ReportSettings,
) -> Result<FileDicomObject<InMemDicomObject>, ReportError> {
    sr::build(analysis, source, predecessor, settings)
}

/// Writes the Grad-CAM secondary capture of `analysis`, or returns `None` when it has no
/// heatmap. `source` is the instance the heatmap explains (for a volume, any of its slices).
// TODO(#4): The SR does not reference the capture written with it, so a viewer cannot go from a
// finding to its heatmap; the two share only the study.
pub fn heatmap_capture(
    analysis: &Analysis,
    source: &InMemDicomObject,
    settings: &ReportSettings,
) -> Result<Option<FileDicomObject<InMemDicomObject>>, ReportError> {
    sc::build(analysis, source, settings)
}
