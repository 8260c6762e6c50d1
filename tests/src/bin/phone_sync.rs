//! A phone as a separate process, for kill -9 tests: opens a store and syncs it.
//! Usage: `phone_sync STORE URL TOKEN`. Prints `pushed N` after every committed page.

use std::sync::Arc;
use std::time::Duration;

use yibiao_model::{CadreId, Schema};
use yibiao_store::Store;
use yibiao_store::http::HttpTransport;
use yibiao_sync::session::SyncOptions;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, url, token] = args.as_slice() else {
        eprintln!("usage: phone_sync STORE URL TOKEN");
        return std::process::ExitCode::FAILURE;
    };
    let cadre = CadreId::new("amu").expect("constant id");
    let store = match Store::open(path, Arc::new(Schema::baru_example()), cadre) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open store: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let transport = HttpTransport::new(url, token, Duration::from_secs(30));
    let options = SyncOptions {
        page_bytes: 16 * 1024,
        max_response_bytes: 16 * 1024,
        ..SyncOptions::default()
    };
    let result = yibiao_store::sync(&store, &transport, &options, &mut |p| {
        println!("pushed {}", p.pushed);
    });
    match result {
        Ok(r) => {
            println!("done complete={}", r.complete);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sync failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
