//! Settings: built-in defaults, then an optional file, then `ARGUS__SECTION__KEY` variables.
//!
//! Loading happens in two phases. [`RawSettings`] mirrors the TOML layout and is filled by the
//! `config` crate from the three sources; [`Settings::load`] then validates it once into typed
//! settings, so that a wrong key or value stops start-up with a message naming it. AE titles are
//! checked against PS3.5 6.2 (at most 16 characters of the default repertoire, no backslash, not
//! all spaces).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The defaults compiled into the binary, so that `argus serve` runs with no file at all.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Why the settings could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read settings: {0}")]
    Read(#[from] config::ConfigError),

    #[error("setting `{key}` is invalid: {reason}")]
    Invalid { key: &'static str, reason: String },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, reason: reason.into() }
}

/// The settings as written, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    node: RawNode,
    dicom: RawDicom,
    http: RawHttp,
    inference: RawInference,
    assembly: RawAssembly,
    outbox: RawOutbox,
    #[serde(default)]
    peers: Vec<Peer>,
    notify: RawNotify,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    data_dir: PathBuf,
    uid_root: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDicom {
    ae_title: String,
    bind: String,
    port: u16,
    allowed_callers: Vec<String>,
    accept_any_called_ae: bool,
    max_associations: usize,
    idle_timeout_secs: u64,
    request_timeout_secs: u64,
    max_pdu_length: u32,
    duplicate_policy: String,
    max_instance_mib: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    bind: String,
    port: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInference {
    models_dir: PathBuf,
    ort_library: String,
    providers: Vec<String>,
    intra_threads: usize,
    inter_threads: usize,
    batch_size: usize,
    priority_from_unvalidated: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssembly {
    quiet_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutbox {
    max_attempts: u32,
    initial_backoff_secs: u64,
    max_backoff_secs: u64,
    reply_to_sender: bool,
    destinations: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    webhook_url: String,
}

/// One entry of the address book: where an AE title listens.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub ae_title: String,
    pub host: String,
    pub port: u16,
}

/// What to do with a second, different instance under an already stored SOP Instance UID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicatePolicy {
    /// Keep the stored instance and answer with a warning status.
    KeepFirst,
    /// Replace the stored instance with the new one.
    Replace,
    /// Refuse the new instance with a failure status.
    Reject,
}

/// An ONNX Runtime execution provider Argus knows how to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    TensorRt,
    Cuda,
    Cpu,
}

impl Provider {
    /// The name used in settings, logs and `argus models`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::TensorRt => "tensorrt",
            Provider::Cuda => "cuda",
            Provider::Cpu => "cpu",
        }
    }
}

/// Validated settings for the whole node.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub uid_root: String,
    pub dicom: DicomSettings,
    pub http_addr: SocketAddr,
    pub inference: InferenceSettings,
    pub quiet_time: Duration,
    pub outbox: OutboxSettings,
    pub peers: Vec<Peer>,
    pub webhook_url: Option<String>,
}

/// Settings of the DICOM listener (PS3.7 and PS3.8).
#[derive(Debug, Clone)]
pub struct DicomSettings {
    pub ae_title: String,
    pub addr: SocketAddr,
    pub allowed_callers: Vec<String>,
    pub accept_any_called_ae: bool,
    pub max_associations: usize,
    pub idle_timeout: Duration,
    pub request_timeout: Duration,
    pub max_pdu_length: u32,
    pub duplicate_policy: DuplicatePolicy,
    pub max_instance_bytes: u64,
}

/// Settings of model loading and inference.
#[derive(Debug, Clone)]
pub struct InferenceSettings {
    pub models_dir: PathBuf,
    pub ort_library: Option<PathBuf>,
    pub providers: Vec<Provider>,
    pub intra_threads: usize,
    pub inter_threads: usize,
    pub batch_size: usize,
    /// Whether findings of models whose manifest does not say `validated = true` may still
    /// raise priority: for testing a deployment, never for patients.
    pub priority_from_unvalidated: bool,
}

/// Settings of the durable outbox that sends results.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub reply_to_sender: bool,
    pub destinations: Vec<String>,
}

impl Settings {
    /// Loads the defaults, then `file` if given, then the environment, and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let raw = RawSettings::load(file, std::env::vars())?;
        Settings::validate(raw)
    }

    /// Validates raw settings into typed ones, naming the first key that is wrong.
    pub fn validate(raw: RawSettings) -> Result<Settings, ConfigError> {
        let peers = validate_peers(raw.peers)?;
        let outbox = validate_outbox(raw.outbox, &peers)?;

        Ok(Settings {
            data_dir: raw.node.data_dir,
            uid_root: validate_uid_root(&raw.node.uid_root)?,
            dicom: validate_dicom(raw.dicom)?,
            http_addr: socket_addr("http.bind", &raw.http.bind, raw.http.port)?,
            inference: validate_inference(raw.inference)?,
            quiet_time: validate_quiet(raw.assembly.quiet_secs)?,
            outbox,
            peers,
            webhook_url: non_empty(raw.notify.webhook_url),
        })
    }

    /// Finds an AE title in the address book.
    pub fn peer(&self, ae_title: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.ae_title == ae_title)
    }
}

impl RawSettings {
    /// Merges the three sources; `env` is passed in so tests need not touch the process.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<RawSettings, ConfigError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }

        let env: config::Map<String, String> = env.into_iter().collect();
        let environment = config::Environment::with_prefix("ARGUS")
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("dicom.allowed_callers")
            .with_list_parse_key("inference.providers")
            .with_list_parse_key("outbox.destinations")
            .try_parsing(true)
            .source(Some(env));

        Ok(builder.add_source(environment).build()?.try_deserialize()?)
    }
}

fn validate_dicom(raw: RawDicom) -> Result<DicomSettings, ConfigError> {
    validate_ae_title("dicom.ae_title", &raw.ae_title)?;
    for caller in &raw.allowed_callers {
        validate_ae_title("dicom.allowed_callers", caller)?;
    }
    if raw.max_associations == 0 {
        return Err(invalid("dicom.max_associations", "must be at least 1"));
    }
    if raw.idle_timeout_secs == 0 {
        return Err(invalid("dicom.idle_timeout_secs", "must be at least 1"));
    }
    if raw.request_timeout_secs == 0 {
        return Err(invalid("dicom.request_timeout_secs", "must be at least 1"));
    }

    // PS3.8 D.1: the smallest maximum length a peer may announce is 4096 bytes, and dicom-ul
    // refuses PDUs over 16 MiB.
    if !(4096..=16 * 1024 * 1024).contains(&raw.max_pdu_length) {
        return Err(invalid("dicom.max_pdu_length", "must be between 4096 and 16777216"));
    }

    Ok(DicomSettings {
        ae_title: raw.ae_title,
        addr: socket_addr("dicom.bind", &raw.bind, raw.port)?,
        allowed_callers: raw.allowed_callers,
        accept_any_called_ae: raw.accept_any_called_ae,
        max_associations: raw.max_associations,
        idle_timeout: Duration::from_secs(raw.idle_timeout_secs),
        request_timeout: Duration::from_secs(raw.request_timeout_secs),
        max_pdu_length: raw.max_pdu_length,
        duplicate_policy: duplicate_policy(&raw.duplicate_policy)?,
        max_instance_bytes: raw.max_instance_mib.saturating_mul(1024 * 1024),
    })
}

fn duplicate_policy(value: &str) -> Result<DuplicatePolicy, ConfigError> {
    match value {
        "keep-first" => Ok(DuplicatePolicy::KeepFirst),
        "replace" => Ok(DuplicatePolicy::Replace),
        "reject" => Ok(DuplicatePolicy::Reject),
        other => Err(invalid(
            "dicom.duplicate_policy",
            format!("`{other}` is not one of keep-first, replace, reject"),
        )),
    }
}

fn validate_inference(raw: RawInference) -> Result<InferenceSettings, ConfigError> {
    let providers =
        raw.providers.iter().map(|name| provider(name)).collect::<Result<Vec<_>, _>>()?;
    if providers.is_empty() {
        return Err(invalid("inference.providers", "must name at least one provider"));
    }
    if raw.batch_size == 0 {
        return Err(invalid("inference.batch_size", "must be at least 1"));
    }

    Ok(InferenceSettings {
        models_dir: raw.models_dir,
        ort_library: non_empty(raw.ort_library).map(PathBuf::from),
        providers,
        intra_threads: raw.intra_threads,
        inter_threads: raw.inter_threads,
        batch_size: raw.batch_size,
        priority_from_unvalidated: raw.priority_from_unvalidated,
    })
}

fn provider(name: &str) -> Result<Provider, ConfigError> {
    match name.to_ascii_lowercase().as_str() {
        "tensorrt" => Ok(Provider::TensorRt),
        "cuda" => Ok(Provider::Cuda),
        "cpu" => Ok(Provider::Cpu),
        other => Err(invalid(
            "inference.providers",
            format!("`{other}` is not one of tensorrt, cuda, cpu"),
        )),
    }
}

fn validate_quiet(secs: u64) -> Result<Duration, ConfigError> {
    if secs == 0 {
        return Err(invalid("assembly.quiet_secs", "must be at least 1"));
    }
    Ok(Duration::from_secs(secs))
}

fn validate_outbox(raw: RawOutbox, peers: &[Peer]) -> Result<OutboxSettings, ConfigError> {
    if raw.max_attempts == 0 {
        return Err(invalid("outbox.max_attempts", "must be at least 1"));
    }
    if raw.initial_backoff_secs == 0 || raw.max_backoff_secs < raw.initial_backoff_secs {
        return Err(invalid(
            "outbox.initial_backoff_secs",
            "must be at least 1 and no more than outbox.max_backoff_secs",
        ));
    }
    for destination in &raw.destinations {
        if !peers.iter().any(|p| &p.ae_title == destination) {
            return Err(invalid(
                "outbox.destinations",
                format!("`{destination}` is not in the address book ([[peers]])"),
            ));
        }
    }

    Ok(OutboxSettings {
        max_attempts: raw.max_attempts,
        initial_backoff: Duration::from_secs(raw.initial_backoff_secs),
        max_backoff: Duration::from_secs(raw.max_backoff_secs),
        reply_to_sender: raw.reply_to_sender,
        destinations: raw.destinations,
    })
}

fn validate_peers(peers: Vec<Peer>) -> Result<Vec<Peer>, ConfigError> {
    for peer in &peers {
        validate_ae_title("peers.ae_title", &peer.ae_title)?;
        if peer.host.trim().is_empty() {
            return Err(invalid("peers.host", format!("empty for `{}`", peer.ae_title)));
        }
    }
    Ok(peers)
}

/// Checks an AE title against PS3.5 6.2: 1 to 16 characters of the default repertoire, no
/// backslash or control character, not only spaces.
pub fn validate_ae_title(key: &'static str, title: &str) -> Result<(), ConfigError> {
    let trimmed = title.trim();
    if trimmed.is_empty() || title.len() > 16 {
        return Err(invalid(key, format!("`{title}` must have 1 to 16 characters")));
    }
    if !title.chars().all(|c| c.is_ascii_graphic() || c == ' ') || title.contains('\\') {
        return Err(invalid(key, format!("`{title}` has a character AE titles cannot hold")));
    }
    Ok(())
}

fn validate_uid_root(root: &str) -> Result<String, ConfigError> {
    let well_formed = !root.is_empty()
        && root.len() <= 24
        && root.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_digit())
                && (part == "0" || !part.starts_with('0'))
        });
    if !well_formed {
        return Err(invalid(
            "node.uid_root",
            format!("`{root}` is not a UID root of 24 or fewer characters"),
        ));
    }
    Ok(root.to_string())
}

fn socket_addr(key: &'static str, host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    let ip: IpAddr =
        host.parse().map_err(|_| invalid(key, format!("`{host}` is not an IP address")))?;
    Ok(SocketAddr::new(ip, port))
}

fn non_empty(value: String) -> Option<String> {
    let trimmed = value.trim();
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::validate(RawSettings::load(None, env)?)
    }

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let settings = load(&[]).unwrap();

        assert_eq!(settings.dicom.ae_title, "ARGUS");
        assert_eq!(settings.dicom.addr, "127.0.0.1:11112".parse().unwrap());
        assert_eq!(settings.http_addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(settings.data_dir, PathBuf::from("./argus-data"));
        assert_eq!(settings.dicom.duplicate_policy, DuplicatePolicy::KeepFirst);
        assert_eq!(
            settings.inference.providers,
            [Provider::TensorRt, Provider::Cuda, Provider::Cpu]
        );
    }

    #[test]
    fn environment_overrides_defaults() {
        let settings = load(&[
            ("ARGUS__DICOM__PORT", "104"),
            ("ARGUS__DICOM__ALLOWED_CALLERS", "PACS,MODALITY"),
        ])
        .unwrap();

        assert_eq!(settings.dicom.addr.port(), 104);
        assert_eq!(settings.dicom.allowed_callers, ["PACS", "MODALITY"]);
    }

    #[test]
    fn wrong_value_names_its_key() {
        let err = load(&[("ARGUS__DICOM__DUPLICATE_POLICY", "overwrite")]).unwrap_err();
        assert!(err.to_string().contains("dicom.duplicate_policy"), "{err}");

        let err = load(&[("ARGUS__DICOM__AE_TITLE", "THIS-TITLE-IS-TOO-LONG")]).unwrap_err();
        assert!(err.to_string().contains("dicom.ae_title"), "{err}");
    }

    #[test]
    fn unknown_key_in_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("argus.toml");
        std::fs::write(&path, "[dicom]\naetitle = \"X\"\n").unwrap();

        let err = RawSettings::load(Some(&path), Vec::new()).unwrap_err();
        assert!(err.to_string().contains("aetitle"), "{err}");
    }

    #[test]
    fn destinations_must_be_in_the_address_book() {
        let err = load(&[("ARGUS__OUTBOX__DESTINATIONS", "NOWHERE")]).unwrap_err();
        assert!(err.to_string().contains("outbox.destinations"), "{err}");
    }
}
