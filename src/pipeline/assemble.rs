//! Study assembly: instances are grouped by Study Instance UID (PS3.3 C.7.2.1) into one open
//! job per study, in the same transaction that indexes them, so a study arriving over several
//! associations is never split. A study is complete once no instance has arrived for the quiet
//! time. A series arriving after its study was closed opens an amendment job for that series.
//!
//! Instances that must never be analysed (SR, segmentations, presentation states, key objects,
//! and the objects Argus writes itself) are stored but open no job, so results that a PACS
//! forwards back cannot loop.

use redb::{ReadableTable, WriteTransaction};

use super::jobs::{JOBS, Job, OWN_SERIES, STUDY_STATE, Stage, StudyState, get_in, put, save};
use crate::store::IndexHook;
use crate::store::index::{IndexError, InstanceRecord, now_ms};
use crate::store::tags::InstanceTags;

/// Modalities (PS3.3 C.7.3.1.1.1) that carry no image for a model.
const NOT_ANALYSED_MODALITIES: &[&str] =
    &["SR", "SEG", "PR", "KO", "REG", "RWV", "DOC", "PLAN", "RTSTRUCT", "RTPLAN", "ECG", "AU"];

/// SOP class prefixes of non-image objects: SR (88), presentation states (11), key objects
/// (88.59), segmentation (66.4), waveforms (9), encapsulated documents (104).
const NOT_ANALYSED_CLASS_PREFIXES: &[&str] = &[
    "1.2.840.10008.5.1.4.1.1.88.",
    "1.2.840.10008.5.1.4.1.1.11.",
    "1.2.840.10008.5.1.4.1.1.66",
    "1.2.840.10008.5.1.4.1.1.9.",
    "1.2.840.10008.5.1.4.1.1.104.",
];

/// Whether an instance can be analysed by a model at all.
pub fn is_analysable(tags: &InstanceTags) -> bool {
    let modality_ok = !NOT_ANALYSED_MODALITIES.contains(&tags.modality.as_str());
    let class_ok = !NOT_ANALYSED_CLASS_PREFIXES.iter().any(|p| tags.sop_class_uid.starts_with(p));
    modality_ok && class_ok
}

/// The store hook that keeps jobs in step with arriving instances.
pub struct Assembler;

impl IndexHook for Assembler {
    fn instance_indexed(
        &self,
        txn: &WriteTransaction,
        tags: &InstanceTags,
        record: &InstanceRecord,
    ) -> Result<(), IndexError> {
        if !is_analysable(tags) || is_own_series(txn, &tags.series_uid)? {
            return Ok(());
        }

        let mut state: StudyState = get_in(txn, STUDY_STATE, &tags.study_uid)?.unwrap_or_default();
        match &state.open_job {
            Some(id) => touch_open_job(txn, id, &tags.series_uid, record)?,
            // A new series, or new instances of a series analysed before: either way the
            // series is analysed again as an amendment once it is quiet.
            None => {
                let job = open_job(&state, tags, record);
                tracing::info!(study_uid = %tags.study_uid, job_id = %job.id, amendment = job.amendment, "study receiving");
                state.open_job = Some(job.id.clone());
                save(txn, &job)?;
            }
        }
        put(txn, STUDY_STATE, &tags.study_uid, &state)
    }
}

fn is_own_series(txn: &WriteTransaction, series_uid: &str) -> Result<bool, IndexError> {
    Ok(txn.open_table(OWN_SERIES)?.get(series_uid)?.is_some())
}

/// A new job: for the whole study, or, once the study has results, for the late series.
fn open_job(state: &StudyState, tags: &InstanceTags, record: &InstanceRecord) -> Job {
    let mut job = Job::new(&tags.study_uid, &record.calling_ae, &record.called_ae, now_ms());
    if !state.claimed_series.is_empty() {
        // The study was closed before: analyse only what is new, as an amendment.
        job.series = vec![tags.series_uid.clone()];
        job.amendment = true;
        job.predecessor = state.last_sr.clone();
    }
    job
}

fn touch_open_job(
    txn: &WriteTransaction,
    id: &str,
    series_uid: &str,
    record: &InstanceRecord,
) -> Result<(), IndexError> {
    let Some(mut job) = get_in::<Job>(txn, JOBS, id)? else {
        return Ok(());
    };
    job.last_instance_ms = record.received_at_ms;
    if !job.series.is_empty() && !job.series.iter().any(|s| s == series_uid) {
        job.series.push(series_uid.to_string());
    }
    save(txn, &job)
}

/// Closes every receiving job that has been quiet for `quiet_ms`: its study is complete.
/// Returns the jobs that became ready.
pub fn close_quiet_jobs(
    jobs: &super::jobs::Jobs,
    index: &crate::store::index::Index,
    quiet_ms: u64,
) -> Result<Vec<Job>, IndexError> {
    let now = now_ms();
    let mut ready = Vec::new();
    for job in jobs.at_stage(Stage::Received)? {
        if now.saturating_sub(job.last_instance_ms) >= quiet_ms {
            ready.push(close_job(jobs, index, &job, now)?);
        }
    }
    Ok(ready)
}

fn close_job(
    jobs: &super::jobs::Jobs,
    index: &crate::store::index::Index,
    job: &Job,
    now: u64,
) -> Result<Job, IndexError> {
    let series = if job.series.is_empty() {
        index.series_of_study(&job.study_uid)?
    } else {
        job.series.clone()
    };

    let txn = jobs.database().begin_write()?;
    let mut state: StudyState = get_in(&txn, STUDY_STATE, &job.study_uid)?.unwrap_or_default();
    state.open_job = None;
    for s in &series {
        if !state.claimed_series.contains(s) {
            state.claimed_series.push(s.clone());
        }
    }
    put(&txn, STUDY_STATE, &job.study_uid, &state)?;

    let mut closed = job.clone();
    closed.series = series;
    closed.stage = Stage::Ready;
    closed.updated_ms = now;
    closed.timings.insert("quiet_ms".into(), now.saturating_sub(job.last_instance_ms));
    closed
        .timings
        .insert("receiving_ms".into(), job.last_instance_ms.saturating_sub(job.created_ms));
    save(&txn, &closed)?;
    txn.commit()?;

    tracing::info!(study_uid = %closed.study_uid, job_id = %closed.id, series = closed.series.len(), "study complete");
    Ok(closed)
}

/// Records the series of objects Argus wrote, so that they are never analysed when a PACS
/// sends them back, and remembers the study's latest SR for amendments.
pub fn record_outputs(
    jobs: &super::jobs::Jobs,
    study_uid: &str,
    series_uids: &[&str],
    sr: Option<&super::jobs::SrRef>,
) -> Result<(), IndexError> {
    let txn = jobs.database().begin_write()?;
    for series in series_uids {
        txn.open_table(OWN_SERIES)?.insert(*series, study_uid.as_bytes())?;
    }
    if let Some(sr) = sr {
        let mut state: StudyState = get_in(&txn, STUDY_STATE, study_uid)?.unwrap_or_default();
        state.last_sr = Some(sr.clone());
        put(&txn, STUDY_STATE, study_uid, &state)?;
    }
    txn.commit()?;
    Ok(())
}
