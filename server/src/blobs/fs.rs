//! [`FsBlobStore`]: blobs as files in the data directory.
//!
//! `<root>/<sha256>` is a complete, verified blob; `<root>/staging/<sha256>.<uploader
//! hex>.part` one device's partial upload. Each chunk is written and fsynced before it is
//! acknowledged; the chunk that completes a blob makes the whole file hashed, renamed
//! into place and the directory fsynced. Partial uploads are per uploader, so two phones
//! sending the same photo never write into one file.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use super::{BlobEntry, BlobError, BlobHash, BlobStore, Held};

/// Blobs as files under one directory (created on first write).
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    /// A store rooted at `root` (e.g. `<data_dir>/blobs`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn complete(&self, hash: &BlobHash) -> PathBuf {
        self.root.join(hash.as_str())
    }

    fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }

    fn partial(&self, hash: &BlobHash, uploader: &str) -> PathBuf {
        self.staging()
            .join(format!("{hash}.{}.part", hex::encode(uploader)))
    }
}

fn len_of(path: &Path) -> Result<Option<u64>, BlobError> {
    match fs::metadata(path) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn hash_file(path: &Path) -> Result<BlobHash, BlobError> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(BlobHash(hex::encode(hasher.finalize())))
}

fn modified_ms(meta: &fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl BlobStore for FsBlobStore {
    fn held(&self, hash: &BlobHash, uploader: &str) -> Result<Held, BlobError> {
        if let Some(size) = len_of(&self.complete(hash))? {
            return Ok(Held::Complete { size });
        }
        let held = len_of(&self.partial(hash, uploader))?.unwrap_or(0);
        Ok(Held::Partial { held })
    }

    fn append(
        &self,
        hash: &BlobHash,
        uploader: &str,
        offset: u64,
        size: u64,
        chunk: &[u8],
    ) -> Result<Held, BlobError> {
        let held = match self.held(hash, uploader)? {
            done @ Held::Complete { .. } => return Ok(done),
            Held::Partial { held } => held,
        };
        let end = super::chunk_end(offset, held, chunk.len(), size)?;
        fs::create_dir_all(self.staging())?;
        let part = self.partial(hash, uploader);
        let mut file = OpenOptions::new().create(true).append(true).open(&part)?;
        file.write_all(chunk)?;
        file.sync_all()?;
        drop(file);
        if end < size {
            return Ok(Held::Partial { held: end });
        }
        if hash_file(&part)? != *hash {
            fs::remove_file(&part)?;
            return Err(BlobError::HashMismatch(hash.clone()));
        }
        fs::rename(&part, self.complete(hash))?;
        sync_dir(&self.root)?;
        Ok(Held::Complete { size })
    }

    fn read(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, BlobError> {
        match fs::read(self.complete(hash)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn partials_of(&self, uploader: &str) -> Result<usize, BlobError> {
        Ok(self
            .list()?
            .iter()
            .filter(|e| e.uploader.as_deref() == Some(uploader))
            .count())
    }

    fn list(&self) -> Result<Vec<BlobEntry>, BlobError> {
        let mut out = Vec::new();
        for (dir, partial) in [(self.root.clone(), false), (self.staging(), true)] {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let (hash, uploader) = if partial {
                    let Some(stem) = name.strip_suffix(".part") else {
                        continue;
                    };
                    let Some((h, up)) = stem.split_once('.') else {
                        continue;
                    };
                    let Some(up) = hex::decode(up).ok().and_then(|b| String::from_utf8(b).ok())
                    else {
                        continue;
                    };
                    (h.to_owned(), Some(up))
                } else {
                    (name, None)
                };
                let Ok(hash) = BlobHash::parse(&hash) else {
                    continue;
                };
                let meta = entry.metadata()?;
                if !meta.is_file() {
                    continue;
                }
                out.push(BlobEntry {
                    hash,
                    uploader,
                    bytes: meta.len(),
                    modified_ms: modified_ms(&meta),
                });
            }
        }
        out.sort_by(|a, b| (&a.hash, &a.uploader).cmp(&(&b.hash, &b.uploader)));
        Ok(out)
    }

    fn remove(&self, entry: &BlobEntry) -> Result<bool, BlobError> {
        let path = match &entry.uploader {
            None => self.complete(&entry.hash),
            Some(up) => self.partial(&entry.hash, up),
        };
        match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().expect("temp dir");
        super::super::conformance::run_all(&FsBlobStore::new(dir.path().join("blobs")));
    }
}
