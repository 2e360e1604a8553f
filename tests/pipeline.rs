//! The pipeline with real peers: storescu plays a PACS forwarding studies, storescp (in
//! bit-preserving mode) is that PACS receiving Argus's results. Covers amendments for late
//! series, non-image objects that must never be analysed, and priority notifications.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Node, Witness, require_tool, testdata};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;

/// A node that sends results back to the witness, known as the AE title PACS.
fn node_for(dir: &Path, witness: &Witness, models: &Path, extra: &[(&str, &str)]) -> Node {
    let config = dir.join("argus.toml");
    std::fs::write(
        &config,
        format!("[[peers]]\nae_title = \"PACS\"\nhost = \"127.0.0.1\"\nport = {}\n", witness.port),
    )
    .unwrap();
    let models = models.display().to_string();
    let mut env = vec![
        ("ARGUS__ASSEMBLY__QUIET_SECS", "1"),
        ("ARGUS__INFERENCE__MODELS_DIR", models.as_str()),
    ];
    env.extend_from_slice(extra);
    Node::start_with_config(&dir.join("data"), &config, &env)
}

fn repo_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn ct_series() -> Vec<PathBuf> {
    let dir = testdata().join("dicom/ct/series_liver_ct_3slice");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// The SR files the witness received so far.
fn received_srs(witness: &Witness) -> Vec<dicom_object::DefaultDicomObject> {
    std::fs::read_dir(witness.dir.path())
        .unwrap()
        .filter_map(|e| dicom_object::open_file(e.unwrap().path()).ok())
        .filter(|o| {
            o.meta().media_storage_sop_class_uid().starts_with("1.2.840.10008.5.1.4.1.1.88.")
        })
        .collect()
}

fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn text(obj: &dicom_object::DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches('\0').to_string())
        .unwrap_or_default()
}

/// A copy of `source` as a new series of the same study.
fn late_series_copy(source: &Path, target: &Path) {
    let mut obj = dicom_object::open_file(source).unwrap();
    let sop = argus::uid::generate("2.25");
    obj.put(DataElement::new(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(argus::uid::generate("2.25")),
    ));
    obj.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(sop.as_str())));
    obj.meta_mut().media_storage_sop_instance_uid = sop;
    obj.meta_mut().update_information_group_length();
    obj.write_to_file(target).unwrap();
}

#[test]
fn late_series_gets_an_amended_sr_naming_the_first() {
    require_tool("storescu");
    let dir = tempfile::tempdir().unwrap();
    let witness = Witness::start();
    let node = node_for(dir.path(), &witness, &repo_models(), &[]);
    let series = ct_series();
    let files: Vec<&Path> = series.iter().map(PathBuf::as_path).collect();

    node.storescu("PACS", &[], &files);
    assert!(
        wait_for(Duration::from_secs(120), || received_srs(&witness).len() == 1),
        "no SR:\n{}",
        node.log_text()
    );
    let first = received_srs(&witness).remove(0);
    assert_eq!(text(&first, tags::VERIFICATION_FLAG), "UNVERIFIED");

    let late = dir.path().join("late.dcm");
    late_series_copy(&series[0], &late);
    node.storescu("PACS", &[], &[late.as_path()]);
    assert!(
        wait_for(Duration::from_secs(120), || received_srs(&witness).len() == 2),
        "no amended SR:\n{}",
        node.log_text()
    );

    let first_uid = text(&first, tags::SOP_INSTANCE_UID);
    let amended = received_srs(&witness)
        .into_iter()
        .find(|o| text(o, tags::SOP_INSTANCE_UID) != first_uid)
        .unwrap();
    let predecessors = amended
        .element(tags::PREDECESSOR_DOCUMENTS_SEQUENCE)
        .expect("amendment names its predecessor");
    let dumped = format!("{predecessors:?}");
    assert!(dumped.contains(&first_uid), "predecessor is not the first SR: {dumped}");
}

#[test]
fn structured_reports_and_argus_outputs_are_never_analysed() {
    require_tool("storescu");
    let dir = tempfile::tempdir().unwrap();
    let witness = Witness::start();
    let node = node_for(dir.path(), &witness, &repo_models(), &[]);
    let sr = testdata().join("dicom/sr/highdicom_tid1500_comprehensive3d.dcm");

    node.storescu_exact("PACS", &sr, &[]);
    std::thread::sleep(Duration::from_secs(3));

    let jobs = http_get(node.http_port, "/jobs");
    assert_eq!(jobs.trim(), "[]", "an SR opened a job: {jobs}");
}

#[test]
fn priority_finding_posts_the_webhook() {
    require_tool("storescu");
    let dir = tempfile::tempdir().unwrap();
    let witness = Witness::start();
    let models = common::models_with_thresholds(dir.path(), "ct-chest-nodule", 0.0);
    let hook = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/argus", hook.local_addr().unwrap().port());
    // The reference models are not validated, so the deployment must allow them to raise
    // priority.
    let env = [
        ("ARGUS__NOTIFY__WEBHOOK_URL", url.as_str()),
        ("ARGUS__INFERENCE__PRIORITY_FROM_UNVALIDATED", "true"),
    ];
    let node = node_for(dir.path(), &witness, &models, &env);
    let series = ct_series();
    let files: Vec<&Path> = series.iter().map(PathBuf::as_path).collect();

    node.storescu("PACS", &[], &files);
    let body = receive_one_post(&hook, Duration::from_secs(120));

    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["model"], "ct-chest-nodule");
    assert!(body["study_uid"].as_str().unwrap().len() > 5);
    assert!(body["confidence"].as_f64().is_some());
    assert!(node.log_text().contains("priority review"));
}

/// Accepts one HTTP request on `listener`, answers 200 and returns its body.
fn receive_one_post(listener: &TcpListener, timeout: Duration) -> String {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + timeout;
    let (stream, _) = loop {
        match listener.accept() {
            Ok(pair) => break pair,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("no webhook call: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let mut stream = stream;
    stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
    String::from_utf8(body).unwrap()
}

fn http_get(port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}{path}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn late_instances_of_an_analysed_series_are_analysed_again() {
    require_tool("storescu");
    let dir = tempfile::tempdir().unwrap();
    let witness = Witness::start();
    let node = node_for(dir.path(), &witness, &repo_models(), &[]);
    let series = ct_series();

    node.storescu("PACS", &[], &[series[0].as_path(), series[1].as_path()]);
    assert!(
        wait_for(Duration::from_secs(120), || received_srs(&witness).len() == 1),
        "no SR:\n{}",
        node.log_text()
    );
    node.storescu("PACS", &[], &[series[2].as_path()]);

    let amended = wait_for(Duration::from_secs(120), || received_srs(&witness).len() == 2);
    assert!(amended, "the late instance was not analysed:\n{}", node.log_text());
}
