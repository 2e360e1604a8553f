//! Helpers shared by the integration tests: where the shared test data lives, free ports, a
//! running `argus serve` process, and the real dcmtk tools the tests talk to.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The read-only corpus of real DICOM files (its MANIFEST.md says what each is):
/// `ARGUS_TESTDATA`, else `../shared/testdata` beside the clone.
pub fn testdata() -> PathBuf {
    let path = std::env::var_os("ARGUS_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/testdata"));
    assert!(path.join("MANIFEST.md").is_file(), "test corpus not found at {}", path.display());
    path
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Fails the test with the fix when a required external tool is missing.
pub fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(found, "`{tool}` is not installed; `.ci/run` installs it (Debian package dcmtk)");
}

/// An `argus serve` process on a free port with its own data directory.
pub struct Node {
    child: Option<Child>,
    pub port: u16,
    pub http_port: u16,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    env: Vec<(String, String)>,
}

impl Node {
    /// Starts a node whose data lives in `data_dir`, with extra `ARGUS__…` settings.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Node {
        let mut node = Node {
            child: None,
            port: free_port(),
            http_port: free_port(),
            data_dir: data_dir.to_path_buf(),
            log: data_dir.with_extension("log"),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        node.spawn();
        node
    }

    /// Starts a node that also reads the settings file `config`.
    pub fn start_with_config(data_dir: &Path, config: &Path, env: &[(&str, &str)]) -> Node {
        let mut env = env.to_vec();
        let config = config.to_str().unwrap().to_string();
        env.push(("ARGUS_TEST_CONFIG", &config));
        Node::start(data_dir, &env)
    }

    /// Starts the process again on the same port and data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_argus"));
        if let Some((_, config)) = self.env.iter().find(|(k, _)| k == "ARGUS_TEST_CONFIG") {
            command.args(["--config", config]);
        }
        let child = command
            .arg("serve")
            .env("ARGUS__NODE__DATA_DIR", &self.data_dir)
            .env("ARGUS__DICOM__PORT", self.port.to_string())
            .env("ARGUS__HTTP__PORT", self.http_port.to_string())
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("argus starts");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("argus exited with {status}; log:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "argus did not listen in time:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        child.wait().map(|s| s.success()).unwrap_or(false)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs dcmtk's storescu against this node with the given arguments and files.
    pub fn storescu(&self, calling_ae: &str, args: &[&str], files: &[&Path]) -> Output {
        storescu(self.port, "ARGUS", calling_ae, args, files)
    }

    /// Runs storescu proposing exactly the file's own SOP class and transfer syntax.
    pub fn storescu_exact(&self, calling_ae: &str, file: &Path, extra: &[&str]) -> Output {
        storescu_exact(self.port, "ARGUS", calling_ae, file, extra)
    }

    /// Runs dcmtk's echoscu;
    /// Runs dcmtk's echoscu; returns whether the C-ECHO succeeded.
    pub fn echo(&self, calling_ae: &str) -> bool {
        Command::new("echoscu")
            .args(["-aet", calling_ae, "-aec", "ARGUS", "127.0.0.1"])
            .arg(self.port.to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs dcmtk's storescu against `port` with the given arguments and files.
pub fn storescu(
    port: u16,
    called_ae: &str,
    calling_ae: &str,
    args: &[&str],
    files: &[&Path],
) -> Output {
    Command::new("storescu")
        .args(["-aet", calling_ae, "-aec", called_ae])
        .args(args)
        .arg("127.0.0.1")
        .arg(port.to_string())
        .args(files)
        .env("TCP_NODELAY", "1")
        .output()
        .expect("storescu runs")
}

/// Runs storescu proposing exactly the file's own SOP class and transfer syntax, so that the
/// instance travels in the syntax it is stored in.
pub fn storescu_exact(
    port: u16,
    called_ae: &str,
    calling_ae: &str,
    file: &Path,
    extra: &[&str],
) -> Output {
    let (sop_class, ts) = meta_class_and_syntax(file).expect("file has a meta group");
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!(
            "[[TransferSyntaxes]]\n[Exact]\nTransferSyntax1 = {ts}\n\n\
             [[PresentationContexts]]\n[ExactContexts]\nPresentationContext1 = {sop_class}\\Exact\n\n\
             [[Profiles]]\n[ExactProfile]\nPresentationContexts = ExactContexts\n"
        ),
    )
    .unwrap();
    let config_path = config.path().to_str().unwrap();
    let mut args = vec!["-xf", config_path, "ExactProfile"];
    args.extend_from_slice(extra);
    storescu(port, called_ae, calling_ae, &args, &[file])
}

/// dcmtk's storescp in bit-preserving mode: it writes each data set exactly as it arrived on
/// the wire, so it witnesses what a sender really sent.
pub struct Witness {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Witness {
    pub fn start() -> Witness {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("storescp")
            .args(["+B", "+xa", "-pm", "-uf", "-aet", "WITNESS", "-od"])
            .arg(dir.path())
            .arg(port.to_string())
            .env("TCP_NODELAY", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("storescp starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "storescp did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Witness { child, port, dir }
    }

    /// The data set bytes storescp received for `sop_instance`, if any.
    pub fn received(&self, sop_instance: &str) -> Option<Vec<u8>> {
        let name = std::fs::read_dir(self.dir.path()).ok()?.find_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().to_string();
            name.ends_with(&format!(".{sop_instance}")).then_some(name)
        })?;
        let bytes = std::fs::read(self.dir.path().join(name)).ok()?;
        dataset_bytes(&bytes).map(<[u8]>::to_vec)
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every regular file under `dir`, sorted, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The bytes after the PS3.10 preamble and file meta group, or `None` without a meta group.
pub fn dataset_bytes(file: &[u8]) -> Option<&[u8]> {
    if file.len() < 144 || &file[128..132] != b"DICM" {
        return None;
    }
    // (0002,0000) UL: explicit VR little endian, value at bytes 140..144.
    let group_length = u32::from_le_bytes(file[140..144].try_into().ok()?) as usize;
    file.get(144 + group_length..)
}

/// A file's meta group, when it has one.
pub fn meta_of(path: &Path) -> Option<dicom_object::FileMetaTable> {
    let file = std::fs::File::open(path).ok()?;
    let mut reader = std::io::BufReader::new(file);
    let mut preamble = [0u8; 128];
    std::io::Read::read_exact(&mut reader, &mut preamble).ok()?;
    dicom_object::FileMetaTable::from_reader(reader).ok()
}

fn trimmed(uid: &str) -> String {
    uid.trim_end_matches(['\0', ' ']).to_string()
}

/// The transfer syntax UID in a file's meta group.
pub fn meta_transfer_syntax(path: &Path) -> Option<String> {
    meta_of(path).map(|m| trimmed(m.transfer_syntax()))
}

/// The SOP Instance UID in a file's meta group.
pub fn meta_sop_instance(path: &Path) -> Option<String> {
    meta_of(path).map(|m| trimmed(m.media_storage_sop_instance_uid()))
}

/// The SOP class and transfer syntax UIDs in a file's meta group.
pub fn meta_class_and_syntax(path: &Path) -> Option<(String, String)> {
    let meta = meta_of(path)?;
    let mut class = trimmed(meta.media_storage_sop_class_uid());
    if class.is_empty() {
        // Some writers leave the meta group's class empty; the data set still names it.
        let obj = dicom_object::open_file(path).ok()?;
        class = trimmed(
            obj.element(dicom_dictionary_std::tags::SOP_CLASS_UID).ok()?.to_str().ok()?.as_ref(),
        );
    }
    Some((class, trimmed(meta.transfer_syntax())))
}

/// The SOP Instance UID in a file's data set (which may differ from its meta group's).
pub fn dataset_sop_instance(path: &Path) -> Option<String> {
    let obj = dicom_object::OpenFileOptions::new()
        .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
        .open_file(path)
        .ok()?;
    let uid = obj.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID).ok()?.to_str().ok()?;
    Some(trimmed(&uid))
}

/// The kit's Python: `ARGUS_PYTHON` if it has numpy, pydicom and onnxruntime, else the venv of
/// scripts/python-env.sh, which is run once (idempotent) when the venv is missing.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(find_python).clone()
}

fn find_python() -> PathBuf {
    let venv = std::env::var_os("ARGUS_VENV").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/argus/venv")
    });
    let configured = std::env::var_os("ARGUS_PYTHON").map(PathBuf::from);
    if let Some(found) = configured.iter().chain([&venv.join("bin/python")]).find(|p| usable(p)) {
        return found.clone();
    }

    let status = Command::new("bash").arg(repo().join("scripts/python-env.sh")).status();
    let python = venv.join("bin/python");
    assert!(
        status.map(|s| s.success()).unwrap_or(false) && usable(&python),
        "no Python with numpy, pydicom and onnxruntime: run `scripts/python-env.sh` (venv at {})",
        venv.display()
    );
    python
}

fn usable(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import numpy, pydicom, onnxruntime"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs `scripts/provision-onnxruntime.sh` (idempotent) and returns the path it prints.
pub fn ort_library() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("scripts/provision-onnxruntime.sh"))
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "provisioning failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("a path");
    PathBuf::from(stdout.lines().last().expect("the script prints the path").trim())
}

/// Runs a Python script of tests/reference with arguments; panics with its stderr on failure.
pub fn run_python(script: &str, args: &[&Path]) {
    let out = Command::new(python())
        .arg(repo().join("tests/reference").join(script))
        .args(args)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Reads a raw little-endian float32 file.
pub fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Writes a raw little-endian float32 file.
pub fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// A models folder under `dir` holding a copy of reference model `id` whose positive and
/// priority thresholds are both `threshold`.
pub fn models_with_thresholds(dir: &Path, id: &str, threshold: f32) -> PathBuf {
    let models = dir.join("models");
    let target = models.join(id);
    std::fs::create_dir_all(&target).unwrap();
    let source = repo().join("models").join(id);
    std::fs::copy(source.join("model.onnx"), target.join("model.onnx")).unwrap();
    let manifest = std::fs::read_to_string(source.join("model.toml")).unwrap();
    let manifest: String = manifest
        .lines()
        .map(|l| match l.split(" =").next() {
            Some(key @ ("priority" | "positive")) => format!("{key} = {threshold}"),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(target.join("model.toml"), manifest).unwrap();
    models
}
