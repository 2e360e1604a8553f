//! The coded concepts Argus writes into its reports: DICOM codes (PS3.16 Annex D), SNOMED CT
//! codes from the context groups that TID 1500 names (PS3.16 CID 100, CID 240), a UMLS code
//! that TID 1500 itself uses, and the UCUM unit of a probability (PS3.16 CID 7181).
//!
//! Each concept is spelled once here, with the meaning the standard gives it, so the content
//! builders never carry a bare code value.

use crate::findings::Code;

/// A borrowed coded concept (PS3.3 8.8): scheme designator, code value, code meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concept<'a> {
    pub scheme: &'a str,
    pub value: &'a str,
    pub meaning: &'a str,
}

impl<'a> From<&'a Code> for Concept<'a> {
    fn from(code: &'a Code) -> Self {
        Concept { scheme: &code.scheme, value: &code.value, meaning: &code.meaning }
    }
}

const fn dcm(value: &'static str, meaning: &'static str) -> Concept<'static> {
    Concept { scheme: "DCM", value, meaning }
}

const fn sct(value: &'static str, meaning: &'static str) -> Concept<'static> {
    Concept { scheme: "SCT", value, meaning }
}

/// Document title of TID 1500 (CID 7021).
pub const IMAGING_MEASUREMENT_REPORT: Concept<'static> =
    dcm("126000", "Imaging Measurement Report");

/// TID 1204 Language of Content Item and Descendants.
pub const LANGUAGE_OF_CONTENT: Concept<'static> =
    dcm("121049", "Language of Content Item and Descendants");
pub const ENGLISH_US: Concept<'static> =
    Concept { scheme: "RFC5646", value: "en-US", meaning: "English as used in the United States" };

/// TID 1002 Observer Context and TID 1004 Device Observer Identifying Attributes.
pub const OBSERVER_TYPE: Concept<'static> = dcm("121005", "Observer Type");
pub const DEVICE: Concept<'static> = dcm("121007", "Device");
pub const DEVICE_OBSERVER_UID: Concept<'static> = dcm("121012", "Device Observer UID");
pub const DEVICE_OBSERVER_NAME: Concept<'static> = dcm("121013", "Device Observer Name");
pub const DEVICE_OBSERVER_MANUFACTURER: Concept<'static> =
    dcm("121014", "Device Observer Manufacturer");
pub const DEVICE_OBSERVER_MODEL_NAME: Concept<'static> =
    dcm("121015", "Device Observer Model Name");

/// TID 1500 row "Procedure reported", valued from CID 100.
pub const PROCEDURE_REPORTED: Concept<'static> = dcm("121058", "Procedure reported");
pub const IMAGING_PROCEDURE: Concept<'static> = sct("363679005", "Imaging procedure");

/// TID 1600 Image Library.
pub const IMAGE_LIBRARY: Concept<'static> = dcm("111028", "Image Library");
pub const IMAGE_LIBRARY_GROUP: Concept<'static> = dcm("126200", "Image Library Group");

/// TID 1500 containers.
pub const IMAGING_MEASUREMENTS: Concept<'static> = dcm("126010", "Imaging Measurements");
pub const QUALITATIVE_EVALUATIONS: Concept<'static> =
    Concept { scheme: "UMLS", value: "C0034375", meaning: "Qualitative Evaluations" };

/// TID 1501 / TID 1410 measurement groups and TID 4108 tracking identifiers.
pub const MEASUREMENT_GROUP: Concept<'static> = dcm("125007", "Measurement Group");
pub const TRACKING_IDENTIFIER: Concept<'static> = dcm("112039", "Tracking Identifier");
pub const TRACKING_UID: Concept<'static> = dcm("112040", "Tracking Unique Identifier");
pub const FINDING: Concept<'static> = dcm("121071", "Finding");
pub const IMAGE_REGION: Concept<'static> = dcm("111030", "Image Region");

/// The model's output as a TID 300 measurement: a probability without dimension.
pub const PROBABILITY: Concept<'static> = dcm("122157", "Probability");
pub const RATIO: Concept<'static> = Concept { scheme: "UCUM", value: "{ratio}", meaning: "ratio" };

/// Values of the qualitative evaluation (CID 240).
pub const PRESENT: Concept<'static> = sct("52101004", "Present");
pub const ABSENT: Concept<'static> = sct("272519000", "Absent");

/// TID 4019 Algorithm Identification.
pub const ALGORITHM_NAME: Concept<'static> = dcm("111001", "Algorithm Name");
pub const ALGORITHM_VERSION: Concept<'static> = dcm("111003", "Algorithm Version");
pub const ALGORITHM_PARAMETERS: Concept<'static> = dcm("111002", "Algorithm Parameters");

/// Free text in the report's qualitative evaluations.
pub const COMMENT: Concept<'static> = dcm("121106", "Comment");

/// Purpose of reference of a secondary capture's source image (CID 7202).
pub const SOURCE_FOR_PROCESSING: Concept<'static> =
    dcm("121322", "Source image for image processing operation");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finding_code_borrows_into_a_concept() {
        let code = Code { scheme: "SCT".into(), value: "36118008".into(), meaning: "X".into() };

        let concept = Concept::from(&code);

        assert_eq!((concept.scheme, concept.value, concept.meaning), ("SCT", "36118008", "X"));
    }
}
