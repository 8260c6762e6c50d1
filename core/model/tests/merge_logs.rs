//! Merging the changes another replica made after heads held here is the normal case of
//! every sync; it must not log at ERROR (the server's log once held one such line per
//! delta). Its own test binary: the subscriber is process-wide, so no other test's
//! deliberate refusals reach it.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::{Arc, Mutex};

use automerge::ActorId;
use yibiao_model::ids::{Author, CadreId, DeviceId, RecordId};
use yibiao_model::record::{FieldEdit, Record, Scope};
use yibiao_model::value::Value;

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn merging_a_delta_whose_base_is_held_elsewhere_logs_no_error() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let author = Author {
        cadre: CadreId::new("amu").unwrap(),
        device: DeviceId::new("dev-a").unwrap(),
    };
    let scope = Scope {
        township: "baru".into(),
        village: Some("tujiang".into()),
    };
    let mut phone = Record::create(
        RecordId::new(),
        ActorId::random(),
        "household",
        &scope,
        &[],
        &author,
        1,
    )
    .unwrap();
    let mut server = Record::load_untrusted(phone.id(), ActorId::random(), &phone.save()).unwrap();
    let before = phone.heads();
    let edit = FieldEdit::Set("household_size".into(), Value::Integer(5));
    phone.apply_edits(&[edit], &author, 2).unwrap();
    let delta = phone.save_after(&before);
    assert_eq!(server.merge_bytes(&delta).unwrap(), 1);
    assert_eq!(server.heads(), phone.heads());

    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("ERROR"), "{text}");
}
