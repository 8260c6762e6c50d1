//! Crash durability: a write that returned survives `kill -9`, and the store file stays
//! sound and writable.
//!
//! The `crash_writer` binary writes to a store as fast as it can and reports each write
//! on stdout only after the call returned (protocol: [`yibiao_tests::crash`]). The test
//! kills it with SIGKILL right after it has reported some number of writes, so the kill
//! lands while the next write is running (building the change, inside the SQLite
//! transaction, in the fsync, or in a compaction). Then it reopens the same file and
//! checks every reported write against what is on disk, and lets the next round write
//! to the same, once-killed file.
//!
//! What may legitimately differ from the reports: exactly one write (the one numbered
//! last reported + 1) was in flight when the kill landed; it may be on disk or not.
//! Anything else missing or older than reported is a lost write.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_store::MAX_PAGE;
use yibiao_store::{Query, RecordView, Store};
use yibiao_tests::crash::{
    Report, household_head, household_head_counter, household_size, notes, notes_counter,
};

/// Write numbers of round `r` start at `r * ROUND_SPAN`; the test's own writes after
/// round `r` use the top of that range, below every later round's numbers.
const ROUND_SPAN: u64 = 1_000_000;

/// How long to wait for the writer's next line before declaring it stuck.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// One kill: after how many reported writes, and how long after that line arrived.
struct Kill {
    after_lines: usize,
    delay: Duration,
}

/// What the store must hold for one household.
#[derive(Debug)]
struct Expected {
    head: String,
    size: i64,
    /// Write number of the last durable `notes` value.
    notes: Option<u64>,
}

/// Kills and reaps the child if the test panics while it runs.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one writer run reported before it died.
struct RoundOutput {
    reports: Vec<Report>,
    /// True when the kill cut a line in half (that write returned but is unreported).
    partial_line: bool,
}

fn open(path: &Path) -> Store {
    Store::open(
        path,
        Arc::new(Schema::baru_example()),
        CadreId::new("crash-test").expect("valid cadre id"),
    )
    .expect("reopen the store after kill -9")
}

/// Runs the writer on `path` from write number `first` and SIGKILLs it as `kill` says.
fn run_writer(path: &Path, first: u64, kill: &Kill) -> RoundOutput {
    let child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(path)
        .arg("cadre-crash")
        .arg(first.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn crash_writer");
    let mut child = ChildGuard(child);
    let stdout = child.0.stdout.take().expect("piped stdout");
    let mut stderr = child.0.stderr.take().expect("piped stderr");

    let (tx, rx) = mpsc::channel::<String>();
    let reader = thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut partial = false;
        loop {
            let mut line = String::new();
            match stdout.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) if line.ends_with('\n') => {
                    line.pop();
                    if tx.send(line).is_err() {
                        break;
                    }
                }
                // EOF in the middle of a line: the kill cut the report short.
                Ok(_) => {
                    partial = true;
                    break;
                }
                Err(e) => panic!("reading crash_writer stdout: {e}"),
            }
        }
        partial
    });
    let stderr_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let mut lines = Vec::new();
    while lines.len() < kill.after_lines {
        match rx.recv_timeout(LINE_TIMEOUT) {
            Ok(line) => lines.push(line),
            Err(e) => {
                let _ = child.0.kill();
                let status = child.0.wait().expect("wait for crash_writer");
                let stderr = stderr_reader.join().unwrap_or_default();
                panic!(
                    "crash_writer stopped reporting after {} writes ({e}); status {status}, stderr:\n{stderr}",
                    lines.len()
                );
            }
        }
    }
    if !kill.delay.is_zero() {
        thread::sleep(kill.delay);
    }
    child.0.kill().expect("SIGKILL crash_writer");
    let status = child.0.wait().expect("wait for crash_writer");
    // Lines printed before the kill are still in the pipe: read them all.
    lines.extend(rx.iter());
    let partial_line = reader.join().expect("stdout reader thread");
    let stderr = stderr_reader.join().expect("stderr reader thread");
    assert_eq!(
        status.signal(),
        Some(9),
        "crash_writer should have died of SIGKILL, got {status}; stderr:\n{stderr}"
    );
    let reports = lines
        .iter()
        .map(|l| l.parse::<Report>().expect("a well-formed report line"))
        .collect();
    RoundOutput {
        reports,
        partial_line,
    }
}

/// Every household in the store, from the index, with its indexed values.
fn indexed_households(store: &Store) -> BTreeMap<RecordId, BTreeMap<String, serde_json::Value>> {
    let mut out = BTreeMap::new();
    let mut q = Query {
        entity: Some("household".into()),
        include_deleted: true,
        limit: MAX_PAGE,
        ..Query::default()
    };
    loop {
        let page = store.query(&q).expect("query the index");
        for r in page.records {
            assert!(
                !r.deleted,
                "record {} was never deleted but carries a tombstone",
                r.id
            );
            out.insert(r.id, r.values);
        }
        match page.next {
            Some(next) => q.after = Some(next),
            None => return out,
        }
    }
}

fn text<'a>(view: &'a RecordView, field: &str) -> Option<&'a str> {
    view.value(field).map(|v| {
        v.as_str()
            .unwrap_or_else(|| panic!("record {} field {field} is not text: {v}", view.id))
    })
}

/// Checks the reopened store against the model after round `round`, and folds the
/// round's reports (and the in-flight write, if it reached the disk) into the model.
/// Returns true when the in-flight write was found on disk.
fn check_round(
    store: &Store,
    model: &mut BTreeMap<RecordId, Expected>,
    round: u64,
    out: &RoundOutput,
) -> bool {
    assert_eq!(
        store.integrity_check().expect("run integrity_check"),
        "ok",
        "round {round}: the file is not sound after kill -9"
    );
    let in_flight = fold_reports(model, round, out);
    let in_flight_found = check_records(store, model, round, in_flight);
    check_sync_bookkeeping(store, model, round);
    in_flight_found
}

/// Folds the round's reports into the model: each one is a write that must be on disk.
/// Returns the number of the write in flight when the kill landed.
fn fold_reports(model: &mut BTreeMap<RecordId, Expected>, round: u64, out: &RoundOutput) -> u64 {
    let mut last_n = None;
    for report in &out.reports {
        if let Some(prev) = last_n {
            assert_eq!(
                report.n(),
                prev + 1,
                "round {round}: reports out of sequence"
            );
        }
        last_n = Some(report.n());
        match *report {
            Report::Create { id, n } => {
                let old = model.insert(
                    id,
                    Expected {
                        head: household_head(n),
                        size: household_size(n),
                        notes: None,
                    },
                );
                assert!(
                    old.is_none(),
                    "round {round}: record {id} reported created twice"
                );
            }
            Report::SetNotes { id, n } => {
                let e = model
                    .get_mut(&id)
                    .unwrap_or_else(|| panic!("round {round}: set on unknown record {id}"));
                e.notes = Some(n);
            }
        }
    }
    last_n.expect("the writer reported writes") + 1
}

/// Checks every record on disk against the model: index and document agree, every
/// reported write is there, and at most the in-flight write is there unreported (then
/// the model takes it). Returns true when the in-flight write was found.
fn check_records(
    store: &Store,
    model: &mut BTreeMap<RecordId, Expected>,
    round: u64,
    in_flight: u64,
) -> bool {
    let index = indexed_households(store);
    let mut in_flight_found = false;
    for (&id, indexed) in &index {
        let view = store.get(id).expect("load a record listed by the index");
        // The index is written in the same transaction as the document: they must agree.
        for field in ["household_head", "household_size", "notes"] {
            assert_eq!(
                indexed.get(field),
                view.value(field),
                "round {round}: record {id}: index and document disagree on {field}"
            );
        }
        assert!(
            view.conflicted.is_empty(),
            "round {round}: record {id} has conflicts"
        );
        let head = text(&view, "household_head").map(str::to_owned);
        let size = view
            .value("household_size")
            .and_then(serde_json::Value::as_i64);
        let note = text(&view, "notes").map(|t| {
            notes_counter(t)
                .unwrap_or_else(|| panic!("round {round}: record {id}: unexpected notes {t:?}"))
        });

        let Some(expected) = model.get_mut(&id) else {
            // Not reported: only the in-flight create may be here.
            assert!(
                !in_flight_found,
                "round {round}: two unreported writes on disk"
            );
            let found = Found {
                id,
                head,
                size,
                note,
            };
            model.insert(id, unreported_create(&found, round, in_flight));
            in_flight_found = true;
            continue;
        };
        assert_eq!(
            head.as_ref(),
            Some(&expected.head),
            "round {round}: record {id} household_head"
        );
        assert_eq!(
            size,
            Some(expected.size),
            "round {round}: record {id} household_size"
        );
        if note != expected.notes {
            // Only the unreported in-flight write may be newer than the last report.
            assert!(
                note == Some(in_flight) && !in_flight_found,
                "round {round}: record {id}: notes written by write {note:?}, but the last reported \
                 write to it is {:?} (in flight: {in_flight}): a returned write was lost",
                expected.notes
            );
            in_flight_found = true;
            expected.notes = note;
        }
    }
    let lost: Vec<_> = model.keys().filter(|id| !index.contains_key(id)).collect();
    assert!(
        lost.is_empty(),
        "round {round}: reported creates missing after kill -9: {lost:?}"
    );
    in_flight_found
}

/// What one record on disk holds.
struct Found {
    id: RecordId,
    head: Option<String>,
    size: Option<i64>,
    note: Option<u64>,
}

/// A record no report names must be the in-flight create, whole: its expected state.
fn unreported_create(found: &Found, round: u64, in_flight: u64) -> Expected {
    let Found {
        id,
        head,
        size,
        note,
    } = found;
    let n = head.as_deref().and_then(household_head_counter);
    assert_eq!(
        n,
        Some(in_flight),
        "round {round}: record {id} (head {head:?}) was never reported and is not the in-flight write {in_flight}"
    );
    assert_eq!(
        *size,
        Some(household_size(in_flight)),
        "round {round}: record {id} size"
    );
    assert_eq!(*note, None, "round {round}: record {id} notes");
    Expected {
        head: household_head(in_flight),
        size: household_size(in_flight),
        notes: None,
    }
}

/// Sync bookkeeping survived too: every record pending, each with its own write number.
fn check_sync_bookkeeping(store: &Store, model: &BTreeMap<RecordId, Expected>, round: u64) {
    let pending = store.pending(usize::MAX).expect("list pending records");
    assert_eq!(pending.len(), model.len(), "round {round}: pending records");
    let seqs: BTreeSet<i64> = pending.iter().map(|p| p.local_seq).collect();
    assert_eq!(
        seqs.len(),
        pending.len(),
        "round {round}: two records share a local_seq"
    );
}

/// The reopened store still takes writes, and they are durable too.
fn write_after_round(path: &Path, model: &mut BTreeMap<RecordId, Expected>, round: u64) {
    let n = round * ROUND_SPAN + ROUND_SPAN - 1;
    let (created, updated) = {
        let store = open(path);
        let created = store
            .create(
                "household",
                Some("tujiang"),
                &[
                    FieldEdit::Set("household_head".into(), Value::Text(household_head(n))),
                    FieldEdit::Set("household_size".into(), Value::Integer(household_size(n))),
                ],
            )
            .expect("create after kill -9");
        let updated = *model.keys().next().expect("a record to update");
        assert!(
            store
                .set(updated, "notes", Value::Text(notes(n)))
                .expect("set after kill -9"),
            "the set changed nothing"
        );
        (created, updated)
    };
    model.insert(
        created,
        Expected {
            head: household_head(n),
            size: household_size(n),
            notes: None,
        },
    );
    model.get_mut(&updated).expect("updated record").notes = Some(n);
    let store = open(path);
    assert_eq!(
        text(
            &store.get(created).expect("get the new record"),
            "household_head"
        ),
        Some(household_head(n).as_str())
    );
    assert_eq!(
        text(
            &store.get(updated).expect("get the updated record"),
            "notes"
        ),
        Some(notes(n).as_str())
    );
}

#[test]
fn sigkill_mid_write_loses_no_returned_write_and_file_stays_sound() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("phone.yibiao");
    // Vary where the kill lands: early and late in a run (small and large documents,
    // before and after compactions), right on the reported line or a little later.
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .subsec_micros(),
    );
    // The writer takes a few ms per write (mostly the document work and the fsync), so
    // delays spread over 0..5 ms put the kill at different points inside the next write.
    let plan = [
        Kill {
            after_lines: 50,
            delay: Duration::ZERO,
        },
        Kill {
            after_lines: 400,
            delay: Duration::from_micros(jitter % 5000),
        },
        Kill {
            after_lines: 137,
            delay: Duration::ZERO,
        },
        Kill {
            after_lines: 263,
            delay: Duration::from_micros((jitter + 1700) % 5000),
        },
        Kill {
            after_lines: 71,
            delay: Duration::from_micros(200),
        },
        Kill {
            after_lines: 190,
            delay: Duration::from_micros((jitter + 3400) % 5000),
        },
        Kill {
            after_lines: 333,
            delay: Duration::from_micros(1000 + jitter % 1000),
        },
        Kill {
            after_lines: 120,
            delay: Duration::from_micros((jitter * 7) % 5000),
        },
        Kill {
            after_lines: 55,
            delay: Duration::from_micros(jitter % 300),
        },
        Kill {
            after_lines: 222,
            delay: Duration::from_micros((jitter * 13) % 5000),
        },
    ];

    let mut model = BTreeMap::new();
    let mut in_flight_durable = 0;
    for (round, kill) in (0u64..).zip(&plan) {
        let out = run_writer(&path, round * ROUND_SPAN, kill);
        let store = open(&path);
        let found = check_round(&store, &mut model, round, &out);
        drop(store);
        in_flight_durable += usize::from(found);
        eprintln!(
            "round {round}: killed after {} reported writes (+{:?}), in-flight write on disk: {found}, \
             cut line: {}, records: {}",
            out.reports.len(),
            kill.delay,
            out.partial_line,
            model.len()
        );
        write_after_round(&path, &mut model, round);
    }
    eprintln!(
        "{} rounds, in-flight write durable in {in_flight_durable}, {:?}",
        plan.len(),
        started.elapsed()
    );
}
