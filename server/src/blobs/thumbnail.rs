//! Thumbnails of photos: a JPEG at most [`MAX_SIDE`] pixels on its long side, made from
//! a stored image blob (JPEG, PNG, WebP) for lists, the console's record page and
//! `GET /v1/blobs/{sha256}/thumbnail`.
//!
//! **A bounded decode.** A photo comes from outside: a small file may claim a huge
//! image (a PNG header saying 100000 x 100000 is a few dozen bytes). [`make`] reads the
//! header first and refuses an image over [`MAX_DECODE_SIDE`] on either side before any
//! pixel is decoded, then decodes under `image`'s [`Limits`] (the same sides, and at
//! most [`MAX_DECODE_BYTES`] held by the decoder), so a decompression bomb is a
//! [`ThumbError::TooLarge`] with its figures, never an out-of-memory kill or a panic.
//! [`Thumbnails`] lets at most [`DECODERS`] decodes run at once (on the blocking
//! pool), so a page of photos asked at once holds at most that many decoders' memory.
//!
//! **Why a cache in memory, not a second blob.** A thumbnail is a pure function of the
//! original's bytes, and the original is named by its hash, so the hash alone keys it
//! and no entry can go stale. Keeping thumbnails in the [`super::BlobStore`] would need a
//! mapping from original to thumbnail in each store (a directory for files, a table and
//! a migration for PostgreSQL), and the garbage pass would see them as blobs no record
//! references. An LRU of at most [`CACHE_BYTES`] in the process needs none of that and
//! works alike over both stores; the price is that a restarted process (or each of
//! several processes on one PostgreSQL) makes a thumbnail again on first request, a
//! bounded decode of a fraction of a second.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage};
use lru::LruCache;

use super::{BlobHash, BlobStore, sniff};

/// The long side of a thumbnail, in pixels.
pub const MAX_SIDE: u32 = 320;
/// The widest or tallest image decoded (a 48-megapixel phone photo is 8000 x 6000).
pub const MAX_DECODE_SIDE: u32 = 8192;
/// The most memory one decode may hold: a 48-megapixel RGB photo fits (137 MiB).
pub const MAX_DECODE_BYTES: u64 = 160 * 1024 * 1024;
/// Decodes at once.
pub const DECODERS: usize = 2;
/// Bytes of thumbnails kept in memory (a thumbnail is 10 to 30 KB).
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;
/// JPEG quality of a thumbnail.
const QUALITY: u8 = 80;

/// Why a blob has no thumbnail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThumbError {
    /// The blob is not an image (a PDF): its type by content.
    #[error("the blob is {mime}, not an image")]
    NotAnImage {
        /// What its first bytes say it is.
        mime: &'static str,
    },
    /// The image is larger than a decode may be.
    #[error("the image is {width} x {height} pixels, over the decoding limits")]
    TooLarge {
        /// Its width as its header says.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// The image cannot be decoded (damaged, or a variant the decoders do not read).
    #[error("the image cannot be decoded: {0}")]
    Unreadable(String),
    /// The store has no such blob.
    #[error("no such blob")]
    Missing,
    /// The store or the blocking pool failed.
    #[error("thumbnail: {0}")]
    Failed(String),
}

fn unreadable(e: impl std::fmt::Display) -> ThumbError {
    ThumbError::Unreadable(e.to_string())
}

/// The limits of one decode.
fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits
}

/// A JPEG thumbnail of `bytes` (an image blob), at most [`MAX_SIDE`] on its long side
/// (a smaller image keeps its size), turned upright by its EXIF orientation, transparency
/// laid on white. Blocking and CPU-bound: call it off the async threads.
pub fn make(bytes: &[u8]) -> Result<Vec<u8>, ThumbError> {
    let mime = sniff(bytes).unwrap_or("application/octet-stream");
    if !mime.starts_with("image/") {
        return Err(ThumbError::NotAnImage { mime });
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(unreadable)?;
    // The header alone: no pixel is decoded before the sides are checked.
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    let (width, height) = decoder.dimensions();
    let too_large = ThumbError::TooLarge { width, height };
    if width > MAX_DECODE_SIDE || height > MAX_DECODE_SIDE {
        return Err(too_large);
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut limits = limits();
    limits
        .reserve(decoder.total_bytes())
        .map_err(|_| too_large.clone())?;
    decoder.set_limits(limits).map_err(|_| too_large.clone())?;
    let image = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        ImageError::Limits(_) => too_large,
        other => unreadable(other),
    })?;
    let mut small = if image.width().max(image.height()) > MAX_SIDE {
        image.thumbnail(MAX_SIDE, MAX_SIDE)
    } else {
        image
    };
    small.apply_orientation(orientation);
    let rgb = on_white(&small);
    let mut out = Vec::with_capacity(32 * 1024);
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(&rgb)
        .map_err(|e| ThumbError::Failed(format!("jpeg encoding: {e}")))?;
    Ok(out)
}

/// The image as RGB, transparent pixels blended onto white (JPEG has no alpha, and a
/// transparent PNG's hidden colour is often black).
fn on_white(image: &DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let blend = |c: u8| {
            let (c, a) = (u16::from(c), u16::from(a));
            // c*a + 255*(255-a), over 255, rounded; at most 255.
            ((c * a + 255 * (255 - a) + 127) / 255) as u8
        };
        image::Rgb([blend(r), blend(g), blend(b)])
    })
}

/// Thumbnails made on request, kept in memory by the original's hash (see the module
/// documentation for why), at most [`DECODERS`] made at once.
pub struct Thumbnails {
    cache: Mutex<Cache>,
    decoding: tokio::sync::Semaphore,
}

struct Cache {
    entries: LruCache<BlobHash, Arc<[u8]>>,
    bytes: usize,
    budget: usize,
}

impl Default for Thumbnails {
    fn default() -> Self {
        Self::new(CACHE_BYTES, DECODERS)
    }
}

impl Thumbnails {
    /// A cache of at most `budget` bytes of thumbnails, `decoders` decodes at once.
    pub fn new(budget: usize, decoders: usize) -> Self {
        Self {
            cache: Mutex::new(Cache {
                entries: LruCache::unbounded(),
                bytes: 0,
                budget,
            }),
            decoding: tokio::sync::Semaphore::new(decoders.max(1)),
        }
    }

    fn cached(&self, hash: &BlobHash) -> Option<Arc<[u8]>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.entries.get(hash).cloned()
    }

    fn keep(&self, hash: BlobHash, thumb: Arc<[u8]>) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if thumb.len() > cache.budget {
            return;
        }
        cache.bytes += thumb.len();
        if let Some(old) = cache.entries.put(hash, thumb) {
            cache.bytes -= old.len();
        }
        while cache.bytes > cache.budget {
            match cache.entries.pop_lru() {
                Some((_, gone)) => cache.bytes -= gone.len(),
                None => break,
            }
        }
    }

    /// Entries and bytes held (for tests and metrics).
    pub fn held(&self) -> (usize, usize) {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        (cache.entries.len(), cache.bytes)
    }

    /// The thumbnail of blob `hash` from `blobs`: from the cache, else read and made on
    /// the blocking pool (waiting for a decoder's turn). The caller has checked that the
    /// asker may read the blob.
    pub async fn of(
        &self,
        blobs: Arc<dyn BlobStore>,
        hash: &BlobHash,
    ) -> Result<Arc<[u8]>, ThumbError> {
        if let Some(thumb) = self.cached(hash) {
            return Ok(thumb);
        }
        let _turn = self
            .decoding
            .acquire()
            .await
            .map_err(|e| ThumbError::Failed(e.to_string()))?;
        // Made by another request while this one waited for its turn.
        if let Some(thumb) = self.cached(hash) {
            return Ok(thumb);
        }
        let h = hash.clone();
        let made = tokio::task::spawn_blocking(move || {
            let bytes = blobs
                .read(&h)
                .map_err(|e| ThumbError::Failed(e.to_string()))?
                .ok_or(ThumbError::Missing)?;
            make(&bytes)
        })
        .await
        .map_err(|e| ThumbError::Failed(format!("thumbnail task: {e}")))??;
        let thumb: Arc<[u8]> = made.into();
        self.keep(hash.clone(), thumb.clone());
        Ok(thumb)
    }
}

impl std::fmt::Debug for Thumbnails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (entries, bytes) = self.held();
        f.debug_struct("Thumbnails")
            .field("entries", &entries)
            .field("bytes", &bytes)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgba, RgbaImage};

    fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn decoded(jpeg: &[u8]) -> DynamicImage {
        assert_eq!(sniff(jpeg), Some("image/jpeg"));
        image::load_from_memory_with_format(jpeg, ImageFormat::Jpeg).unwrap()
    }

    /// A PNG whose header claims `width` x `height` (its IHDR with a right CRC), with
    /// one tiny IDAT after it: what a decompression bomb's first bytes look like.
    pub(crate) fn png_claiming(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend(width.to_be_bytes());
        ihdr.extend(height.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        for chunk in [ihdr, b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01".to_vec()] {
            png.extend(((chunk.len() - 4) as u32).to_be_bytes());
            png.extend(&chunk);
            png.extend(crc32(&chunk).to_be_bytes());
        }
        png
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn a_large_photo_becomes_a_jpeg_of_at_most_320_on_its_long_side() {
        let photo = DynamicImage::ImageRgb8(RgbImage::from_fn(1200, 800, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        }));
        for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP] {
            let thumb = decoded(&make(&encoded(&photo, format)).unwrap());
            assert_eq!((thumb.width(), thumb.height()), (320, 213), "{format:?}");
        }
        let tall = DynamicImage::ImageRgb8(RgbImage::new(300, 900));
        let thumb = decoded(&make(&encoded(&tall, ImageFormat::Png)).unwrap());
        assert_eq!((thumb.width(), thumb.height()), (107, 320));
    }

    #[test]
    fn a_small_image_keeps_its_size_and_transparency_turns_white() {
        let clear = DynamicImage::ImageRgba8(RgbaImage::from_pixel(40, 30, Rgba([0, 0, 0, 0])));
        let thumb = decoded(&make(&encoded(&clear, ImageFormat::Png)).unwrap()).to_rgb8();
        assert_eq!(thumb.dimensions(), (40, 30));
        assert!(
            thumb.pixels().all(|p| p.0.iter().all(|&c| c > 240)),
            "transparent is white, not black"
        );
    }

    #[test]
    fn a_pdf_has_no_thumbnail() {
        assert_eq!(
            make(b"%PDF-1.7\n..."),
            Err(ThumbError::NotAnImage {
                mime: "application/pdf"
            })
        );
    }

    #[test]
    fn a_header_claiming_a_huge_image_is_refused_before_decoding() {
        let bomb = png_claiming(100_000, 100_000);
        assert!(bomb.len() < 100, "a few dozen bytes: {}", bomb.len());
        assert_eq!(
            make(&bomb),
            Err(ThumbError::TooLarge {
                width: 100_000,
                height: 100_000
            })
        );
        // Within the sides but over the memory a decode may hold: 8000 x 8000 RGB.
        assert_eq!(
            make(&png_claiming(8000, 8000)),
            Err(ThumbError::TooLarge {
                width: 8000,
                height: 8000
            })
        );
        // A believable header over a cut body: unreadable, never a panic.
        assert!(matches!(
            make(&png_claiming(640, 480)),
            Err(ThumbError::Unreadable(_))
        ));
        let mut jpeg = encoded(
            &DynamicImage::ImageRgb8(RgbImage::new(64, 64)),
            ImageFormat::Jpeg,
        );
        jpeg.truncate(40);
        assert!(make(&jpeg).is_err());
    }

    #[tokio::test]
    async fn the_cache_keeps_thumbnails_within_its_budget_dropping_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(super::super::fs::FsBlobStore::new(dir.path()));
        let mut hashes = Vec::new();
        for shade in [10u8, 120, 240] {
            let png = encoded(
                &DynamicImage::ImageRgb8(RgbImage::from_pixel(900, 600, image::Rgb([shade; 3]))),
                ImageFormat::Png,
            );
            let hash = BlobHash::of(&png);
            store.append(&hash, "d", 0, png.len() as u64, &png).unwrap();
            hashes.push(hash);
        }
        let one = Thumbnails::new(usize::MAX, 1)
            .of(store.clone(), &hashes[0])
            .await
            .unwrap();
        // Room for two of these thumbnails, not three.
        let thumbs = Thumbnails::new(one.len() * 2 + one.len() / 2, 1);
        for h in &hashes {
            thumbs.of(store.clone(), h).await.unwrap();
        }
        let (entries, bytes) = thumbs.held();
        assert_eq!(entries, 2, "the least recently used went");
        assert!(bytes <= one.len() * 2 + one.len() / 2);
        // A kept thumbnail is served from memory: its blob may even be gone.
        let entry = store.list().unwrap();
        for e in entry {
            store.remove(&e).unwrap();
        }
        assert!(thumbs.of(store.clone(), &hashes[2]).await.is_ok());
        assert_eq!(
            thumbs.of(store.clone(), &hashes[0]).await,
            Err(ThumbError::Missing)
        );
    }
}
