//! The main job end to end with a real PACS: Orthanc holds real studies from the shared corpus
//! and forwards them to Argus with C-STORE; Argus's SR and Grad-CAM secondary capture must come
//! back into the same study in Orthanc, referring to that study's own instances.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use support::{Argus, Orthanc, in_namespace, testdata, wait_until};

/// One source study per modality the reference models serve.
fn source_studies() -> Vec<(&'static str, Vec<PathBuf>)> {
    let data = testdata().join("dicom");
    let series = |dir: &str| {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(data.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files
    };
    vec![
        ("CT", series("ct/series_liver_ct_3slice")),
        ("MR", series("mr/series_dcm4che_mr_16slice")),
        ("PT", vec![data.join("pt/ACRIN-FLT-Breast_029_PT.dcm")]),
        ("MG", vec![data.join("mg/CBIS-DDSM_P00820_RIGHT_CC_1-282.dcm")]),
        ("CR", vec![data.join("cr_dx/RG3_UNCR_large_uncompressed.dcm")]),
    ]
}

struct Loaded {
    modality: &'static str,
    orthanc_id: String,
    study_uid: String,
    instance_uids: BTreeSet<String>,
}

fn load(orthanc: &Orthanc) -> Vec<Loaded> {
    source_studies()
        .into_iter()
        .map(|(modality, files)| {
            let ids: Vec<String> = files.iter().map(|f| orthanc.upload(f)).collect();
            let orthanc_id = ids[0].clone();
            let study = orthanc.get(&format!("/studies/{orthanc_id}"));
            let study_uid =
                study["MainDicomTags"]["StudyInstanceUID"].as_str().unwrap().to_string();
            let instance_uids = orthanc
                .instances(&orthanc_id)
                .iter()
                .map(|i| i["MainDicomTags"]["SOPInstanceUID"].as_str().unwrap().to_string())
                .collect();
            Loaded { modality, orthanc_id, study_uid, instance_uids }
        })
        .collect()
}

/// Argus's objects in a study: (series UID, SOP Instance UID, modality) of each.
fn results_in(orthanc: &Orthanc, loaded: &Loaded) -> Vec<(String, String, String)> {
    orthanc
        .instances(&loaded.orthanc_id)
        .iter()
        .filter(|i| {
            !loaded
                .instance_uids
                .contains(i["MainDicomTags"]["SOPInstanceUID"].as_str().unwrap_or(""))
        })
        .map(|i| {
            let series = orthanc.get(&format!("/series/{}", i["ParentSeries"].as_str().unwrap()));
            (
                series["MainDicomTags"]["SeriesInstanceUID"].as_str().unwrap_or("").to_string(),
                i["MainDicomTags"]["SOPInstanceUID"].as_str().unwrap_or("").to_string(),
                series["MainDicomTags"]["Modality"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Waits until every study holds one SR and one secondary capture from Argus.
fn wait_for_results(orthanc: &Orthanc, argus: &Argus, studies: &[Loaded]) {
    for loaded in studies {
        let found = wait_until(Duration::from_secs(300), || {
            let results = results_in(orthanc, loaded);
            let sr = results.iter().filter(|r| r.2 == "SR").count();
            (sr >= 1 && results.len() >= 2).then_some(results)
        });
        assert!(
            found.is_some(),
            "no results for the {} study; jobs: {}\nlog:\n{}",
            loaded.modality,
            argus.get("/jobs"),
            argus.log_text()
        );
    }
}

/// The SOP Instance UIDs an SR's Current Requested Procedure Evidence Sequence refers to.
fn evidence_of(metadata: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let evidence = &metadata[0]["0040A375"]["Value"];
    for study in evidence.as_array().into_iter().flatten() {
        for series in study["00081115"]["Value"].as_array().into_iter().flatten() {
            for sop in series["00081199"]["Value"].as_array().into_iter().flatten() {
                if let Some(uid) = sop["00081155"]["Value"][0].as_str() {
                    out.insert(uid.to_string());
                }
            }
        }
    }
    out
}

fn check_results(orthanc: &Orthanc, studies: &[Loaded]) {
    for loaded in studies {
        let results = results_in(orthanc, loaded);
        let srs: Vec<_> = results.iter().filter(|r| r.2 == "SR").collect();
        assert_eq!(
            srs.len(),
            1,
            "{} study: expected exactly one SR, found {results:?}",
            loaded.modality
        );
        assert_eq!(
            results.len(),
            2,
            "{} study: expected an SR and an SC, found {results:?}",
            loaded.modality
        );

        let (series, sop, _) = srs[0];
        let metadata = orthanc.dicomweb_metadata(&loaded.study_uid, series, sop);
        let evidence = evidence_of(&metadata);
        assert!(!evidence.is_empty(), "{} SR lists no evidence", loaded.modality);
        assert!(
            evidence.is_subset(&loaded.instance_uids),
            "{} SR refers to instances outside its study",
            loaded.modality
        );
    }
}

fn start(dir: &std::path::Path) -> (Orthanc, Argus) {
    let argus = Argus::start(&dir.join("argus"), 4242, &[("ARGUS__ASSEMBLY__QUIET_SECS", "2")]);
    let orthanc = Orthanc::start(&dir.join("orthanc"), argus.port);
    (orthanc, argus)
}

#[test]
fn forwarded_studies_get_their_sr_and_heatmap_back_in_orthanc() {
    in_namespace("forwarded_studies_get_their_sr_and_heatmap_back_in_orthanc", || {
        let dir = tempfile::tempdir().unwrap();
        let (orthanc, argus) = start(dir.path());
        let studies = load(&orthanc);

        for loaded in &studies {
            orthanc.send_to_argus(&loaded.orthanc_id);
        }

        wait_for_results(&orthanc, &argus, &studies);
        check_results(&orthanc, &studies);
    });
}

#[test]
fn sigkill_mid_run_still_ends_with_one_result_set_per_study() {
    in_namespace("sigkill_mid_run_still_ends_with_one_result_set_per_study", || {
        let dir = tempfile::tempdir().unwrap();
        let (orthanc, mut argus) = start(dir.path());
        let studies = load(&orthanc);

        for loaded in &studies {
            orthanc.send_to_argus(&loaded.orthanc_id);
        }
        // Kill once the first result is in Orthanc, while the others are still on their way.
        let first = wait_until(Duration::from_secs(300), || {
            studies.iter().any(|s| !results_in(&orthanc, s).is_empty()).then_some(())
        });
        assert!(first.is_some(), "no result before the kill:\n{}", argus.log_text());
        argus.kill();
        argus.restart();

        wait_for_results(&orthanc, &argus, &studies);
        std::thread::sleep(Duration::from_secs(5));
        check_results(&orthanc, &studies);
    });
}
