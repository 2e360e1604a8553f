//! NIfTI-1 and NIfTI-2 files of the shared corpus read as nibabel reads them (little- and
//! big-endian, gzipped, 3-D and 4-D, scaled).

mod common;

use argus::prepare::files::read_nifti;

#[test]
fn nifti_voxels_equal_nibabel() {
    let data = common::testdata().join("nifti");
    let out = tempfile::tempdir().unwrap();
    for name in [
        "anatomical.nii",
        "dcm_qa_12bit_ref_3.nii",
        "dicom2nifti_philips_anatomical_001_ground_truth.nii.gz",
        "example4d.nii.gz",
        "example_nifti2.nii.gz",
        "standard.nii.gz",
    ] {
        let path = data.join(name);
        let expected_path = out.path().join(format!("{name}.f32"));
        common::run_python("nifti_reference.py", &[&path, &expected_path]);

        let expected = common::read_f32(&expected_path);
        let frames = read_nifti(&path).unwrap_or_else(|e| panic!("{e}"));
        let actual: Vec<f32> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        assert_eq!(actual.len(), expected.len(), "{name}");
        let worst = actual
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0.0, f32::max);
        assert!(worst <= 1e-6, "{name}: relative difference {worst}");
    }
}
