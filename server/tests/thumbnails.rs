//! Thumbnails over real HTTP on loopback: photos attached on a phone store, uploaded by
//! the phone's own upload queue and HTTP transport, their records merged by the real
//! hub, and `GET /v1/blobs/{sha256}/thumbnail` asked with real tokens.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use image::{DynamicImage, ImageFormat, RgbImage};
use serde_json::Value as Json;
use yibiao_model::clock::ManualClock;
use yibiao_model::{CadreId, FieldEdit, Schema, Value};
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::limits::{ClientAddr, GuardedListener};
use yibiao_server::{AppState, ServerHub, accounts};
use yibiao_store::Store;
use yibiao_store::blobs::{self, Blobs, UploadOptions};
use yibiao_store::http::HttpTransport;
use yibiao_sync::{DeviceScope, SyncOptions};
use yibiao_testkit::transport::InProcess;

/// 2026-11-24 09:00 in UTC+8.
const MORNING: i64 = 1_795_482_000_000;

struct Fx {
    _dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
    state: AppState,
    base: String,
    /// Token kind -> token.
    tokens: Vec<(&'static str, String)>,
    /// Blob name -> its SHA-256.
    png: String,
    jpeg: String,
    pdf: String,
    bomb: String,
}

/// A photo-like image: gradients, so its JPEG is not trivially small.
fn picture(width: u32, height: u32, format: ImageFormat) -> Vec<u8> {
    let image = DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    }));
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
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

/// A decompression bomb's first bytes: a valid PNG header claiming 100000 x 100000 RGB
/// (30 GB decoded), an empty IDAT, and the end.
fn bomb() -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend(100_000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for chunk in [
        ihdr,
        b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01".to_vec(),
        b"IEND".to_vec(),
    ] {
        png.extend(((chunk.len() - 4) as u32).to_be_bytes());
        png.extend(&chunk);
        png.extend(crc32(&chunk).to_be_bytes());
    }
    png
}

type Link = InProcess<Arc<ServerHub>>;

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::resolve(
        Overrides {
            data_dir: Some(dir.path().join("data")),
            ..Overrides::default()
        },
        FileConfig {
            rate_per_minute: Some(0),
            ..FileConfig::default()
        },
    )
    .unwrap();
    let state = AppState::open(config, Schema::baru_example()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = yibiao_server::app(state.clone()).into_make_service_with_connect_info::<ClientAddr>();
    rt.spawn(async move {
        let listener = GuardedListener::new(listener, 64, Duration::from_secs(30));
        axum::serve(listener, app).await.unwrap();
    });

    let storage = state.storage.as_ref();
    let schema = state.hub.schema();
    let mut tokens = Vec::new();
    let (store, link, token) = phone(&state, "amu", "tujiang");
    tokens.push(("tujiang phone", token.clone()));
    let (_, _, baru) = phone(&state, "bu", "baru");
    tokens.push(("baru phone", baru));
    for dept in [
        "public_services",
        "social_governance",
        "tujiang_health_station",
    ] {
        let (_, t) = accounts::issue_department_token(storage, schema, dept, "test").unwrap();
        tokens.push((dept, t));
    }

    // Four households of Tujiang, each with one attachment, attached on the phone and
    // uploaded by its queue over HTTP.
    let blobs = Blobs::open(dir.path().join("phone.blobs")).unwrap();
    let attachments = [
        (
            picture(1000, 700, ImageFormat::Png),
            "image/png",
            "院子.png",
        ),
        (
            picture(2000, 1500, ImageFormat::Jpeg),
            "image/jpeg",
            "厨房.jpg",
        ),
        (
            b"%PDF-1.7\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n".to_vec(),
            "application/pdf",
            "证明.pdf",
        ),
        (bomb(), "image/png", "bomb.png"),
    ];
    let mut names = Vec::new();
    for (bytes, mime, name) in &attachments {
        let id = store
            .create(
                "household",
                Some("tujiang"),
                &[FieldEdit::Set(
                    "household_head".into(),
                    Value::Text((*name).into()),
                )],
            )
            .unwrap();
        let r = blobs
            .attach(&store, id, "photo", bytes, mime, name)
            .unwrap();
        names.push(r.sha256);
    }
    sync(&store, &link);
    let transport = HttpTransport::new(&base, &token, Duration::from_secs(20));
    let report = blobs::upload(&blobs, &transport, &UploadOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(report.uploaded, 4, "{report:?}");
    let [png, jpeg, pdf, bomb] = names.try_into().unwrap();
    Fx {
        _dir: dir,
        _rt: rt,
        state,
        base,
        tokens,
        png,
        jpeg,
        pdf,
        bomb,
    }
}

/// A phone of `village`: its store, its in-process link to the hub, its token.
fn phone(state: &AppState, cadre: &str, village: &str) -> (Store, Link, String) {
    let storage = state.storage.as_ref();
    accounts::create_cadre(storage, state.hub.schema(), cadre, cadre, Some(village)).unwrap();
    let store = Store::open_in_memory(
        state.hub.schema().clone(),
        CadreId::new(cadre).unwrap(),
        Arc::new(ManualClock::new(MORNING)),
    )
    .unwrap();
    let (row, token) = accounts::register_device(
        storage,
        state.hub.schema(),
        &format!("phone of {cadre}"),
        Some(cadre),
        Some(village),
    )
    .unwrap();
    storage
        .bind_phone_device(&row.key, store.device_id().as_str())
        .unwrap();
    let identity = accounts::identity(storage, &row, store.device_id().clone()).unwrap();
    let link = InProcess::new(
        state.hub.clone(),
        row.key,
        DeviceScope::Village(village.into()),
        identity,
    );
    (store, link, token)
}

fn sync(store: &Store, link: &Link) {
    let r = yibiao_store::sync_with_sleep(
        store,
        link,
        &SyncOptions::default(),
        &mut |_| {},
        &mut |_| {},
    )
    .unwrap();
    assert!(r.complete && r.refused.is_empty(), "{r:?}");
}

/// One answer: status, content type, body.
struct Answer {
    status: u16,
    kind: String,
    body: Vec<u8>,
}

impl Answer {
    /// The error envelope's `reason`, `params` and `message`.
    fn error(&self) -> (String, Json, String) {
        let v: Json = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)));
        let e = &v["error"];
        (
            e["reason"].as_str().unwrap().to_owned(),
            e["params"].clone(),
            e["message"].as_str().unwrap().to_owned(),
        )
    }
}

impl Fx {
    fn token(&self, kind: &str) -> &str {
        &self.tokens.iter().find(|(k, _)| *k == kind).unwrap().1
    }

    fn get(&self, path: &str, kind: &str, lang: &str) -> Answer {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .get(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token(kind)))
            .header("accept-language", lang)
            .call()
            .unwrap();
        Answer {
            status: r.status().as_u16(),
            kind: r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            body: r.body_mut().read_to_vec().unwrap(),
        }
    }
}

#[test]
fn a_png_and_a_jpeg_get_jpeg_thumbnails_of_at_most_320_px_on_the_long_side() {
    let fx = fixture();
    for (hash, expected) in [(&fx.png, (320, 224)), (&fx.jpeg, (320, 240))] {
        let a = fx.get(
            &format!("/v1/blobs/{hash}/thumbnail"),
            "public_services",
            "zh",
        );
        assert_eq!((a.status, a.kind.as_str()), (200, "image/jpeg"));
        let thumb = image::load_from_memory_with_format(&a.body, ImageFormat::Jpeg).unwrap();
        assert_eq!((thumb.width(), thumb.height()), expected);
        let original = fx.get(&format!("/v1/blobs/{hash}"), "public_services", "zh");
        assert!(
            a.body.len() * 5 < original.body.len(),
            "a thumbnail is a fraction of its photo: {} of {} bytes",
            a.body.len(),
            original.body.len()
        );
        // Asked again: the same bytes (from the cache).
        let again = fx.get(
            &format!("/v1/blobs/{hash}/thumbnail"),
            "tujiang phone",
            "zh",
        );
        assert_eq!(again.body, a.body);
    }
}

#[test]
fn a_thumbnail_is_readable_exactly_by_those_who_may_read_its_photo() {
    let fx = fixture();
    let readers = [
        ("tujiang phone", 200),
        ("public_services", 200),
        // Not Tujiang's village; a department that reads households but not their photo;
        // one that reads Tujiang's households but not their photo.
        ("baru phone", 404),
        ("social_governance", 404),
        ("tujiang_health_station", 404),
    ];
    for (kind, expected) in readers {
        let photo = fx.get(&format!("/v1/blobs/{}", fx.png), kind, "zh");
        let thumb = fx.get(&format!("/v1/blobs/{}/thumbnail", fx.png), kind, "en");
        assert_eq!((photo.status, thumb.status), (expected, expected), "{kind}");
        if expected == 404 {
            let (reason, _, message) = thumb.error();
            assert_eq!(reason, "not_found", "{kind}");
            assert!(message.contains("no attachment"), "{message}");
        }
    }
    // A blob nobody references is no one's.
    let unknown = fx.get(
        &format!("/v1/blobs/{}/thumbnail", "ab".repeat(32)),
        "public_services",
        "zh",
    );
    assert_eq!(unknown.status, 404);
}

#[test]
fn a_pdf_has_no_thumbnail_and_says_so_in_the_askers_language() {
    let fx = fixture();
    let path = format!("/v1/blobs/{}/thumbnail", fx.pdf);
    let zh = fx.get(&path, "public_services", "zh-CN");
    assert_eq!(zh.status, 415);
    let (reason, params, message) = zh.error();
    assert_eq!(reason, "blob_not_an_image");
    assert_eq!(params["got"], "application/pdf");
    assert_eq!(
        message,
        "该附件不是图片（application/pdf），没有缩略图；请打开原文件查看"
    );
    let (_, _, en) = fx.get(&path, "public_services", "en").error();
    assert!(en.contains("not an image (application/pdf)"), "{en}");
    // The PDF itself is served.
    let pdf = fx.get(&format!("/v1/blobs/{}", fx.pdf), "public_services", "zh");
    assert_eq!((pdf.status, pdf.kind.as_str()), (200, "application/pdf"));
}

#[test]
fn a_decompression_bomb_is_refused_with_its_size_and_the_server_keeps_serving() {
    let fx = fixture();
    let path = format!("/v1/blobs/{}/thumbnail", fx.bomb);
    // Several at once, beside a real photo: each refused, the photo served.
    let answers: Vec<(Answer, Answer)> = std::thread::scope(|s| {
        let asks: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (
                        fx.get(&path, "public_services", "en"),
                        fx.get(
                            &format!("/v1/blobs/{}/thumbnail", fx.jpeg),
                            "public_services",
                            "en",
                        ),
                    )
                })
            })
            .collect();
        asks.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (bomb, photo) in answers {
        assert_eq!(bomb.status, 422);
        let (reason, params, message) = bomb.error();
        assert_eq!(reason, "blob_image_too_large");
        assert_eq!(
            (params["width"].as_str(), params["height"].as_str()),
            (Some("100000"), Some("100000"))
        );
        assert!(message.contains("100000 x 100000 pixels"), "{message}");
        assert_eq!(photo.status, 200);
    }
    let (_, _, zh) = fx.get(&path, "public_services", "zh").error();
    assert!(zh.contains("100000×100000 像素"), "{zh}");
    // The server is whole: health, and the bomb's own bytes still download.
    assert_eq!(fx.get("/healthz", "public_services", "zh").status, 200);
    let raw = fx.get(&format!("/v1/blobs/{}", fx.bomb), "public_services", "zh");
    assert_eq!((raw.status, raw.body), (200, bomb()));
}

/// A finding's photo is read by who sees the finding (ADR 0012, 0013): social
/// governance reads households but not their photos, so the PDF is not its to read,
/// until a finding about Tujiang that carries it is handed to it; another department
/// and another village's phone still get 404.
#[test]
fn a_findings_photo_is_read_by_the_department_it_was_handed_to() {
    use yibiao_model::finding::{StepKind, Unit};
    use yibiao_server::findings::{self, NewFinding};
    use yibiao_server::tasks::Issuer;
    let fx = fixture();
    let path = format!("/v1/blobs/{}", fx.pdf);
    assert_eq!(fx.get(&path, "social_governance", "zh").status, 404);
    let new: NewFinding = serde_json::from_value(serde_json::json!({
        "village": "tujiang", "category": "work_style", "severity": "low",
        "description": "证明材料未归档", "photos": [format!("sha256:{}", fx.pdf)]
    }))
    .unwrap();
    let hub = &fx.state.hub;
    let f = findings::record(hub, &Issuer::Township, new, MORNING).unwrap();
    assert_eq!(
        fx.get(&path, "social_governance", "zh").status,
        404,
        "not handed over yet"
    );
    let to = StepKind::HandOver {
        unit: Unit::Department("social_governance".into()),
        deadline_ms: MORNING + 3_600_000,
    };
    findings::take_step(hub, &Issuer::Township, f.id, to, MORNING).unwrap();
    let a = fx.get(&path, "social_governance", "zh");
    assert_eq!((a.status, a.kind.as_str()), (200, "application/pdf"));
    assert_eq!(fx.get(&path, "tujiang_health_station", "zh").status, 404);
    assert_eq!(fx.get(&path, "baru phone", "zh").status, 404);
}
