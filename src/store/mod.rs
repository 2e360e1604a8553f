//! The durable store of received instances: Part 10 files (PS3.10) plus their index in redb.
//!
//! [`Store::accept`] is the one way in. It parses the data set in the transfer syntax it came
//! in, writes the bytes unchanged behind a new file meta group, syncs them, and only then
//! commits the index. A caller may answer success once `accept` returns `Ok`.

pub mod files;
pub mod guard;
pub mod index;
mod recover;
pub mod tags;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use redb::{Database, WriteTransaction};
use sha2::{Digest, Sha256};

use crate::config::DuplicatePolicy;
use files::{FileError, FileStore, InstanceHeader};
use index::{Index, IndexError, InstanceRecord};
use tags::InstanceTags;

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

    /// Flushes the index and records a clean stop.
    pub fn close(&self) -> Result<(), StoreError> {
        recover::flush(&self.db)?;
        let marker = self.running_marker();
        let _ = std::fs::remove_file(marker);
        Ok(())
    }

    /// The file whose presence at start-up means the last stop was not clean.
    fn running_marker(&self) -> PathBuf {
        let data_dir = self.files.root().parent().unwrap_or(Path::new("."));
        data_dir.join(recover::RUNNING_MARKER)
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

    /// Makes one instance durable. Blocking: call it from a blocking thread.
    pub fn accept(&self, incoming: &Incoming<'_>) -> Result<(Outcome, InstanceTags), StoreError> {
        let tags = parse_tags(incoming)?;
        check_identifiers(incoming, &tags)?;
        let sha256 = hex::encode(Sha256::digest(incoming.dataset));

        let _guard = self.stripe(&tags.sop_instance_uid).lock().unwrap_or_else(|p| p.into_inner());
        let existing = self.index.instance(&tags.sop_instance_uid)?;
        let outcome = match existing {
            None => Outcome::Stored,
            Some(stored) if stored.sha256 == sha256 => return Ok((Outcome::Duplicate, tags)),
            Some(_) => self.conflict_outcome(&tags)?,
        };
        if outcome == Outcome::ConflictKeptFirst {
            return Ok((outcome, tags));
        }

        let record = self.write(incoming, &tags, sha256)?;
        self.commit(&tags, &record)?;
        match outcome {
            Outcome::Stored if !tags.is_identified() => Ok((Outcome::StoredUnidentified, tags)),
            _ => Ok((outcome, tags)),
        }
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

    fn write(
        &self,
        incoming: &Incoming<'_>,
        tags: &InstanceTags,
        sha256: String,
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
        Ok(record_of(incoming, tags, path, sha256, index::now_ms()))
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

/// The index record of an instance stored at `path`.
fn record_of(
    incoming: &Incoming<'_>,
    tags: &InstanceTags,
    path: PathBuf,
    sha256: String,
    received_at_ms: u64,
) -> InstanceRecord {
    InstanceRecord {
        sop_instance_uid: tags.sop_instance_uid.clone(),
        sop_class_uid: tags.sop_class_uid.clone(),
        series_uid: tags.series_uid.clone(),
        study_uid: tags.study_uid.clone(),
        transfer_syntax: incoming.transfer_syntax.to_string(),
        path,
        sha256,
        size: incoming.dataset.len() as u64,
        calling_ae: incoming.calling_ae.to_string(),
        called_ae: incoming.called_ae.to_string(),
        received_at_ms,
        instance_number: tags.instance_number.clone(),
    }
}

/// Parses the data set in its own transfer syntax and reads the indexed attributes.
fn parse_tags(incoming: &Incoming<'_>) -> Result<InstanceTags, StoreError> {
    let ts = TransferSyntaxRegistry.get(incoming.transfer_syntax).ok_or_else(|| {
        StoreError::UnknownTransferSyntax { transfer_syntax: incoming.transfer_syntax.to_string() }
    })?;

    check_declared_lengths(incoming, ts)?;
    let obj = InMemDicomObject::read_dataset_with_ts(incoming.dataset, ts).map_err(|e| {
        StoreError::Parse {
            sop_instance_uid: incoming.sop_instance_uid.to_string(),
            transfer_syntax: incoming.transfer_syntax.to_string(),
            reason: e.to_string(),
        }
    })?;
    Ok(InstanceTags::from_object(&obj))
}

/// Refuses a data set whose declared lengths exceed its bytes before a parser trusts them.
fn check_declared_lengths(
    incoming: &Incoming<'_>,
    ts: &dicom_encoding::TransferSyntax,
) -> Result<(), StoreError> {
    // TODO(#2): A deflated data set is inflated without a bound; cap the inflated size by
    // dicom.max_instance_mib.
    let Some(encoding) = guard::Encoding::of(ts) else { return Ok(()) };
    guard::check_lengths(incoming.dataset, encoding).map_err(|e| StoreError::Parse {
        sop_instance_uid: incoming.sop_instance_uid.to_string(),
        transfer_syntax: incoming.transfer_syntax.to_string(),
        reason: e.to_string(),
    })
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
