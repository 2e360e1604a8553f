//! What every object Argus writes shares with its source: the Patient, General Study and
//! Patient Study modules (PS3.3 C.7.1.1, C.7.2.1, C.7.2.2) copied so the PACS files the object in
//! the right study; the Specific Character Set (PS3.3 C.12.1.1.2) that can carry the copied
//! names; equipment identification (PS3.3 C.7.5.1); and the File Meta Information (PS3.10 7.1).

use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_encoding::text::{SpecificCharacterSet, TextCodec};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{FileDicomObject, InMemDicomObject};
use time::OffsetDateTime;

use super::ReportError;
use crate::store::files::{IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME};

/// The manufacturer written into every object.
pub const MANUFACTURER: &str = "Argus";

/// Argus's version, for Software Versions and the device observer.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The character set that can encode any text (PS3.3 C.12.1.1.2, Unicode in UTF-8).
const UTF8: &str = "ISO_IR 192";

/// Type 2 attributes of the Patient and General Study modules: copied, or written empty.
const REQUIRED: [(Tag, VR); 9] = [
    (tags::PATIENT_NAME, VR::PN),
    (tags::PATIENT_ID, VR::LO),
    (tags::PATIENT_BIRTH_DATE, VR::DA),
    (tags::PATIENT_SEX, VR::CS),
    (tags::STUDY_DATE, VR::DA),
    (tags::STUDY_TIME, VR::TM),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
    (tags::STUDY_ID, VR::SH),
    (tags::ACCESSION_NUMBER, VR::SH),
];

/// Type 3 attributes of the same modules and of Patient Study: copied when present.
const OPTIONAL: [Tag; 12] = [
    tags::ISSUER_OF_PATIENT_ID,
    tags::ISSUER_OF_PATIENT_ID_QUALIFIERS_SEQUENCE,
    tags::PATIENT_BIRTH_TIME,
    tags::OTHER_PATIENT_I_DS_SEQUENCE,
    tags::PATIENT_IDENTITY_REMOVED,
    tags::DEIDENTIFICATION_METHOD,
    tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE,
    tags::ISSUER_OF_ACCESSION_NUMBER_SEQUENCE,
    tags::STUDY_DESCRIPTION,
    tags::PATIENT_AGE,
    tags::PATIENT_SIZE,
    tags::PATIENT_WEIGHT,
];

/// Value representations whose text depends on the Specific Character Set.
const TEXT_VRS: [VR; 7] = [VR::PN, VR::LO, VR::SH, VR::ST, VR::LT, VR::UT, VR::UC];

/// Copies the patient and study attributes of `source` into `target`, after checking that the
/// source belongs to the analysed study.
pub fn copy_patient_and_study(
    source: &InMemDicomObject,
    study_uid: &str,
    target: &mut InMemDicomObject,
) -> Result<(), ReportError> {
    let source_study = text(source, tags::STUDY_INSTANCE_UID);
    if source_study != study_uid {
        return Err(ReportError::StudyMismatch {
            analysis_study: study_uid.to_string(),
            source_study,
        });
    }
    target.put(DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, study_uid));

    for (tag, vr) in REQUIRED {
        match copyable(source, tag) {
            Some(element) => target.put(element.clone()),
            None => target.put(DataElement::empty(tag, vr)),
        };
    }
    for tag in OPTIONAL {
        if let Some(element) = copyable(source, tag) {
            target.put(element.clone());
        }
    }
    Ok(())
}

/// An element of `source` worth copying: present and of a known value representation.
fn copyable(source: &InMemDicomObject, tag: Tag) -> Option<&DataElement<InMemDicomObject>> {
    source.get(tag).filter(|e| e.vr() != VR::UN)
}

/// Sets the Specific Character Set of `target`: the source's when it can encode every text
/// value `target` carries, no value when all of it is ASCII and the source had none, and
/// ISO_IR 192 otherwise.
pub fn set_character_set(source: &InMemDicomObject, target: &mut InMemDicomObject) {
    let declared = source
        .get(tags::SPECIFIC_CHARACTER_SET)
        .and_then(|e| e.to_multi_str().ok())
        .map(|values| values.iter().map(|v| v.trim().to_string()).collect::<Vec<_>>())
        .unwrap_or_default();

    let mut texts = Vec::new();
    collect_texts(target, &mut texts);
    let chosen = choose_character_set(&declared, &texts);

    target.remove_element(tags::SPECIFIC_CHARACTER_SET);
    if let Some(values) = chosen {
        target.put(DataElement::new(tags::SPECIFIC_CHARACTER_SET, VR::CS, values.join("\\")));
    }
}

/// The decision behind [`set_character_set`], on the source's declared values and the texts.
fn choose_character_set(declared: &[String], texts: &[String]) -> Option<Vec<String>> {
    let ascii = texts.iter().all(|t| t.is_ascii());
    let declared_any = declared.iter().any(|v| !v.is_empty());
    if ascii {
        return declared_any.then(|| declared.to_vec());
    }

    // Code extensions (several values) cannot be re-encoded faithfully here: use Unicode.
    if let [single] = declared
        && let Some(charset) = SpecificCharacterSet::from_code(single)
        && texts.iter().all(|t| charset.encode(t).is_ok())
    {
        return Some(vec![single.clone()]);
    }
    Some(vec![UTF8.to_string()])
}

/// Every character-set dependent text value in `obj` and its sequences.
fn collect_texts(obj: &InMemDicomObject, out: &mut Vec<String>) {
    for element in obj.iter() {
        if let Some(items) = element.items() {
            items.iter().for_each(|item| collect_texts(item, out));
        } else if TEXT_VRS.contains(&element.vr())
            && let Ok(value) = element.to_str()
        {
            out.push(value.into_owned());
        }
    }
}

/// Content and creation date and time, in UTC. No Timezone Offset From UTC is written: it would
/// also apply to the study date and time copied from the source, which are in the source's time.
// TODO(#4): Write local time once the node knows its time zone; UTC can put an AI result
// minutes or hours away from the study's local times in a viewer.
pub struct Timestamp {
    pub date: String,
    pub time: String,
}

impl Timestamp {
    pub fn now() -> Timestamp {
        let now = OffsetDateTime::now_utc();
        Timestamp {
            date: format!("{:04}{:02}{:02}", now.year(), u8::from(now.month()), now.day()),
            time: format!("{:02}{:02}{:02}", now.hour(), now.minute(), now.second()),
        }
    }

    /// Writes the instance creation date and time (SOP Common Module).
    pub fn put_creation(&self, target: &mut InMemDicomObject) {
        target.put(DataElement::new(tags::INSTANCE_CREATION_DATE, VR::DA, self.date.as_str()));
        target.put(DataElement::new(tags::INSTANCE_CREATION_TIME, VR::TM, self.time.as_str()));
    }
}

/// Writes the General Equipment Module (PS3.3 C.7.5.1) naming Argus.
pub fn put_equipment(target: &mut InMemDicomObject) {
    target.put(DataElement::new(tags::MANUFACTURER, VR::LO, MANUFACTURER));
    target.put(DataElement::new(tags::MANUFACTURER_MODEL_NAME, VR::LO, MANUFACTURER));
    target.put(DataElement::new(tags::SOFTWARE_VERSIONS, VR::LO, VERSION));
}

/// Wraps `obj` with a File Meta Information group for Explicit VR Little Endian.
pub fn with_file_meta(
    obj: InMemDicomObject,
) -> Result<FileDicomObject<InMemDicomObject>, ReportError> {
    let sop_instance_uid = text(&obj, tags::SOP_INSTANCE_UID);
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME);
    obj.with_meta(meta)
        .map_err(|source| ReportError::FileMeta { sop_instance_uid, source: Box::new(source) })
}

/// An attribute's value as trimmed text, empty when absent.
pub fn text(obj: &InMemDicomObject, tag: Tag) -> String {
    crate::store::tags::text_of(obj, tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::header::HasLength;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn ascii_text_keeps_the_source_declaration() {
        let declared = strings(&["ISO_IR 100"]);

        assert_eq!(choose_character_set(&declared, &strings(&["Doe^J"])), Some(declared));
        assert_eq!(choose_character_set(&[], &strings(&["Doe^J"])), None);
    }

    #[test]
    fn latin_names_stay_latin_when_declared_so() {
        let declared = strings(&["ISO_IR 100"]);

        let chosen = choose_character_set(&declared, &strings(&["Müller^Jürgen"]));

        assert_eq!(chosen, Some(declared));
    }

    #[test]
    fn undeclared_or_unencodable_text_goes_to_utf8() {
        let utf8 = Some(strings(&["ISO_IR 192"]));

        assert_eq!(choose_character_set(&[], &strings(&["Zoë"])), utf8);
        assert_eq!(choose_character_set(&strings(&["ISO_IR 100"]), &strings(&["Ωμέγα"])), utf8);
        let extended = strings(&["", "ISO 2022 IR 87"]);
        assert_eq!(choose_character_set(&extended, &strings(&["山田^太郎"])), utf8);
    }

    #[test]
    fn a_source_from_another_study_is_refused() {
        let source = InMemDicomObject::from_element_iter([DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            "1.2.3",
        )]);
        let mut target = InMemDicomObject::new_empty();

        let result = copy_patient_and_study(&source, "1.2.4", &mut target);

        assert!(matches!(result, Err(ReportError::StudyMismatch { .. })));
    }

    #[test]
    fn type_2_attributes_are_written_empty_when_missing() {
        let source = InMemDicomObject::from_element_iter([DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            "1.2.3",
        )]);
        let mut target = InMemDicomObject::new_empty();

        copy_patient_and_study(&source, "1.2.3", &mut target).unwrap();

        assert!(target.get(tags::PATIENT_NAME).is_some_and(|e| e.is_empty()));
        assert!(target.get(tags::PATIENT_AGE).is_none());
    }
}
