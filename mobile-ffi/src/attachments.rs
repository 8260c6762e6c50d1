//! Attachments through the bindings (ADR 0013): attach bytes or a file to a field,
//! upload the queue after a sync with progress, see what is queued, fetch on demand.
//! Each method forwards to `yibiao_store::blobs` in a line plus conversions.

use std::sync::Arc;

use yibiao_store::blobs::{self, UploadOptions};
use yibiao_store::http::HttpTransport;

use crate::callbacks::notify;
use crate::error::YibiaoError;
use crate::store::YibiaoStore;

/// An attachment reference, as a field holds it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AttachmentInfo {
    /// Lowercase hex SHA-256 of the bytes.
    pub sha256: String,
    /// File name.
    pub name: String,
    /// MIME type.
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
}

/// A blob the server does not hold whole yet.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PendingAttachment {
    /// Its SHA-256.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Where an upload is, after each acknowledged chunk.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AttachmentProgress {
    /// The blob being sent.
    pub sha256: String,
    /// Bytes the server holds of it.
    pub held: u64,
    /// Its size.
    pub size: u64,
    /// Blobs left after this one.
    pub blobs_left: u32,
}

/// A blob the server refused for good (too large, wrong type).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AttachmentRefusal {
    /// The blob.
    pub sha256: String,
    /// Reason code (`blob_too_large`, `blob_type_refused`, ...).
    pub code: String,
    /// The server's sentence.
    pub detail: String,
}

/// What an upload run did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AttachmentUploadReport {
    /// Blobs sent whole in this run.
    pub uploaded: u32,
    /// Blobs the server already held (nothing sent).
    pub already_held: u32,
    /// Blobs refused for good.
    pub refused: Vec<AttachmentRefusal>,
    /// Chunk bytes sent.
    pub bytes_sent: u64,
    /// Failed requests (cuts, time-outs).
    pub failures: u32,
    /// True when the run stopped on repeated failures with blobs left: upload again later.
    pub gave_up: bool,
}

/// Told after every acknowledged chunk of an upload.
#[uniffi::export(foreign)]
pub trait AttachmentProgressListener: Send + Sync {
    /// One more chunk is held by the server.
    fn on_progress(&self, progress: AttachmentProgress);
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl From<yibiao_model::value::AttachmentRef> for AttachmentInfo {
    fn from(r: yibiao_model::value::AttachmentRef) -> Self {
        Self {
            sha256: r.sha256,
            name: r.name,
            mime: r.mime,
            size: r.size,
        }
    }
}

impl YibiaoStore {
    fn http(&self) -> Result<HttpTransport, YibiaoError> {
        self.transport()
    }
}

#[uniffi::export]
impl YibiaoStore {
    /// Attaches `bytes` (a photo, a scan) to `field` of record `id`: stored durably
    /// beside the store, then the reference committed. Uploaded by
    /// `upload_attachments`, never with the records.
    pub fn attach(
        &self,
        id: String,
        field: String,
        bytes: Vec<u8>,
        mime: String,
        name: String,
    ) -> Result<AttachmentInfo, YibiaoError> {
        self.guard(|| {
            let rid = Self::id(&id)?;
            let r = self
                .blobs
                .attach(&self.inner, rid, &field, &bytes, &mime, &name)?;
            self.changed(vec![id.clone()]);
            Ok(r.into())
        })
    }

    /// [`YibiaoStore::attach`] reading the bytes from the file at `path`.
    pub fn attach_file(
        &self,
        id: String,
        field: String,
        path: String,
        mime: String,
        name: String,
    ) -> Result<AttachmentInfo, YibiaoError> {
        self.guard(|| {
            let rid = Self::id(&id)?;
            let r = self
                .blobs
                .attach_file(&self.inner, rid, &field, &path, &mime, &name)?;
            self.changed(vec![id.clone()]);
            Ok(r.into())
        })
    }

    /// Blobs waiting to be uploaded, oldest first (poll it for a badge).
    pub fn pending_attachments(&self) -> Result<Vec<PendingAttachment>, YibiaoError> {
        self.guard(|| {
            Ok(self
                .blobs
                .pending()?
                .into_iter()
                .map(|p| PendingAttachment {
                    sha256: p.sha256,
                    size: p.size,
                })
                .collect())
        })
    }

    /// Uploads the queued blobs in 32 KiB chunks, resuming where the server stopped;
    /// call after `sync` so records never wait behind a photo.
    #[uniffi::method(default(progress = None))]
    pub fn upload_attachments(
        &self,
        progress: Option<Arc<dyn AttachmentProgressListener>>,
    ) -> Result<AttachmentUploadReport, YibiaoError> {
        self.guard(|| {
            let http = self.http()?;
            let report = blobs::upload(&self.blobs, &http, &UploadOptions::default(), &mut |p| {
                if let Some(l) = &progress {
                    let p = AttachmentProgress {
                        sha256: p.sha256.clone(),
                        held: p.held,
                        size: p.size,
                        blobs_left: count(p.blobs_left),
                    };
                    notify("attachment progress listener", || l.on_progress(p));
                }
            })?;
            Ok(AttachmentUploadReport {
                uploaded: count(report.uploaded),
                already_held: count(report.already_held),
                refused: report
                    .refused
                    .into_iter()
                    .map(|(sha256, code, detail)| AttachmentRefusal {
                        sha256,
                        code,
                        detail,
                    })
                    .collect(),
                bytes_sent: report.bytes_sent,
                failures: report.failures,
                gave_up: report.gave_up,
            })
        })
    }

    /// The bytes of an attachment: from this phone if held, else fetched from the server
    /// now (on demand only; nothing is fetched by default).
    pub fn fetch_attachment(&self, sha256: String) -> Result<Vec<u8>, YibiaoError> {
        self.guard(|| {
            if let Some(bytes) = self.blobs.read(&sha256)? {
                return Ok(bytes);
            }
            let http = self.http()?;
            blobs::fetch(&self.blobs, &http, &sha256).map_err(|e| YibiaoError::Network {
                detail: e.to_string(),
            })
        })
    }

    /// The bytes of an attachment held on this phone, without the network.
    pub fn local_attachment(&self, sha256: String) -> Result<Option<Vec<u8>>, YibiaoError> {
        self.guard(|| Ok(self.blobs.read(&sha256)?))
    }
}
