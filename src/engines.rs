//! The node's engines: the model registry behind the pipeline's [`Analyzer`] and the SR and
//! secondary capture writers behind its [`Reporter`].
//!
//! Routing follows the modality of PS3.3 C.7.3.1.1.1, corrected by the SOP class where a
//! header is known to be wrong or missing: the mammography classes go to the MG model, the
//! Digital X-Ray classes to the DX model and Computed Radiography to the CR model.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject, OpenFileOptions};

use crate::analysis;
use crate::findings::Analysis;
use crate::model::{Registry, choose_model};
use crate::pipeline::jobs::SrRef;
use crate::pipeline::{Analyzer, ReportObject, Reporter};
use crate::report::{self, PredecessorRef, ReportSettings};
use crate::store::index::SeriesRecord;
use crate::store::tags::text_of;

/// SOP classes (with their sub-classes, such as For Processing) and the modality their images
/// are analysed as.
const CLASS_MODALITIES: &[(&str, &str)] = &[
    ("1.2.840.10008.5.1.4.1.1.1.2", "MG"),
    ("1.2.840.10008.5.1.4.1.1.13.1.3", "MG"),
    ("1.2.840.10008.5.1.4.1.1.1.1", "DX"),
    ("1.2.840.10008.5.1.4.1.1.1", "CR"),
];

/// The modality a series is routed by.
pub fn routing_modality(series: &SeriesRecord) -> String {
    CLASS_MODALITIES
        .iter()
        .find(|(class, _)| is_class_or_subclass(&series.sop_class_uid, class))
        .map(|(_, modality)| modality.to_string())
        .unwrap_or_else(|| series.modality.trim().to_ascii_uppercase())
}

fn is_class_or_subclass(uid: &str, class: &str) -> bool {
    uid.strip_prefix(class).is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Runs the loaded models.
pub struct ModelAnalyzer {
    registry: Registry,
}

impl ModelAnalyzer {
    pub fn new(registry: Registry) -> ModelAnalyzer {
        ModelAnalyzer { registry }
    }
}

impl Analyzer for ModelAnalyzer {
    fn route(&self, series: &SeriesRecord) -> Option<String> {
        let modality = routing_modality(series);
        choose_model(&self.registry, &modality, &series.sop_class_uid)
            .map(|m| m.manifest.id.clone())
    }

    fn analyze(
        &self,
        model_id: &str,
        study_uid: &str,
        files: &[PathBuf],
    ) -> Result<Analysis, String> {
        let model =
            self.registry.get(model_id).ok_or_else(|| format!("model {model_id} is not loaded"))?;
        let mut analysis = analysis::analyze_series(model, files).map_err(|e| e.to_string())?;
        analysis.study_uid = study_uid.to_string();
        Ok(analysis)
    }
}

/// Writes a TID 1500 SR and, when there is a heatmap, a secondary capture.
pub struct DicomReporter {
    settings: ReportSettings,
}

impl DicomReporter {
    pub fn new(uid_root: &str) -> DicomReporter {
        DicomReporter { settings: ReportSettings::new(uid_root) }
    }
}

impl Reporter for DicomReporter {
    fn write(
        &self,
        analysis: &Analysis,
        files: &[PathBuf],
        predecessor: Option<&SrRef>,
    ) -> Result<Vec<ReportObject>, String> {
        let first = files.first().ok_or("no analysed file")?;
        let source = read_header(first)?;
        let predecessor = predecessor.map(|p| PredecessorRef {
            study_uid: p.study_uid.clone(),
            series_uid: p.series_uid.clone(),
            sop_class_uid: p.sop_class_uid.clone(),
            sop_instance_uid: p.sop_instance_uid.clone(),
        });

        let sr = report::structured_report(analysis, &source, predecessor.as_ref(), &self.settings)
            .map_err(|e| e.to_string())?;
        let mut objects = vec![to_object(sr)?];

        if let Some(heatmap) = &analysis.heatmap {
            let explained = source_of(files, &heatmap.source.sop_instance_uid)?.unwrap_or(source);
            let capture = report::heatmap_capture(analysis, &explained, &self.settings)
                .map_err(|e| e.to_string())?;
            objects.extend(capture.map(to_object).transpose()?);
        }
        Ok(objects)
    }
}

/// The header of a file, without its pixel data.
fn read_header(path: &Path) -> Result<InMemDicomObject, String> {
    OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map(FileDicomObject::into_inner)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The header of the file holding `sop_instance_uid`, if it is among `files`.
fn source_of(
    files: &[PathBuf],
    sop_instance_uid: &str,
) -> Result<Option<InMemDicomObject>, String> {
    for file in files {
        let header = read_header(file)?;
        if text_of(&header, tags::SOP_INSTANCE_UID) == sop_instance_uid {
            return Ok(Some(header));
        }
    }
    Ok(None)
}

fn to_object(file: FileDicomObject<InMemDicomObject>) -> Result<ReportObject, String> {
    let text = |tag| text_of(&file, tag);
    let object = ReportObject {
        sop_class_uid: text(tags::SOP_CLASS_UID),
        sop_instance_uid: text(tags::SOP_INSTANCE_UID),
        series_uid: text(tags::SERIES_INSTANCE_UID),
        bytes: Vec::new(),
    };
    let mut bytes = Vec::new();
    file.write_all(&mut bytes)
        .map_err(|e| format!("cannot encode {}: {e}", object.sop_instance_uid))?;
    Ok(ReportObject { bytes, ..object })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(modality: &str, class: &str) -> SeriesRecord {
        SeriesRecord {
            modality: modality.into(),
            sop_class_uid: class.into(),
            ..Default::default()
        }
    }

    #[test]
    fn mammography_classes_route_to_mg_whatever_the_modality_says() {
        assert_eq!(routing_modality(&series("RG", "1.2.840.10008.5.1.4.1.1.1.2")), "MG");
        assert_eq!(routing_modality(&series("", "1.2.840.10008.5.1.4.1.1.1.2.1")), "MG");
    }

    #[test]
    fn radiography_classes_route_to_cr_and_dx() {
        assert_eq!(routing_modality(&series("OT", "1.2.840.10008.5.1.4.1.1.1")), "CR");
        assert_eq!(routing_modality(&series("", "1.2.840.10008.5.1.4.1.1.1.1")), "DX");
    }

    #[test]
    fn classes_that_merely_share_digits_are_not_confused() {
        // Positron Emission Tomography Image Storage begins with the CR class's digits.
        assert_eq!(routing_modality(&series("PT", "1.2.840.10008.5.1.4.1.1.128")), "PT");
        assert_eq!(routing_modality(&series("XA", "1.2.840.10008.5.1.4.1.1.12.1")), "XA");
    }

    #[test]
    fn other_classes_keep_their_modality() {
        assert_eq!(routing_modality(&series("ct", "1.2.840.10008.5.1.4.1.1.2")), "CT");
        assert_eq!(routing_modality(&series("MG", "1.2.840.10008.5.1.4.1.1.7")), "MG");
    }
}
