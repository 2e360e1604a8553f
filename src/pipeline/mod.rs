//! The main job, end to end: assemble studies, route each to a model, infer, write the report
//! objects, and deliver them through the outbox. Each stage is a step of a durable [`jobs::Job`];
//! each step is idempotent, so a restart resumes every unfinished job where it stopped.
//!
//! Three tasks share the work: the assembler closes quiet studies and routes them, the
//! inference task analyses one routed job at a time (priority jobs first), and the completion
//! task marks jobs sent once the outbox delivered all their objects.

pub mod assemble;
pub mod jobs;
pub mod notify;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::config::Settings;
use crate::findings::Analysis;
use crate::metrics::{Metrics, label};
use crate::send::{self, Delivery, OutboxItem};
use crate::store::Store;
use crate::store::index::{IndexError, SeriesRecord, now_ms};
use jobs::{FindingSummary, Job, Jobs, SrRef, Stage};

/// Chooses and runs models. Implemented by the inference layer; blocking.
pub trait Analyzer: Send + Sync {
    /// The id of the model that serves this series, if any.
    fn route(&self, series: &SeriesRecord) -> Option<String>;

    /// Runs model `model_id` on the files of one series of `study_uid`.
    fn analyze(
        &self,
        model_id: &str,
        study_uid: &str,
        files: &[PathBuf],
    ) -> Result<Analysis, String>;
}

/// One DICOM object written for a job.
#[derive(Debug, Clone)]
pub struct ReportObject {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub series_uid: String,
    /// The whole Part 10 file.
    pub bytes: Vec<u8>,
}

/// Writes the report objects of an analysis (an SR, and a secondary capture when there is a
/// heatmap) from the analysed files. Implemented by the report layer; blocking.
pub trait Reporter: Send + Sync {
    fn write(
        &self,
        analysis: &Analysis,
        files: &[PathBuf],
        predecessor: Option<&SrRef>,
    ) -> Result<Vec<ReportObject>, String>;
}

/// Why a pipeline step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error(transparent)]
    Index(#[from] IndexError),

    #[error("{0}")]
    Step(String),
}

/// Everything the pipeline tasks share.
pub struct Pipeline {
    pub settings: Settings,
    pub store: Arc<Store>,
    pub jobs: Jobs,
    pub analyzer: Arc<dyn Analyzer>,
    pub reporter: Arc<dyn Reporter>,
    pub metrics: Arc<Metrics>,
    /// Woken when an instance arrives or a job changes stage.
    pub wake: Arc<Notify>,
    /// Woken when a job was routed and waits for inference.
    pub inference_wake: Arc<Notify>,
    /// Woken when new outbox items are waiting.
    pub outbox_wake: Arc<Notify>,
    /// Woken when an outbox item changed state.
    pub outbox_changed: Arc<Notify>,
}

impl Pipeline {
    /// Runs the three pipeline tasks until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let assembler = tokio::spawn(self.clone().assemble_loop(shutdown.clone()));
        let inference = tokio::spawn(self.clone().inference_loop(shutdown.clone()));
        let completion = tokio::spawn(self.clone().completion_loop(shutdown));
        let _ = tokio::join!(assembler, inference, completion);
    }

    async fn assemble_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let quiet_ms = self.settings.quiet_time.as_millis() as u64;
        loop {
            if let Err(err) = self.assemble_once(quiet_ms) {
                tracing::error!(error = %err, "study assembly failed");
            }
            let next = self.next_quiet_deadline(quiet_ms).unwrap_or(Duration::from_millis(500));
            if self.pause(&self.wake, &mut shutdown, next).await {
                return;
            }
        }
    }

    /// How long until the next receiving study turns quiet, between 50 and 500 ms.
    fn next_quiet_deadline(&self, quiet_ms: u64) -> Option<Duration> {
        let now = now_ms();
        let soonest = self
            .jobs
            .at_stage(Stage::Received)
            .ok()?
            .iter()
            .map(|j| (j.last_instance_ms + quiet_ms).saturating_sub(now))
            .min()?;
        Some(Duration::from_millis(soonest.clamp(50, 500)))
    }

    fn assemble_once(&self, quiet_ms: u64) -> Result<(), PipelineError> {
        let closed = assemble::close_quiet_jobs(&self.jobs, self.store.index(), quiet_ms)?;
        for job in self.jobs.at_stage(Stage::Ready)? {
            self.route(&job)?;
        }
        if !closed.is_empty() {
            self.inference_wake.notify_one();
        }
        Ok(())
    }

    /// Picks the series and model of a ready job, or ends it when nothing can be analysed.
    fn route(&self, job: &Job) -> Result<(), PipelineError> {
        let mut best: Option<(usize, String, String)> = None;
        for series_uid in &job.series {
            let Some(series) = self.store.index().series(series_uid)? else { continue };
            if self.jobs.is_own_series(series_uid)? {
                continue;
            }
            let Some(model) = self.analyzer.route(&series) else { continue };
            let count = self.store.index().instances_of_series(series_uid)?.len();
            if best.as_ref().is_none_or(|(n, _, _)| count > *n) {
                best = Some((count, series_uid.clone(), model));
            }
        }

        let updated = self.jobs.update(&job.id, |j| match &best {
            Some((_, series, model)) => {
                j.stage = Stage::Routed;
                j.routed_series = Some(series.clone());
                j.model = Some(model.clone());
            }
            None => {
                j.stage = Stage::Done;
                j.note = Some("no series of this study is served by a loaded model".into());
            }
        })?;
        tracing::info!(job_id = %updated.id, study_uid = %updated.study_uid, model = ?updated.model, stage = updated.stage.name(), "routed");
        Ok(())
    }

    async fn inference_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let next = self.next_inference_job();
            match next {
                Ok(Some(job)) => {
                    let this = self.clone();
                    let id = job.id.clone();
                    let outcome =
                        tokio::task::spawn_blocking(move || this.infer_and_report(job)).await;
                    self.settle(&id, outcome);
                    continue;
                }
                Ok(None) => {}
                Err(err) => tracing::error!(error = %err, "job queue unreadable"),
            }
            if self.pause(&self.inference_wake, &mut shutdown, Duration::from_millis(500)).await {
                return;
            }
        }
    }

    /// The routed job to analyse next: priority first, then the oldest. A job left at
    /// `inferred` by a crash is analysed again, since its heatmap was not kept.
    fn next_inference_job(&self) -> Result<Option<Job>, IndexError> {
        let mut waiting = self.jobs.at_stage(Stage::Inferred)?;
        waiting.extend(self.jobs.at_stage(Stage::Routed)?);
        waiting.sort_by_key(|j| (!j.priority, j.updated_ms));
        Ok(waiting.into_iter().next())
    }

    fn settle(&self, id: &str, outcome: Result<Result<(), PipelineError>, tokio::task::JoinError>) {
        let error = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(err)) => err.to_string(),
            Err(join) => format!("analysis task failed: {join}"),
        };
        tracing::error!(job_id = %id, error = %error, "job failed");
        let _ = self.jobs.update(id, |j| {
            j.stage = Stage::Failed;
            j.error = Some(error);
        });
    }

    /// Runs the model, writes the report objects, and queues them for delivery.
    fn infer_and_report(&self, job: Job) -> Result<(), PipelineError> {
        let span = tracing::info_span!("job", job_id = %job.id, study_uid = %job.study_uid);
        let _enter = span.enter();
        let model =
            job.model.clone().ok_or_else(|| PipelineError::Step("job has no model".into()))?;
        let files = self.series_files(&job)?;

        let started = Instant::now();
        let analysis =
            self.analyzer.analyze(&model, &job.study_uid, &files).map_err(PipelineError::Step)?;
        let inference_ms = started.elapsed().as_millis() as u64;
        self.observe_inference(&analysis, inference_ms);
        let job = self.mark_inferred(&job, &analysis, inference_ms)?;
        if analysis.is_priority() {
            notify::priority(&self.settings, &job, &analysis);
        }

        let started = Instant::now();
        let predecessor = self.predecessor(&job)?;
        let objects = self
            .reporter
            .write(&analysis, &files, predecessor.as_ref())
            .map_err(PipelineError::Step)?;
        let paths = self.save_objects(&job, &objects)?;
        self.mark_reported(&job, &objects, &paths, started.elapsed().as_millis() as u64)
    }

    /// The SR a job amends: the one named when it opened, else the study's latest SR if it
    /// was sent meanwhile. A first analysis amends nothing.
    fn predecessor(&self, job: &Job) -> Result<Option<SrRef>, IndexError> {
        if job.predecessor.is_some() || !job.amendment {
            return Ok(job.predecessor.clone());
        }
        Ok(self
            .jobs
            .study_state(&job.study_uid)?
            .last_sr
            .filter(|sr| sr.study_uid == job.study_uid))
    }

    fn series_files(&self, job: &Job) -> Result<Vec<PathBuf>, PipelineError> {
        let series = job.routed_series.as_deref().unwrap_or_default();
        let mut files = Vec::new();
        for sop in self.store.index().instances_of_series(series)? {
            if let Some(record) = self.store.index().instance(&sop)? {
                files.push(record.path);
            }
        }
        if files.is_empty() {
            return Err(PipelineError::Step(format!("series {series} has no stored instances")));
        }
        Ok(files)
    }

    fn observe_inference(&self, analysis: &Analysis, ms: u64) {
        let labels = format!(
            "model=\"{}\",provider=\"{}\"",
            label(&analysis.model.id),
            label(&analysis.model.provider)
        );
        self.metrics.add("argus_inference_seconds_sum", &labels, ms as f64 / 1000.0);
        self.metrics.add("argus_inference_seconds_count", &labels, 1.0);
    }

    fn mark_inferred(&self, job: &Job, analysis: &Analysis, ms: u64) -> Result<Job, IndexError> {
        let findings: Vec<FindingSummary> = analysis
            .findings
            .iter()
            .map(|f| FindingSummary {
                label: f.label.clone(),
                probability: f.probability,
                present: f.present,
                priority: f.priority,
            })
            .collect();
        let job = self.jobs.update(&job.id, |j| {
            j.stage = Stage::Inferred;
            j.priority = analysis.is_priority();
            j.provider = Some(analysis.model.provider.clone());
            j.findings = findings;
            j.timings.insert("inference_ms".into(), ms);
        })?;
        tracing::info!(model = %analysis.model.id, version = %analysis.model.version, provider = %analysis.model.provider, priority = job.priority, elapsed_ms = ms, "inferred");
        Ok(job)
    }

    /// Writes the objects durably under `results/<job>/` and returns their paths.
    fn save_objects(
        &self,
        job: &Job,
        objects: &[ReportObject],
    ) -> Result<Vec<PathBuf>, PipelineError> {
        let dir = self.settings.data_dir.join("results").join(&job.id);
        let mut paths = Vec::new();
        for object in objects {
            let path = dir.join(format!("{}.dcm", object.sop_instance_uid));
            std::fs::create_dir_all(&dir).map_err(|e| {
                PipelineError::Step(format!("cannot create {}: {e}", dir.display()))
            })?;
            self.store
                .files()
                .write_file(&path, &object.bytes)
                .map_err(|e| PipelineError::Step(e.to_string()))?;
            paths.push(path);
        }
        Ok(paths)
    }

    /// Records the outputs and queues them in one transaction with the job's new stage.
    fn mark_reported(
        &self,
        job: &Job,
        objects: &[ReportObject],
        paths: &[PathBuf],
        report_ms: u64,
    ) -> Result<(), PipelineError> {
        let sr = objects
            .iter()
            .find(|o| o.sop_class_uid.starts_with("1.2.840.10008.5.1.4.1.1.88."))
            .map(|o| SrRef {
                study_uid: job.study_uid.clone(),
                series_uid: o.series_uid.clone(),
                sop_instance_uid: o.sop_instance_uid.clone(),
                sop_class_uid: o.sop_class_uid.clone(),
            });
        let series: Vec<&str> = objects.iter().map(|o| o.series_uid.as_str()).collect();
        assemble::record_outputs(&self.jobs, &job.study_uid, &series, sr.as_ref())?;

        let destinations = self.destinations(job);
        let items: Vec<OutboxItem> = paths
            .iter()
            .flat_map(|p| destinations.iter().map(move |d| (p, d)))
            .map(|(p, d)| OutboxItem::new(&job.id, &job.study_uid, p.clone(), d, job.priority))
            .collect();

        let txn = self.jobs.database().begin_write().map_err(IndexError::from)?;
        send::enqueue(&txn, &items)?;
        let mut saved = self.jobs.get(&job.id)?.unwrap_or_else(|| job.clone());
        saved.stage = if items.is_empty() { Stage::Done } else { Stage::Reported };
        saved.sr = sr;
        saved.sc_uid = objects
            .iter()
            .find(|o| o.sop_class_uid.starts_with("1.2.840.10008.5.1.4.1.1.7"))
            .map(|o| o.sop_instance_uid.clone());
        saved.timings.insert("report_ms".into(), report_ms);
        saved.updated_ms = now_ms();
        if items.is_empty() {
            saved.note = Some("no destination is configured for this study's sender".into());
        }
        jobs::save(&txn, &saved)?;
        txn.commit().map_err(IndexError::from)?;

        tracing::info!(objects = objects.len(), destinations = destinations.len(), "reported");
        self.outbox_wake.notify_one();
        Ok(())
    }

    /// The sender (when the address book knows it and replies are on) and the configured
    /// destinations.
    fn destinations(&self, job: &Job) -> Vec<String> {
        let outbox = &self.settings.outbox;
        let mut out: Vec<String> = Vec::new();
        if outbox.reply_to_sender && self.settings.peer(&job.calling_ae).is_some() {
            out.push(job.calling_ae.clone());
        }
        for d in &outbox.destinations {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    async fn completion_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(err) = self.complete_delivered() {
                tracing::error!(error = %err, "outbox state unreadable");
            }
            tokio::select! {
                _ = self.outbox_changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = receive_stopped(&mut shutdown) => return,
            }
        }
    }

    /// Moves reported jobs on once every item is delivered, or fails them when one cannot be.
    fn complete_delivered(&self) -> Result<(), IndexError> {
        for job in self.jobs.at_stage(Stage::Reported)? {
            let items = send::items_of_job(self.jobs.database(), &job.id)?;
            if items.iter().any(|i| i.state == Delivery::Pending) {
                continue;
            }
            let failed: Vec<String> = items
                .iter()
                .filter_map(|i| i.last_error.clone().filter(|_| i.state == Delivery::Failed))
                .collect();
            let send_ms = items
                .iter()
                .filter_map(|i| i.sent_ms)
                .max()
                .unwrap_or(job.updated_ms)
                .saturating_sub(job.updated_ms);
            self.jobs.update(&job.id, |j| {
                j.timings.insert("send_ms".into(), send_ms);
                if failed.is_empty() {
                    j.stage = Stage::Done;
                } else {
                    j.stage = Stage::Failed;
                    j.error = Some(format!("delivery failed: {}", failed.join("; ")));
                }
            })?;
            tracing::info!(job_id = %job.id, study_uid = %job.study_uid, failed = failed.len(), "job finished");
        }
        Ok(())
    }

    /// Waits for `period`, a wake-up of `wake`, or shutdown; true on shutdown.
    async fn pause(
        &self,
        wake: &Notify,
        shutdown: &mut watch::Receiver<bool>,
        period: Duration,
    ) -> bool {
        tokio::select! {
            _ = wake.notified() => false,
            _ = tokio::time::sleep(period) => false,
            _ = receive_stopped(shutdown) => true,
        }
    }
}

async fn receive_stopped(shutdown: &mut watch::Receiver<bool>) {
    crate::receive::stopped(shutdown).await
}
