//! Attachments' bytes on the server (ADR 0013): content-addressed blobs behind the
//! [`BlobStore`] trait, uploaded in chunks by phones and read back by scope.
//!
//! - [`BlobStore`]: what a blob store does (how much of a blob is held, append a chunk at
//!   an offset and complete it by hash, read, list, remove); [`fs::FsBlobStore`] keeps
//!   files in `<data_dir>/blobs/`, partial uploads in `blobs/staging/`;
//!   [`postgres`] keeps them in the PostgreSQL database that several processes share;
//!   [`conformance`] is the suite every implementation passes.
//! - [`sniff`]: the type of a blob by its first bytes (magic numbers), never by what the
//!   phone declares.
//! - [`collect`]: the garbage pass: blobs no record references, older than the grace.
//!
//! - [`access`]: who may read a blob, the one rule of every door to its bytes (the API's
//!   download and thumbnail, the console's attachment routes).
//! - [`thumbnail`]: a bounded decode into a small JPEG, and the in-memory cache of those.
//!
//! Which records reference a blob is the read model's question
//! ([`crate::storage::BlobRefStorage`]); who may download it is [`access::may_read`]
//! over those references ([`yibiao_model::schema::DepartmentDef::sees_value`] for a
//! department's or a console user's view, the village for a phone).

pub mod access;
pub mod conformance;
pub mod fs;
pub mod postgres;
pub mod thumbnail;

use std::fmt;

use crate::storage::BlobRefStorage;

/// The lowercase hex SHA-256 of a blob's bytes: its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobHash(String);

impl BlobHash {
    /// Checks `text` is 64 lowercase hex digits.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "`{}` is not a blob name: 64 lowercase hex digits (the SHA-256 of the bytes)",
                text.chars().take(80).collect::<String>()
            ))
        }
    }

    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(hex::encode(sha2::Sha256::digest(bytes)))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How much of a blob the server holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The whole blob, verified: `size` bytes.
    Complete {
        /// Its size.
        size: u64,
    },
    /// The first `held` bytes of one uploader's partial upload (0: nothing yet).
    Partial {
        /// Bytes staged so far.
        held: u64,
    },
}

impl Held {
    /// Bytes held (the size when complete).
    pub fn bytes(self) -> u64 {
        match self {
            Held::Complete { size } => size,
            Held::Partial { held } => held,
        }
    }
}

/// A stored blob or partial upload, for listing and collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    /// The blob.
    pub hash: BlobHash,
    /// `None` for a complete blob; the uploader of a partial upload.
    pub uploader: Option<String>,
    /// Bytes stored.
    pub bytes: u64,
    /// Last written, ms since the epoch.
    pub modified_ms: i64,
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The chunk's offset is not what the server holds.
    #[error("chunk at offset {offset}, but the server holds {held} bytes")]
    Offset {
        /// The offset sent.
        offset: u64,
        /// Bytes held.
        held: u64,
    },
    /// The chunk runs past the declared size.
    #[error("chunk ends at {end}, past the declared size {size}")]
    Overrun {
        /// Where the chunk ends.
        end: u64,
        /// The declared size.
        size: u64,
    },
    /// The completed bytes do not hash to the blob's name; the partial upload is gone.
    #[error("the uploaded bytes do not hash to {0}")]
    HashMismatch(BlobHash),
    /// The file system failed.
    #[error("blob store: {0}")]
    Io(String),
}

impl From<std::io::Error> for BlobError {
    fn from(e: std::io::Error) -> Self {
        BlobError::Io(e.to_string())
    }
}

/// Where the server keeps blobs. Every method is blocking (call it off the runtime).
pub trait BlobStore: Send + Sync {
    /// What is held of `hash`: the whole blob, else `uploader`'s partial upload.
    fn held(&self, hash: &BlobHash, uploader: &str) -> Result<Held, BlobError>;
    /// Appends `chunk` at `offset` to `uploader`'s upload of `hash` (declared `size`
    /// bytes long), durably. A blob already complete answers [`Held::Complete`]
    /// unchanged. The chunk reaching `size` completes the blob: its bytes are hashed and
    /// moved into place, or, on a mismatch, discarded ([`BlobError::HashMismatch`]).
    fn append(
        &self,
        hash: &BlobHash,
        uploader: &str,
        offset: u64,
        size: u64,
        chunk: &[u8],
    ) -> Result<Held, BlobError>;
    /// The bytes of a complete blob.
    fn read(&self, hash: &BlobHash) -> Result<Option<Vec<u8>>, BlobError>;
    /// Partial uploads `uploader` has open.
    fn partials_of(&self, uploader: &str) -> Result<usize, BlobError>;
    /// Every complete blob and partial upload.
    fn list(&self) -> Result<Vec<BlobEntry>, BlobError>;
    /// Removes a complete blob or a partial upload; false when it was not there.
    fn remove(&self, entry: &BlobEntry) -> Result<bool, BlobError>;
}

/// Where a chunk of `len` bytes sent at `offset` ends, when `held` bytes of a blob
/// declared `size` long are held: the one rule of an append, for every store (a chunk
/// starts where the held bytes end and never runs past the declared size).
pub(crate) fn chunk_end(offset: u64, held: u64, len: usize, size: u64) -> Result<u64, BlobError> {
    if offset != held {
        return Err(BlobError::Offset { offset, held });
    }
    let end = offset + len as u64;
    if end > size {
        return Err(BlobError::Overrun { end, size });
    }
    Ok(end)
}

/// The types a blob may have, by content: (MIME type, name for people).
pub const ALLOWED_TYPES: &str = "JPEG, PNG, WebP, PDF";

/// The MIME type of a blob by its first bytes (at least 12 for WebP): JPEG, PNG, WebP or
/// PDF; `None` for anything else.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else if head.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    }
}

/// What a garbage pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    /// Complete blobs removed (unreferenced, older than the grace).
    pub removed: usize,
    /// Partial uploads removed (untouched for the grace).
    pub partials_removed: usize,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Complete blobs kept.
    pub kept: usize,
}

/// Removes complete blobs that no record references (tombstoned ones count: a restore
/// brings the photo back) and that are older than `grace_ms`, and partial uploads
/// untouched that long. The grace lets a blob arrive before its record.
pub fn collect(
    blobs: &dyn BlobStore,
    refs: &dyn BlobRefStorage,
    now_ms: i64,
    grace_ms: i64,
) -> Result<GcReport, String> {
    let mut report = GcReport::default();
    for entry in blobs.list().map_err(|e| e.to_string())? {
        if now_ms - entry.modified_ms < grace_ms {
            if entry.uploader.is_none() {
                report.kept += 1;
            }
            continue;
        }
        let partial = entry.uploader.is_some();
        if !partial
            && !refs
                .blob_references(entry.hash.as_str())
                .map_err(|e| e.to_string())?
                .is_empty()
        {
            report.kept += 1;
            continue;
        }
        if blobs.remove(&entry).map_err(|e| e.to_string())? {
            report.bytes_freed += entry.bytes;
            if partial {
                report.partials_removed += 1;
            } else {
                report.removed += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::storage::BlobReference;
    use yibiao_sync::hub::StorageError;

    /// References: the blobs named here are held by one record each.
    struct Refs(Vec<BlobHash>);

    impl BlobRefStorage for Refs {
        fn blob_references(&self, sha256: &str) -> Result<Vec<BlobReference>, StorageError> {
            Ok(self
                .0
                .iter()
                .filter(|h| h.as_str() == sha256)
                .map(|_| BlobReference {
                    record: yibiao_model::RecordId::new(),
                    entity: "household".into(),
                    village: None,
                    field: "photo".into(),
                    deleted: false,
                    handed_to: Vec::new(),
                })
                .collect())
        }
    }

    #[test]
    fn collection_removes_only_old_unreferenced_blobs_and_stale_partials() {
        let dir = tempfile::tempdir().unwrap();
        let store = fs::FsBlobStore::new(dir.path());
        let (kept, dropped, partial) = (b"\xFF\xD8\xFFa", b"\xFF\xD8\xFFb", b"\xFF\xD8\xFFc");
        for bytes in [kept, dropped] {
            store
                .append(&BlobHash::of(bytes), "d", 0, 4, bytes)
                .unwrap();
        }
        store
            .append(&BlobHash::of(partial), "d", 0, 4, &partial[..2])
            .unwrap();
        let refs = Refs(vec![BlobHash::of(kept)]);
        let now = chrono::Utc::now().timestamp_millis();
        // Within the grace nothing goes, referenced or not.
        let young = collect(&store, &refs, now, 60_000).unwrap();
        assert_eq!(
            (young.removed, young.partials_removed, young.kept),
            (0, 0, 2)
        );
        let old = collect(&store, &refs, now + 120_000, 60_000).unwrap();
        assert_eq!((old.removed, old.partials_removed, old.kept), (1, 1, 1));
        assert!(store.read(&BlobHash::of(kept)).unwrap().is_some());
        assert!(store.read(&BlobHash::of(dropped)).unwrap().is_none());
        assert_eq!(store.partials_of("d").unwrap(), 0);
    }

    #[test]
    fn types_are_told_by_their_first_bytes() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"%PDF-1.7"), Some("application/pdf"));
        assert_eq!(sniff(b"MZ\x90\0 an exe"), None);
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVE"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn a_blob_name_is_64_lowercase_hex_digits() {
        let h = BlobHash::of(b"abc");
        assert_eq!(
            h.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(BlobHash::parse(h.as_str()).is_ok());
        assert!(BlobHash::parse(&h.as_str().to_uppercase()).is_err());
        assert!(BlobHash::parse("../../etc/passwd").is_err());
    }
}
