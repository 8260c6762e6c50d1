//! `attach_writer <store path> <first n>`: creates Tujiang households and attaches a
//! photo to each, forever, for the attachment kill test to SIGKILL at any moment.
//!
//! Photo `n` is [`photo_bytes`]`(n)` (~200 KB, so kills land inside blob writes too).
//! After an attach returns, one line `<record id> <sha256>` is printed and flushed: the
//! line promises the reference and its bytes are durable.

use std::error::Error;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use yibiao_model::{CadreId, FieldEdit, Schema, Value};
use yibiao_store::Store;
use yibiao_store::blobs::Blobs;

/// The photo of write `n`: a JPEG magic number, then bytes that depend on `n`.
fn photo_bytes(n: u64) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..200_000u64).map(|i| (i.wrapping_mul(2_654_435_761) ^ n) as u8));
    bytes
}

fn main() -> ExitCode {
    match run() {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("attach_writer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<std::convert::Infallible, Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: attach_writer <store path> <first n>")?;
    let first: u64 = args.next().ok_or("missing <first n>")?.parse()?;
    let store = Store::open(
        &path,
        Arc::new(Schema::baru_example()),
        CadreId::new("amu")?,
    )?;
    let blobs = Blobs::open(Blobs::dir_beside(&path))?;
    let mut out = std::io::stdout().lock();
    for n in first.. {
        let id = store.create(
            "household",
            Some("tujiang"),
            &[FieldEdit::Set(
                "household_head".into(),
                Value::Text(format!("户主-{n}")),
            )],
        )?;
        let r = blobs.attach(&store, id, "photo", &photo_bytes(n), "image/jpeg", "p.jpg")?;
        writeln!(out, "{id} {}", r.sha256)?;
        out.flush()?;
    }
    Err("ran out of numbers".into())
}
