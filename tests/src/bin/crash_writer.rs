//! `crash_writer <store path> <cadre id> [first write number]`: writes to a yibiao store
//! forever, for the crash-durability test to `kill -9` at an arbitrary moment.
//!
//! Write `i` of the run (numbered `n = first + i`) is, by `i % 3`:
//! - `0`: create a household in a village with `household_head` and `household_size`
//!   derived from `n`;
//! - `1`: set `notes` on the first household this run created (a hot record, so its
//!   document crosses the compaction threshold and kills also land in compactions);
//! - `2`: set `notes` on a pseudo-randomly chosen household: one this run created or
//!   one already in the store (written by an earlier, killed run).
//!
//! After each write returns `Ok`, one line (see [`yibiao_tests::crash::Report`]) is
//! printed and flushed: the line promises that the write is durable. On any error the
//! writer prints it on stderr and exits with status 1.

use std::error::Error;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_store::{Query, Store};
use yibiao_testkit::rng::Rng;
use yibiao_tests::crash::{Report, VILLAGES, household_head, household_size, notes};

fn main() -> ExitCode {
    match run() {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("crash_writer: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every household already in the store.
fn existing_households(store: &Store) -> Result<Vec<RecordId>, Box<dyn Error>> {
    let mut ids = Vec::new();
    let mut q = Query {
        entity: Some("household".into()),
        include_deleted: true,
        limit: yibiao_store::MAX_PAGE,
        ..Query::default()
    };
    loop {
        let page = store.query(&q)?;
        ids.extend(page.records.iter().map(|r| r.id));
        match page.next {
            Some(next) => q.after = Some(next),
            None => return Ok(ids),
        }
    }
}

fn run() -> Result<std::convert::Infallible, Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: crash_writer <store path> <cadre id> [first write number]";
    let path = args.next().ok_or(usage)?;
    let cadre = CadreId::new(args.next().ok_or(usage)?)?;
    let first: u64 = match args.next() {
        Some(s) => s
            .parse()
            .map_err(|_| format!("first write number {s:?} is not a number"))?,
        None => 0,
    };

    let store = Store::open(&path, Arc::new(Schema::baru_example()), cadre)?;
    let mut known = existing_households(&store)?;
    let mut mine: Vec<RecordId> = Vec::new();
    // Seeded by the run so each run picks differently but reproducibly.
    let mut rng = Rng::new(first);
    let stdout = std::io::stdout();

    for i in 0u64.. {
        let n = first + i;
        let report = match (i % 3, mine.first()) {
            (0, _) | (_, None) => {
                let village = VILLAGES[usize::try_from(n).unwrap_or(0) % VILLAGES.len()];
                let id = store.create(
                    "household",
                    Some(village),
                    &[
                        FieldEdit::Set("household_head".into(), Value::Text(household_head(n))),
                        FieldEdit::Set("household_size".into(), Value::Integer(household_size(n))),
                    ],
                )?;
                mine.push(id);
                known.push(id);
                Report::Create { id, n }
            }
            (1, Some(&hot)) => {
                store.set(hot, "notes", Value::Text(notes(n)))?;
                Report::SetNotes { id: hot, n }
            }
            _ => {
                let id = known[rng.below(known.len())];
                store.set(id, "notes", Value::Text(notes(n)))?;
                Report::SetNotes { id, n }
            }
        };
        // One write(2) per line, so a kill cannot leave half a line that looks whole.
        let line = format!("{report}\n");
        let mut out = stdout.lock();
        out.write_all(line.as_bytes())?;
        out.flush()?;
    }
    Err("the write counter ran out".into())
}
