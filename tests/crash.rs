//! Crash safety of the store: the node is killed with SIGKILL while storescu sends a series, and
//! every instance that storescu saw acknowledged must survive, readable, with nothing
//! half-written in the index.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use argus::config::DuplicatePolicy;
use argus::store::{Outcome, Store};
use common::{Node, require_tool, testdata};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;

/// Writes `count` copies of a real CT slice as one new series with fresh UIDs.
fn make_series(dir: &Path, count: usize) -> Vec<PathBuf> {
    let source = testdata().join("dicom/ct/CT_small.dcm");
    let study = argus::uid::generate("2.25");
    let series = argus::uid::generate("2.25");

    (0..count)
        .map(|i| {
            let mut obj = dicom_object::open_file(&source).unwrap();
            let sop = argus::uid::generate("2.25");
            let put = |obj: &mut dicom_object::DefaultDicomObject, tag, vr, value: &str| {
                obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
            };
            put(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, &study);
            put(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, &series);
            put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &sop);
            put(&mut obj, tags::INSTANCE_NUMBER, VR::IS, &(i + 1).to_string());
            obj.meta_mut().media_storage_sop_instance_uid = sop;
            obj.meta_mut().update_information_group_length();

            let path = dir.join(format!("ct{i:03}.dcm"));
            obj.write_to_file(&path).unwrap();
            path
        })
        .collect()
}

#[test]
fn sigkill_during_a_series_loses_nothing_acknowledged() {
    require_tool("storescu");
    let dir = tempfile::tempdir().unwrap();
    let files = make_series(dir.path(), 200);
    let data = dir.path().join("data");
    let mut node = Node::start(&data, &[]);

    let mut storescu = Command::new("storescu")
        .args(["-v", "-aet", "MODALITY", "-aec", "ARGUS", "127.0.0.1", &node.port.to_string()])
        .args(&files)
        .env("TCP_NODELAY", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // storescu -v logs "Sending file: X" and then "Received Store Response (Success)".
    let mut acknowledged = Vec::new();
    let mut sending = None;
    for line in BufReader::new(storescu.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(file) = line.strip_prefix("I: Sending file: ") {
            sending = Some(PathBuf::from(file));
        } else if line.contains("Received Store Response (Success)") {
            acknowledged.push(sending.take().unwrap());
            if acknowledged.len() == 60 {
                node.kill();
            }
        }
    }
    let _ = storescu.wait();
    assert!(acknowledged.len() >= 60, "storescu stopped early");

    node.restart();
    assert!(node.echo("ECHOSCU"));
    node.kill();

    let store = Store::open(&data, DuplicatePolicy::KeepFirst).unwrap();
    assert_eq!(store.recover().unwrap(), 0, "the restarted node left files unindexed");
    for file in &acknowledged {
        let sop = dicom_object::open_file(file).unwrap();
        let sop = sop.element(tags::SOP_INSTANCE_UID).unwrap().to_str().unwrap().to_string();
        let record = store.index().instance(&sop).unwrap();
        let record = record.unwrap_or_else(|| panic!("acknowledged {sop} was lost"));
        dicom_object::open_file(&record.path).expect("stored file is readable");
    }
    for record in store.index().all_instances().unwrap() {
        let bytes = std::fs::read(&record.path).expect("indexed file exists");
        let dataset = common::dataset_bytes(&bytes).expect("indexed file has a meta group");
        assert_eq!(dataset.len() as u64, record.size, "{} is half-written", record.path.display());
        dicom_object::open_file(&record.path).expect("stored file is readable");
    }
    assert_eq!(std::fs::read_dir(data.join("tmp")).unwrap().count(), 0);
}

#[test]
fn a_lost_index_is_rebuilt_from_the_durable_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = make_series(dir.path(), 5);
    let data = dir.path().join("data");
    {
        let store = Store::open(&data, DuplicatePolicy::KeepFirst).unwrap();
        store.recover().unwrap();
        for file in &files {
            let bytes = std::fs::read(file).unwrap();
            let obj = dicom_object::open_file(file).unwrap();
            let sop = obj.element(tags::SOP_INSTANCE_UID).unwrap().to_str().unwrap().to_string();
            let class = obj.element(tags::SOP_CLASS_UID).unwrap().to_str().unwrap().to_string();
            let incoming = argus::store::Incoming {
                dataset: common::dataset_bytes(&bytes).unwrap(),
                transfer_syntax: "1.2.840.10008.1.2.1",
                sop_class_uid: class.trim_end_matches('\0'),
                sop_instance_uid: sop.trim_end_matches('\0'),
                calling_ae: "MODALITY",
                called_ae: "ARGUS",
            };
            store.accept(&incoming).unwrap();
        }
        // The node stops without closing the store, as a crash would.
    }
    std::fs::remove_file(data.join("argus.redb")).unwrap();

    let store = Store::open(&data, DuplicatePolicy::KeepFirst).unwrap();
    assert_eq!(store.recover().unwrap(), 5);
    assert_eq!(store.index().instance_count().unwrap(), 5);
}

/// Between answering a C-STORE and committing its index entry, the instance already counts as
/// stored: the same bytes again are a duplicate, other bytes a conflict.
#[test]
fn an_instance_not_yet_indexed_is_already_known() {
    let dir = tempfile::tempdir().unwrap();
    let files = make_series(dir.path(), 1);
    let store = Store::open(&dir.path().join("data"), DuplicatePolicy::KeepFirst).unwrap();
    let bytes = std::fs::read(&files[0]).unwrap();
    let dataset = common::dataset_bytes(&bytes).unwrap();
    let mut changed = dataset.to_vec();
    *changed.last_mut().unwrap() ^= 0xFF;
    let obj = dicom_object::open_file(&files[0]).unwrap();
    let sop = obj.element(tags::SOP_INSTANCE_UID).unwrap().to_str().unwrap().to_string();
    let class = obj.element(tags::SOP_CLASS_UID).unwrap().to_str().unwrap().to_string();
    let incoming = |dataset| argus::store::Incoming {
        dataset,
        transfer_syntax: "1.2.840.10008.1.2.1",
        sop_class_uid: class.trim_end_matches('\0'),
        sop_instance_uid: sop.trim_end_matches('\0'),
        calling_ae: "MODALITY",
        called_ae: "ARGUS",
    };

    let written = store.write(&incoming(dataset)).unwrap();
    let again = store.write(&incoming(dataset)).unwrap();
    let other = store.write(&incoming(&changed)).unwrap();

    assert_eq!(written.outcome, Outcome::Stored);
    assert_eq!(again.outcome, Outcome::Duplicate);
    assert_eq!(other.outcome, Outcome::ConflictKeptFirst);
    for w in [written, again, other] {
        store.index_written(w).unwrap();
    }
    assert_eq!(store.index().instance_count().unwrap(), 1);
}
