//! The Grad-CAM picture as a secondary capture: Secondary Capture Image (PS3.3 A.8.1) for one
//! image, Multi-frame True Color Secondary Capture Image (PS3.3 A.8.5) for a volume. The pixels
//! are the source's, after its window, with the class activation map blended over them by
//! [`crate::explain::overlay`], in RGB at the source's size, captioned as an AI heatmap that is
//! not for diagnosis.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR, smallvec::SmallVec};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileDicomObject, InMemDicomObject};
use ndarray::Axis;

use super::codes;
use super::common::{self, MANUFACTURER, Timestamp, VERSION};
use super::items::{self, ImageRef, truncate};
use super::{ReportError, ReportSettings};
use crate::explain;
use crate::findings::{Analysis, Heatmap, SourceImage};
use crate::uid;

/// Longest Series Description (LO).
const MAX_DESCRIPTION: usize = 64;

/// Body Part Examined values (PS3.16 CID 4031) of structures that are not paired.
const UNPAIRED: [&str; 24] = [
    "HEAD",
    "BRAIN",
    "SKULL",
    "NECK",
    "HEADNECK",
    "CHEST",
    "THORAX",
    "HEART",
    "ABDOMEN",
    "PELVIS",
    "CHESTABDOMEN",
    "CHESTABDPELVIS",
    "ABDOMENPELVIS",
    "WHOLEBODY",
    "SPINE",
    "CSPINE",
    "TSPINE",
    "LSPINE",
    "SSPINE",
    "LIVER",
    "PANCREAS",
    "SPLEEN",
    "BLADDER",
    "PROSTATE",
];

/// Longest Derivation Description (ST).
const MAX_DERIVATION: usize = 1024;

/// Builds the capture for `analysis`, or nothing without a heatmap; see
/// [`super::heatmap_capture`].
pub fn build(
    analysis: &Analysis,
    source: &InMemDicomObject,
    settings: &ReportSettings,
) -> Result<Option<FileDicomObject<InMemDicomObject>>, ReportError> {
    let Some(heatmap) = &analysis.heatmap else {
        return Ok(None);
    };
    let (frames, rows, columns) = checked_size(heatmap, source)?;
    let sop_class = if frames == 1 {
        uids::SECONDARY_CAPTURE_IMAGE_STORAGE
    } else {
        uids::MULTI_FRAME_TRUE_COLOR_SECONDARY_CAPTURE_IMAGE_STORAGE
    };
    let sop_instance_uid = uid::generate(&settings.uid_root);
    let now = Timestamp::now();

    let mut obj = InMemDicomObject::new_empty();
    common::copy_patient_and_study(source, &analysis.study_uid, &mut obj)?;
    obj.put(DataElement::new(tags::SOP_CLASS_UID, VR::UI, sop_class));
    obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, sop_instance_uid.as_str()));
    now.put_creation(&mut obj);
    put_series(&mut obj, analysis, source, settings);
    put_equipment(&mut obj);
    put_general_image(&mut obj, analysis, heatmap, source, &now);
    put_pixels(&mut obj, heatmap, rows, columns);
    if frames > 1 {
        put_frames(&mut obj, frames);
    }
    common::set_character_set(source, &mut obj);

    tracing::debug!(
        study_uid = %analysis.study_uid,
        sop_instance_uid = %sop_instance_uid,
        model = %analysis.model.id,
        frames,
        rows,
        columns,
        "built heatmap capture"
    );
    common::with_file_meta(obj).map(Some)
}

/// The capture's (frames, rows, columns): the heatmap's, which must match the source image.
fn checked_size(
    heatmap: &Heatmap,
    source: &InMemDicomObject,
) -> Result<(usize, usize, usize), ReportError> {
    let shape = heatmap.maps.dim();
    let too_large = shape.1 > usize::from(u16::MAX) || shape.2 > usize::from(u16::MAX);
    if heatmap.windowed.dim() != shape || shape.0 == 0 || too_large {
        return Err(ReportError::HeatmapShape {
            sop_instance_uid: heatmap.source.sop_instance_uid.clone(),
            windowed: heatmap.windowed.dim(),
            maps: shape,
        });
    }

    let source_rows = common::text(source, tags::ROWS).parse::<usize>().ok();
    let source_columns = common::text(source, tags::COLUMNS).parse::<usize>().ok();
    if let (Some(rows), Some(columns)) = (source_rows, source_columns)
        && (rows, columns) != (shape.1, shape.2)
    {
        return Err(ReportError::HeatmapSize {
            sop_instance_uid: heatmap.source.sop_instance_uid.clone(),
            heatmap: (shape.1, shape.2),
            source_size: (rows, columns),
        });
    }
    Ok(shape)
}

/// The caption shown as the series description and the image comments; the warning comes
/// before the model so that the 64 characters of a series description always keep it.
pub fn caption(analysis: &Analysis) -> String {
    let model = &analysis.model;
    format!("AI heatmap (Grad-CAM) - not for diagnosis - {} {}", model.name, model.version)
}

fn put_series(
    obj: &mut InMemDicomObject,
    analysis: &Analysis,
    source: &InMemDicomObject,
    settings: &ReportSettings,
) {
    obj.put(DataElement::new(tags::MODALITY, VR::CS, "OT"));
    put_laterality(obj, source);
    obj.put(DataElement::new(tags::SERIES_INSTANCE_UID, VR::UI, uid::generate(&settings.uid_root)));
    obj.put(DataElement::new(tags::SERIES_NUMBER, VR::IS, settings.sc_series_number.to_string()));
    obj.put(DataElement::new(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        truncate(&caption(analysis), MAX_DESCRIPTION),
    ));
}

/// Body Part Examined and Laterality (General Series, PS3.3 C.7.3.1): the body part as the
/// source gives it; the side when the source names one; no Laterality for a body part that is
/// not paired; otherwise an empty value, meaning unknown (PS3.3 C.7.3.1.1.1 makes it required
/// for paired body parts).
fn put_laterality(obj: &mut InMemDicomObject, source: &InMemDicomObject) {
    let body_part = common::text(source, tags::BODY_PART_EXAMINED);
    if !body_part.is_empty() {
        obj.put(DataElement::new(tags::BODY_PART_EXAMINED, VR::CS, body_part.as_str()));
    }
    let side = [tags::LATERALITY, tags::IMAGE_LATERALITY]
        .into_iter()
        .map(|tag| common::text(source, tag))
        .find(|value| value == "L" || value == "R");
    match side {
        Some(side) => obj.put(DataElement::new(tags::LATERALITY, VR::CS, side)),
        None if UNPAIRED.contains(&body_part.as_str()) => None,
        None => obj.put(DataElement::empty(tags::LATERALITY, VR::CS)),
    };
}

/// General Equipment and SC Equipment (PS3.3 C.8.6.1): a workstation made this picture.
fn put_equipment(obj: &mut InMemDicomObject) {
    common::put_equipment(obj);
    obj.put(DataElement::new(tags::CONVERSION_TYPE, VR::CS, "WSD"));
    obj.put(DataElement::new(tags::SECONDARY_CAPTURE_DEVICE_MANUFACTURER, VR::LO, MANUFACTURER));
    obj.put(DataElement::new(
        tags::SECONDARY_CAPTURE_DEVICE_MANUFACTURER_MODEL_NAME,
        VR::LO,
        MANUFACTURER,
    ));
    obj.put(DataElement::new(tags::SECONDARY_CAPTURE_DEVICE_SOFTWARE_VERSIONS, VR::LO, VERSION));
}

/// General Image (PS3.3 C.7.6.1): identity, captions and the images it derives from.
fn put_general_image(
    obj: &mut InMemDicomObject,
    analysis: &Analysis,
    heatmap: &Heatmap,
    source: &InMemDicomObject,
    now: &Timestamp,
) {
    obj.put(DataElement::new(tags::INSTANCE_NUMBER, VR::IS, "1"));
    obj.put(DataElement::new(tags::CONTENT_DATE, VR::DA, now.date.as_str()));
    obj.put(DataElement::new(tags::CONTENT_TIME, VR::TM, now.time.as_str()));
    obj.put(DataElement::new(tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY"));
    put_orientation(obj, source);
    obj.put(DataElement::new(tags::IMAGE_COMMENTS, VR::LT, comments(analysis)));
    obj.put(DataElement::new(
        tags::DERIVATION_DESCRIPTION,
        VR::ST,
        truncate(&derivation(analysis), MAX_DERIVATION),
    ));
    obj.put(DataElement::new(tags::BURNED_IN_ANNOTATION, VR::CS, "YES"));
    obj.put(DataElement::new(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"));
    obj.put(items::sequence(tags::SOURCE_IMAGE_SEQUENCE, source_images(analysis, heatmap)));
}

/// Patient Orientation (type 2C) from the source when it is a valid pair of directions, empty
/// otherwise (PS3.3 C.7.6.1.1.1); mammography's view names such as "CC" are not directions.
fn put_orientation(obj: &mut InMemDicomObject, source: &InMemDicomObject) {
    let valid = |values: &[String]| {
        values.len() == 2
            && values.iter().all(|v| !v.is_empty() && v.chars().all(|c| "LRAPHF".contains(c)))
    };
    let copied = source
        .get(tags::PATIENT_ORIENTATION)
        .and_then(|e| e.to_multi_str().ok())
        .filter(|values| valid(values));
    match copied {
        Some(values) => obj.put(DataElement::new(
            tags::PATIENT_ORIENTATION,
            VR::CS,
            PrimitiveValue::Strs(values.iter().cloned().collect()),
        )),
        None => obj.put(DataElement::empty(tags::PATIENT_ORIENTATION, VR::CS)),
    };
}

fn comments(analysis: &Analysis) -> String {
    format!(
        "{}. {} Intended use of the model: {}",
        caption(analysis),
        super::content::disclaimer(&analysis.model),
        analysis.model.intended_use
    )
}

fn derivation(analysis: &Analysis) -> String {
    format!(
        "Grad-CAM class activation map of {} {} blended over the windowed source image. \
         AI-generated, unverified, not for diagnosis.",
        analysis.model.name, analysis.model.version
    )
}

/// The images the frames show: the heatmap's source for one frame or a multi-frame source,
/// otherwise every source image of the volume, in frame order.
fn source_images(analysis: &Analysis, heatmap: &Heatmap) -> Vec<InMemDicomObject> {
    let slices = heatmap.maps.dim().0;
    let one = |image: &SourceImage, frame: Option<u32>| {
        let reference = ImageRef {
            sop_class_uid: &image.sop_class_uid,
            sop_instance_uid: &image.sop_instance_uid,
            frame,
        };
        let mut item = items::sop_reference(&reference);
        item.put(items::sequence(
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            vec![items::code_item(codes::SOURCE_FOR_PROCESSING)],
        ));
        item
    };

    let source = &heatmap.source;
    if slices == 1 {
        vec![one(source, (source.frames > 1).then_some(heatmap.frame))]
    } else if source.frames as usize == slices {
        vec![one(source, None)]
    } else {
        analysis.sources.iter().map(|s| one(s, None)).collect()
    }
}

/// Image Pixel (PS3.3 C.7.6.3): interleaved RGB bytes, frame after frame.
fn put_pixels(obj: &mut InMemDicomObject, heatmap: &Heatmap, rows: usize, columns: usize) {
    let mut bytes = Vec::with_capacity(heatmap.maps.len() * 3);
    for (windowed, map) in heatmap.windowed.axis_iter(Axis(0)).zip(heatmap.maps.axis_iter(Axis(0)))
    {
        bytes.extend(explain::overlay(windowed, map).iter());
    }
    if bytes.len() % 2 == 1 {
        // PS3.5 7.1: values have even length.
        bytes.push(0);
    }

    let us = |v: u16| PrimitiveValue::from(v);
    obj.put(DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, us(3)));
    obj.put(DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB"));
    obj.put(DataElement::new(tags::PLANAR_CONFIGURATION, VR::US, us(0)));
    obj.put(DataElement::new(tags::ROWS, VR::US, us(rows as u16)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, us(columns as u16)));
    obj.put(DataElement::new(tags::BITS_ALLOCATED, VR::US, us(8)));
    obj.put(DataElement::new(tags::BITS_STORED, VR::US, us(8)));
    obj.put(DataElement::new(tags::HIGH_BIT, VR::US, us(7)));
    obj.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, us(0)));
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::U8(SmallVec::from_vec(bytes)),
    ));
}

/// Multi-frame (PS3.3 C.7.6.6) and SC Multi-frame Vector (C.8.6.4): frames are numbered pages.
// TODO(#4): Frames carry no slice position, so a viewer cannot link a frame of the capture to
// its source slice except through the order of the Source Image Sequence.
fn put_frames(obj: &mut InMemDicomObject, frames: usize) {
    obj.put(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, frames.to_string()));
    obj.put(DataElement::new(
        tags::FRAME_INCREMENT_POINTER,
        VR::AT,
        PrimitiveValue::Tags(SmallVec::from_vec(vec![tags::PAGE_NUMBER_VECTOR])),
    ));
    let pages = (1..=frames).map(|n| n.to_string()).collect();
    obj.put(DataElement::new(tags::PAGE_NUMBER_VECTOR, VR::IS, PrimitiveValue::Strs(pages)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing;

    fn capture(slices: usize, source_size: (u16, u16)) -> Result<InMemDicomObject, ReportError> {
        let image = testing::image(1, 1);
        let mut analysis = testing::analysis(vec![image.clone()], Vec::new());
        analysis.heatmap = Some(testing::heatmap(&image, slices, 4, 6));
        let source = testing::source(source_size.0, source_size.1, None);
        let file = build(&analysis, &source, &ReportSettings::new("2.25"))?;
        Ok(file.expect("a heatmap gives a capture").into_inner())
    }

    fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
        common::text(obj, tag)
    }

    #[test]
    fn one_plane_is_a_single_frame_rgb_capture_of_the_source_size() {
        let obj = capture(1, (4, 6)).unwrap();

        assert_eq!(text(&obj, tags::SOP_CLASS_UID), uids::SECONDARY_CAPTURE_IMAGE_STORAGE);
        assert_eq!((text(&obj, tags::ROWS), text(&obj, tags::COLUMNS)), ("4".into(), "6".into()));
        assert_eq!(obj.get(tags::PIXEL_DATA).unwrap().to_bytes().unwrap().len(), 4 * 6 * 3);
        assert!(obj.get(tags::NUMBER_OF_FRAMES).is_none());
        assert!(text(&obj, tags::SERIES_DESCRIPTION).contains("not for diagnosis"));
    }

    #[test]
    fn a_volume_is_a_multi_frame_true_colour_capture() {
        let obj = capture(3, (4, 6)).unwrap();

        assert_eq!(
            text(&obj, tags::SOP_CLASS_UID),
            uids::MULTI_FRAME_TRUE_COLOR_SECONDARY_CAPTURE_IMAGE_STORAGE
        );
        assert_eq!(text(&obj, tags::NUMBER_OF_FRAMES), "3");
        assert_eq!(obj.get(tags::PIXEL_DATA).unwrap().to_bytes().unwrap().len(), 3 * 4 * 6 * 3);
    }

    #[test]
    fn a_heatmap_of_another_size_than_the_source_is_refused() {
        let result = capture(1, (8, 8));

        assert!(matches!(result, Err(ReportError::HeatmapSize { .. })));
    }

    #[test]
    fn no_heatmap_no_capture() {
        let image = testing::image(1, 1);
        let analysis = testing::analysis(vec![image], Vec::new());

        let file = build(&analysis, &testing::source(4, 6, None), &ReportSettings::new("2.25"));

        assert!(file.unwrap().is_none());
    }
}
