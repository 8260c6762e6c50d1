//! What the server checks in every change a device pushes, before anything is stored.
//!
//! Automerge will merge anything; the hub must not. Each *new* change is decoded and its
//! operations checked against the record layout and the schema: values only go into the
//! `fields` map, each value fits its dictionary field, the top-level keys are written once
//! by the creating change, nothing nested appears, and every change names its author:
//! the device that sends it (a phone only ever pushes changes the server lacks, which are
//! its own).

use automerge::{Change, ObjId, ReadDoc, legacy};

use crate::protocol::RefusalCode;
use yibiao_model::ids::Author;
use yibiao_model::record::Record;
use yibiao_model::schema::Schema;

/// A refused document: code and message for the device.
pub(crate) type Refused = (RefusalCode, String);

const CREATE_KEYS: &[&str] = &["yb", "entity", "township", "village", "created", "fields"];

/// Checks `changes` (new to the server) that were merged into `record`.
pub(crate) fn check_changes(
    schema: &Schema,
    record: &Record,
    changes: &[Change],
    is_new: bool,
    device: &str,
) -> Result<(), Refused> {
    let not_a_record = |m: String| (RefusalCode::NotARecord, m);
    let entity = record.entity();
    let Some(entity_def) = schema.entity(&entity) else {
        return Err(not_a_record(format!("unknown entity type `{entity}`")));
    };
    let fields_id = match record.doc().get(automerge::ROOT, "fields") {
        Ok(Some((_, ObjId::Id(counter, actor, _)))) => (counter, actor),
        _ => return Err(not_a_record("record has no fields map".into())),
    };
    let mut creations = 0;
    for change in changes {
        let Some(author) = change
            .message()
            .and_then(|m| serde_json::from_str::<Author>(m).ok())
        else {
            return Err(not_a_record(format!(
                "change {} carries no cadre and device",
                change.hash()
            )));
        };
        // Changes new to the server can only come from the phone that made them.
        if author.device.as_str() != device {
            return Err(not_a_record(format!(
                "change {} was made on device `{}`, but this is device `{device}`",
                change.hash(),
                author.device
            )));
        }
        let ops = change.decode().operations;
        let creates = ops
            .iter()
            .any(|op| matches!((&op.obj, &op.key), (legacy::ObjectId::Root, legacy::Key::Map(k)) if k == "entity"));
        if creates {
            creations += 1;
            if !is_new || creations > 1 {
                return Err(not_a_record(
                    "the record already exists; a second creation is refused".into(),
                ));
            }
        }
        for op in &ops {
            let legacy::Key::Map(key) = &op.key else {
                return Err(not_a_record("records hold no lists".into()));
            };
            match &op.obj {
                legacy::ObjectId::Root => {
                    let ok = match (key.as_str(), &op.action) {
                        ("deleted", legacy::OpType::Put(automerge::ScalarValue::Boolean(_))) => {
                            true
                        }
                        ("fields", legacy::OpType::Make(automerge::ObjType::Map)) => creates,
                        (k, legacy::OpType::Put(_)) if CREATE_KEYS.contains(&k) => creates,
                        _ => false,
                    };
                    if !ok {
                        return Err(not_a_record(format!(
                            "a change may not write `{key}` at the top of a record"
                        )));
                    }
                }
                legacy::ObjectId::Id(legacy::OpId(counter, actor))
                    if (*counter, actor) == (fields_id.0, &fields_id.1) =>
                {
                    match &op.action {
                        legacy::OpType::Put(scalar) => {
                            let value = match schema.field(key) {
                                Some(def)
                                    if entity_def.fields.iter().any(|f| f == key.as_str()) =>
                                {
                                    def.ty.from_scalar(scalar).ok_or_else(|| {
                                        (
                                            RefusalCode::InvalidValue,
                                            format!("field `{key}` expects {}", def.ty.expects()),
                                        )
                                    })?
                                }
                                _ => {
                                    // Let the dictionary phrase the refusal.
                                    let probe = yibiao_model::value::Value::Text(String::new());
                                    let err = schema.validate(&entity, key, &probe).err();
                                    return Err((
                                        RefusalCode::InvalidValue,
                                        err.map(|e| e.to_string()).unwrap_or_else(|| {
                                            format!("field `{key}` is not allowed")
                                        }),
                                    ));
                                }
                            };
                            schema
                                .validate(&entity, key, &value)
                                .map_err(|e| (RefusalCode::InvalidValue, e.to_string()))?;
                        }
                        legacy::OpType::Delete => {}
                        _ => {
                            return Err(not_a_record(format!(
                                "field `{key}` may only be set or unset"
                            )));
                        }
                    }
                }
                _ => return Err(not_a_record("records hold no nested objects".into())),
            }
        }
    }
    if is_new && creations == 0 {
        return Err(not_a_record(
            "a new record must start with its creation".into(),
        ));
    }
    Ok(())
}

/// Field values typed in `changes`: one `(change time ms, field)` per value put into the
/// fields map (a resolve counts too: someone chose a value). The burden report's input.
pub(crate) fn typed_values(record: &Record, changes: &[Change]) -> Vec<(i64, String)> {
    let Ok(Some((_, ObjId::Id(counter, actor, _)))) = record.doc().get(automerge::ROOT, "fields")
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for change in changes {
        for op in change.decode().operations {
            let in_fields = matches!(&op.obj,
                legacy::ObjectId::Id(legacy::OpId(c, a)) if (*c, a) == (counter, &actor));
            if let (true, legacy::Key::Map(key), legacy::OpType::Put(_)) =
                (in_fields, &op.key, &op.action)
            {
                out.push((change.timestamp(), key.to_string()));
            }
        }
    }
    out
}
