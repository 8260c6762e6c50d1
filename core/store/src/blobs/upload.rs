//! The upload queue and on-demand fetch, over a [`BlobTransport`] (ADR 0013).
//!
//! Run after a record sync, never before or inside it: records first, then blobs, one at
//! a time, oldest first. For each: ask how much the server holds (`HEAD`), send chunks
//! from there, each acknowledged with what the server now holds. After a cut the next
//! ask says where to continue, so at most the chunk in flight is sent again; a blob the
//! server holds whole costs one ask. A completed blob the server finds damaged
//! (`blob_hash_mismatch`) is checked here and started again (twice at most); any other
//! refusal (too large, wrong type) is reported and the blob left for the app to show.

use std::time::Duration;

use yibiao_sync::session::TransportError;

use super::{Blobs, PendingBlob};
use crate::Result;

/// Why a chunk or a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The link failed: ask again and continue.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server refused, with its reason code, message and, for `blob_offset`, the
    /// bytes it holds.
    #[error("{message}")]
    Refused {
        /// Reason code (`blob_offset`, `blob_hash_mismatch`, `blob_too_large`, ...).
        code: String,
        /// The server's message, in the phone's language.
        message: String,
        /// Bytes held (`blob_offset`).
        held: Option<u64>,
    },
}

/// How blobs move: the three requests of `/v1/blobs/{sha256}`.
pub trait BlobTransport {
    /// Bytes the server holds of the blob, and whether it is complete.
    fn held(&self, sha256: &str) -> Result<(u64, bool), TransportError>;
    /// Sends one chunk at `offset`; answers the bytes held after it and whether the blob
    /// is complete.
    fn put(
        &self,
        sha256: &str,
        size: u64,
        offset: u64,
        chunk: &[u8],
    ) -> Result<(u64, bool), ChunkError>;
    /// The blob's bytes.
    fn get(&self, sha256: &str) -> Result<Vec<u8>, ChunkError>;
}

/// The smallest chunk a small photo is cut into.
const MIN_CHUNK: usize = 8 * 1024;

/// The chunk size for a blob of `size` bytes: a sixteenth of it, between 8 KiB and
/// `max`. A cut costs the chunk in flight and every chunk its request headers, so the
/// extra bytes are about `chunk / size + headers / chunk`; a sixteenth keeps a cut of a
/// 200 KB photo near 6% instead of 16% with 32 KiB chunks, at a few more round trips
/// (ADR 0013). Larger photos use `max`.
pub fn chunk_for(size: usize, max: usize) -> usize {
    size.div_ceil(16)
        .clamp(MIN_CHUNK, max.max(MIN_CHUNK))
        .min(max.max(1))
}

/// How an upload run behaves.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Largest chunk (32 KiB: ADR 0013 says why); a small photo goes in smaller ones
    /// ([`chunk_for`]).
    pub chunk_bytes: usize,
    /// Failed requests in a row after which the run stops (the queue stays).
    pub max_failures: u32,
    /// First wait after a failure; doubled each time, up to `max_backoff`.
    pub backoff: Duration,
    /// Longest wait.
    pub max_backoff: Duration,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            chunk_bytes: 32 * 1024,
            max_failures: 8,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Where an upload run is: reported after every acknowledged chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadProgress {
    /// The blob being sent.
    pub sha256: String,
    /// Bytes the server holds of it.
    pub held: u64,
    /// Its size.
    pub size: u64,
    /// Blobs left in the queue after this one.
    pub blobs_left: usize,
}

/// What an upload run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Blobs the server now holds whole after chunks of this run.
    pub uploaded: usize,
    /// Blobs the server already held whole (nothing sent).
    pub already_held: usize,
    /// Blobs the server refused for good: (sha256, code, message).
    pub refused: Vec<(String, String, String)>,
    /// Blobs discarded here as damaged on disk.
    pub discarded: usize,
    /// Chunk bytes sent (every attempt, cut ones included as far as they were sent).
    pub bytes_sent: u64,
    /// Chunks sent.
    pub chunks_sent: u64,
    /// Failed requests (cuts, time-outs).
    pub failures: u32,
    /// True when the run stopped on `max_failures` with blobs left.
    pub gave_up: bool,
}

/// Uploads the queue of `blobs` through `transport`, sleeping between retries.
pub fn upload(
    blobs: &Blobs,
    transport: &dyn BlobTransport,
    options: &UploadOptions,
    progress: &mut dyn FnMut(&UploadProgress),
) -> Result<UploadReport> {
    upload_with_sleep(blobs, transport, options, progress, &mut |d| {
        std::thread::sleep(d)
    })
}

/// [`upload`] with an injected sleep (tests and simulations run without waiting).
pub fn upload_with_sleep(
    blobs: &Blobs,
    transport: &dyn BlobTransport,
    options: &UploadOptions,
    progress: &mut dyn FnMut(&UploadProgress),
    sleep: &mut dyn FnMut(Duration),
) -> Result<UploadReport> {
    let mut run = Run {
        transport,
        options,
        report: UploadReport::default(),
        in_a_row: 0,
        sleep,
    };
    let queue = blobs.pending()?;
    for (i, blob) in queue.iter().enumerate() {
        let Some(bytes) = blobs.read(&blob.sha256)? else {
            run.report.discarded += 1;
            continue;
        };
        let left = queue.len() - i - 1;
        match run.one(blob, &bytes, left, progress) {
            Some(Outcome::Sent) => {
                blobs.mark_sent(&blob.sha256)?;
                run.report.uploaded += 1;
            }
            Some(Outcome::Held) => {
                blobs.mark_sent(&blob.sha256)?;
                run.report.already_held += 1;
            }
            Some(Outcome::Refused(code, message)) => {
                run.report
                    .refused
                    .push((blob.sha256.clone(), code, message));
            }
            None => {
                run.report.gave_up = true;
                break;
            }
        }
    }
    Ok(run.report)
}

enum Outcome {
    Sent,
    Held,
    Refused(String, String),
}

struct Run<'a> {
    transport: &'a dyn BlobTransport,
    options: &'a UploadOptions,
    report: UploadReport,
    in_a_row: u32,
    sleep: &'a mut dyn FnMut(Duration),
}

impl Run<'_> {
    /// Waits after a failure; `false` once the run should stop.
    fn failed(&mut self) -> bool {
        self.report.failures += 1;
        self.in_a_row += 1;
        if self.in_a_row >= self.options.max_failures {
            return false;
        }
        let factor = 1u32 << self.in_a_row.min(16);
        (self.sleep)((self.options.backoff * factor).min(self.options.max_backoff));
        true
    }

    /// Sends one blob; `None` when the run gave up.
    fn one(
        &mut self,
        blob: &PendingBlob,
        bytes: &[u8],
        left: usize,
        progress: &mut dyn FnMut(&UploadProgress),
    ) -> Option<Outcome> {
        let size = bytes.len() as u64;
        let mut restarts = 0;
        let mut sent_any = false;
        'ask: loop {
            let mut offset = match self.transport.held(&blob.sha256) {
                Ok((_, true)) if sent_any => return Some(Outcome::Sent),
                Ok((_, true)) => return Some(Outcome::Held),
                Ok((held, false)) => held.min(size),
                Err(_) => {
                    if !self.failed() {
                        return None;
                    }
                    continue 'ask;
                }
            };
            self.in_a_row = 0;
            loop {
                let step = chunk_for(bytes.len(), self.options.chunk_bytes);
                let end = (offset as usize + step).min(bytes.len());
                let chunk = &bytes[offset as usize..end];
                self.report.chunks_sent += 1;
                self.report.bytes_sent += chunk.len() as u64;
                sent_any = true;
                match self.transport.put(&blob.sha256, size, offset, chunk) {
                    Ok((held, complete)) => {
                        self.in_a_row = 0;
                        progress(&UploadProgress {
                            sha256: blob.sha256.clone(),
                            held,
                            size,
                            blobs_left: left,
                        });
                        if complete {
                            return Some(Outcome::Sent);
                        }
                        offset = held.min(size);
                    }
                    Err(ChunkError::Transport(_)) => {
                        if !self.failed() {
                            return None;
                        }
                        continue 'ask;
                    }
                    Err(ChunkError::Refused {
                        code,
                        held: Some(held),
                        ..
                    }) if code == "blob_offset" => offset = held.min(size),
                    Err(ChunkError::Refused { code, .. })
                        if code == "blob_hash_mismatch" && restarts < 2 =>
                    {
                        restarts += 1;
                        continue 'ask;
                    }
                    Err(ChunkError::Refused { code, message, .. }) => {
                        return Some(Outcome::Refused(code, message));
                    }
                }
            }
        }
    }
}

/// Fetches a blob on demand (never done by default: the app asks, e.g. when a photo is
/// opened), verifies it and keeps it in `blobs`; a blob already here is read locally.
pub fn fetch(blobs: &Blobs, transport: &dyn BlobTransport, sha256: &str) -> Result<Vec<u8>> {
    if let Some(bytes) = blobs.read(sha256)? {
        return Ok(bytes);
    }
    let bytes = transport
        .get(sha256)
        .map_err(|e| crate::Error::Blob(format!("fetching attachment {sha256}: {e}")))?;
    if super::sha256_hex(&bytes) != sha256 {
        return Err(crate::Error::Blob(format!(
            "attachment {sha256} arrived damaged (its SHA-256 does not match); fetch it again"
        )));
    }
    blobs.put(&bytes)?;
    blobs.mark_sent(sha256)?;
    Ok(bytes)
}

#[cfg(test)]
mod chunk_tests {
    use super::chunk_for;

    #[test]
    fn small_photos_go_in_sixteenths_large_ones_in_the_largest_chunk() {
        assert_eq!(chunk_for(200_000, 32 * 1024), 12_500);
        assert_eq!(chunk_for(50_000, 32 * 1024), 8 * 1024, "never under 8 KiB");
        assert_eq!(chunk_for(2_000_000, 32 * 1024), 32 * 1024);
        assert_eq!(chunk_for(5_000, 32 * 1024), 8 * 1024);
        assert_eq!(
            chunk_for(200_000, 4 * 1024),
            4 * 1024,
            "a smaller maximum wins"
        );
        assert_eq!(chunk_for(200_000, 0), 1, "never zero");
    }
}
