//! Attachments on the phone (ADR 0013): content-addressed blobs in a directory beside
//! the store, attached to a record durably, uploaded after the records in acknowledged
//! chunks ([`upload`]), fetched on demand ([`Blobs::fetch`]).
//!
//! Durability order of [`Blobs::attach`]: the bytes go to a temp file, which is fsynced,
//! renamed to the blob's SHA-256 and the directory fsynced; only then is the reference
//! `{sha256, name, mime, size}` committed to the record in the store's own transaction.
//! A kill therefore never leaves a reference without its whole bytes: at worst a blob no
//! record references yet (uploaded like any other, collected by the server's grace
//! pass) or a temp file, removed on the next [`Blobs::open`]. A blob whose bytes do not
//! hash to its name is discarded when read.
//!
//! Layout: `<dir>/<sha256>` a blob, `<dir>/<sha256>.sent` the server holds it whole,
//! `<dir>/*.tmp` a write in progress.

pub mod upload;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use yibiao_model::ids::RecordId;
use yibiao_model::value::{AttachmentRef, Value};

use crate::{Error, Result, Store};

pub use upload::{
    BlobTransport, ChunkError, UploadOptions, UploadProgress, UploadReport, fetch, upload,
    upload_with_sleep,
};

/// The blobs of one phone store.
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
}

/// A blob not yet held whole by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBlob {
    /// Its name.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

fn io(context: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Blob(format!("{context} {}: {e}", path.display()))
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn is_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Blobs {
    /// The blob directory of the store at `store_path`: `<store_path>.blobs`.
    pub fn dir_beside(store_path: impl AsRef<Path>) -> PathBuf {
        let mut p = store_path.as_ref().as_os_str().to_owned();
        p.push(".blobs");
        PathBuf::from(p)
    }

    /// Opens (creating) the blob directory `dir` and removes writes a kill interrupted.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| io("cannot create", &dir, e))?;
        for entry in fs::read_dir(&dir).map_err(|e| io("cannot list", &dir, e))? {
            let path = entry.map_err(|e| io("cannot list", &dir, e))?.path();
            if path.extension().is_some_and(|x| x == "tmp") {
                fs::remove_file(&path).map_err(|e| io("cannot remove", &path, e))?;
            }
        }
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    fn sent_marker(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.sent"))
    }

    fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("cannot sync", &self.dir, e))
    }

    /// Stores `bytes` durably under their SHA-256 (nothing is written when the blob is
    /// already here); returns the name.
    pub fn put(&self, bytes: &[u8]) -> Result<String> {
        let sha256 = sha256_hex(bytes);
        let path = self.path(&sha256);
        if path.exists() {
            return Ok(sha256);
        }
        let tmp = self
            .dir
            .join(format!("{sha256}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()
        };
        write().map_err(|e| io("cannot write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io("cannot move into place", &path, e))?;
        self.sync_dir()?;
        Ok(sha256)
    }

    /// Attaches `bytes` to `field` of record `id`: stored durably first, then the
    /// reference committed (see the module doc). Returns the reference.
    pub fn attach(
        &self,
        store: &Store,
        id: RecordId,
        field: &str,
        bytes: &[u8],
        mime: &str,
        name: &str,
    ) -> Result<AttachmentRef> {
        let existed = self.path(&sha256_hex(bytes)).exists();
        let sha256 = self.put(bytes)?;
        let reference = AttachmentRef {
            sha256: sha256.clone(),
            name: name.trim().to_owned(),
            mime: mime.trim().to_owned(),
            size: bytes.len() as u64,
        };
        match store.set(id, field, Value::Attachment(reference.clone())) {
            Ok(_) => Ok(reference),
            Err(e) => {
                // Refused (bad field, type, record): a blob this call made is nobody's.
                if !existed {
                    let _ = fs::remove_file(self.path(&sha256));
                }
                Err(e)
            }
        }
    }

    /// [`Blobs::attach`] reading the bytes from the file at `path`.
    pub fn attach_file(
        &self,
        store: &Store,
        id: RecordId,
        field: &str,
        path: impl AsRef<Path>,
        mime: &str,
        name: &str,
    ) -> Result<AttachmentRef> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|e| io("cannot read", path, e))?;
        self.attach(store, id, field, &bytes, mime, name)
    }

    /// The bytes of a blob held here, verified; a blob whose bytes do not hash to its
    /// name is discarded (with its marker) and reads as `None`.
    pub fn read(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        if !is_name(sha256) {
            return Ok(None);
        }
        let path = self.path(sha256);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("cannot read", &path, e)),
        };
        if sha256_hex(&bytes) != sha256 {
            tracing::warn!(blob = sha256, "discarding a damaged blob");
            let _ = fs::remove_file(self.sent_marker(sha256));
            fs::remove_file(&path).map_err(|e| io("cannot remove", &path, e))?;
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// True when the blob is here (not verified; [`Blobs::read`] verifies).
    pub fn has(&self, sha256: &str) -> bool {
        is_name(sha256) && self.path(sha256).exists()
    }

    /// Blobs the server does not hold whole yet, oldest first: the upload queue.
    pub fn pending(&self) -> Result<Vec<PendingBlob>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| io("cannot list", &self.dir, e))? {
            let entry = entry.map_err(|e| io("cannot list", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_name(&name) || self.sent_marker(&name).exists() {
                continue;
            }
            let meta = entry
                .metadata()
                .map_err(|e| io("cannot read", &entry.path(), e))?;
            out.push((
                meta.modified().ok(),
                PendingBlob {
                    sha256: name,
                    size: meta.len(),
                },
            ));
        }
        out.sort_by(|a, b| (a.0, &a.1.sha256).cmp(&(b.0, &b.1.sha256)));
        Ok(out.into_iter().map(|(_, p)| p).collect())
    }

    /// Notes that the server holds the blob whole (it is not sent again).
    pub fn mark_sent(&self, sha256: &str) -> Result<()> {
        let marker = self.sent_marker(sha256);
        File::create(&marker).map_err(|e| io("cannot write", &marker, e))?;
        Ok(())
    }

    /// True once the server holds the blob whole.
    pub fn is_sent(&self, sha256: &str) -> bool {
        self.sent_marker(sha256).exists()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn a_blob_is_stored_once_under_its_hash_and_a_damaged_one_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path().join("b")).unwrap();
        let a = blobs.put(b"\xFF\xD8\xFFphoto").unwrap();
        assert_eq!(blobs.put(b"\xFF\xD8\xFFphoto").unwrap(), a);
        assert_eq!(blobs.pending().unwrap().len(), 1);
        assert_eq!(blobs.read(&a).unwrap().unwrap(), b"\xFF\xD8\xFFphoto");
        blobs.mark_sent(&a).unwrap();
        assert!(blobs.pending().unwrap().is_empty());
        // Damage on disk: the blob is discarded when read, never passed on as whole.
        fs::write(dir.path().join("b").join(&a), b"\xFF\xD8\xFFphotX").unwrap();
        assert_eq!(blobs.read(&a).unwrap(), None);
        assert!(!blobs.has(&a) && !blobs.is_sent(&a));
    }

    #[test]
    fn opening_removes_interrupted_writes() {
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path().join("b");
        fs::create_dir_all(&b).unwrap();
        fs::write(b.join("abc.123.tmp"), b"half").unwrap();
        let blobs = Blobs::open(&b).unwrap();
        assert_eq!(fs::read_dir(blobs.dir()).unwrap().count(), 0);
    }
}
