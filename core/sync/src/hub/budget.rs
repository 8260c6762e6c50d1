//! Budgets at merge: how much one push may ask of the hub, and how large a record may grow.
//!
//! Automerge will faithfully apply a 521-byte change that flips one boolean four million
//! times, and a compressed 164 KB change that becomes a 75 MB document on the wire. Both
//! are legal automerge and both stop a village: the first holds the hub's write lock for
//! seconds, the second can never be sent to a phone again (a phone refuses any message
//! over [`MAX_DECODED_BYTES`](crate::protocol::MAX_DECODED_BYTES)). So the hub bounds what
//! it merges, far below what a phone accepts, and refuses a document over budget with a
//! per-document [`Refusal`](crate::protocol::Refusal) (nothing of it stored; the rest of
//! the page stands).
//!
//! The checks run in two places:
//! - [`check_pushed_bytes`], on the raw pushed bytes **before** the merge and outside the
//!   write lock: each change chunk is parsed on its own (automerge counts its operations
//!   while parsing, without applying them) and refused if over budget. A whole document
//!   (first push) is loaded into a scratch document there too, and each of its changes'
//!   operations counted from their metadata, so the merge under the lock never sees it.
//! - [`check_new_changes`], on the changes new to the hub after the merge (cheap counts
//!   first, then value sizes), and [`check_record_size`] on the merged record as it would
//!   be sent.
//!
//! No new [`RefusalCode`] (a phone decoding an unknown enum variant with postcard fails
//! the whole response): counts use `Malformed` (an honest phone never makes them), sizes
//! `InvalidValue` (the cadre can shorten a value), each with a message saying which budget.

use automerge::{Change, ScalarValue, legacy};

use crate::check::Refused;
use crate::protocol::RefusalCode;

/// Bounds on what the hub merges. Defaults are far below what a phone accepts; each
/// says why it is what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budgets {
    /// Operations in one change. A form filled in one go writes one operation per field
    /// (a few dozen; the creation a dozen more); 1,000 is ten times the largest entity
    /// type, and caps what one change costs to decode, check and store.
    pub max_ops_per_change: usize,
    /// Changes new to the hub in one pushed document. Each edit on a phone is one change;
    /// 1,000 edits of one record between two syncs is a lot of offline work, and with
    /// `max_ops_per_change` it caps one document's merge at a million operations.
    pub max_changes_per_doc: usize,
    /// Bytes of one field value (text, or the compact JSON of a compound value). 16 KiB
    /// is about 5,000 Chinese characters: a long note, never a file (attachments are
    /// references).
    pub max_value_bytes: usize,
    /// Bytes of a whole record as it is sent (`Record::save_for_wire`, history included).
    /// 1 MiB: hundreds of times a real household record (a few KiB), an eighth of the
    /// largest response page (8 MiB) and a 64th of what a phone decodes (64 MiB), so a
    /// page that starts with the largest record still fits; at village speeds (tens of
    /// kbit/s) it is already minutes of a phone's sync.
    pub max_record_bytes: usize,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            max_ops_per_change: 1_000,
            max_changes_per_doc: 1_000,
            max_value_bytes: 16 * 1024,
            max_record_bytes: 1024 * 1024,
        }
    }
}

const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DOCUMENT_CHUNK: u8 = 0;

/// Checks pushed bytes before anything is merged: the changes are counted, and each
/// change chunk is parsed alone and its operations counted; a document chunk is loaded
/// apart and the operations of each change it holds counted. Values and the number of
/// new changes are checked after the merge, by [`check_new_changes`] (only then is it
/// known which changes are new, and only merged changes are decoded).
/// Bytes that do not parse are left to the strict parse of the merge, which refuses
/// them with its own reason.
pub(crate) fn check_pushed_bytes(budgets: &Budgets, bytes: &[u8]) -> Result<(), Refused> {
    let mut rest = bytes;
    let mut changes = 0usize;
    while !rest.is_empty() {
        let Some((kind, len)) = chunk_header(rest) else {
            return Ok(());
        };
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        if kind == DOCUMENT_CHUNK {
            check_document_ops(budgets, chunk)?;
            continue;
        }
        changes += 1;
        if changes > budgets.max_changes_per_doc {
            return Err(too_many_changes(budgets));
        }
        let Ok(change) = Change::try_from(chunk) else {
            return Ok(());
        };
        // Only its metadata: a lone change may name actors it does not list, which
        // `Change::decode` unwraps (found by fuzzing); its values are checked after the
        // merge, which refuses such a change, by `check_new_changes`.
        check_op_count(budgets, &change)?;
    }
    Ok(())
}

/// Refuses a whole document holding a change over the operation budget.
fn check_document_ops(budgets: &Budgets, chunk: &[u8]) -> Result<(), Refused> {
    let options = automerge::LoadOptions::new()
        .on_partial_load(automerge::OnPartialLoad::Error)
        .verification_mode(automerge::VerificationMode::DontCheck);
    let Ok(doc) = automerge::Automerge::load_with_options(chunk, options) else {
        return Ok(());
    };
    for meta in doc.get_changes_meta(&[]) {
        let ops = (meta.max_op + 1).saturating_sub(meta.start_op);
        if ops > budgets.max_ops_per_change as u64 {
            return Err(too_many_ops(budgets, &meta.hash, ops));
        }
    }
    Ok(())
}

/// The type and total length (header included) of the chunk at the start of `bytes`.
fn chunk_header(bytes: &[u8]) -> Option<(u8, usize)> {
    if bytes.get(..4)? != CHUNK_MAGIC {
        return None;
    }
    let kind = *bytes.get(8)?;
    let mut len: u64 = 0;
    let mut at = 9;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(at)?;
        at += 1;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            let total = at.checked_add(usize::try_from(len).ok()?)?;
            return (total <= bytes.len()).then_some((kind, total));
        }
    }
    None
}

/// Checks the changes new to the hub after a merge: their number, then each change's
/// operations and values.
pub(crate) fn check_new_changes(budgets: &Budgets, changes: &[Change]) -> Result<(), Refused> {
    if changes.len() > budgets.max_changes_per_doc {
        return Err(too_many_changes(budgets));
    }
    // The counts are metadata: refuse every oversized change before decoding any.
    for change in changes {
        check_op_count(budgets, change)?;
    }
    for change in changes {
        check_values(budgets, change)?;
    }
    Ok(())
}

/// Checks the size of a merged record as it would be sent to a phone.
pub(crate) fn check_record_size(budgets: &Budgets, wire_len: usize) -> Result<(), Refused> {
    if wire_len > budgets.max_record_bytes {
        return Err((
            RefusalCode::InvalidValue,
            format!(
                "the record would grow to {} KiB, more than the {} KiB a record may hold; shorten long notes",
                wire_len / 1024,
                budgets.max_record_bytes / 1024
            ),
        ).into());
    }
    Ok(())
}

fn check_op_count(budgets: &Budgets, change: &Change) -> Result<(), Refused> {
    if change.len() > budgets.max_ops_per_change {
        return Err(too_many_ops(budgets, &change.hash(), change.len() as u64));
    }
    Ok(())
}

fn too_many_ops(budgets: &Budgets, hash: &automerge::ChangeHash, ops: u64) -> Refused {
    (
        RefusalCode::Malformed,
        format!(
            "change {hash} holds {ops} operations, more than the {} one change may hold",
            budgets.max_ops_per_change
        ),
    )
        .into()
}

fn check_values(budgets: &Budgets, change: &Change) -> Result<(), Refused> {
    for op in change.decode().operations {
        let size = match &op.action {
            legacy::OpType::Put(ScalarValue::Str(s)) => s.len(),
            legacy::OpType::Put(ScalarValue::Bytes(b)) => b.len(),
            legacy::OpType::Put(ScalarValue::Unknown { bytes, .. }) => bytes.len(),
            _ => 0,
        };
        if size > budgets.max_value_bytes {
            let key = match &op.key {
                legacy::Key::Map(k) => format!("`{k}`"),
                legacy::Key::Seq(_) => "a list element".to_owned(),
            };
            return Err((
                RefusalCode::InvalidValue,
                format!(
                    "the value of {key} is {} KiB, more than the {} KiB one value may hold",
                    size.div_ceil(1024),
                    budgets.max_value_bytes / 1024
                ),
            )
                .into());
        }
    }
    Ok(())
}

fn too_many_changes(budgets: &Budgets) -> Refused {
    (
        RefusalCode::Malformed,
        format!(
            "more than {} new changes in one document; sync more often",
            budgets.max_changes_per_doc
        ),
    )
        .into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ROOT};

    use super::*;

    #[test]
    fn chunk_headers_split_concatenated_changes() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "a", 1).unwrap();
        doc.commit();
        doc.put(ROOT, "b", "x".repeat(400)).unwrap();
        doc.commit();
        let bytes = doc.save_after(&[]);
        let (_, first) = chunk_header(&bytes).unwrap();
        let (_, second) = chunk_header(&bytes[first..]).unwrap();
        assert_eq!(first + second, bytes.len());
        assert!(check_pushed_bytes(&Budgets::default(), &bytes).is_ok());
    }

    #[test]
    fn a_change_over_the_op_budget_is_refused_before_any_merge() {
        let mut doc = AutoCommit::new();
        for i in 0..50 {
            doc.put(ROOT, "flag", i % 2 == 0).unwrap();
        }
        doc.commit();
        let bytes = doc.save_after(&[]);
        let budgets = Budgets {
            max_ops_per_change: 10,
            ..Budgets::default()
        };
        let Refused { code, message, .. } = check_pushed_bytes(&budgets, &bytes).unwrap_err();
        assert_eq!(code, RefusalCode::Malformed);
        assert!(message.contains("50 operations"), "{message}");
    }

    #[test]
    fn a_whole_document_holding_a_change_over_the_op_budget_is_refused_before_any_merge() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "a", 1).unwrap();
        doc.commit();
        for i in 0..50 {
            doc.put(ROOT, "flag", i % 2 == 0).unwrap();
        }
        doc.commit();
        let budgets = Budgets {
            max_ops_per_change: 10,
            ..Budgets::default()
        };
        let Refused { code, message, .. } = check_pushed_bytes(&budgets, &doc.save()).unwrap_err();
        assert_eq!(code, RefusalCode::Malformed);
        assert!(message.contains("50 operations"), "{message}");
        assert!(check_pushed_bytes(&Budgets::default(), &doc.save()).is_ok());
    }

    #[test]
    fn a_value_over_the_value_budget_is_refused() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "notes", "x".repeat(17 * 1024)).unwrap();
        doc.commit();
        let changes = doc.document().get_changes(&[]);
        let Refused { code, message, .. } =
            check_new_changes(&Budgets::default(), &changes).unwrap_err();
        assert_eq!(code, RefusalCode::InvalidValue);
        assert!(message.contains("`notes`"), "{message}");
    }
}
