//! The conformance suite every [`HubStorage`] passes (feature `testing`). Call each
//! check with a fresh, empty storage; it panics with a message naming the broken property.
#![allow(clippy::unwrap_used, clippy::panic, reason = "a test suite")]

use std::collections::HashMap;

use automerge::{ActorId, ChangeHash};
use yibiao_model::ids::RecordId;

use super::{DeviceScope, DocWrite, HubBatch, HubStorage, SetAside};
fn write(id: RecordId, village: Option<&str>, chunk: &[u8], snapshot: bool) -> DocWrite {
    DocWrite {
        id,
        entity: "household".into(),
        village: village.map(str::to_owned),
        chunk: chunk.to_vec(),
        snapshot,
        heads: vec![ChangeHash([chunk.first().copied().unwrap_or(0); 32])],
        values_json: "{}".into(),
        conflicts_json: "{}".into(),
        deleted: false,
        typed: Vec::new(),
    }
}

fn batch(device: &str, docs: Vec<DocWrite>) -> HubBatch {
    HubBatch {
        device: device.into(),
        docs,
        ..HubBatch::default()
    }
}

/// Runs every check, each on a storage from `make`.
pub fn run_all<S: HubStorage>(make: impl Fn() -> S) {
    chunks_append_and_snapshots_replace(&make());
    feed_moves_changed_records_to_the_end_and_respects_scope(&make());
    device_heads_come_from_pushes_and_confirmed_sends(&make());
    a_send_of_a_record_that_moved_is_not_confirmed(&make());
    an_actor_stays_bound_to_the_first_phone_that_used_it(&make());
    a_record_set_aside_is_listed_with_its_village_and_first_reason(&make());
}

/// A stored record set aside is listed, durably, with its stored village and the first
/// reason given; an unknown id cannot be set aside.
pub fn a_record_set_aside_is_listed_with_its_village_and_first_reason<S: HubStorage>(s: &S) {
    let (a, b) = (RecordId::new(), RecordId::new());
    assert!(s.quarantined().unwrap().is_empty());
    assert_eq!(
        s.quarantine(a, "does not load", 5).unwrap(),
        None,
        "an unknown record was set aside"
    );
    s.commit(&batch(
        "d",
        vec![
            write(a, Some("tujiang"), b"a", true),
            write(b, None, b"b", true),
        ],
    ))
    .unwrap();
    let first = s.quarantine(a, "does not load", 5).unwrap().unwrap();
    assert_eq!(first.village.as_deref(), Some("tujiang"));
    let again = s.quarantine(a, "too large", 9).unwrap().unwrap();
    assert_eq!(again, first, "a second reason replaced the first");
    assert_eq!(
        s.quarantine(b, "too large", 7).unwrap().unwrap().village,
        None
    );
    let mut listed = s.quarantined().unwrap();
    listed.sort_by_key(|q| q.id);
    let mut want = vec![
        SetAside {
            id: a,
            village: Some("tujiang".into()),
            reason: "does not load".into(),
            since_ms: 5,
        },
        SetAside {
            id: b,
            village: None,
            reason: "too large".into(),
            since_ms: 7,
        },
    ];
    want.sort_by_key(|q| q.id);
    assert_eq!(listed, want);
}

/// An actor is bound once, to the phone of the batch that first used it.
pub fn an_actor_stays_bound_to_the_first_phone_that_used_it<S: HubStorage>(s: &S) {
    let (a, b) = (ActorId::from(vec![1u8; 16]), ActorId::from(vec![2u8; 16]));
    assert!(
        s.actor_devices(std::slice::from_ref(&a))
            .unwrap()
            .is_empty()
    );
    s.commit(&HubBatch {
        device: "key-1".into(),
        actors: vec![(a.clone(), "phone-1".into())],
        ..HubBatch::default()
    })
    .unwrap();
    s.commit(&HubBatch {
        device: "key-2".into(),
        actors: vec![(a.clone(), "phone-2".into()), (b.clone(), "phone-2".into())],
        ..HubBatch::default()
    })
    .unwrap();
    assert_eq!(
        s.actor_devices(&[a.clone(), b.clone()]).unwrap(),
        HashMap::from([(a, "phone-1".to_owned()), (b, "phone-2".to_owned())]),
        "the first binding of an actor stays"
    );
}

/// Chunks append in order; a snapshot replaces them all.
pub fn chunks_append_and_snapshots_replace<S: HubStorage>(s: &S) {
    let id = RecordId::new();
    assert_eq!(s.load(id).unwrap(), None, "unknown record loads as None");
    s.commit(&batch("d", vec![write(id, Some("a"), &[1], true)]))
        .unwrap();
    s.commit(&batch("d", vec![write(id, Some("a"), &[2], false)]))
        .unwrap();
    assert_eq!(
        s.load(id).unwrap(),
        Some(vec![vec![1], vec![2]]),
        "chunks append in order"
    );
    s.commit(&batch("d", vec![write(id, Some("a"), &[3], true)]))
        .unwrap();
    assert_eq!(
        s.load(id).unwrap(),
        Some(vec![vec![3]]),
        "a snapshot replaces every chunk"
    );
    assert_eq!(s.record_count().unwrap(), 1);
}

/// A changed record gets a new, higher sequence; scopes filter by village.
pub fn feed_moves_changed_records_to_the_end_and_respects_scope<S: HubStorage>(s: &S) {
    let (a, b, t) = (RecordId::new(), RecordId::new(), RecordId::new());
    s.commit(&batch(
        "d",
        vec![
            write(a, Some("x"), &[1], true),
            write(b, Some("y"), &[1], true),
        ],
    ))
    .unwrap();
    s.commit(&batch("d", vec![write(t, None, &[1], true)]))
        .unwrap();
    let all = s.feed_after(&DeviceScope::Township, 0, 10).unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), vec![a, b, t]);
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "sequences increase"
    );
    s.commit(&batch("d", vec![write(a, Some("x"), &[2], false)]))
        .unwrap();
    let after = s
        .feed_after(&DeviceScope::Township, all[2].seq, 10)
        .unwrap();
    assert_eq!(
        after.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![a],
        "a changed record moves to the end"
    );
    let x = s
        .feed_after(&DeviceScope::Village("x".into()), 0, 10)
        .unwrap();
    assert_eq!(
        x.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![a],
        "a village sees only its records"
    );
    let limited = s.feed_after(&DeviceScope::Township, 0, 2).unwrap();
    assert_eq!(limited.len(), 2, "limit is respected");
}

/// A send whose record moved on in the feed is never confirmed: the page that carried
/// it may have been lost while a later page passed its old position.
pub fn a_send_of_a_record_that_moved_is_not_confirmed<S: HubStorage>(s: &S) {
    let r = RecordId::new();
    s.commit(&batch("d", vec![write(r, Some("x"), &[1], true)]))
        .unwrap();
    let sent_at = s.feed_after(&DeviceScope::Township, 0, 10).unwrap()[0].seq;
    s.note_sent("phone", &[(r, vec![ChangeHash([9; 32])], sent_at)])
        .unwrap();
    // Another device changes the record: it moves to a later position.
    s.commit(&batch("other", vec![write(r, Some("x"), &[2], false)]))
        .unwrap();
    s.commit(&HubBatch {
        device: "phone".into(),
        confirm_upto: sent_at,
        ..HubBatch::default()
    })
    .unwrap();
    assert!(
        s.device_heads("phone", &[r]).unwrap().is_empty(),
        "a send of a record that moved is not confirmed"
    );
}

/// Pushed heads are known at once; sent heads only once a cursor passes them.
pub fn device_heads_come_from_pushes_and_confirmed_sends<S: HubStorage>(s: &S) {
    let (a, b) = (RecordId::new(), RecordId::new());
    let h1 = vec![ChangeHash([1; 32])];
    let h2 = vec![ChangeHash([2; 32])];
    s.commit(&HubBatch {
        device: "d1".into(),
        device_heads: vec![(a, h1.clone())],
        ..HubBatch::default()
    })
    .unwrap();
    assert_eq!(
        s.device_heads("d1", &[a, b]).unwrap(),
        HashMap::from([(a, h1.clone())])
    );
    assert!(
        s.device_heads("d2", &[a]).unwrap().is_empty(),
        "heads are per device"
    );
    s.commit(&batch("d0", vec![write(b, None, &[2], true)]))
        .unwrap();
    let at = s.feed_after(&DeviceScope::Township, 0, 10).unwrap()[0].seq;
    s.note_sent("d1", &[(b, h2.clone(), at)]).unwrap();
    s.commit(&HubBatch {
        device: "d1".into(),
        confirm_upto: at - 1,
        ..HubBatch::default()
    })
    .unwrap();
    assert!(
        !s.device_heads("d1", &[b]).unwrap().contains_key(&b),
        "unconfirmed sends are not known"
    );
    s.commit(&HubBatch {
        device: "d1".into(),
        confirm_upto: at,
        ..HubBatch::default()
    })
    .unwrap();
    assert_eq!(
        s.device_heads("d1", &[b]).unwrap().get(&b),
        Some(&h2),
        "a cursor past the send confirms it"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_storage_passes_the_conformance_suite() {
        super::run_all(crate::hub::MemoryHubStorage::default);
    }
}
