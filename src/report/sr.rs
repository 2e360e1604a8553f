//! The Comprehensive SR and Comprehensive 3D SR documents (PS3.3 A.35.3, A.35.13): the header
//! modules around the TID 1500 content tree. SR Document Series (C.17.1), SR Document General
//! (C.17.2) with its evidence and predecessor references (Hierarchical SOP Instance Reference
//! Macro, C.17.2.1), and SOP Common (C.12.1).

use std::collections::BTreeMap;

use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileDicomObject, InMemDicomObject};

use super::common::{self, Timestamp};
use super::content::{self, Context};
use super::items::{self, truncate};
use super::{PredecessorRef, ReportError, ReportSettings};
use crate::findings::{Analysis, ModelRef};
use crate::uid;

/// Longest Series Description (LO).
const MAX_DESCRIPTION: usize = 64;

/// Builds the SR document for `analysis`; see [`super::structured_report`].
pub fn build(
    analysis: &Analysis,
    source: &InMemDicomObject,
    predecessor: Option<&PredecessorRef>,
    settings: &ReportSettings,
) -> Result<FileDicomObject<InMemDicomObject>, ReportError> {
    if analysis.findings.is_empty() {
        return Err(ReportError::NoFindings { study_uid: analysis.study_uid.clone() });
    }
    let frame_of_reference = common::text(source, tags::FRAME_OF_REFERENCE_UID);
    let frame_of_reference = Some(frame_of_reference.as_str()).filter(|f| !f.is_empty());
    let three_d = frame_of_reference.is_some() && has_patient_points(analysis);
    let ctx = Context { analysis, settings, frame_of_reference, three_d };
    let sop_class =
        if three_d { uids::COMPREHENSIVE3_DSR_STORAGE } else { uids::COMPREHENSIVE_SR_STORAGE };
    let sop_instance_uid = uid::generate(&settings.uid_root);
    let now = Timestamp::now();

    let mut doc = InMemDicomObject::new_empty();
    common::copy_patient_and_study(source, &analysis.study_uid, &mut doc)?;
    put_sop_common(&mut doc, sop_class, &sop_instance_uid, &now);
    put_series(&mut doc, settings, &analysis.model);
    common::put_equipment(&mut doc);
    put_document_general(&mut doc, analysis, predecessor, &now);
    for element in content::measurement_report(&ctx)? {
        doc.put(element);
    }
    common::set_character_set(source, &mut doc);

    tracing::debug!(
        study_uid = %analysis.study_uid,
        sop_instance_uid = %sop_instance_uid,
        model = %analysis.model.id,
        findings = analysis.findings.len(),
        three_d,
        amends = predecessor.is_some(),
        "built structured report"
    );
    common::with_file_meta(doc)
}

/// A volume whose present findings have patient coordinates gets SCOORD3D regions.
fn has_patient_points(analysis: &Analysis) -> bool {
    let volume =
        analysis.sources.len() > 1 || analysis.heatmap.as_ref().is_some_and(|h| h.maps.dim().0 > 1);
    volume
        && analysis
            .findings
            .iter()
            .any(|f| f.present && f.location.as_ref().is_some_and(|l| l.patient_xyz.is_some()))
}

fn put_sop_common(
    doc: &mut InMemDicomObject,
    sop_class: &str,
    sop_instance: &str,
    now: &Timestamp,
) {
    doc.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, sop_class));
    doc.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, sop_instance));
    now.put_creation(doc);
}

/// SR Document Series: a new series, numbered and described as AI results.
fn put_series(doc: &mut InMemDicomObject, settings: &ReportSettings, model: &ModelRef) {
    let series_uid = uid::generate(&settings.uid_root);
    let description = format!("AI results (unverified) - {} {}", model.name, model.version);
    doc.put(DataElement::new(tags::MODALITY, VR::CS, "SR"));
    doc.put(DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, series_uid));
    doc.put(DataElement::new(tags::SERIES_NUMBER, VR::IS, settings.sr_series_number.to_string()));
    doc.put(DataElement::new(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        truncate(&description, MAX_DESCRIPTION),
    ));
    doc.put(items::sequence(tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE, Vec::new()));
}

/// SR Document General: flags, dates, evidence and the document this one amends.
fn put_document_general(
    doc: &mut InMemDicomObject,
    analysis: &Analysis,
    predecessor: Option<&PredecessorRef>,
    now: &Timestamp,
) {
    doc.put(DataElement::new(tags::INSTANCE_NUMBER, VR::IS, "1"));
    doc.put(DataElement::new(tags::CONTENT_DATE, VR::DA, now.date.as_str()));
    doc.put(DataElement::new(tags::CONTENT_TIME, VR::TM, now.time.as_str()));
    doc.put(DataElement::new(tags::PRELIMINARY_FLAG, VR::CS, "PRELIMINARY"));
    doc.put(DataElement::new(tags::COMPLETION_FLAG, VR::CS, "COMPLETE"));
    doc.put(DataElement::new(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED"));
    doc.put(items::sequence(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, Vec::new()));

    let evidence = analysis
        .sources
        .iter()
        .map(|s| (s.series_uid.as_str(), s.sop_class_uid.as_str(), s.sop_instance_uid.as_str()));
    doc.put(items::sequence(
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        vec![study_reference(&analysis.study_uid, evidence)],
    ));

    if let Some(p) = predecessor {
        let earlier =
            [(p.series_uid.as_str(), p.sop_class_uid.as_str(), p.sop_instance_uid.as_str())];
        doc.put(items::sequence(
            tags::PREDECESSOR_DOCUMENTS_SEQUENCE,
            vec![study_reference(&p.study_uid, earlier.into_iter())],
        ));
    }
}

/// One study's item of the Hierarchical SOP Instance Reference Macro, instances grouped by
/// series in the order the series first appear.
fn study_reference<'a>(
    study_uid: &str,
    instances: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
) -> InMemDicomObject {
    let mut order = Vec::new();
    let mut by_series: BTreeMap<&str, Vec<InMemDicomObject>> = BTreeMap::new();
    for (series, class, instance) in instances {
        if !by_series.contains_key(series) {
            order.push(series);
        }
        let reference =
            items::ImageRef { sop_class_uid: class, sop_instance_uid: instance, frame: None };
        by_series.entry(series).or_default().push(items::sop_reference(&reference));
    }

    let series_items = order
        .into_iter()
        .map(|series| {
            let instances = by_series.remove(series).unwrap_or_default();
            InMemDicomObject::from_element_iter([
                DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, series),
                items::sequence(tags::REFERENCED_SOP_SEQUENCE, instances),
            ])
        })
        .collect();
    InMemDicomObject::from_element_iter([
        DataElement::new(tags::STUDY_INSTANCE_UID, VR::UI, study_uid),
        items::sequence(tags::REFERENCED_SERIES_SEQUENCE, series_items),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing;

    fn sop_class(analysis: &Analysis, frame_of_reference: Option<&str>) -> String {
        let source = testing::source(4, 6, frame_of_reference);
        let file = build(analysis, &source, None, &ReportSettings::new("2.25")).unwrap();
        common::text(&file, tags::SOP_CLASS_UID)
    }

    #[test]
    fn volumes_with_patient_points_get_a_3d_document() {
        let images = vec![testing::image(1, 1), testing::image(2, 1)];
        let volume =
            testing::analysis(images.clone(), vec![testing::finding(0.9, &images[1], true)]);
        let single = testing::analysis(
            vec![images[0].clone()],
            vec![testing::finding(0.9, &images[0], true)],
        );

        assert_eq!(sop_class(&volume, Some("1.2.3")), uids::COMPREHENSIVE3_DSR_STORAGE);
        assert_eq!(sop_class(&volume, None), uids::COMPREHENSIVE_SR_STORAGE);
        assert_eq!(sop_class(&single, Some("1.2.3")), uids::COMPREHENSIVE_SR_STORAGE);
    }

    #[test]
    fn an_analysis_without_findings_has_no_report() {
        let analysis = testing::analysis(vec![testing::image(1, 1)], Vec::new());
        let source = testing::source(4, 6, None);

        let result = build(&analysis, &source, None, &ReportSettings::new("2.25"));

        assert!(matches!(result, Err(ReportError::NoFindings { .. })));
    }

    #[test]
    fn evidence_groups_instances_by_series() {
        let instances = [("1.1", "1.2", "1.1.1"), ("1.2", "1.2", "1.2.1"), ("1.1", "1.2", "1.1.2")];

        let item = study_reference("1", instances.into_iter());

        let series = item.get(tags::REFERENCED_SERIES_SEQUENCE).unwrap().items().unwrap();
        assert_eq!(series.len(), 2);
        let first = series[0].get(tags::REFERENCED_SOP_SEQUENCE).unwrap().items().unwrap();
        assert_eq!(first.len(), 2);
    }
}
