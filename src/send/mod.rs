//! The durable outbox: every result object Argus must deliver is an outbox item in redb,
//! written in the same transaction that marks its job reported. A sender loop delivers due
//! items by C-STORE (PS3.4 B.2) with bounded retries and exponential backoff; pending items
//! survive restarts, and a destination that refuses Argus ends in one failure record.

pub mod scu;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::config::{OutboxSettings, Peer};
use crate::metrics::{Metrics, label};
use crate::pipeline::jobs::{get_in, put};
use crate::store::index::{IndexError, now_ms};

const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox");

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    Pending,
    Sent,
    Failed,
}

/// One object for one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub id: String,
    pub job_id: String,
    pub study_uid: String,
    pub path: PathBuf,
    pub destination: String,
    pub priority: bool,
    pub state: Delivery,
    pub attempts: u32,
    pub next_attempt_ms: u64,
    pub last_error: Option<String>,
    pub created_ms: u64,
    pub sent_ms: Option<u64>,
}

impl OutboxItem {
    pub fn new(
        job_id: &str,
        study_uid: &str,
        path: PathBuf,
        destination: &str,
        priority: bool,
    ) -> Self {
        let now = now_ms();
        OutboxItem {
            id: uuid::Uuid::new_v4().to_string(),
            job_id: job_id.to_string(),
            study_uid: study_uid.to_string(),
            path,
            destination: destination.to_string(),
            priority,
            state: Delivery::Pending,
            attempts: 0,
            next_attempt_ms: now,
            last_error: None,
            created_ms: now,
            sent_ms: None,
        }
    }
}

/// Creates the outbox table.
pub fn create_table(db: &Database) -> Result<(), IndexError> {
    let txn = db.begin_write()?;
    txn.open_table(OUTBOX)?;
    txn.commit()?;
    Ok(())
}

/// Adds items in the caller's transaction.
pub fn enqueue(txn: &WriteTransaction, items: &[OutboxItem]) -> Result<(), IndexError> {
    for item in items {
        put(txn, OUTBOX, &item.id, item)?;
    }
    Ok(())
}

/// Every item, oldest first.
pub fn all_items(db: &Database) -> Result<Vec<OutboxItem>, IndexError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(OUTBOX)?;
    let mut items = Vec::new();
    for entry in table.iter()? {
        let (key, value) = entry?;
        let item: OutboxItem = serde_json::from_slice(value.value())
            .map_err(|source| IndexError::Record { key: key.value().to_string(), source })?;
        items.push(item);
    }
    items.sort_by_key(|i| (!i.priority, i.created_ms));
    Ok(items)
}

/// The items of one job.
pub fn items_of_job(db: &Database, job_id: &str) -> Result<Vec<OutboxItem>, IndexError> {
    Ok(all_items(db)?.into_iter().filter(|i| i.job_id == job_id).collect())
}

/// Delivers outbox items until shutdown.
pub struct Sender {
    pub db: Arc<Database>,
    pub settings: OutboxSettings,
    pub peers: Vec<Peer>,
    pub calling_ae: String,
    pub metrics: Arc<Metrics>,
    /// Woken when new items are enqueued or an item changes state.
    pub wake: Arc<Notify>,
    pub changed: Arc<Notify>,
}

impl Sender {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(err) = self.send_due().await {
                tracing::error!(error = %err, "outbox could not be read");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = crate::receive::stopped(&mut shutdown) => return,
            }
        }
    }

    async fn send_due(&self) -> Result<(), IndexError> {
        let now = now_ms();
        let due: Vec<OutboxItem> = all_items(&self.db)?
            .into_iter()
            .filter(|i| i.state == Delivery::Pending && i.next_attempt_ms <= now)
            .collect();
        for item in due {
            self.attempt(item).await?;
        }
        Ok(())
    }

    async fn attempt(&self, mut item: OutboxItem) -> Result<(), IndexError> {
        let span = tracing::info_span!("send", job_id = %item.job_id, study_uid = %item.study_uid, destination = %item.destination);
        let _enter = span.enter();
        item.attempts += 1;

        let result = match self.peers.iter().find(|p| p.ae_title == item.destination) {
            Some(peer) => {
                scu::store_file(peer, &self.calling_ae, &item.path, Duration::from_secs(30)).await
            }
            None => Err(scu::SendError::Unreachable {
                peer: item.destination.clone(),
                reason: "not in the address book".into(),
            }),
        };
        self.record(&mut item, result);
        self.save(&item)?;
        self.changed.notify_one();
        Ok(())
    }

    fn record(&self, item: &mut OutboxItem, result: Result<u16, scu::SendError>) {
        let outcome = match result {
            Ok(status) => {
                item.state = Delivery::Sent;
                item.sent_ms = Some(now_ms());
                tracing::info!(
                    status = format!("{status:#06X}"),
                    attempts = item.attempts,
                    "result delivered"
                );
                "sent"
            }
            Err(err) if err.is_permanent() || item.attempts >= self.settings.max_attempts => {
                item.state = Delivery::Failed;
                item.last_error = Some(err.to_string());
                tracing::error!(error = %err, attempts = item.attempts, "result not delivered; giving up");
                "failed"
            }
            Err(err) => {
                item.next_attempt_ms = now_ms() + self.backoff(item.attempts).as_millis() as u64;
                item.last_error = Some(err.to_string());
                tracing::warn!(error = %err, attempts = item.attempts, "delivery failed; will retry");
                "retry"
            }
        };
        let labels = format!("destination=\"{}\",outcome=\"{outcome}\"", label(&item.destination));
        self.metrics.add("argus_sends_total", &labels, 1.0);
    }

    /// Exponential backoff: initial, 2x, 4x, … capped at the maximum.
    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1));
        (self.settings.initial_backoff * factor).min(self.settings.max_backoff)
    }

    fn save(&self, item: &OutboxItem) -> Result<(), IndexError> {
        let txn = self.db.begin_write()?;
        let _: Option<OutboxItem> = get_in(&txn, OUTBOX, &item.id)?;
        put(&txn, OUTBOX, &item.id, item)?;
        txn.commit()?;
        Ok(())
    }
}
