//! Web console benchmark: prints how long the server takes to render the records page
//! of a large department view, and how heavy the page is. It never asserts timings.
//!
//! Run: `cargo bench -p yibiao-server --bench console`
//!
//! Environment: `YIBIAO_BENCH_RECORDS` (households, default 10000), `YIBIAO_BENCH_REPS`
//! (repetitions of each page, default 5).
//!
//! Method: N household summaries (the JSON the hub stores at merge: 10 fields of the
//! public services form, one in 25 with a conflict on the household size) are committed
//! straight through `HubStorage::commit` over the six Baru villages (the read path never
//! decodes documents, so no automerge bytes are needed). A public_services clerk's
//! session is opened with the console's own function; each page is then asked of the
//! real router (`yibiao_server::app`, in process) with the session cookie, and timed from
//! request to the last byte of the body. Printed: best and median time per page, body
//! bytes and zstd-compressed bytes (level 3, a stand-in for gzip).

#![allow(clippy::unwrap_used, reason = "bench")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;
use yibiao_model::{RecordId, Schema};
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::console::staff::{self, NewStaff, Scope};
use yibiao_server::storage::SqliteStorage;
use yibiao_server::{AppState, app};
use yibiao_sync::HubStorage;
use yibiao_sync::hub::{DocWrite, HubBatch};

const VILLAGES: [&str; 6] = ["tujiang", "baru", "shanzhong", "heping", "xinmin", "lianhe"];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn household(i: usize) -> DocWrite {
    let status = ["none", "enrolled", "special"][i % 3];
    let values = serde_json::json!({
        "household_head": format!("户主{i}"),
        "id_number": format!("5134011985{:08}", i),
        "phone": format!("138{:08}", i),
        "address": format!("{}组{}号", i % 12 + 1, i),
        "household_size": i % 7 + 1,
        "annual_income": format!("{}.50", 8000 + i % 30000),
        "income_sources": ["farming", "wages"],
        "dibao_status": status,
        "visit_date": "2026-11-20",
        "notes": "走访正常",
    });
    let conflicts = if i.is_multiple_of(25) {
        serde_json::json!({"household_size": [
            {"value": 5, "cadre": "amu", "device": "dev-a", "at_ms": 1_795_482_000_000_i64, "shown": true},
            {"value": 6, "cadre": "jike", "device": "dev-b", "at_ms": 1_795_482_060_000_i64, "shown": false},
        ]})
        .to_string()
    } else {
        "{}".into()
    };
    DocWrite {
        id: RecordId::new(),
        entity: "household".into(),
        village: Some(VILLAGES[i % VILLAGES.len()].into()),
        chunk: Vec::new(),
        snapshot: true,
        heads: Vec::new(),
        values_json: values.to_string(),
        conflicts_json: conflicts,
        deleted: false,
        typed: ["household_head", "id_number", "household_size"]
            .iter()
            .map(|f| (1_795_482_000_000 + i as i64, (*f).to_owned()))
            .collect(),
    }
}

fn main() {
    let n = env("YIBIAO_BENCH_RECORDS", 10_000);
    let reps = env("YIBIAO_BENCH_REPS", 5).max(1);
    let dir = tempfile::tempdir().unwrap();
    let config = Config::resolve(
        Overrides {
            data_dir: Some(dir.path().to_owned()),
            ..Overrides::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    let storage = Arc::new(SqliteStorage::open(&dir.path().join("yibiao.db")).unwrap());
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        storage
            .commit(&HubBatch {
                device: "bench-loader".into(),
                docs: chunk.iter().map(|i| household(*i)).collect(),
                ..HubBatch::default()
            })
            .unwrap();
    }
    let state = AppState::with_storage(config, Schema::baru_example(), storage);
    let new = NewStaff {
        login: "ps",
        name: "王芳",
        scope: Scope::Department("public_services".into()),
        password: "bench-password-1",
    };
    staff::add(state.storage.as_ref(), state.hub.schema(), &new, 0).unwrap();
    let (session, _) =
        staff::open_session(state.storage.as_ref(), "ps", state.clock.now_ms()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("console records page, {n} households in the view, {reps} repetitions");
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>9}",
        "page", "best ms", "median ms", "bytes", "zstd B"
    );
    let (_, token) = yibiao_server::accounts::issue_department_token(
        state.storage.as_ref(),
        state.hub.schema(),
        "public_services",
        "bench",
    )
    .unwrap();
    let measure = |path: &str| {
        let mut times = Vec::new();
        let mut body = Vec::new();
        for _ in 0..reps {
            let req = Request::get(path)
                .header("cookie", format!("yb_session={session}"))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap();
            let t0 = Instant::now();
            let res = rt.block_on(async {
                let res = app(state.clone()).oneshot(req).await.unwrap();
                assert_eq!(res.status(), 200, "{path}");
                res.into_body().collect().await.unwrap().to_bytes()
            });
            times.push(t0.elapsed());
            body = res.to_vec();
        }
        times.sort();
        (times[0], times[times.len() / 2], body)
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for path in [
        "/records",
        "/records?village=tujiang",
        "/records?conflicted=1",
        "/records?q=%E6%88%B7%E4%B8%BB77",
        "/records?form=dibao_check&state=incomplete",
        "/records?sort=household_size&desc=1",
        "/records?page=200",
    ] {
        let (best, median, body) = measure(path);
        let packed = zstd::encode_all(&body[..], 3).unwrap().len();
        println!(
            "{path:<44} {:>9.1} {:>9.1} {:>9} {:>9}",
            ms(best),
            ms(median),
            body.len(),
            packed
        );
    }
    // Exports of the same records: the XLSX against the CSV as the baseline.
    println!();
    println!("exports of the {n} households (same columns), ratio to the CSV");
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "export", "best ms", "median ms", "bytes", "x time", "x bytes"
    );
    let (csv_best, _, csv) = measure("/v1/records.csv?form=dibao_check");
    for path in [
        "/v1/records.csv?form=dibao_check",
        "/v1/records.xlsx?form=dibao_check",
        "/records.xlsx?entity=household&form=dibao_check",
    ] {
        let (best, median, body) = measure(path);
        println!(
            "{path:<44} {:>9.1} {:>9.1} {:>9} {:>9.2} {:>9.2}",
            ms(best),
            ms(median),
            body.len(),
            best.as_secs_f64() / csv_best.as_secs_f64(),
            body.len() as f64 / csv.len() as f64
        );
    }
}
