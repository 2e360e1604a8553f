//! The conformance statement (conformance/README.md) against the SCP's real behaviour: every
//! transfer syntax in its table is accepted in negotiation, no other is, and the table lists
//! exactly what Argus's transfer syntax registry can parse.

mod common;

use std::collections::BTreeSet;

use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::pdu::PresentationContextResultReason;

const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";

/// The transfer syntax UIDs of the statement's table in section 4.2.3.
fn statement_syntaxes() -> BTreeSet<String> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/README.md"),
    )
    .unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|uid| uid.starts_with("1.2.840.10008.1.2"))
        .map(str::to_string)
        .collect()
}

#[test]
fn table_lists_exactly_the_syntaxes_argus_can_parse() {
    let parseable: BTreeSet<String> = TransferSyntaxRegistry
        .iter()
        .filter(|ts| !ts.is_unsupported())
        .map(|ts| ts.uid().to_string())
        .collect();

    assert_eq!(statement_syntaxes(), parseable);
}

#[test]
fn scp_accepts_each_syntax_in_the_table_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::Node::start(&dir.path().join("data"), &[]);
    let mut proposed: Vec<String> = statement_syntaxes().into_iter().collect();
    proposed.push("1.2.840.10008.1.2.999".to_string());

    // One presentation context per syntax; at most 128 fit in one association.
    for chunk in proposed.chunks(100) {
        let mut options = dicom_ul::ClientAssociationOptions::new()
            .calling_ae_title("CONFORMANCE")
            .called_ae_title("ARGUS");
        for ts in chunk {
            options = options.with_presentation_context(CT_IMAGE_STORAGE, vec![ts.as_str()]);
        }
        let association = options.establish(("127.0.0.1", node.port)).unwrap();

        for (pc, ts) in association.presentation_contexts().iter().zip(chunk) {
            let accepted = pc.reason == PresentationContextResultReason::Acceptance;
            let listed = ts != "1.2.840.10008.1.2.999";
            assert_eq!(accepted, listed, "transfer syntax {ts}");
            if accepted {
                assert_eq!(pc.transfer_syntax.trim_end_matches('\0'), ts);
            }
        }
        association.release().unwrap();
    }
}

#[test]
fn every_storage_sop_class_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::Node::start(&dir.path().join("data"), &[]);
    let classes: Vec<&str> =
        argus::receive::sop_classes::STORAGE_SOP_CLASSES.iter().map(|(uid, _)| *uid).collect();

    for chunk in classes.chunks(100) {
        let mut options = dicom_ul::ClientAssociationOptions::new()
            .calling_ae_title("CONFORMANCE")
            .called_ae_title("ARGUS");
        for class in chunk {
            options = options.with_presentation_context(*class, vec!["1.2.840.10008.1.2"]);
        }
        let association = options.establish(("127.0.0.1", node.port)).unwrap();
        let accepted = association
            .presentation_contexts()
            .iter()
            .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
            .count();
        assert_eq!(accepted, chunk.len());
        association.release().unwrap();
    }
}
