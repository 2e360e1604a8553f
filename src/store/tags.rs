//! The attributes Argus indexes from each received data set (PS3.3 C.7: Patient, General Study,
//! Patient Study, General Series and SOP Common modules).

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde::{Deserialize, Serialize};

/// The indexed attributes of one instance. Patient attributes are kept for the index only and
/// never logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceTags {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_uid: String,
    pub series_uid: String,
    pub modality: String,
    pub body_part: String,
    pub study_description: String,
    pub series_description: String,
    pub study_date: String,
    pub patient_id: String,
    pub patient_name: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub patient_age: String,
    pub series_number: String,
    pub instance_number: String,
}

impl InstanceTags {
    /// Reads the indexed attributes; absent ones are empty strings.
    pub fn from_object(obj: &InMemDicomObject) -> InstanceTags {
        let text = |tag: Tag| text_of(obj, tag);
        InstanceTags {
            sop_class_uid: text(tags::SOP_CLASS_UID),
            sop_instance_uid: text(tags::SOP_INSTANCE_UID),
            study_uid: text(tags::STUDY_INSTANCE_UID),
            series_uid: text(tags::SERIES_INSTANCE_UID),
            modality: text(tags::MODALITY),
            body_part: text(tags::BODY_PART_EXAMINED),
            study_description: text(tags::STUDY_DESCRIPTION),
            series_description: text(tags::SERIES_DESCRIPTION),
            study_date: text(tags::STUDY_DATE),
            patient_id: text(tags::PATIENT_ID),
            patient_name: text(tags::PATIENT_NAME),
            patient_birth_date: text(tags::PATIENT_BIRTH_DATE),
            patient_sex: text(tags::PATIENT_SEX),
            patient_age: text(tags::PATIENT_AGE),
            series_number: text(tags::SERIES_NUMBER),
            instance_number: text(tags::INSTANCE_NUMBER),
        }
    }

    /// The first of the UIDs that every stored instance needs but this one lacks.
    pub fn missing_identifier(&self) -> Option<&'static str> {
        [("SOPClassUID", &self.sop_class_uid), ("SOPInstanceUID", &self.sop_instance_uid)]
            .into_iter()
            .find(|(_, value)| value.is_empty())
            .map(|(name, _)| name)
    }

    /// Whether the instance names its study and series, without which it cannot be grouped
    /// or analysed (it is still stored).
    pub fn is_identified(&self) -> bool {
        !self.study_uid.is_empty() && !self.series_uid.is_empty()
    }
}

/// An attribute's value as trimmed text, or empty when absent or not text.
///
/// `get` rather than `element_opt`: dicom-object builds an error, with a captured backtrace,
/// for every absent attribute `element_opt` is asked for.
pub fn text_of(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim_start().to_string())
        .unwrap_or_default()
}
