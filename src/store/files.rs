//! Durable DICOM Part 10 files (PS3.10 7.1): preamble, `DICM`, the File Meta Information group
//! and the data set exactly as it was received.
//!
//! A file is first written under `tmp/`, synced, then renamed into place and its directory
//! synced, so that a crash leaves either the whole file or only a temporary one, which start-up
//! removes. Nothing is acknowledged before [`FileStore::write_instance`] returns.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dicom_object::FileMetaTable;
use dicom_object::meta::FileMetaTableBuilder;

/// Argus's Implementation Class UID (PS3.7 D.3.3.2), written into every file meta group.
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.181721224645345515094036814291294428799";

/// Argus's Implementation Version Name: at most 16 characters.
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!("ARGUS_", env!("CARGO_PKG_VERSION"));

/// The folder for instances without a Study or Series Instance UID.
const UNIDENTIFIED: &str = "unidentified";

/// How many series folders [`FileStore`] remembers before it starts afresh.
const KNOWN_DIRS_MAX: usize = 4096;

/// Why an instance could not be made durable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    #[error("UID `{uid}` cannot name a file: it is not a valid DICOM UID")]
    BadUid { uid: String },

    #[error("cannot build the file meta group for {sop_instance_uid}: {source}")]
    Meta { sop_instance_uid: String, source: Box<dicom_object::meta::Error> },

    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// What identifies one received instance and how it arrived.
#[derive(Debug, Clone)]
pub struct InstanceHeader<'a> {
    pub study_uid: &'a str,
    pub series_uid: &'a str,
    pub sop_instance_uid: &'a str,
    pub sop_class_uid: &'a str,
    pub transfer_syntax: &'a str,
    pub calling_ae: &'a str,
    pub called_ae: &'a str,
}

/// The folder of DICOM files under the data directory.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
    tmp: PathBuf,
    // Folders known to exist with a durable entry in their parent, so that a series' later
    // instances skip the checks.
    known_dirs: Arc<Mutex<HashSet<PathBuf>>>,
}

impl FileStore {
    /// Opens the store under `data_dir`, creating it, and removes temporary files left by a crash.
    pub fn open(data_dir: &Path) -> io::Result<FileStore> {
        let root = data_dir.join("instances");
        let tmp = data_dir.join("tmp");
        fs::create_dir_all(&root)?;
        fs::create_dir_all(&tmp)?;

        let store = FileStore { root, tmp, known_dirs: Arc::default() };
        store.remove_partial_files()?;
        Ok(store)
    }

    /// The root folder holding `study/series/instance.dcm`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where an instance lives: `study/series/instance.dcm`, or `unidentified/instance.dcm`
    /// for an instance that names no study or series.
    pub fn path_of(&self, header: &InstanceHeader<'_>) -> Result<PathBuf, FileError> {
        let file = format!("{}.dcm", checked_uid(header.sop_instance_uid)?);
        if header.study_uid.is_empty() || header.series_uid.is_empty() {
            return Ok(self.root.join(UNIDENTIFIED).join(file));
        }
        Ok(self
            .root
            .join(checked_uid(header.study_uid)?)
            .join(checked_uid(header.series_uid)?)
            .join(file))
    }

    /// Writes one instance durably and returns its path. `dataset` is written byte for byte.
    pub fn write_instance(
        &self,
        header: &InstanceHeader<'_>,
        dataset: &[u8],
    ) -> Result<PathBuf, FileError> {
        let target = self.path_of(header)?;
        let meta = file_meta(header)?;
        let partial = self.tmp.join(format!("{}.part", uuid::Uuid::new_v4()));

        let written = write_synced(&partial, |out| {
            out.write_all(&[0u8; 128])?;
            out.write_all(b"DICM")?;
            meta.write(&mut *out).map_err(io::Error::other)?;
            out.write_all(dataset)
        })
        .and_then(|()| self.publish(&partial, &target));

        written.map(|()| target.clone()).map_err(|source| {
            let _ = fs::remove_file(&partial);
            FileError::Write { path: target, source }
        })
    }

    /// Writes a file that Argus made itself (an SR or a secondary capture) durably.
    pub fn write_file(&self, target: &Path, bytes: &[u8]) -> Result<(), FileError> {
        let partial = self.tmp.join(format!("{}.part", uuid::Uuid::new_v4()));
        write_synced(&partial, |out| out.write_all(bytes))
            .and_then(|()| self.publish(&partial, target))
            .map_err(|source| {
                let _ = fs::remove_file(&partial);
                FileError::Write { path: target.to_path_buf(), source }
            })
    }

    /// Moves a synced temporary file into place and syncs the directories that gained an
    /// entry.
    ///
    /// The temporary folder is not synced: should its old entry reappear after a crash,
    /// start-up removes it, and the file under its final name is intact either way.
    fn publish(&self, partial: &Path, target: &Path) -> io::Result<()> {
        let dir = target.parent().expect("instance paths have a parent");
        let known = self.known_dirs.lock().unwrap_or_else(|p| p.into_inner()).contains(dir);
        let created = if known { Vec::new() } else { create_missing_dirs(dir)? };

        fs::rename(partial, target)?;
        sync_dir(dir)?;
        for made in created {
            if let Some(parent) = made.parent() {
                sync_dir(parent)?;
            }
        }
        let mut known = self.known_dirs.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= KNOWN_DIRS_MAX {
            known.clear();
        }
        known.insert(dir.to_path_buf());
        Ok(())
    }

    fn remove_partial_files(&self) -> io::Result<()> {
        for entry in fs::read_dir(&self.tmp)? {
            let path = entry?.path();
            tracing::info!(path = %path.display(), "removing a partial file left by an interrupted write");
            fs::remove_file(path)?;
        }
        sync_dir(&self.tmp)
    }
}

/// The PS3.10 file meta group for a received instance.
fn file_meta(header: &InstanceHeader<'_>) -> Result<dicom_object::FileMetaTable, FileError> {
    FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(header.sop_class_uid)
        .media_storage_sop_instance_uid(header.sop_instance_uid)
        .transfer_syntax(header.transfer_syntax)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .source_application_entity_title(header.calling_ae)
        .receiving_application_entity_title(header.called_ae)
        .build()
        .map_err(|source| FileError::Meta {
            sop_instance_uid: header.sop_instance_uid.to_string(),
            source: Box::new(source),
        })
}

/// Splits PS3.10 file bytes into the meta group and the data set that follows it: 128 bytes
/// of preamble, `DICM`, the 12-byte (0002,0000) element, then the rest of group 2.
pub fn split_part10(bytes: &[u8]) -> Result<(FileMetaTable, &[u8]), String> {
    if bytes.get(128..132) != Some(&b"DICM"[..]) {
        return Err("no PS3.10 preamble and DICM prefix".into());
    }
    let meta = FileMetaTable::from_reader(&bytes[128..]).map_err(|e| e.to_string())?;
    let start = 144 + meta.information_group_length as usize;
    let dataset = bytes.get(start..).ok_or("the file ends inside its meta group")?;
    Ok((meta, dataset))
}

/// Creates `path`, lets `fill` write it, and syncs its content to disk.
fn write_synced(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> io::Result<()> {
    let file = OpenOptions::new().write(true).create_new(true).open(path)?;
    let mut out = BufWriter::with_capacity(256 * 1024, &file);
    fill(&mut out)?;
    out.flush()?;
    drop(out);
    file.sync_data()
}

/// Creates `dir` and its missing parents, returning those it created.
fn create_missing_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    while let Some(d) = cursor.filter(|d| !d.exists()) {
        missing.push(d.to_path_buf());
        cursor = d.parent();
    }
    fs::create_dir_all(dir)?;
    Ok(missing)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Accepts a UID of PS3.5 9.1 (digits and dots, at most 64 characters) so that it can safely
/// name a file or folder.
pub fn checked_uid(uid: &str) -> Result<&str, FileError> {
    let uid = uid.trim_end_matches(['\0', ' ']);
    let well_formed = !uid.is_empty()
        && uid.len() <= 64
        && uid.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if well_formed { Ok(uid) } else { Err(FileError::BadUid { uid: uid.to_string() }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> InstanceHeader<'static> {
        InstanceHeader {
            study_uid: "1.2.3",
            series_uid: "1.2.3.4",
            sop_instance_uid: "1.2.3.4.5",
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2",
            transfer_syntax: "1.2.840.10008.1.2.1",
            calling_ae: "PACS",
            called_ae: "ARGUS",
        }
    }

    #[test]
    fn written_file_ends_with_the_received_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        let dataset = b"\x08\x00\x16\x00UI\x1a\x001.2.840.10008.5.1.4.1.1.2\0";

        let path = store.write_instance(&header(), dataset).unwrap();

        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[128..132], b"DICM");
        assert!(bytes.ends_with(dataset));
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn uids_that_could_escape_the_folder_are_refused() {
        assert!(checked_uid("../../etc").is_err());
        assert!(checked_uid("1.2..3").is_err());
        assert!(checked_uid("1.2.3\0").is_ok());
    }

    #[test]
    fn partial_files_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        fs::write(dir.path().join("tmp/abc.part"), b"half").unwrap();

        FileStore::open(dir.path()).unwrap();

        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
