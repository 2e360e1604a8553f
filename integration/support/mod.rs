//! The integration harness: a network namespace holding only `lo`, a real Orthanc (the PACS)
//! and a real `argus serve` inside it, and small REST helpers for Orthanc's API.
//!
//! Orthanc 1.10 listens on every address, so each test re-runs itself inside a namespace of its
//! own: nothing it starts can be reached from, or reach, any other host.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const INSIDE: &str = "ARGUS_E2E_INSIDE_NETNS";

/// Runs `test` inside a fresh network namespace: the first call re-executes this test binary
/// there and reports its result; inside, it runs the body.
pub fn in_namespace(test_name: &str, body: impl FnOnce()) {
    if std::env::var_os(INSIDE).is_some() {
        bring_up_loopback();
        body();
        return;
    }

    remove_stale_namespaces();
    let namespace = format!("argus-e2e-{}-{}", std::process::id(), short(test_name));
    let created = Command::new("ip").args(["netns", "add", &namespace]).status();
    assert!(
        created.map(|s| s.success()).unwrap_or(false),
        "`ip netns add` failed: run as root with iproute2 installed"
    );

    let status = Command::new("ip")
        .args(["netns", "exec", &namespace])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads", "1"])
        .env(INSIDE, "1")
        .status();
    let _ = Command::new("ip").args(["netns", "del", &namespace]).status();
    assert!(status.unwrap().success(), "{test_name} failed inside its network namespace");
}

/// Removes namespaces (and what runs in them) left by an earlier run that was killed.
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name.strip_prefix("argus-e2e-").and_then(|r| r.split('-').next()) else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        let pids = Command::new("ip").args(["netns", "pids", name]).output();
        for pid in
            pids.map(|o| String::from_utf8_lossy(&o.stdout).to_string()).unwrap_or_default().lines()
        {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
        let _ = Command::new("ip").args(["netns", "del", name]).status();
    }
}

fn short(name: &str) -> String {
    name.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect()
}

fn bring_up_loopback() {
    let _ = Command::new("ip").args(["link", "set", "lo", "up"]).status();
}

/// The read-only corpus of real DICOM files beside the repository.
pub fn testdata() -> PathBuf {
    std::env::var_os("ARGUS_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata"))
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(Instant::now() < deadline, "{what} did not listen on {port}:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A real Orthanc with the DICOMweb plugin, knowing Argus as a modality.
pub struct Orthanc {
    child: Child,
    pub http_port: u16,
    pub dicom_port: u16,
    pub dir: PathBuf,
}

impl Orthanc {
    pub fn start(dir: &Path, argus_port: u16) -> Orthanc {
        let (http_port, dicom_port) = (8042, 4242);
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let config = serde_json::json!({
            "Name": "ORTHANC-E2E",
            "StorageDirectory": dir.join("db"),
            "IndexDirectory": dir.join("db"),
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": "ORTHANC",
            "RemoteAccessAllowed": true,
            "AuthenticationEnabled": false,
            "DicomCheckCalledAet": false,
            "UnknownSopClassAccepted": true,
            "DicomModalities": { "argus": ["ARGUS", "127.0.0.1", argus_port] },
            "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
            "DicomWeb": { "Enable": true, "Root": "/dicom-web/" },
        });
        let config_path = dir.join("orthanc.json");
        std::fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();

        let log = dir.join("orthanc.log");
        let child = Command::new("Orthanc")
            .arg(&config_path)
            .env("TCP_NODELAY", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("Orthanc starts (Debian package orthanc)");
        wait_for_port(http_port, "Orthanc", &log);
        Orthanc { child, http_port, dicom_port, dir: dir.to_path_buf() }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    /// GET a JSON resource.
    pub fn get(&self, path: &str) -> Value {
        let out = Command::new("curl").args(["-sf", &self.url(path)]).output().unwrap();
        assert!(out.status.success(), "GET {path} failed");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// POST a body (a file with `@path`, or text) and return the JSON answer.
    pub fn post(&self, path: &str, body: &str) -> Value {
        let out = Command::new("curl")
            .args(["-sf", "-X", "POST", "--data-binary", body, &self.url(path)])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "POST {path} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Uploads a DICOM file and returns Orthanc's parent study id.
    pub fn upload(&self, file: &Path) -> String {
        let answer = self.post("/instances", &format!("@{}", file.display()));
        answer["ParentStudy"].as_str().expect("Orthanc stored the file").to_string()
    }

    /// Asks Orthanc to send a study to Argus with C-STORE.
    pub fn send_to_argus(&self, study_id: &str) {
        self.post("/modalities/argus/store", &format!("[\"{study_id}\"]"));
    }

    /// The Orthanc ids of the instances of a study.
    pub fn instances(&self, study_id: &str) -> Vec<Value> {
        self.get(&format!("/studies/{study_id}/instances")).as_array().cloned().unwrap_or_default()
    }

    /// A study's DICOM tags in DICOMweb JSON for one instance (PS3.18 F.2).
    pub fn dicomweb_metadata(&self, study_uid: &str, series_uid: &str, sop_uid: &str) -> Value {
        self.get(&format!(
            "/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/metadata"
        ))
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `argus serve` with Orthanc in its address book.
pub struct Argus {
    child: Option<Child>,
    pub port: u16,
    pub http_port: u16,
    pub data_dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Argus {
    pub fn start(data_dir: &Path, orthanc_port: u16, env: &[(&str, &str)]) -> Argus {
        let mut env: Vec<(String, String)> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let settings = format!(
            "[[peers]]\nae_title = \"ORTHANC\"\nhost = \"127.0.0.1\"\nport = {orthanc_port}\n"
        );
        std::fs::create_dir_all(data_dir).unwrap();
        let config = data_dir.with_extension("toml");
        std::fs::write(&config, settings).unwrap();
        env.push(("ARGUS_CONFIG".into(), config.display().to_string()));

        let mut argus =
            Argus { child: None, port: 11112, http_port: 8080, data_dir: data_dir.into(), env };
        argus.spawn();
        argus
    }

    fn log(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log()).unwrap();
        let config = self.env.iter().find(|(k, _)| k == "ARGUS_CONFIG").unwrap().1.clone();
        let child = Command::new(env!("CARGO_BIN_EXE_argus"))
            .args(["serve", "--config", &config])
            .env("ARGUS__NODE__DATA_DIR", &self.data_dir)
            .env(
                "ARGUS__INFERENCE__MODELS_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
            )
            .env("RUST_LOG", "info")
            .envs(self.env.iter().filter(|(k, _)| k.starts_with("ARGUS__")).map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("argus starts");
        self.child = Some(child);
        wait_for_port(self.port, "argus", &self.log());
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// GET a JSON resource of Argus's HTTP API.
    pub fn get(&self, path: &str) -> Value {
        let url = format!("http://127.0.0.1:{}{path}", self.http_port);
        let out = Command::new("curl").args(["-sf", &url]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }
}

impl Drop for Argus {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
