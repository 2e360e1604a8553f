//! SR content items (PS3.3 C.17.3 SR Document Content Module, C.18 Content Item Macros) as
//! DICOM data set items: one function per value type Argus writes, each taking the relationship
//! to its parent, the concept name and the value.
//!
//! These are the bricks; the templates that arrange them live in [`super::content`].

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR, smallvec::SmallVec};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::codes::Concept;

/// Longest Code Value (SH); longer values go in Long Code Value (PS3.3 8.8).
const MAX_CODE_VALUE: usize = 16;

/// Longest Code Meaning (LO).
const MAX_MEANING: usize = 64;

/// Relationship Type (0040,A010) of a content item to its parent (PS3.3 C.17.3.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relationship {
    Contains,
    HasObsContext,
    HasConceptMod,
    SelectedFrom,
}

impl Relationship {
    fn as_str(self) -> &'static str {
        match self {
            Relationship::Contains => "CONTAINS",
            Relationship::HasObsContext => "HAS OBS CONTEXT",
            Relationship::HasConceptMod => "HAS CONCEPT MOD",
            Relationship::SelectedFrom => "SELECTED FROM",
        }
    }
}

/// A reference to one image, or one frame of a multi-frame image (PS3.3 C.18.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    pub sop_class_uid: &'a str,
    pub sop_instance_uid: &'a str,
    /// Only for multi-frame images: PS3.3 forbids the frame number otherwise.
    pub frame: Option<u32>,
}

/// The shape of a two-dimensional region (PS3.3 C.18.6.1.2), in (column, row) image pixels.
#[derive(Debug, Clone, PartialEq)]
pub enum Graphic {
    Point([f32; 2]),
    /// A box as a closed POLYLINE: five points, the last equal to the first.
    Box {
        left: f32,
        top: f32,
        right: f32,
        bottom: f32,
    },
}

impl Graphic {
    fn graphic_type(&self) -> &'static str {
        match self {
            Graphic::Point(_) => "POINT",
            Graphic::Box { .. } => "POLYLINE",
        }
    }

    fn data(&self) -> Vec<f32> {
        match *self {
            Graphic::Point([column, row]) => vec![column, row],
            Graphic::Box { left, top, right, bottom } => {
                vec![left, top, right, top, right, bottom, left, bottom, left, top]
            }
        }
    }
}

/// A sequence element holding `items`.
pub fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// A code sequence item (PS3.3 Table 8.8-1a), choosing Long Code Value or URN Code Value when
/// the value does not fit a Code Value.
pub fn code_item(concept: Concept<'_>) -> InMemDicomObject {
    let value_element = if concept.value.starts_with("urn:") || concept.value.contains("://") {
        DataElement::new(tags::URN_CODE_VALUE, VR::UR, concept.value)
    } else if concept.value.len() > MAX_CODE_VALUE {
        DataElement::new(tags::LONG_CODE_VALUE, VR::UC, concept.value)
    } else {
        DataElement::new(tags::CODE_VALUE, VR::SH, concept.value)
    };

    InMemDicomObject::from_element_iter([
        value_element,
        DataElement::new(tags::CODING_SCHEME_DESIGNATOR, VR::SH, concept.scheme),
        DataElement::new(tags::CODE_MEANING, VR::LO, truncate(concept.meaning, MAX_MEANING)),
    ])
}

/// A container (PS3.3 C.17.3), continuous or not, optionally tagged with its template.
pub fn container(
    relationship: Option<Relationship>,
    name: Concept<'_>,
    template: Option<&str>,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut item = header(relationship, "CONTAINER", Some(name));
    item.put(DataElement::new(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"));
    if let Some(template) = template {
        let id = InMemDicomObject::from_element_iter([
            DataElement::new(tags::MAPPING_RESOURCE, VR::CS, "DCMR"),
            DataElement::new(tags::TEMPLATE_IDENTIFIER, VR::CS, template),
        ]);
        item.put(sequence(tags::CONTENT_TEMPLATE_SEQUENCE, vec![id]));
    }
    with_children(item, children)
}

/// A CODE content item (PS3.3 C.17.3.2.1).
pub fn code(rel: Relationship, name: Concept<'_>, value: Concept<'_>) -> InMemDicomObject {
    let mut item = header(Some(rel), "CODE", Some(name));
    item.put(sequence(tags::CONCEPT_CODE_SEQUENCE, vec![code_item(value)]));
    item
}

/// A TEXT content item (PS3.3 C.17.3.2.1).
pub fn text(rel: Relationship, name: Concept<'_>, value: &str) -> InMemDicomObject {
    let mut item = header(Some(rel), "TEXT", Some(name));
    item.put(DataElement::new(tags::TEXT_VALUE, VR::UT, value));
    item
}

/// A UIDREF content item (PS3.3 C.17.3.2.1).
pub fn uidref(rel: Relationship, name: Concept<'_>, uid: &str) -> InMemDicomObject {
    let mut item = header(Some(rel), "UIDREF", Some(name));
    item.put(DataElement::new(tags::UID, VR::UI, uid));
    item
}

/// A NUM content item (PS3.3 C.18.1) with one value in `unit`.
pub fn num(
    rel: Relationship,
    name: Concept<'_>,
    value: f64,
    unit: Concept<'_>,
) -> InMemDicomObject {
    let measured = InMemDicomObject::from_element_iter([
        sequence(tags::MEASUREMENT_UNITS_CODE_SEQUENCE, vec![code_item(unit)]),
        DataElement::new(tags::NUMERIC_VALUE, VR::DS, decimal_string(value)),
    ]);
    let mut item = header(Some(rel), "NUM", Some(name));
    item.put(sequence(tags::MEASURED_VALUE_SEQUENCE, vec![measured]));
    item
}

/// An IMAGE content item (PS3.3 C.18.4), without a concept name.
pub fn image(rel: Relationship, reference: &ImageRef<'_>) -> InMemDicomObject {
    let mut item = header(Some(rel), "IMAGE", None);
    item.put(sequence(tags::REFERENCED_SOP_SEQUENCE, vec![sop_reference(reference)]));
    item
}

/// The Referenced SOP Sequence item of an image reference.
pub fn sop_reference(reference: &ImageRef<'_>) -> InMemDicomObject {
    let mut item = InMemDicomObject::from_element_iter([
        DataElement::new(tags::REFERENCED_SOP_CLASS_UID, VR::UI, reference.sop_class_uid),
        DataElement::new(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, reference.sop_instance_uid),
    ]);
    if let Some(frame) = reference.frame {
        item.put(DataElement::new(tags::REFERENCED_FRAME_NUMBER, VR::IS, frame.to_string()));
    }
    item
}

/// A SCOORD content item (PS3.3 C.18.6) selected from one image.
pub fn scoord(
    rel: Relationship,
    name: Concept<'_>,
    graphic: &Graphic,
    on: &ImageRef<'_>,
) -> InMemDicomObject {
    let mut item = header(Some(rel), "SCOORD", Some(name));
    item.put(DataElement::new(tags::GRAPHIC_TYPE, VR::CS, graphic.graphic_type()));
    let data = PrimitiveValue::F32(SmallVec::from_vec(graphic.data()));
    item.put(DataElement::new(tags::GRAPHIC_DATA, VR::FL, data));
    with_children(item, vec![image(Relationship::SelectedFrom, on)])
}

/// A SCOORD3D POINT content item (PS3.3 C.18.9) in the patient coordinates of a frame of
/// reference, in millimetres. Graphic Data is FL there too, so the point loses precision below
/// a micrometre.
pub fn scoord3d_point(
    rel: Relationship,
    name: Concept<'_>,
    point: [f64; 3],
    frame_of_reference_uid: &str,
) -> InMemDicomObject {
    let mut item = header(Some(rel), "SCOORD3D", Some(name));
    item.put(DataElement::new(
        tags::REFERENCED_FRAME_OF_REFERENCE_UID,
        VR::UI,
        frame_of_reference_uid,
    ));
    item.put(DataElement::new(tags::GRAPHIC_TYPE, VR::CS, "POINT"));
    let data = PrimitiveValue::F32(point.iter().map(|&v| v as f32).collect());
    item.put(DataElement::new(tags::GRAPHIC_DATA, VR::FL, data));
    item
}

/// Relationship, value type and concept name: what every content item starts with.
fn header(
    rel: Option<Relationship>,
    value_type: &str,
    name: Option<Concept<'_>>,
) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    if let Some(rel) = rel {
        item.put(DataElement::new(tags::RELATIONSHIP_TYPE, VR::CS, rel.as_str()));
    }
    item.put(DataElement::new(tags::VALUE_TYPE, VR::CS, value_type));
    if let Some(name) = name {
        item.put(sequence(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code_item(name)]));
    }
    item
}

/// Adds `children` to `item`'s Content Sequence, if there are any.
pub fn with_children(
    mut item: InMemDicomObject,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    if !children.is_empty() {
        item.put(sequence(tags::CONTENT_SEQUENCE, children));
    }
    item
}

/// A Decimal String of at most 16 characters (PS3.5 6.2).
pub fn decimal_string(value: f64) -> String {
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    let text = if text.is_empty() || text == "-" { "0" } else { text };
    text.chars().take(16).collect()
}

/// At most `max` characters of `text`, cut at a character boundary.
pub fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(obj: &InMemDicomObject, tag: Tag) -> String {
        obj.element(tag).unwrap().to_str().unwrap().to_string()
    }

    #[test]
    fn long_code_values_move_to_long_code_value() {
        let long = Concept { scheme: "SCT", value: "1234567890123456789", meaning: "Long" };

        let item = code_item(long);

        assert!(item.get(tags::CODE_VALUE).is_none());
        assert_eq!(text_of(&item, tags::LONG_CODE_VALUE), "1234567890123456789");
    }

    #[test]
    fn a_box_is_a_closed_polyline_of_five_points() {
        let graphic = Graphic::Box { left: 1.0, top: 2.0, right: 3.0, bottom: 4.0 };

        let data = graphic.data();

        assert_eq!(data.len(), 10);
        assert_eq!(data[..2], data[8..]);
    }

    #[test]
    fn decimal_strings_are_short_and_plain() {
        assert_eq!(decimal_string(0.87234567), "0.872346");
        assert_eq!(decimal_string(1.0), "1");
        assert_eq!(decimal_string(0.0), "0");
        assert!(decimal_string(12345678901234.5).len() <= 16);
    }

    #[test]
    fn frame_numbers_appear_only_when_given() {
        let single = ImageRef { sop_class_uid: "1.2", sop_instance_uid: "1.2.3", frame: None };
        let multi = ImageRef { frame: Some(4), ..single.clone() };

        assert!(sop_reference(&single).get(tags::REFERENCED_FRAME_NUMBER).is_none());
        assert_eq!(text_of(&sop_reference(&multi), tags::REFERENCED_FRAME_NUMBER), "4");
    }
}
