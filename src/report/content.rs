//! The content tree of an Argus report, PS3.16 TID 1500 Measurement Report:
//!
//! ```text
//! CONTAINER Imaging Measurement Report (TID 1500)
//!   HAS CONCEPT MOD  Language of Content Item and Descendants     TID 1204
//!   HAS OBS CONTEXT  Observer Type = Device, Device Observer ...  TID 1002, TID 1004
//!   HAS CONCEPT MOD  Procedure reported = Imaging procedure
//!   CONTAINS         Image Library > Image Library Group > IMAGE  TID 1600, TID 1601
//!   CONTAINS         Imaging Measurements
//!     CONTAINS       Measurement Group, one per finding            TID 1410 or TID 1501
//!       HAS OBS CONTEXT  Tracking Identifier, Tracking Unique Identifier (TID 4108)
//!       CONTAINS         Finding = the model's code for the label
//!       CONTAINS         Image Region: SCOORD selected from the source image, or SCOORD3D
//!       CONTAINS         Probability (NUM, UCUM {ratio})           TID 300
//!         HAS CONCEPT MOD  Algorithm Name, Version, Parameters     TID 4019
//!       CONTAINS         <finding> = Present | Absent              qualitative evaluation
//!   CONTAINS         Qualitative Evaluations: that the result is AI-generated and
//!                    unverified, the model's intended use, and a summary
//! ```
//!
//! A finding that is present and located gets TID 1410 Planar ROI Measurements with its region,
//! which OHIF draws and highdicom reads as a planar ROI group; any other finding gets TID 1501,
//! without a region, so that an absent finding is never drawn.

use dicom_object::InMemDicomObject;

use super::codes::{self, Concept};
use super::common::{MANUFACTURER, VERSION};
use super::items::{self, Graphic, ImageRef, Relationship};
use super::{ReportError, ReportSettings};
use crate::findings::{Analysis, Finding, ModelRef};
use crate::uid;

/// What the content builders need beyond the analysis.
pub struct Context<'a> {
    pub analysis: &'a Analysis,
    pub settings: &'a ReportSettings,
    /// The source's Frame of Reference UID; SCOORD3D regions are written only with one.
    pub frame_of_reference: Option<&'a str>,
    /// Whether regions with patient coordinates are written as SCOORD3D.
    pub three_d: bool,
}

/// Where a measurement group's region is.
enum Region<'a> {
    Planar { graphic: Graphic, on: ImageRef<'a> },
    Patient { point: [f64; 3], frame_of_reference: &'a str },
}

/// The root content item: the whole TID 1500 tree.
pub fn measurement_report(ctx: &Context<'_>) -> Result<InMemDicomObject, ReportError> {
    let mut children = vec![language()];
    children.extend(device_observer(ctx.settings));
    children.push(items::code(
        Relationship::HasConceptMod,
        codes::PROCEDURE_REPORTED,
        codes::IMAGING_PROCEDURE,
    ));
    children.push(image_library(ctx.analysis));
    children.push(imaging_measurements(ctx)?);
    children.push(report_evaluations(ctx.analysis));

    Ok(items::container(None, codes::IMAGING_MEASUREMENT_REPORT, Some("1500"), children))
}

/// TID 1204: the report is in US English.
fn language() -> InMemDicomObject {
    items::code(Relationship::HasConceptMod, codes::LANGUAGE_OF_CONTENT, codes::ENGLISH_US)
}

/// TID 1002 with TID 1004: Argus, as a device, made the observations.
fn device_observer(settings: &ReportSettings) -> Vec<InMemDicomObject> {
    let context = Relationship::HasObsContext;
    let model_name = format!("{MANUFACTURER} {VERSION}");
    vec![
        items::code(context, codes::OBSERVER_TYPE, codes::DEVICE),
        items::uidref(context, codes::DEVICE_OBSERVER_UID, &settings.device_uid),
        items::text(context, codes::DEVICE_OBSERVER_NAME, MANUFACTURER),
        items::text(context, codes::DEVICE_OBSERVER_MANUFACTURER, MANUFACTURER),
        items::text(context, codes::DEVICE_OBSERVER_MODEL_NAME, &model_name),
    ]
}

/// TID 1600: one group listing every source image of the analysis.
// TODO(#4): The entries carry no TID 1602 descriptors (modality, frame of reference, pixel
// size), because the writers receive one source data set, not one per image.
fn image_library(analysis: &Analysis) -> InMemDicomObject {
    let entries = analysis
        .sources
        .iter()
        .map(|s| {
            let reference = ImageRef {
                sop_class_uid: &s.sop_class_uid,
                sop_instance_uid: &s.sop_instance_uid,
                frame: None,
            };
            items::image(Relationship::Contains, &reference)
        })
        .collect();
    let group =
        items::container(Some(Relationship::Contains), codes::IMAGE_LIBRARY_GROUP, None, entries);
    items::container(Some(Relationship::Contains), codes::IMAGE_LIBRARY, None, vec![group])
}

/// The Imaging Measurements container with one measurement group per finding.
fn imaging_measurements(ctx: &Context<'_>) -> Result<InMemDicomObject, ReportError> {
    let groups = ctx
        .analysis
        .findings
        .iter()
        .enumerate()
        .map(|(index, finding)| measurement_group(ctx, index, finding))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(items::container(Some(Relationship::Contains), codes::IMAGING_MEASUREMENTS, None, groups))
}

/// TID 1410 for a located, present finding; TID 1501 otherwise.
fn measurement_group(
    ctx: &Context<'_>,
    index: usize,
    finding: &Finding,
) -> Result<InMemDicomObject, ReportError> {
    let region = region(ctx, finding)?;
    let template = if region.is_some() { "1410" } else { "1501" };

    let mut children = tracking(ctx.settings, index, finding);
    children.push(items::code(Relationship::Contains, codes::FINDING, (&finding.code).into()));
    if let Some(region) = region {
        children.push(region_item(&region));
    }
    children.push(probability(&ctx.analysis.model, finding));
    children.push(evaluation(finding));

    Ok(items::container(
        Some(Relationship::Contains),
        codes::MEASUREMENT_GROUP,
        Some(template),
        children,
    ))
}

/// TID 4108: a readable identifier and a fresh unique one.
// TODO(#4): OHIF rehydrates into measurement tracking only identifiers that name one of its
// own tools, so it shows these regions read-only; decide whether Argus should mimic its
// naming.
fn tracking(settings: &ReportSettings, index: usize, finding: &Finding) -> Vec<InMemDicomObject> {
    let label = format!("AI finding {} (unverified): {}", index + 1, finding.label);
    vec![
        items::text(Relationship::HasObsContext, codes::TRACKING_IDENTIFIER, &label),
        items::uidref(
            Relationship::HasObsContext,
            codes::TRACKING_UID,
            &uid::generate(&settings.uid_root),
        ),
    ]
}

/// TID 300: the probability, with the algorithm that produced it (TID 4019) as its modifier.
/// OHIF reads the children of every NUM outside TID 1410 groups, so each NUM has some.
fn probability(model: &ModelRef, finding: &Finding) -> InMemDicomObject {
    let value = items::num(
        Relationship::Contains,
        codes::PROBABILITY,
        f64::from(finding.probability),
        codes::RATIO,
    );
    items::with_children(value, algorithm_identification(model))
}

/// TID 4019: the model's name, version and how it ran.
fn algorithm_identification(model: &ModelRef) -> Vec<InMemDicomObject> {
    let modifier = Relationship::HasConceptMod;
    vec![
        items::text(modifier, codes::ALGORITHM_NAME, &model.name),
        items::text(modifier, codes::ALGORITHM_VERSION, &model.version),
        items::text(modifier, codes::ALGORITHM_PARAMETERS, &format!("model id: {}", model.id)),
        items::text(
            modifier,
            codes::ALGORITHM_PARAMETERS,
            &format!("execution provider: {}", model.provider),
        ),
    ]
}

/// The finding as a question answered Present or Absent.
fn evaluation(finding: &Finding) -> InMemDicomObject {
    let answer = if finding.present { codes::PRESENT } else { codes::ABSENT };
    items::code(Relationship::Contains, Concept::from(&finding.code), answer)
}

/// Where a present finding is, if the model located it.
fn region<'a>(ctx: &Context<'a>, finding: &'a Finding) -> Result<Option<Region<'a>>, ReportError> {
    let Some(location) = finding.location.as_ref().filter(|_| finding.present) else {
        return Ok(None);
    };
    let Some(source) =
        ctx.analysis.sources.iter().find(|s| s.sop_instance_uid == location.sop_instance_uid)
    else {
        return Err(ReportError::UnknownImage {
            sop_instance_uid: location.sop_instance_uid.clone(),
        });
    };

    if let (true, Some(point), Some(frame_of_reference)) =
        (ctx.three_d, location.patient_xyz, ctx.frame_of_reference)
    {
        return Ok(Some(Region::Patient { point, frame_of_reference }));
    }

    let graphic = match location.bbox {
        Some([left, top, right, bottom]) => Graphic::Box { left, top, right, bottom },
        None => Graphic::Point(location.point),
    };
    let on = ImageRef {
        sop_class_uid: &source.sop_class_uid,
        sop_instance_uid: &source.sop_instance_uid,
        frame: (source.frames > 1).then_some(location.frame),
    };
    Ok(Some(Region::Planar { graphic, on }))
}

fn region_item(region: &Region<'_>) -> InMemDicomObject {
    match region {
        Region::Planar { graphic, on } => {
            items::scoord(Relationship::Contains, codes::IMAGE_REGION, graphic, on)
        }
        Region::Patient { point, frame_of_reference } => items::scoord3d_point(
            Relationship::Contains,
            codes::IMAGE_REGION,
            *point,
            frame_of_reference,
        ),
    }
}

/// TID 1500's Qualitative Evaluations: what the reader must know before trusting anything else.
fn report_evaluations(analysis: &Analysis) -> InMemDicomObject {
    let comments = [disclaimer(&analysis.model), intended_use(&analysis.model), summary(analysis)]
        .iter()
        .map(|text| items::text(Relationship::Contains, codes::COMMENT, text))
        .collect();
    items::container(Some(Relationship::Contains), codes::QUALITATIVE_EVALUATIONS, None, comments)
}

/// The sentence that says what this document is and is not.
pub fn disclaimer(model: &ModelRef) -> String {
    format!(
        "AI-generated result of {} {}, produced by {MANUFACTURER} {VERSION}. It has not been \
         verified by a physician and is not a diagnosis.",
        model.name, model.version
    )
}

fn intended_use(model: &ModelRef) -> String {
    format!("Intended use of the model: {}", model.intended_use)
}

/// One sentence naming the findings at or above the threshold, or saying there are none.
pub fn summary(analysis: &Analysis) -> String {
    let present: Vec<String> = analysis
        .findings
        .iter()
        .filter(|f| f.present)
        .map(|f| {
            format!("{} (probability {})", f.label, items::decimal_string(f.probability.into()))
        })
        .collect();
    if !present.is_empty() {
        return format!("Findings at or above the model's threshold: {}.", present.join(", "));
    }
    match analysis.top() {
        Some(top) => format!(
            "No finding reached the model's threshold; the highest probability was {} for {}.",
            items::decimal_string(top.probability.into()),
            top.label
        ),
        None => "The model reports no finding labels.".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use dicom_dictionary_std::tags;

    use super::*;
    use crate::report::testing;

    fn template_of(group: &InMemDicomObject) -> String {
        let id = &group.get(tags::CONTENT_TEMPLATE_SEQUENCE).unwrap().items().unwrap()[0];
        id.get(tags::TEMPLATE_IDENTIFIER).unwrap().to_str().unwrap().to_string()
    }

    fn value_types(group: &InMemDicomObject) -> Vec<String> {
        let children = group.get(tags::CONTENT_SEQUENCE).unwrap().items().unwrap();
        children.iter().map(|c| c.get(tags::VALUE_TYPE).unwrap().to_str().unwrap().into()).collect()
    }

    fn group_for(analysis: &Analysis, three_d: bool) -> InMemDicomObject {
        let settings = ReportSettings::new("2.25");
        let ctx =
            Context { analysis, settings: &settings, frame_of_reference: Some("1.2.3"), three_d };
        measurement_group(&ctx, 0, &analysis.findings[0]).unwrap()
    }

    #[test]
    fn a_located_present_finding_is_a_planar_roi_with_its_region() {
        let image = testing::image(1, 1);
        let analysis =
            testing::analysis(vec![image.clone()], vec![testing::finding(0.9, &image, true)]);

        let group = group_for(&analysis, false);

        assert_eq!(template_of(&group), "1410");
        assert!(value_types(&group).contains(&"SCOORD".to_string()));
    }

    #[test]
    fn an_absent_finding_is_never_drawn() {
        let image = testing::image(1, 1);
        let analysis =
            testing::analysis(vec![image.clone()], vec![testing::finding(0.2, &image, true)]);

        let group = group_for(&analysis, false);

        assert_eq!(template_of(&group), "1501");
        assert!(!value_types(&group).iter().any(|t| t.starts_with("SCOORD")));
        assert!(summary(&analysis).starts_with("No finding reached the model's threshold"));
    }

    #[test]
    fn every_probability_names_its_algorithm() {
        let image = testing::image(1, 1);
        let analysis =
            testing::analysis(vec![image.clone()], vec![testing::finding(0.2, &image, false)]);

        let group = group_for(&analysis, false);

        let children = group.get(tags::CONTENT_SEQUENCE).unwrap().items().unwrap();
        let num = children.iter().find(|c| c.get(tags::MEASURED_VALUE_SEQUENCE).is_some()).unwrap();
        assert_eq!(num.get(tags::CONTENT_SEQUENCE).unwrap().items().unwrap().len(), 4);
    }

    #[test]
    fn a_volume_finding_is_a_patient_point() {
        let image = testing::image(1, 1);
        let analysis =
            testing::analysis(vec![image.clone()], vec![testing::finding(0.9, &image, true)]);

        let group = group_for(&analysis, true);

        assert!(value_types(&group).contains(&"SCOORD3D".to_string()));
    }

    #[test]
    fn a_region_on_an_image_outside_the_analysis_is_refused() {
        let image = testing::image(1, 1);
        let stranger = testing::image(9, 1);
        let analysis = testing::analysis(vec![image], vec![testing::finding(0.9, &stranger, true)]);
        let settings = ReportSettings::new("2.25");
        let ctx = Context {
            analysis: &analysis,
            settings: &settings,
            frame_of_reference: None,
            three_d: false,
        };

        let result = measurement_report(&ctx);

        assert!(matches!(result, Err(ReportError::UnknownImage { .. })));
    }
}
