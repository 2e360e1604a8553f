//! Recovery after an abrupt stop. Index commits are not flushed one by one: each instance's
//! file is durable before its C-STORE is answered, and the index follows at the next
//! checkpoint. After a crash, the files that the index lost are indexed again from their own
//! meta group and data set (PS3.10 7.1), through the same hook, so their studies still get
//! their jobs. A marker file tells a clean stop from a crash.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::index::{IndexError, now_ms};
use super::{Incoming, Store, StoreError};

/// Present while a node runs; removed by a clean stop.
pub(super) const RUNNING_MARKER: &str = "argus.running";

/// Indexes every stored file the index does not know; returns how many there were.
pub(super) fn reindex_missing(store: &Store) -> Result<usize, StoreError> {
    let mut recovered = 0;
    for path in instance_files(store.files().root()) {
        let Some(sop) = path.file_stem().map(|s| s.to_string_lossy().to_string()) else {
            continue;
        };
        if store.index().instance(&sop)?.is_some() {
            continue;
        }
        match reindex(store, &path) {
            Ok(()) => recovered += 1,
            Err(err) => {
                tracing::error!(path = %path.display(), error = %err, "stored file cannot be indexed again")
            }
        }
    }
    Ok(recovered)
}

fn reindex(store: &Store, path: &Path) -> Result<(), StoreError> {
    let read_err = |e: std::io::Error| StoreError::Open { path: path.to_path_buf(), source: e };
    let bytes = std::fs::read(path).map_err(read_err)?;
    let (meta, dataset) =
        super::files::split_part10(&bytes).map_err(|e| read_err(std::io::Error::other(e)))?;
    let trim = |s: &str| s.trim_end_matches(['\0', ' ']).to_string();
    let (ts, class, sop) = (
        trim(meta.transfer_syntax()),
        trim(meta.media_storage_sop_class_uid()),
        trim(meta.media_storage_sop_instance_uid()),
    );
    let calling = meta.source_application_entity_title().map(trim).unwrap_or_default();
    let called = meta.receiving_application_entity_title().map(trim).unwrap_or_default();
    let incoming = Incoming {
        dataset,
        transfer_syntax: &ts,
        sop_class_uid: &class,
        sop_instance_uid: &sop,
        calling_ae: &calling,
        called_ae: &called,
    };

    let tags = super::parse_tags(&incoming, store.max_dataset_bytes)?;
    let received_at_ms = modified_ms(path).unwrap_or_else(now_ms);
    let record = super::record_of(&incoming, &tags, path.to_path_buf(), received_at_ms);
    store.commit_durable(&tags, &record)
}

fn modified_ms(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(modified.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64)
}

/// The `.dcm` files under `root`, at any depth.
fn instance_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "dcm") {
                out.push(path);
            }
        }
    }
    out
}

/// Makes every earlier commit durable.
pub(super) fn flush(db: &redb::Database) -> Result<(), IndexError> {
    let txn = db.begin_write()?;
    txn.commit()?;
    Ok(())
}
