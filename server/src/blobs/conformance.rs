//! The suite every [`BlobStore`] passes: resumable appends, completion by hash, refusal
//! of a mismatch, idempotence on a complete blob, per-uploader partial uploads, listing
//! and removal. Call [`run_all`] with an empty store.
#![allow(clippy::unwrap_used, clippy::panic, reason = "a test suite")]

use super::{BlobError, BlobHash, BlobStore, Held};

/// Runs every check against `store`, which must start empty.
pub fn run_all(store: &dyn BlobStore) {
    chunks_resume_at_the_held_offset_and_complete_by_hash(store);
    a_mismatch_is_refused_and_the_upload_starts_again(store);
    partial_uploads_are_per_uploader(store);
    entries_are_listed_and_removed(store);
}

fn blob(n: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31) ^ n).collect()
}

fn chunks_resume_at_the_held_offset_and_complete_by_hash(store: &dyn BlobStore) {
    let bytes = blob(1, 100);
    let hash = BlobHash::of(&bytes);
    let size = bytes.len() as u64;
    assert_eq!(store.held(&hash, "d1").unwrap(), Held::Partial { held: 0 });
    assert_eq!(
        store.append(&hash, "d1", 0, size, &bytes[..40]).unwrap(),
        Held::Partial { held: 40 }
    );
    assert_eq!(store.held(&hash, "d1").unwrap(), Held::Partial { held: 40 });
    // A chunk sent again after a lost acknowledgement is told where to continue.
    match store.append(&hash, "d1", 0, size, &bytes[..40]) {
        Err(BlobError::Offset {
            offset: 0,
            held: 40,
        }) => {}
        other => panic!("a replayed chunk must be refused with the held offset: {other:?}"),
    }
    match store.append(&hash, "d1", 40, 50, &bytes[40..]) {
        Err(BlobError::Overrun { .. }) => {}
        other => panic!("a chunk past the declared size must be refused: {other:?}"),
    }
    assert_eq!(
        store.read(&hash).unwrap(),
        None,
        "not readable before complete"
    );
    assert_eq!(
        store.append(&hash, "d1", 40, size, &bytes[40..]).unwrap(),
        Held::Complete { size }
    );
    assert_eq!(store.read(&hash).unwrap().unwrap(), bytes);
    // Complete for everyone, and appending again changes nothing.
    assert_eq!(store.held(&hash, "d2").unwrap(), Held::Complete { size });
    assert_eq!(
        store.append(&hash, "d2", 0, size, b"junk").unwrap(),
        Held::Complete { size }
    );
    assert_eq!(store.read(&hash).unwrap().unwrap(), bytes);
    assert_eq!(store.partials_of("d1").unwrap(), 0);
}

fn a_mismatch_is_refused_and_the_upload_starts_again(store: &dyn BlobStore) {
    let bytes = blob(2, 64);
    let hash = BlobHash::of(&bytes);
    let mut damaged = bytes.clone();
    damaged[10] ^= 0xFF;
    store.append(&hash, "d1", 0, 64, &damaged[..32]).unwrap();
    match store.append(&hash, "d1", 32, 64, &damaged[32..]) {
        Err(BlobError::HashMismatch(h)) => assert_eq!(h, hash),
        other => panic!("damaged bytes must be refused: {other:?}"),
    }
    assert_eq!(store.read(&hash).unwrap(), None);
    assert_eq!(store.held(&hash, "d1").unwrap(), Held::Partial { held: 0 });
    store.append(&hash, "d1", 0, 64, &bytes).unwrap();
    assert_eq!(store.read(&hash).unwrap().unwrap(), bytes);
}

fn partial_uploads_are_per_uploader(store: &dyn BlobStore) {
    let bytes = blob(3, 50);
    let hash = BlobHash::of(&bytes);
    store.append(&hash, "d1", 0, 50, &bytes[..10]).unwrap();
    store.append(&hash, "d2", 0, 50, &bytes[..20]).unwrap();
    assert_eq!(store.held(&hash, "d1").unwrap(), Held::Partial { held: 10 });
    assert_eq!(store.held(&hash, "d2").unwrap(), Held::Partial { held: 20 });
    assert_eq!(store.partials_of("d1").unwrap(), 1);
    assert_eq!(
        store.append(&hash, "d2", 20, 50, &bytes[20..]).unwrap(),
        Held::Complete { size: 50 }
    );
    assert_eq!(
        store.held(&hash, "d1").unwrap(),
        Held::Complete { size: 50 }
    );
}

fn entries_are_listed_and_removed(store: &dyn BlobStore) {
    let list = store.list().unwrap();
    let complete: Vec<_> = list.iter().filter(|e| e.uploader.is_none()).collect();
    assert_eq!(complete.len(), 3, "{list:?}");
    // d1's partial of the third blob stays listed until removed.
    let partial = list
        .iter()
        .find(|e| e.uploader.as_deref() == Some("d1"))
        .unwrap();
    assert_eq!(partial.bytes, 10);
    assert!(store.remove(partial).unwrap());
    assert!(!store.remove(partial).unwrap());
    assert_eq!(store.partials_of("d1").unwrap(), 0);
    let first = complete[0].clone();
    assert!(store.remove(&first).unwrap());
    assert_eq!(store.read(&first.hash).unwrap(), None);
    assert_eq!(store.list().unwrap().len(), 2);
}
