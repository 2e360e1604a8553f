//! The durable job queue in redb: one job per study analysis (or per late series, an
//! amendment), moving through receiving, ready, routed, inferred, reported, sent and done, or
//! ending failed with its reason.
//!
//! Every change of stage is one committed transaction, so after a crash each unfinished job
//! resumes from the last stage it finished. Jobs are JSON values keyed by id.

use std::collections::BTreeMap;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::store::index::{IndexError, decode, now_ms};
pub(crate) use crate::store::index::{get_in, put};

pub(crate) const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");
pub(crate) const STUDY_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("study_state");
pub(crate) const OWN_SERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("own_series");
/// The ids of jobs not yet done or failed, so that the pipeline's polling reads only those.
const ACTIVE: TableDefinition<&str, &[u8]> = TableDefinition::new("active_jobs");

/// Where a job stands. The order is the order of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Instances are still arriving; the study is not complete yet.
    Received,
    /// Quiet long enough: the study is complete and waits for routing.
    Ready,
    /// A model was chosen; waits for inference.
    Routed,
    /// The model ran; waits for its report objects.
    Inferred,
    /// SR and secondary capture written; waiting in the outbox.
    Reported,
    /// Every result reached every destination.
    Sent,
    /// Nothing more to do.
    Done,
    /// Stopped for the reason in `error`.
    Failed,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Received => "received",
            Stage::Ready => "ready",
            Stage::Routed => "routed",
            Stage::Inferred => "inferred",
            Stage::Reported => "reported",
            Stage::Sent => "sent",
            Stage::Done => "done",
            Stage::Failed => "failed",
        }
    }

    /// Whether the job has nothing more to do.
    pub fn is_terminal(self) -> bool {
        matches!(self, Stage::Done | Stage::Failed)
    }

    pub const ALL: [Stage; 8] = [
        Stage::Received,
        Stage::Ready,
        Stage::Routed,
        Stage::Inferred,
        Stage::Reported,
        Stage::Sent,
        Stage::Done,
        Stage::Failed,
    ];
}

/// A reference to an SR Argus wrote, for the Predecessor Documents Sequence of an amendment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrRef {
    pub study_uid: String,
    pub series_uid: String,
    pub sop_instance_uid: String,
    pub sop_class_uid: String,
}

/// A summary of one finding, kept in the job for the HTTP API and the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingSummary {
    pub label: String,
    pub probability: f32,
    pub present: bool,
    pub priority: bool,
}

/// One analysis of a study, or of late series of an already analysed study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub study_uid: String,
    pub stage: Stage,
    /// Series this job covers; empty means the whole study as it stood when it became ready.
    pub series: Vec<String>,
    /// Whether this job analyses series that arrived after the study was closed.
    #[serde(default)]
    pub amendment: bool,
    /// The earlier SR this job amends, when it was known as the job opened.
    pub predecessor: Option<SrRef>,
    pub calling_ae: String,
    pub called_ae: String,
    pub priority: bool,
    pub created_ms: u64,
    pub last_instance_ms: u64,
    pub updated_ms: u64,
    /// The series and model chosen by routing.
    pub routed_series: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub findings: Vec<FindingSummary>,
    /// UIDs of the objects written for this job, fixed before writing so a retry reuses them.
    pub sr: Option<SrRef>,
    pub sc_uid: Option<String>,
    /// Milliseconds spent per step: quiet, prepare+infer, report, send.
    pub timings: BTreeMap<String, u64>,
    pub note: Option<String>,
    pub error: Option<String>,
}

impl Job {
    /// A new job for a study whose first instance just arrived.
    pub fn new(study_uid: &str, calling_ae: &str, called_ae: &str, now: u64) -> Job {
        Job {
            id: uuid::Uuid::new_v4().to_string(),
            study_uid: study_uid.to_string(),
            stage: Stage::Received,
            series: Vec::new(),
            amendment: false,
            predecessor: None,
            calling_ae: calling_ae.to_string(),
            called_ae: called_ae.to_string(),
            priority: false,
            created_ms: now,
            last_instance_ms: now,
            updated_ms: now,
            routed_series: None,
            model: None,
            provider: None,
            findings: Vec::new(),
            sr: None,
            sc_uid: None,
            timings: BTreeMap::new(),
            note: None,
            error: None,
        }
    }
}

/// What Argus remembers per study between jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudyState {
    /// The job still receiving instances, if any.
    pub open_job: Option<String>,
    /// Series already taken by a closed job.
    pub claimed_series: Vec<String>,
    /// The latest SR sent for the study.
    pub last_sr: Option<SrRef>,
}

/// Typed access to the queue tables.
#[derive(Clone)]
pub struct Jobs {
    db: std::sync::Arc<Database>,
}

impl Jobs {
    /// Opens the queue in `db`, creating its tables.
    pub fn open(db: std::sync::Arc<Database>) -> Result<Jobs, IndexError> {
        let txn = db.begin_write()?;
        txn.open_table(JOBS)?;
        txn.open_table(STUDY_STATE)?;
        txn.open_table(OWN_SERIES)?;
        txn.open_table(ACTIVE)?;
        txn.commit()?;
        Ok(Jobs { db })
    }

    pub fn database(&self) -> &std::sync::Arc<Database> {
        &self.db
    }

    pub fn get(&self, id: &str) -> Result<Option<Job>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(JOBS)?;
        let found = table.get(id)?;
        found.map(|v| decode(id, v.value())).transpose()
    }

    /// Every job, oldest first.
    pub fn all(&self) -> Result<Vec<Job>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(JOBS)?;
        let mut jobs: Vec<Job> = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            jobs.push(decode(key.value(), value.value())?);
        }
        jobs.sort_by_key(|j| (j.created_ms, j.id.clone()));
        Ok(jobs)
    }

    /// Jobs at `stage`, priority ones first, then the oldest.
    pub fn at_stage(&self, stage: Stage) -> Result<Vec<Job>, IndexError> {
        let mut jobs: Vec<Job> = if stage.is_terminal() {
            self.all()?.into_iter().filter(|j| j.stage == stage).collect()
        } else {
            self.active()?.into_iter().filter(|j| j.stage == stage).collect()
        };
        jobs.sort_by_key(|j| (!j.priority, j.updated_ms));
        Ok(jobs)
    }

    /// The jobs not yet done or failed.
    fn active(&self) -> Result<Vec<Job>, IndexError> {
        let txn = self.db.begin_read()?;
        let ids = txn.open_table(ACTIVE)?;
        let jobs = txn.open_table(JOBS)?;
        let mut out = Vec::new();
        for entry in ids.iter()? {
            let (id, _) = entry?;
            if let Some(value) = jobs.get(id.value())? {
                out.push(decode(id.value(), value.value())?);
            }
        }
        Ok(out)
    }

    /// Applies `change` to a job and commits it; returns the job as saved.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Job)) -> Result<Job, IndexError> {
        let txn = self.db.begin_write()?;
        let mut job: Job = get_in(&txn, JOBS, id)?.ok_or_else(|| missing(id))?;
        change(&mut job);
        job.updated_ms = now_ms();
        save(&txn, &job)?;
        txn.commit()?;
        Ok(job)
    }

    /// Whether `series_uid` holds objects Argus wrote itself.
    pub fn is_own_series(&self, series_uid: &str) -> Result<bool, IndexError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(OWN_SERIES)?.get(series_uid)?.is_some())
    }

    pub fn study_state(&self, study_uid: &str) -> Result<StudyState, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STUDY_STATE)?;
        let found = table.get(study_uid)?;
        Ok(found.map(|v| decode(study_uid, v.value())).transpose()?.unwrap_or_default())
    }
}

/// Writes a job and keeps the table of active jobs in step, in the caller's transaction.
pub(crate) fn save(txn: &redb::WriteTransaction, job: &Job) -> Result<(), IndexError> {
    put(txn, JOBS, &job.id, job)?;
    let mut active = txn.open_table(ACTIVE)?;
    if job.stage.is_terminal() {
        active.remove(job.id.as_str())?;
    } else {
        active.insert(job.id.as_str(), [].as_slice())?;
    }
    Ok(())
}

fn missing(id: &str) -> IndexError {
    IndexError::Record {
        key: id.to_string(),
        source: <serde_json::Error as serde::de::Error>::custom("no such job"),
    }
}
