//! The durable store of received instances: Part 10 files (PS3.10) plus their index in redb.
//!
//! [`Store::write`] is the way in. It parses the data set in the transfer syntax it came in,
//! writes the bytes unchanged behind a new file meta group and syncs them; a caller may answer
//! success once it returns `Ok`. [`Store::index_written`] then commits the index entry, so that
//! a sender's next instance overlaps with the commit. [`Store::accept`] does both in turn.

pub mod files;
pub mod guard;
pub mod index;
mod recover;
pub mod tags;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use redb::{Database, WriteTransaction};

use crate::config::DuplicatePolicy;
use files::{FileError, FileStore, InstanceHeader};
use index::{Index, IndexError, InstanceRecord};
use tags::InstanceTags;

/// The largest inflated data set accepted unless [`Store::with_max_dataset_bytes`] says
/// otherwise: the default of `dicom.max_instance_mib`.
const DEFAULT_MAX_DATASET_BYTES: u64 = 2 << 30;

/// Why an instance was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("transfer syntax {transfer_syntax} is not known to Argus")]
    UnknownTransferSyntax { transfer_syntax: String },

    #[error("data set of {sop_instance_uid} cannot be parsed as {transfer_syntax}: {reason}")]
    Parse { sop_instance_uid: String, transfer_syntax: String, reason: String },

    #[error("data set of {sop_instance_uid} has no {attribute}")]
    MissingIdentifier { sop_instance_uid: String, attribute: &'static str },

    #[error(
        "data set says {attribute} is `{in_dataset}` but the C-STORE request says `{in_command}`"
    )]
    Mismatch { attribute: &'static str, in_dataset: String, in_command: String },

    #[error("{sop_instance_uid} is already stored with other content and the policy is to reject")]
    DuplicateRejected { sop_instance_uid: String },

    #[error(transparent)]
    File(#[from] FileError),

    #[error(transparent)]
    Index(#[from] IndexError),

    #[error("cannot open the store at {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
}

/// One data set as it arrived, with the identifiers from the C-STORE request.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    pub dataset: &'a [u8],
    pub transfer_syntax: &'a str,
    pub sop_class_uid: &'a str,
    pub sop_instance_uid: &'a str,
    pub calling_ae: &'a str,
    pub called_ae: &'a str,
}

/// What happened to an accepted instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored for the first time.
    Stored,
    /// Stored, but it names no study or series, so it will not be analysed.
    StoredUnidentified,
    /// The same bytes were already stored; nothing changed.
    Duplicate,
    /// Other bytes were stored under this UID and were kept.
    ConflictKeptFirst,
    /// Other bytes were stored under this UID and were replaced.
    ConflictReplaced,
}

/// Something that records more state in the same transaction as each newly indexed instance,
/// such as the job queue noting that a study received an instance.
pub trait IndexHook: Send + Sync {
    fn instance_indexed(
        &self,
        txn: &WriteTransaction,
        tags: &InstanceTags,
        record: &InstanceRecord,
    ) -> Result<(), IndexError>;
}

/// Files and index together.
pub struct Store {
    files: FileStore,
    db: Arc<Database>,
    index: Index,
    policy: DuplicatePolicy,
    hook: Option<Arc<dyn IndexHook>>,
    // Serialises the check-then-write of instances whose UIDs hash alike, so that two
    // associations sending one instance at once cannot both write it.
    stripes: Vec<Mutex<()>>,
    // Whether an index commit since the last checkpoint is not yet flushed to disk.
    unflushed: AtomicBool,
    // Instances whose files are durable but whose index entries are not yet committed.
    pending: Mutex<HashMap<String, InstanceRecord>>,
    // Whether an index commit failed after its file was made durable; the next start must
    // then index again, as after a crash.
    index_incomplete: AtomicBool,
    // The largest data set accepted once inflated.
    max_dataset_bytes: u64,
}

/// An instance made durable by [`Store::write`], waiting for [`Store::index_written`].
#[derive(Debug)]
#[must_use = "an instance is indexed by Store::index_written"]
pub struct Written {
    pub outcome: Outcome,
    pub tags: InstanceTags,
    record: Option<InstanceRecord>,
}

impl Store {
    /// Opens (or creates) the store under `data_dir`.
    pub fn open(data_dir: &Path, policy: DuplicatePolicy) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open { path: data_dir.to_path_buf(), source };
        std::fs::create_dir_all(data_dir).map_err(open_err)?;
        let files = FileStore::open(data_dir).map_err(open_err)?;

        let db = Database::create(data_dir.join("argus.redb")).map_err(IndexError::from)?;
        let db = Arc::new(db);
        index::create_tables(&db)?;

        Ok(Store {
            files,
            index: Index::new(db.clone()),
            db,
            policy,
            hook: None,
            stripes: (0..64).map(|_| Mutex::new(())).collect(),
            unflushed: AtomicBool::new(false),
            pending: Mutex::new(HashMap::new()),
            index_incomplete: AtomicBool::new(false),
            max_dataset_bytes: DEFAULT_MAX_DATASET_BYTES,
        })
    }

    /// After a crash, indexes again the stored files whose index entries were not yet flushed,
    /// then marks the store as in use until [`Store::close`]. Call it once hooks are set.
    pub fn recover(&self) -> Result<usize, StoreError> {
        let marker = self.running_marker();
        let recovered = if marker.exists() { recover::reindex_missing(self)? } else { 0 };
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "indexed again the instances an abrupt stop had left out of the index"
            );
        }
        self.files.write_file(&marker, b"").map_err(StoreError::File)?;
        Ok(recovered)
    }

    /// Flushes the index commits made since the last checkpoint.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        if self.unflushed.swap(false, Ordering::AcqRel) {
            recover::flush(&self.db)?;
        }
        Ok(())
    }

    /// Flushes the index and records a clean stop, unless an index commit failed: the marker
    /// then stays, so that the next start indexes the stored files again.
    pub fn close(&self) -> Result<(), StoreError> {
        recover::flush(&self.db)?;
        if self.index_incomplete.load(Ordering::Acquire) {
            tracing::error!("some stored instances are not indexed; the next start indexes them");
            return Ok(());
        }
        let marker = self.running_marker();
        let _ = std::fs::remove_file(marker);
        Ok(())
    }

    /// The file whose presence at start-up means the last stop was not clean.
    fn running_marker(&self) -> PathBuf {
        let data_dir = self.files.root().parent().unwrap_or(Path::new("."));
        data_dir.join(recover::RUNNING_MARKER)
    }

    /// Sets the largest data set accepted once a deflated one is inflated.
    pub fn with_max_dataset_bytes(mut self, max: u64) -> Store {
        self.max_dataset_bytes = max;
        self
    }

    /// Adds state that is written atomically with each newly indexed instance.
    pub fn with_hook(mut self, hook: Arc<dyn IndexHook>) -> Store {
        self.hook = Some(hook);
        self
    }

    /// The redb database, shared with the job queue, outbox and audit trail.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn files(&self) -> &FileStore {
        &self.files
    }

    /// Makes one instance durable and indexes it. Blocking: call it from a blocking thread.
    pub fn accept(&self, incoming: &Incoming<'_>) -> Result<(Outcome, InstanceTags), StoreError> {
        let written = self.write(incoming)?;
        self.index_written(written)
    }

    /// Makes one instance durable without indexing it yet: a C-STORE may be answered as soon as
    /// this returns `Ok`, and [`Store::index_written`] then indexes it while the peer prepares
    /// its next message. Until then the instance counts as stored for duplicates. Blocking.
    pub fn write(&self, incoming: &Incoming<'_>) -> Result<Written, StoreError> {
        let tags = parse_tags(incoming, self.max_dataset_bytes)?;
        check_identifiers(incoming, &tags)?;

        let _guard = self.stripe(&tags.sop_instance_uid).lock().unwrap_or_else(|p| p.into_inner());
        let outcome = match self.stored_record(&tags.sop_instance_uid)? {
            None => Outcome::Stored,
            Some(stored) if same_content(&stored, incoming.dataset) => Outcome::Duplicate,
            Some(_) => self.conflict_outcome(&tags)?,
        };
        if matches!(outcome, Outcome::Duplicate | Outcome::ConflictKeptFirst) {
            return Ok(Written { outcome, tags, record: None });
        }

        let record = self.write_file(incoming, &tags)?;
        self.pending_records().insert(tags.sop_instance_uid.clone(), record.clone());
        let outcome = match outcome {
            Outcome::Stored if !tags.is_identified() => Outcome::StoredUnidentified,
            other => other,
        };
        Ok(Written { outcome, tags, record: Some(record) })
    }

    /// Indexes an instance that [`Store::write`] made durable. Should this fail, the file stays
    /// and the next start indexes it again. Blocking.
    pub fn index_written(&self, written: Written) -> Result<(Outcome, InstanceTags), StoreError> {
        let Written { outcome, tags, record } = written;
        let Some(record) = record else { return Ok((outcome, tags)) };

        if let Err(err) = self.commit(&tags, &record) {
            self.index_incomplete.store(true, Ordering::Release);
            return Err(err);
        }
        let mut pending = self.pending_records();
        if pending.get(&tags.sop_instance_uid) == Some(&record) {
            pending.remove(&tags.sop_instance_uid);
        }
        Ok((outcome, tags))
    }

    /// The record of an instance already stored, indexed or not yet.
    fn stored_record(&self, sop_instance_uid: &str) -> Result<Option<InstanceRecord>, StoreError> {
        if let Some(record) = self.pending_records().get(sop_instance_uid) {
            return Ok(Some(record.clone()));
        }
        Ok(self.index.instance(sop_instance_uid)?)
    }

    fn pending_records(&self) -> std::sync::MutexGuard<'_, HashMap<String, InstanceRecord>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conflict_outcome(&self, tags: &InstanceTags) -> Result<Outcome, StoreError> {
        match self.policy {
            DuplicatePolicy::KeepFirst => Ok(Outcome::ConflictKeptFirst),
            DuplicatePolicy::Replace => Ok(Outcome::ConflictReplaced),
            DuplicatePolicy::Reject => Err(StoreError::DuplicateRejected {
                sop_instance_uid: tags.sop_instance_uid.clone(),
            }),
        }
    }

    fn write_file(
        &self,
        incoming: &Incoming<'_>,
        tags: &InstanceTags,
    ) -> Result<InstanceRecord, StoreError> {
        let header = InstanceHeader {
            study_uid: &tags.study_uid,
            series_uid: &tags.series_uid,
            sop_instance_uid: &tags.sop_instance_uid,
            sop_class_uid: &tags.sop_class_uid,
            transfer_syntax: incoming.transfer_syntax,
            calling_ae: incoming.calling_ae,
            called_ae: incoming.called_ae,
        };
        let path = self.files.write_instance(&header, incoming.dataset)?;
        Ok(record_of(incoming, tags, path, index::now_ms()))
    }

    /// Indexes an instance whose file is already durable. The commit is not flushed: a
    /// checkpoint does that shortly, and after a crash [`Store::recover`] indexes the file again.
    fn commit(&self, tags: &InstanceTags, record: &InstanceRecord) -> Result<(), StoreError> {
        self.commit_with(tags, record, redb::Durability::None)?;
        self.unflushed.store(true, Ordering::Release);
        Ok(())
    }

    /// Indexes an instance and flushes the index at once.
    fn commit_durable(
        &self,
        tags: &InstanceTags,
        record: &InstanceRecord,
    ) -> Result<(), StoreError> {
        self.commit_with(tags, record, redb::Durability::Immediate)
    }

    fn commit_with(
        &self,
        tags: &InstanceTags,
        record: &InstanceRecord,
        durability: redb::Durability,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(IndexError::from)?;
        let _ = txn.set_durability(durability);
        index::record_instance(&txn, tags, record)?;
        if let Some(hook) = self.hook.as_ref().filter(|_| tags.is_identified()) {
            hook.instance_indexed(&txn, tags, record)?;
        }
        txn.commit().map_err(IndexError::from)?;
        Ok(())
    }

    fn stripe(&self, uid: &str) -> &Mutex<()> {
        let hash = uid.bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        &self.stripes[hash % self.stripes.len()]
    }
}

/// Whether the stored file of `stored` holds exactly `dataset`. Only a repeated SOP Instance UID
/// gets here, so the file is read rather than every instance hashed on arrival. A file that
/// cannot be read counts as different content.
fn same_content(stored: &InstanceRecord, dataset: &[u8]) -> bool {
    if stored.size != dataset.len() as u64 {
        return false;
    }
    match std::fs::read(&stored.path) {
        Ok(bytes) => files::split_part10(&bytes).is_ok_and(|(_, kept)| kept == dataset),
        Err(err) => {
            tracing::warn!(path = %stored.path.display(), error = %err, "stored instance cannot be read for comparison");
            false
        }
    }
}

/// The index record of an instance stored at `path`.
fn record_of(
    incoming: &Incoming<'_>,
    tags: &InstanceTags,
    path: PathBuf,
    received_at_ms: u64,
) -> InstanceRecord {
    InstanceRecord {
        sop_instance_uid: tags.sop_instance_uid.clone(),
        sop_class_uid: tags.sop_class_uid.clone(),
        series_uid: tags.series_uid.clone(),
        study_uid: tags.study_uid.clone(),
        transfer_syntax: incoming.transfer_syntax.to_string(),
        path,
        size: incoming.dataset.len() as u64,
        calling_ae: incoming.calling_ae.to_string(),
        called_ae: incoming.called_ae.to_string(),
        received_at_ms,
        instance_number: tags.instance_number.clone(),
    }
}

/// Parses the data set in its own transfer syntax, up to its top-level Pixel Data, and reads
/// the indexed attributes. Every declared length has been checked by then, including those of
/// the pixel data that is not parsed. A deflated data set is inflated first, up to
/// `max_inflated` bytes.
fn parse_tags(incoming: &Incoming<'_>, max_inflated: u64) -> Result<InstanceTags, StoreError> {
    let parse_err = |reason: String| StoreError::Parse {
        sop_instance_uid: incoming.sop_instance_uid.to_string(),
        transfer_syntax: incoming.transfer_syntax.to_string(),
        reason,
    };
    let ts = TransferSyntaxRegistry.get(incoming.transfer_syntax).ok_or_else(|| {
        StoreError::UnknownTransferSyntax { transfer_syntax: incoming.transfer_syntax.to_string() }
    })?;

    let inflated;
    let (dataset, ts, encoding) = match guard::Encoding::of(ts) {
        Some(encoding) => (incoming.dataset, ts, encoding),
        None => {
            inflated = inflate(incoming.dataset, max_inflated).map_err(parse_err)?;
            (&inflated[..], explicit_vr_little_endian(), guard::Encoding::EXPLICIT_LE)
        }
    };
    let layout = guard::check_lengths(dataset, encoding).map_err(|e| parse_err(e.to_string()))?;

    let header = layout.pixel_data_at.map_or(dataset, |end| &dataset[..end]);
    let obj = InMemDicomObject::read_dataset_with_ts(header, ts)
        .or_else(|_| InMemDicomObject::read_dataset_with_ts(dataset, ts))
        .map_err(|e| parse_err(e.to_string()))?;
    Ok(InstanceTags::from_object(&obj))
}

/// Inflates a deflated data set (PS3.5 A.5), refusing one that would grow past `max` bytes
/// before it can exhaust memory.
fn inflate(deflated: &[u8], max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;

    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(deflated)
        .take(max.saturating_add(1))
        .read_to_end(&mut inflated)
        .map_err(|e| format!("cannot inflate the data set: {e}"))?;
    if inflated.len() as u64 > max {
        return Err(format!("the data set inflates past the {max}-byte limit"));
    }
    Ok(inflated)
}

/// The syntax of a data set once inflated (PS3.5 A.5).
fn explicit_vr_little_endian() -> &'static dicom_encoding::TransferSyntax {
    TransferSyntaxRegistry.get("1.2.840.10008.1.2.1").expect("dicom-rs knows Explicit VR LE")
}

/// The data set must carry the identifiers a store needs, and agree with the request.
fn check_identifiers(incoming: &Incoming<'_>, tags: &InstanceTags) -> Result<(), StoreError> {
    if let Some(attribute) = tags.missing_identifier() {
        return Err(StoreError::MissingIdentifier {
            sop_instance_uid: incoming.sop_instance_uid.to_string(),
            attribute,
        });
    }
    if tags.sop_instance_uid != incoming.sop_instance_uid {
        return Err(StoreError::Mismatch {
            attribute: "SOPInstanceUID",
            in_dataset: tags.sop_instance_uid.clone(),
            in_command: incoming.sop_instance_uid.to_string(),
        });
    }
    if tags.sop_class_uid != incoming.sop_class_uid {
        return Err(StoreError::Mismatch {
            attribute: "SOPClassUID",
            in_dataset: tags.sop_class_uid.clone(),
            in_command: incoming.sop_class_uid.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

    /// An explicit VR little endian data set with its identifiers and `padding` bytes of OB.
    fn dataset(padding: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut element = |tag: [u8; 4], vr: &[u8; 2], value: &[u8]| {
            out.extend_from_slice(&tag);
            out.extend_from_slice(vr);
            if vr == b"OB" {
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            } else {
                out.extend_from_slice(&(value.len() as u16).to_le_bytes());
            }
            out.extend_from_slice(value);
        };
        element([0x08, 0x00, 0x16, 0x00], b"UI", b"1.2.840.10008.5.1.4.1.1.7\0");
        element([0x08, 0x00, 0x18, 0x00], b"UI", b"1.2.3.4");
        element([0x09, 0x00, 0x10, 0x00], b"OB", &vec![0; padding]);
        out
    }

    fn deflate(bytes: &[u8]) -> Vec<u8> {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn incoming(dataset: &[u8]) -> Incoming<'_> {
        Incoming {
            dataset,
            transfer_syntax: DEFLATED,
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.7",
            sop_instance_uid: "1.2.3.4",
            calling_ae: "MODALITY",
            called_ae: "ARGUS",
        }
    }

    #[test]
    fn a_deflated_data_set_is_indexed_from_its_inflated_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), DuplicatePolicy::KeepFirst).unwrap();
        let deflated = deflate(&dataset(1000));

        let (outcome, tags) = store.accept(&incoming(&deflated)).unwrap();

        assert_eq!(outcome, Outcome::StoredUnidentified);
        assert_eq!(tags.sop_instance_uid, "1.2.3.4");
    }

    #[test]
    fn a_deflated_data_set_that_inflates_past_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), DuplicatePolicy::KeepFirst)
            .unwrap()
            .with_max_dataset_bytes(64 * 1024);
        let bomb = deflate(&dataset(1 << 20));
        assert!(bomb.len() < 4096, "a megabyte of zeros deflates to a few bytes");

        let err = store.accept(&incoming(&bomb)).unwrap_err();

        assert!(err.to_string().contains("inflates past the 65536-byte limit"), "{err}");
        assert_eq!(store.index().instance_count().unwrap(), 0);
    }
}
