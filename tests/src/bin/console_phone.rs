//! A cadre's phone for the web console's browser test (`tests/console/admin.mjs`): a
//! real phone store on disk, talking to the running server over HTTP.
//!
//! - `console_phone enrol STORE URL CODE CADRE`: enrols with a code (as typed or
//!   scanned), keeping the token and the scope in the store.
//! - `console_phone sync STORE CADRE`: syncs, opens every task the phone received (the
//!   cadre reads it), and syncs again so the receipts reach the server. Prints
//!   `tasks N`. Exits 3 when the server refuses the device (e.g. revoked), 1 on other
//!   failures.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use yibiao_model::{CadreId, Schema};
use yibiao_store::http::{HttpTransport, enrol};
use yibiao_store::{Credentials, Store, SyncError};
use yibiao_sync::DeviceScope;
use yibiao_sync::session::SyncOptions;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn open(path: &str, cadre: &str) -> Res<Store> {
    Ok(Store::open(
        path,
        Arc::new(Schema::baru_example()),
        CadreId::new(cadre)?,
    )?)
}

fn do_enrol(path: &str, url: &str, code: &str, cadre: &str) -> Res<()> {
    let store = open(path, cadre)?;
    let e = enrol(
        url,
        code,
        store.device_id().as_str(),
        Duration::from_secs(30),
    )?;
    store.set_credentials(&Credentials {
        server_url: url.to_owned(),
        token: e.token,
    })?;
    let scope = match e.village {
        Some(v) => DeviceScope::Village(v),
        None => DeviceScope::Township,
    };
    store.set_scope(Some(&scope))?;
    println!("enrolled {}", e.device);
    Ok(())
}

/// Syncs; `Ok(false)` when the server refused the device.
fn sync_once(store: &Store) -> Res<bool> {
    let creds = store.credentials()?.ok_or("the phone is not enrolled")?;
    let transport = HttpTransport::new(&creds.server_url, &creds.token, Duration::from_secs(30));
    match yibiao_store::sync(store, &transport, &SyncOptions::default(), &mut |_| {}) {
        Ok(r) if r.complete => Ok(true),
        Ok(r) => Err(format!("sync incomplete: {r:?}").into()),
        Err(SyncError::Refused(m)) => {
            eprintln!("refused: {m}");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

fn do_sync(path: &str, cadre: &str) -> Res<bool> {
    let store = open(path, cadre)?;
    if !sync_once(&store)? {
        return Ok(false);
    }
    let tasks = store.tasks()?;
    for t in &tasks {
        store.open_task(t.id)?;
    }
    if !sync_once(&store)? {
        return Ok(false);
    }
    println!("tasks {}", tasks.len());
    Ok(true)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["enrol", path, url, code, cadre] => do_enrol(path, url, code, cadre).map(|()| true),
        ["sync", path, cadre] => do_sync(path, cadre),
        _ => Err("usage: console_phone enrol STORE URL CODE CADRE | sync STORE CADRE".into()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("console_phone: {e}");
            ExitCode::FAILURE
        }
    }
}
