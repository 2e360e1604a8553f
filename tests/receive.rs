//! The Storage SCP against real peers: dcmtk's storescu and echoscu send the real files of the
//! shared corpus, and the store is checked on disk and in the index afterwards.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use argus::config::DuplicatePolicy;
use argus::store::Store;
use common::{
    Node, Witness, dataset_bytes, dataset_sop_instance, files_under, meta_sop_instance,
    meta_transfer_syntax, require_tool, storescu_exact, testdata,
};

/// Transfer syntaxes that dcmtk 3.6.7 does not know and so cannot send.
const UNKNOWN_TO_DCMTK: &[&str] =
    &["1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112"];

fn stored_dataset(store: &Store, sop_instance: &str) -> Option<Vec<u8>> {
    let record = store.index().instance(sop_instance).unwrap()?;
    let bytes = std::fs::read(&record.path).unwrap();
    Some(dataset_bytes(&bytes).expect("stored files have a meta group").to_vec())
}

fn sendable_corpus() -> Vec<PathBuf> {
    files_under(&testdata().join("dicom"))
        .into_iter()
        .filter(|p| !p.starts_with(testdata().join("dicom/broken")))
        .filter(|p| meta_transfer_syntax(p).is_some())
        .filter(|p| !UNKNOWN_TO_DCMTK.contains(&meta_transfer_syntax(p).unwrap().as_str()))
        .collect()
}

#[test]
fn every_corpus_file_is_stored_byte_for_byte_in_its_own_transfer_syntax() {
    require_tool("storescu");
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(&dir.path().join("data"), &[]);
    let files = sendable_corpus();
    assert!(files.len() > 100, "the shared corpus is missing: {}", testdata().display());

    // storescu re-encodes what it sends, so storescp in bit-preserving mode records what was
    // really on the wire. The first file sent under a SOP Instance UID is the one kept.
    let witness = Witness::start();
    let mut first_sent: HashMap<String, PathBuf> = HashMap::new();
    for file in &files {
        let sop = dataset_sop_instance(file).unwrap();
        if first_sent.contains_key(&sop) {
            continue;
        }
        storescu_exact(witness.port, "WITNESS", "STORESCU", file, &[]);
        let output = node.storescu_exact("STORESCU", file, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("E: "), "storescu failed on {}:\n{stderr}", file.display());
        assert!(!stderr.contains("Converting"), "storescu converted {}:\n{stderr}", file.display());
        first_sent.insert(sop, file.clone());
    }
    assert!(node.echo("ECHOSCU"));
    assert!(node.terminate(), "argus did not exit cleanly on SIGTERM:\n{}", node.log_text());

    let store = Store::open(&dir.path().join("data"), DuplicatePolicy::KeepFirst).unwrap();
    for (sop, file) in &first_sent {
        // storescp accepts fewer transfer syntaxes than Argus; without its record, the file's
        // own data set is what storescu sent.
        let sent = witness
            .received(sop)
            .unwrap_or_else(|| dataset_bytes(&std::fs::read(file).unwrap()).unwrap().to_vec());
        let stored = stored_dataset(&store, sop)
            .unwrap_or_else(|| panic!("{} ({sop}) is not in the index", file.display()));
        assert!(stored == sent, "{} changed on the way", file.display());
    }
}

/// The store parses a data set only up to its top-level Pixel Data; on every corpus file that
/// must give the same indexed attributes as a parse of the whole data set.
#[test]
fn indexed_attributes_precede_the_top_level_pixel_data() {
    use dicom_encoding::TransferSyntaxIndex;
    use dicom_object::InMemDicomObject;

    let registry = dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    let mut located = 0;
    for path in sendable_corpus() {
        let bytes = std::fs::read(&path).unwrap();
        let dataset = dataset_bytes(&bytes).unwrap();
        let ts = registry.get(&meta_transfer_syntax(&path).unwrap()).unwrap();
        let Some(encoding) = argus::store::guard::Encoding::of(ts) else { continue };
        let layout = argus::store::guard::check_lengths(dataset, encoding).unwrap();
        let Some(end) = layout.pixel_data_at else { continue };

        let whole = InMemDicomObject::read_dataset_with_ts(dataset, ts).unwrap();
        let header = InMemDicomObject::read_dataset_with_ts(&dataset[..end], ts)
            .unwrap_or_else(|e| panic!("{}: header cut at byte {end}: {e}", path.display()));
        assert_eq!(
            argus::store::tags::InstanceTags::from_object(&header),
            argus::store::tags::InstanceTags::from_object(&whole),
            "{}",
            path.display()
        );
        located += 1;
    }
    assert!(located > 50, "only {located} corpus files have top-level Pixel Data");
}

#[test]
fn unknown_calling_ae_title_is_rejected() {
    require_tool("echoscu");
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("data"), &[("ARGUS__DICOM__ALLOWED_CALLERS", "PACS")]);

    assert!(!node.echo("INTRUDER"));
    assert!(node.echo("PACS"));
    assert!(node.log_text().contains("calling AE title not allowed"));
}

#[test]
fn broken_files_fail_clearly_or_are_stored_as_received() {
    require_tool("storescu");
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("data"), &[]);

    let mut outcomes = Vec::new();
    for file in files_under(&testdata().join("dicom/broken")) {
        let output = match meta_transfer_syntax(&file) {
            Some(_) => node.storescu_exact("STORESCU", &file, &[]),
            None => node.storescu("STORESCU", &[], &[file.as_path()]),
        };
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        outcomes.push((file, stderr));
        assert!(node.echo("ECHOSCU"), "the node stopped serving:\n{}", node.log_text());
    }

    let tmp = dir.path().join("data/tmp");
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "a partial file stayed behind");
    let log = node.log_text();
    for (file, stderr) in &outcomes {
        if stderr.contains("Store Failed") && stderr.contains("Status: ") {
            let name = file.file_name().unwrap().to_string_lossy();
            assert!(log.contains("instance refused"), "no reason logged for {name}");
        }
    }
}

#[test]
fn garbage_truncated_pdus_and_aborts_do_not_disturb_other_peers() {
    require_tool("echoscu");
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("data"), &[]);

    // Bytes that are no PDU at all.
    let mut socket = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    socket.write_all(b"GET / HTTP/1.1\r\nHost: argus\r\n\r\n").unwrap();
    drop(socket);

    // An A-ASSOCIATE-RQ header announcing more bytes than ever arrive.
    let mut socket = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    socket.write_all(&[0x01, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x01, 0x02]).unwrap();
    drop(socket);

    // An association aborted in the middle of a data set.
    abort_mid_transfer(node.port);

    assert!(node.echo("ECHOSCU"));
    drop(node);
    let store = Store::open(&dir.path().join("data"), DuplicatePolicy::KeepFirst);
    assert_eq!(store.unwrap().index().instance_count().unwrap(), 0);
}

/// Opens an association, sends a C-STORE command and half a data set, then aborts.
fn abort_mid_transfer(port: u16) {
    use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};

    let ct = "1.2.840.10008.5.1.4.1.1.2";
    let mut association = dicom_ul::ClientAssociationOptions::new()
        .calling_ae_title("ABORTER")
        .called_ae_title("ARGUS")
        .with_presentation_context(ct, vec!["1.2.840.10008.1.2.1"])
        .establish(("127.0.0.1", port))
        .unwrap();
    let context = association.presentation_contexts()[0].id;
    let command = argus::dimse::store_request(1, ct, "1.2.3.4.5.6");
    let fragment = |value_type, is_last, data| PDataValue {
        presentation_context_id: context,
        value_type,
        is_last,
        data,
    };

    association
        .send(&Pdu::PData { data: vec![fragment(PDataValueType::Command, true, command)] })
        .unwrap();
    let half = vec![0u8; 1000];
    association
        .send(&Pdu::PData { data: vec![fragment(PDataValueType::Data, false, half)] })
        .unwrap();
    association.abort().unwrap();
}

#[test]
fn duplicate_with_other_content_keeps_the_first_and_warns() {
    require_tool("storescu");
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("data"), &[]);
    let first = testdata().join("dicom/mr/MR_small.dcm");
    let second = dir.path().join("MR_small_edited.dcm");
    edited_copy(&first, &second);

    let same = node.storescu_exact("STORESCU", &first, &[]);
    let again = node.storescu_exact("STORESCU", &first, &["-v"]);
    let other = node.storescu_exact("STORESCU", &second, &["-v"]);

    assert!(!String::from_utf8_lossy(&same.stderr).contains("E: "));
    assert!(String::from_utf8_lossy(&again.stderr).contains("Store Response (Success)"));
    let verbose = String::from_utf8_lossy(&other.stderr).to_string();
    assert!(verbose.contains("Warning"), "expected a warning status:\n{verbose}");
    drop(node);

    let store = Store::open(&dir.path().join("data"), DuplicatePolicy::KeepFirst).unwrap();
    store.recover().unwrap();
    let sop = meta_sop_instance(&first).unwrap();
    let kept = store.index().instance(&sop).unwrap().unwrap();
    let kept = dicom_object::open_file(&kept.path).unwrap();
    let description = kept.element(dicom_dictionary_std::tags::STUDY_DESCRIPTION).ok();
    assert_ne!(description.and_then(|e| e.to_str().ok()).as_deref(), Some("edited"));
}

/// Writes a copy of `source` with another Study Description but the same UIDs.
fn edited_copy(source: &Path, target: &Path) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    let mut obj = dicom_object::open_file(source).unwrap();
    obj.put(DataElement::new(
        dicom_dictionary_std::tags::STUDY_DESCRIPTION,
        VR::LO,
        PrimitiveValue::from("edited"),
    ));
    obj.write_to_file(target).unwrap();
}

#[test]
fn associations_over_the_cap_are_rejected_transiently() {
    require_tool("echoscu");
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("data"), &[("ARGUS__DICOM__MAX_ASSOCIATIONS", "1")]);
    // Let the readiness probe's connection end, so that it holds no association slot.
    std::thread::sleep(std::time::Duration::from_millis(300));

    let held = dicom_ul::ClientAssociationOptions::new()
        .calling_ae_title("HOLDER")
        .called_ae_title("ARGUS")
        .with_abstract_syntax("1.2.840.10008.1.1")
        .establish(("127.0.0.1", node.port))
        .unwrap();

    assert!(!node.echo("SECOND"));
    held.release().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(node.echo("SECOND"));
    assert!(node.log_text().contains("too many open associations"));
}

#[test]
fn idle_associations_are_aborted_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&dir.path().join("data"), &[("ARGUS__DICOM__IDLE_TIMEOUT_SECS", "1")]);

    let mut idle = dicom_ul::ClientAssociationOptions::new()
        .calling_ae_title("SLEEPER")
        .called_ae_title("ARGUS")
        .with_abstract_syntax("1.2.840.10008.1.1")
        .establish(("127.0.0.1", node.port))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));

    let next = idle.receive();
    assert!(
        matches!(next, Ok(dicom_ul::Pdu::AbortRQ { .. }) | Err(_)),
        "expected an abort, got {next:?}"
    );
    assert!(node.echo("ECHOSCU"));
}

#[test]
fn silent_connections_lose_their_slot_after_the_request_timeout() {
    require_tool("echoscu");
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(
        &dir.path().join("data"),
        &[("ARGUS__DICOM__MAX_ASSOCIATIONS", "1"), ("ARGUS__DICOM__REQUEST_TIMEOUT_SECS", "1")],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));

    let _silent = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));

    assert!(node.echo("ECHOSCU"), "a silent connection still holds the only slot");
}
