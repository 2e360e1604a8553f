//! Counters and gauges that the HTTP layer exposes in the Prometheus text format (version
//! 0.0.4). Every part of Argus updates them through one shared [`Metrics`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Node-wide counters; cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    pub instances_received: AtomicU64,
    pub instances_refused: AtomicU64,
    pub associations_open: AtomicI64,
    pub associations_rejected: AtomicU64,
    labelled: Mutex<BTreeMap<(String, String), f64>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Adds `value` to the series `name{labels}`; labels are written as given, already escaped.
    pub fn add(&self, name: &str, labels: &str, value: f64) {
        let mut map = self.labelled.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((name.to_string(), labels.to_string())).or_default() += value;
    }

    /// Sets the series `name{labels}` to `value`.
    pub fn set(&self, name: &str, labels: &str, value: f64) {
        let mut map = self.labelled.lock().unwrap_or_else(|p| p.into_inner());
        map.insert((name.to_string(), labels.to_string()), value);
    }

    /// The Prometheus exposition of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, kind: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
        };
        counter(
            &mut out,
            "argus_instances_received_total",
            "Instances stored or acknowledged as duplicates.",
            "counter",
            self.instances_received.load(Ordering::Relaxed).to_string(),
        );
        counter(
            &mut out,
            "argus_instances_refused_total",
            "Instances answered with a failure status.",
            "counter",
            self.instances_refused.load(Ordering::Relaxed).to_string(),
        );
        counter(
            &mut out,
            "argus_associations_open",
            "DICOM associations now open.",
            "gauge",
            self.associations_open.load(Ordering::Relaxed).to_string(),
        );
        counter(
            &mut out,
            "argus_associations_rejected_total",
            "Association requests rejected.",
            "counter",
            self.associations_rejected.load(Ordering::Relaxed).to_string(),
        );

        let map = self.labelled.lock().unwrap_or_else(|p| p.into_inner());
        let mut described = std::collections::BTreeSet::new();
        for ((name, labels), value) in map.iter() {
            let family = family_of(name);
            if described.insert(family) {
                let (kind, help) = describe(family);
                let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
            }
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
        out
    }
}

/// The metric family a series belongs to: a summary's `_sum` and `_count` share one.
fn family_of(name: &str) -> &str {
    name.strip_suffix("_sum").or_else(|| name.strip_suffix("_count")).unwrap_or(name)
}

/// The type and help text of the labelled families.
fn describe(family: &str) -> (&'static str, &'static str) {
    match family {
        "argus_jobs" => ("gauge", "Jobs by state."),
        "argus_sends_total" => ("counter", "Outbox delivery attempts by destination and outcome."),
        "argus_inference_seconds" => {
            ("summary", "Inference time per study, by model and provider.")
        }
        _ => ("untyped", "Argus metric."),
    }
}

/// Escapes a label value for the exposition format.
pub fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
