//! Priority notifications: a study whose finding reached the model's priority threshold is
//! announced in the log and, when configured, by a webhook carrying a JSON body (study UID,
//! model, finding, confidence, SR UID). No patient attributes leave Argus this way.

use serde::Serialize;

use super::jobs::Job;
use crate::config::Settings;
use crate::findings::Analysis;

/// The webhook's JSON body.
#[derive(Debug, Serialize)]
pub struct PriorityNotice<'a> {
    pub event: &'static str,
    pub study_uid: &'a str,
    pub job_id: &'a str,
    pub model: &'a str,
    pub model_version: &'a str,
    pub finding: &'a str,
    pub confidence: f32,
    pub sr_uid: Option<&'a str>,
    pub notice: &'static str,
}

/// Logs the priority flag and posts the webhook in the background.
pub fn priority(settings: &Settings, job: &Job, analysis: &Analysis) {
    let Some(top) = analysis.top() else { return };
    tracing::warn!(
        study_uid = %job.study_uid,
        job_id = %job.id,
        model = %analysis.model.id,
        finding = %top.label,
        confidence = top.probability,
        "priority review: AI finding above the model's priority threshold"
    );

    let Some(url) = settings.webhook_url.clone() else { return };
    let body = serde_json::to_value(PriorityNotice {
        event: "priority_finding",
        study_uid: &job.study_uid,
        job_id: &job.id,
        model: &analysis.model.id,
        model_version: &analysis.model.version,
        finding: &top.label,
        confidence: top.probability,
        sr_uid: job.sr.as_ref().map(|s| s.sop_instance_uid.as_str()),
        notice: "AI-generated and unverified; for prioritisation, not diagnosis",
    })
    .expect("notice serialises");

    let job_id = job.id.clone();
    // The pipeline runs this from a blocking thread inside the runtime.
    tokio::runtime::Handle::current().spawn(async move {
        // TODO(#5): Webhook deliveries are tried once and not kept in the durable outbox.
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build();
        let result = match client {
            Ok(client) => {
                client.post(&url).json(&body).send().await.and_then(|r| r.error_for_status())
            }
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            tracing::error!(job_id = %job_id, error = %err, "priority webhook failed");
        }
    });
}
