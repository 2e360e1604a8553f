//! Hand-made analyses and source data sets for the unit tests of the report writers.

use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use ndarray::{Array2, Array3};

use crate::findings::{Analysis, Code, Finding, Heatmap, Location, ModelRef, SourceImage};

pub const STUDY: &str = "1.2.826.0.1.3680043.10.1";

pub fn image(n: u32, frames: u32) -> SourceImage {
    SourceImage {
        sop_class_uid: uids::CT_IMAGE_STORAGE.to_string(),
        sop_instance_uid: format!("{STUDY}.3.{n}"),
        series_uid: format!("{STUDY}.2"),
        frames,
    }
}

pub fn finding(probability: f32, on: &SourceImage, bbox: bool) -> Finding {
    Finding {
        label: "nodule".into(),
        code: Code { scheme: "SCT".into(), value: "27925004".into(), meaning: "Nodule".into() },
        probability,
        present: probability >= 0.5,
        priority: false,
        location: Some(Location {
            sop_instance_uid: on.sop_instance_uid.clone(),
            sop_class_uid: on.sop_class_uid.clone(),
            frame: 2,
            point: [10.0, 12.0],
            bbox: bbox.then_some([5.0, 6.0, 15.0, 18.0]),
            patient_xyz: Some([1.0, 2.0, 3.0]),
        }),
    }
}

pub fn analysis(sources: Vec<SourceImage>, findings: Vec<Finding>) -> Analysis {
    Analysis {
        study_uid: STUDY.into(),
        model: ModelRef {
            id: "m".into(),
            version: "1".into(),
            name: "Model".into(),
            intended_use: "Testing only.".into(),
            provider: "cpu".into(),
        },
        findings,
        sources,
        heatmap: None,
    }
}

pub fn heatmap(source: &SourceImage, slices: usize, rows: usize, cols: usize) -> Heatmap {
    Heatmap {
        source: source.clone(),
        frame: 1,
        windowed: Array3::from_elem((slices, rows, cols), 0.5),
        maps: Array3::from_elem((slices, rows, cols), 0.25),
        raw: Array2::zeros((2, 2)),
    }
}

/// A source data set of the test study with the given size and frame of reference.
pub fn source(rows: u16, cols: u16, frame_of_reference: Option<&str>) -> InMemDicomObject {
    let mut obj = InMemDicomObject::from_element_iter([
        DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, STUDY),
        DataElement::new(tags::PATIENT_NAME, VR::PN, "Test^Patient"),
        DataElement::new(tags::ROWS, VR::US, dicom_core::PrimitiveValue::from(rows)),
        DataElement::new(tags::COLUMNS, VR::US, dicom_core::PrimitiveValue::from(cols)),
    ]);
    if let Some(uid) = frame_of_reference {
        obj.put(DataElement::new(tags::FRAME_OF_REFERENCE_UID, VR::UI, uid));
    }
    obj
}
