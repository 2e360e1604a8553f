//! Every file of shared/testdata/dicom/compressed decodes, or fails with an error naming its
//! transfer syntax; 12-bit JPEG Extended must decode.

mod common;

use std::path::{Path, PathBuf};

use argus::prepare::{DecodeError, read_dicom};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(files_under(&path)) } else { out.push(path) }
    }
    out.sort();
    out
}

#[test]
fn every_codec_of_the_corpus_decodes() {
    let mut failures = Vec::new();
    for path in files_under(&common::testdata().join("dicom/compressed")) {
        match read_dicom(&path, true) {
            Ok(image) => {
                assert!(!image.frames.is_empty(), "{}", path.display());
                let f = &image.frames[0];
                assert_eq!(f.dim(), (image.meta.rows, image.meta.columns), "{}", path.display());
            }
            Err(e) => failures.push((path, e)),
        }
    }

    // JPEG XL may legitimately fail, but only with an error naming its transfer syntax.
    let unexpected: Vec<String> = failures
        .iter()
        .filter(|(_, e)| !(e.to_string().contains("1.2.840.10008.1.2.4.11")))
        .map(|(p, e)| format!("{}: {e}", p.display()))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    for (_, err) in &failures {
        assert!(matches!(err, DecodeError::Pixels { .. }), "{err}");
    }
}

#[test]
fn twelve_bit_jpeg_extended_matches_the_uncompressed_image() {
    let data = common::testdata();
    let lossy =
        read_dicom(&data.join("dicom/compressed/jpeg_extended_12bit_NM.dcm"), false).unwrap();
    let reference = read_dicom(&data.join("dicom/other/WG04_NM1_UNC.dcm"), false).unwrap();
    let (a, b) = (&lossy.frames[0], &reference.frames[0]);
    assert_eq!(a.dim(), (1024, 256));
    assert_eq!(a.dim(), b.dim());

    // Lossy: the mean absolute difference stays small against the values' range.
    let diff = (a - b).mapv(f32::abs).mean().unwrap();
    let range = b.iter().fold(0f32, |m, v| m.max(*v));
    assert!(diff < 0.02 * range, "mean difference {diff} for range {range}");
}

#[test]
fn broken_pixel_data_is_an_error_naming_the_transfer_syntax() {
    let data = common::testdata();
    for name in ["MR_truncated.dcm", "JPEG2000-embedded-sequence-delimiter.dcm"] {
        let path = data.join("dicom/broken").join(name);
        let err = read_dicom(&path, true).err();
        if let Some(err @ DecodeError::Pixels { .. }) = &err {
            let text = err.to_string();
            assert!(text.contains("1.2.840.10008.1.2") && text.contains(name), "{text}");
        }
    }
}
