//! `console_seed --data-dir DIR`: a server data directory with a few Baru households
//! typed on real phone stores and synced through the real hub, for the web console's
//! browser test (`tests/console/console.mjs`): two phones of 土匠村 that typed different
//! household sizes for 阿木日哈 while apart (a conflict with both cadres and phones), a
//! household complete for the 低保 form, one of 巴汝村, a task of the
//! public services office to both villages; 阿木日哈's household has a photo (a PNG,
//! stored on the server as an upload leaves it). Run it before `serve` on DIR.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use yibiao_model::clock::SystemClock;
use yibiao_model::value::AttachmentRef;
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_server::blobs::BlobHash;
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::{AppState, ServerHub, accounts, tasks};
use yibiao_store::Store;
use yibiao_sync::{DeviceScope, SyncOptions};
use yibiao_testkit::transport::InProcess;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("console_seed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A registered, bound phone of `cadre` in `village`, linked to the hub in-process.
fn phone(
    state: &AppState,
    cadre: &str,
    name: &str,
    village: &str,
) -> Res<(Store, InProcess<Arc<ServerHub>>)> {
    let storage = state.storage.as_ref();
    accounts::create_cadre(storage, state.hub.schema(), cadre, name, Some(village))?;
    let store = Store::open_in_memory(
        state.hub.schema().clone(),
        CadreId::new(cadre)?,
        Arc::new(SystemClock),
    )?;
    let (row, _) = accounts::register_device(
        storage,
        state.hub.schema(),
        &format!("{name}的手机"),
        Some(cadre),
        Some(village),
    )?;
    storage.bind_phone_device(&row.key, store.device_id().as_str())?;
    let identity = accounts::identity(storage, &row, store.device_id().clone())?;
    let link = InProcess::new(
        state.hub.clone(),
        row.key,
        DeviceScope::Village(village.into()),
        identity,
    );
    Ok((store, link))
}

fn sync(store: &Store, link: &InProcess<Arc<ServerHub>>) -> Res<()> {
    let r = yibiao_store::sync_with_sleep(
        store,
        link,
        &SyncOptions::default(),
        &mut |_| {},
        &mut |_| {},
    )?;
    if !r.complete || !r.refused.is_empty() {
        return Err(format!("sync incomplete: {r:?}").into());
    }
    Ok(())
}

fn set(f: &str, v: Value) -> FieldEdit {
    FieldEdit::Set(f.into(), v)
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

/// A 960 x 720 PNG stored on the server as a completed upload; its reference.
fn photo(state: &AppState, name: &str) -> Res<AttachmentRef> {
    let image = image::RgbImage::from_fn(960, 720, |x, y| {
        image::Rgb([(x / 4) as u8, (y / 3) as u8, 160])
    });
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png)?;
    let bytes = bytes.into_inner();
    let hash = BlobHash::of(&bytes);
    state
        .blobs
        .append(&hash, "console_seed", 0, bytes.len() as u64, &bytes)?;
    Ok(AttachmentRef {
        sha256: hash.to_string(),
        name: name.into(),
        mime: "image/png".into(),
        size: bytes.len() as u64,
    })
}

fn run() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let dir: PathBuf = match (args.next().as_deref(), args.next()) {
        (Some("--data-dir"), Some(d)) => d.into(),
        _ => return Err("usage: console_seed --data-dir DIR".into()),
    };
    let config = Config::resolve(
        Overrides {
            data_dir: Some(dir),
            ..Overrides::default()
        },
        FileConfig::default(),
    )?;
    let state = AppState::open(config, Schema::baru_example())?;
    let (a, link_a) = phone(&state, "amu", "阿木", "tujiang")?;
    let (b, link_b) = phone(&state, "jike", "吉克", "tujiang")?;
    let (c, link_c) = phone(&state, "aga", "阿嘎", "baru")?;
    let choice = |k: &str| Value::Choice(k.into());
    let amu: RecordId = a.create(
        "household",
        Some("tujiang"),
        &[
            set("household_head", text("阿木日哈")),
            set("id_number", text("513401198505052226")),
            set("phone", text("13800001111")),
            set("household_size", Value::Integer(5)),
            set("dibao_status", choice("enrolled")),
            set("toilet_type", choice("flush")),
            set("monitoring_status", choice("at_risk")),
            set("photo", Value::Attachment(photo(&state, "院子.png")?)),
        ],
    )?;
    a.create(
        "household",
        Some("tujiang"),
        &[
            set("household_head", text("吉巴")),
            set("id_number", text("513401199001010027")),
            set("household_size", Value::Integer(3)),
            set("annual_income", Value::Decimal("18000".parse()?)),
            set("dibao_status", choice("none")),
            set("visit_date", Value::Date("2026-11-20".parse()?)),
        ],
    )?;
    c.create(
        "household",
        Some("baru"),
        &[
            set("household_head", text("阿嘎")),
            set("household_size", Value::Integer(4)),
        ],
    )?;
    sync(&a, &link_a)?;
    sync(&b, &link_b)?;
    sync(&c, &link_c)?;
    // Apart, the two phones of 土匠村 type different sizes; both sync: a conflict.
    a.update(amu, &[set("household_size", Value::Integer(6))])?;
    b.update(amu, &[set("household_size", Value::Integer(7))])?;
    sync(&a, &link_a)?;
    sync(&b, &link_b)?;
    // A task of the public services office to both villages; 土匠村's phones receive it.
    let issuer = tasks::Issuer::Department(
        state
            .hub
            .schema()
            .department("public_services")
            .ok_or("no public_services")?
            .clone(),
    );
    let task = tasks::NewTask {
        title: "低保户年度核查".into(),
        form: "dibao_check".into(),
        due: "2027-06-30".into(),
        villages: Some(vec!["tujiang".into(), "baru".into()]),
        ..Default::default()
    };
    tasks::issue(
        &state.hub,
        state.storage.as_ref(),
        &issuer,
        &task,
        accounts::now_ms(),
    )?;
    sync(&a, &link_a)?;
    println!("seeded: 3 households, 1 photo, 1 conflict (阿木日哈's household size), 1 task");
    Ok(())
}
