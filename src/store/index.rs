//! The index of received instances in redb: patient, study, series and instance records, in the
//! hierarchy of PS3.3 A.1.2 (a study has series, a series has instances).
//!
//! Records are JSON values keyed by UID, so that later fields can be added without a migration.
//! Every write is one redb transaction committed with immediate durability: an instance is in
//! the index only once its file is on disk, and the index survives an abrupt stop.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{
    Database, MultimapTableDefinition, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::tags::InstanceTags;

const INSTANCES: TableDefinition<&str, &[u8]> = TableDefinition::new("instances");
const SERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("series");
const STUDIES: TableDefinition<&str, &[u8]> = TableDefinition::new("studies");
const PATIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("patients");
const SERIES_INSTANCES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("series_instances");
const STUDY_SERIES: MultimapTableDefinition<&str, &str> =
    MultimapTableDefinition::new("study_series");

/// Why the index could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    #[error("index storage failed: {0}")]
    Storage(#[from] redb::Error),

    #[error("index record for `{key}` is unreadable: {source}")]
    Record { key: String, source: serde_json::Error },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for IndexError {
            fn from(e: $t) -> Self {
                IndexError::Storage(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::DatabaseError
);

/// One stored instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
    pub series_uid: String,
    pub study_uid: String,
    pub transfer_syntax: String,
    pub path: PathBuf,
    pub size: u64,
    pub calling_ae: String,
    pub called_ae: String,
    pub received_at_ms: u64,
    pub instance_number: String,
}

/// One series of a study.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesRecord {
    pub series_uid: String,
    pub study_uid: String,
    pub modality: String,
    pub body_part: String,
    pub description: String,
    pub series_number: String,
    pub sop_class_uid: String,
    pub last_received_ms: u64,
}

/// One study, with what routing and outcome tracking need.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudyRecord {
    pub study_uid: String,
    pub patient_key: String,
    pub study_date: String,
    pub description: String,
    pub patient_sex: String,
    pub patient_age: String,
    pub calling_ae: String,
    pub called_ae: String,
    pub first_received_ms: u64,
    pub last_received_ms: u64,
}

/// One patient, as the sender identified them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientRecord {
    pub patient_id: String,
    pub patient_name: String,
    pub birth_date: String,
    pub sex: String,
}

/// Milliseconds since the Unix epoch, the time unit of every record.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Creates the index tables so that readers never see them missing.
pub fn create_tables(db: &Database) -> Result<(), IndexError> {
    let txn = db.begin_write()?;
    txn.open_table(INSTANCES)?;
    txn.open_table(SERIES)?;
    txn.open_table(STUDIES)?;
    txn.open_table(PATIENTS)?;
    txn.open_multimap_table(SERIES_INSTANCES)?;
    txn.open_multimap_table(STUDY_SERIES)?;
    txn.commit()?;
    Ok(())
}

/// Records an instance and updates its series, study and patient, in the caller's transaction.
pub fn record_instance(
    txn: &WriteTransaction,
    tags: &InstanceTags,
    record: &InstanceRecord,
) -> Result<(), IndexError> {
    put(txn, INSTANCES, &record.sop_instance_uid, record)?;
    if !tags.is_identified() {
        return Ok(());
    }

    let series = series_record(tags, record);
    put(txn, SERIES, &series.series_uid, &series)?;

    let patient_key = patient_key(tags);
    let study = study_record(txn, tags, record, &patient_key)?;
    put(txn, STUDIES, &study.study_uid, &study)?;
    put(txn, PATIENTS, &patient_key, &patient_record(tags))?;

    txn.open_multimap_table(SERIES_INSTANCES)?
        .insert(record.series_uid.as_str(), record.sop_instance_uid.as_str())?;
    txn.open_multimap_table(STUDY_SERIES)?
        .insert(record.study_uid.as_str(), record.series_uid.as_str())?;
    Ok(())
}

fn series_record(tags: &InstanceTags, record: &InstanceRecord) -> SeriesRecord {
    SeriesRecord {
        series_uid: tags.series_uid.clone(),
        study_uid: tags.study_uid.clone(),
        modality: tags.modality.clone(),
        body_part: tags.body_part.clone(),
        description: tags.series_description.clone(),
        series_number: tags.series_number.clone(),
        sop_class_uid: tags.sop_class_uid.clone(),
        last_received_ms: record.received_at_ms,
    }
}

fn study_record(
    txn: &WriteTransaction,
    tags: &InstanceTags,
    record: &InstanceRecord,
    patient_key: &str,
) -> Result<StudyRecord, IndexError> {
    let previous: Option<StudyRecord> = get_in(txn, STUDIES, &tags.study_uid)?;
    let first_received_ms =
        previous.as_ref().map_or(record.received_at_ms, |s| s.first_received_ms);

    Ok(StudyRecord {
        study_uid: tags.study_uid.clone(),
        patient_key: patient_key.to_string(),
        study_date: tags.study_date.clone(),
        description: tags.study_description.clone(),
        patient_sex: tags.patient_sex.clone(),
        patient_age: tags.patient_age.clone(),
        calling_ae: record.calling_ae.clone(),
        called_ae: record.called_ae.clone(),
        first_received_ms,
        last_received_ms: record.received_at_ms,
    })
}

fn patient_record(tags: &InstanceTags) -> PatientRecord {
    PatientRecord {
        patient_id: tags.patient_id.clone(),
        patient_name: tags.patient_name.clone(),
        birth_date: tags.patient_birth_date.clone(),
        sex: tags.patient_sex.clone(),
    }
}

/// Patients are keyed by Patient ID with the name, since IDs are only unique per issuer. The
/// key is a digest of the two, so that it can appear in an error message without naming anyone.
fn patient_key(tags: &InstanceTags) -> String {
    use sha2::{Digest, Sha256};
    let identity = format!("{}^{}", tags.patient_id, tags.patient_name);
    hex::encode(Sha256::digest(identity.as_bytes()))
}

/// Read access to the index.
#[derive(Clone)]
pub struct Index {
    db: std::sync::Arc<Database>,
}

impl Index {
    pub fn new(db: std::sync::Arc<Database>) -> Index {
        Index { db }
    }

    pub fn instance(&self, sop_instance_uid: &str) -> Result<Option<InstanceRecord>, IndexError> {
        self.get(INSTANCES, sop_instance_uid)
    }

    pub fn study(&self, study_uid: &str) -> Result<Option<StudyRecord>, IndexError> {
        self.get(STUDIES, study_uid)
    }

    pub fn series(&self, series_uid: &str) -> Result<Option<SeriesRecord>, IndexError> {
        self.get(SERIES, series_uid)
    }

    pub fn patient(&self, patient_key: &str) -> Result<Option<PatientRecord>, IndexError> {
        self.get(PATIENTS, patient_key)
    }

    /// The series UIDs of a study.
    pub fn series_of_study(&self, study_uid: &str) -> Result<Vec<String>, IndexError> {
        self.members(STUDY_SERIES, study_uid)
    }

    /// The SOP Instance UIDs of a series.
    pub fn instances_of_series(&self, series_uid: &str) -> Result<Vec<String>, IndexError> {
        self.members(SERIES_INSTANCES, series_uid)
    }

    /// The instance records of a study, series by series.
    pub fn instances_of_study(&self, study_uid: &str) -> Result<Vec<InstanceRecord>, IndexError> {
        let mut out = Vec::new();
        for series in self.series_of_study(study_uid)? {
            for sop in self.instances_of_series(&series)? {
                out.extend(self.instance(&sop)?);
            }
        }
        Ok(out)
    }

    /// Number of instances in the index.
    pub fn instance_count(&self) -> Result<u64, IndexError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(INSTANCES)?.len()?)
    }

    /// Every instance record; for start-up checks and tests.
    pub fn all_instances(&self) -> Result<Vec<InstanceRecord>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(INSTANCES)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            out.push(decode(key.value(), value.value())?);
        }
        Ok(out)
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(table)?;
        let found = table.get(key)?;
        found.map(|v| decode(key, v.value())).transpose()
    }

    fn members(
        &self,
        table: MultimapTableDefinition<&str, &str>,
        key: &str,
    ) -> Result<Vec<String>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_multimap_table(table)?;
        let mut out = Vec::new();
        for value in table.get(key)? {
            out.push(value?.value().to_string());
        }
        Ok(out)
    }
}

/// Reads a JSON record inside a write transaction.
pub fn get_in<T: DeserializeOwned>(
    txn: &WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<T>, IndexError> {
    let table = txn.open_table(table)?;
    let found = table.get(key)?;
    found.map(|v| decode(key, v.value())).transpose()
}

/// Reads an instance record inside a write transaction.
pub fn instance_in(
    txn: &WriteTransaction,
    sop_instance_uid: &str,
) -> Result<Option<InstanceRecord>, IndexError> {
    get_in(txn, INSTANCES, sop_instance_uid)
}

/// Writes a JSON record inside a write transaction.
pub fn put<T: Serialize>(
    txn: &WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
    value: &T,
) -> Result<(), IndexError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|source| IndexError::Record { key: key.to_string(), source })?;
    txn.open_table(table)?.insert(key, bytes.as_slice())?;
    Ok(())
}

/// Reads a JSON record's bytes, naming its key when they are unreadable.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, IndexError> {
    serde_json::from_slice(bytes)
        .map_err(|source| IndexError::Record { key: key.to_string(), source })
}
