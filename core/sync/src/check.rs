//! What the server checks in every change a device pushes, before anything is stored.
//!
//! Automerge will merge anything; the hub must not. Each *new* change is decoded and its
//! operations checked against the record layout and the schema: values only go into the
//! `fields` map, each value fits its dictionary field, the top-level keys are written once
//! by the creating change, nothing nested appears.
//!
//! Identity comes first ([`check_identity`]): a phone only ever pushes changes the server
//! lacks, which are its own, so every new change must name as its author the phone the
//! token is bound to and a cadre registered on that phone; a task receipt must name such
//! a cadre too; and its automerge actor must not be another phone's ([`actors_to_bind`]).

use std::collections::HashMap;

use automerge::{ActorId, Change, ObjId, ReadDoc, ScalarValue, legacy};

use crate::identity::Identity;
use crate::protocol::RefusalCode;
use yibiao_model::ids::Author;
use yibiao_model::messages::Message;
use yibiao_model::record::Record;
use yibiao_model::schema::{EntityDef, Schema, ValidationError, ValidationReason};
use yibiao_model::task::Receipt;
use yibiao_model::value::Value;

/// A refused document: code, English message and, for a value the dictionary refused,
/// the reason as data (the phone words it in its cadre's language).
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) code: RefusalCode,
    pub(crate) message: String,
    pub(crate) reason: Option<Message>,
}

impl From<(RefusalCode, String)> for Refused {
    fn from((code, message): (RefusalCode, String)) -> Self {
        Self {
            code,
            message,
            reason: None,
        }
    }
}

impl From<ValidationError> for Refused {
    fn from(e: ValidationError) -> Self {
        Self {
            code: RefusalCode::InvalidValue,
            message: e.to_string(),
            reason: Some(e.message()),
        }
    }
}

impl Refused {
    /// The reason sent on the wire: the value's reason, or the refusal code with the
    /// English message as `detail`.
    pub(crate) fn reason(&self) -> Message {
        self.reason
            .clone()
            .unwrap_or_else(|| Message::new(self.code.as_str()).with("detail", &self.message))
    }
}

const CREATE_KEYS: &[&str] = &["yb", "entity", "township", "village", "created", "fields"];

/// Checks `changes` (new to the server) that were merged into `record`.
pub(crate) fn check_changes(
    schema: &Schema,
    record: &Record,
    changes: &[Change],
    is_new: bool,
) -> Result<(), Refused> {
    let layout = Layout::of(schema, record)?;
    let mut creations = 0;
    for change in changes {
        let ops = change.decode().operations;
        let creates = is_creation(&ops);
        if creates {
            creations += 1;
            if !is_new || creations > 1 {
                return Err(not_a_record(
                    "the record already exists; a second creation is refused".into(),
                ));
            }
        }
        for op in &ops {
            layout.check_op(op, creates)?;
        }
    }
    if is_new && creations == 0 {
        return Err(not_a_record(
            "a new record must start with its creation".into(),
        ));
    }
    Ok(())
}

/// A refusal for a change that breaks the record layout.
fn not_a_record(message: String) -> Refused {
    (RefusalCode::NotARecord, message).into()
}

/// Refuses a change that does not name its author, was made on another phone than the
/// one the token is bound to, or names a cadre not registered on that phone.
pub(crate) fn check_identity(changes: &[Change], identity: &Identity) -> Result<(), Refused> {
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
        if author.device != identity.device {
            return Err(not_a_record(format!(
                "change {} was made on device `{}`, but this is device `{}`",
                change.hash(),
                author.device,
                identity.device
            )));
        }
        if !identity.allows_cadre(author.cadre.as_str()) {
            return Err(not_a_record(format!(
                "change {} names cadre `{}`, who is not registered on this phone",
                change.hash(),
                author.cadre
            )));
        }
    }
    Ok(())
}

/// Refuses a task receipt naming a cadre not registered on the phone that writes it
/// (a township phone cannot write "done by amu"). The task rules
/// ([`yibiao_model::task::check_task_changes`]) check the rest of a receipt.
pub(crate) fn check_receipt_cadres(changes: &[Change], identity: &Identity) -> Result<(), Refused> {
    for change in changes {
        for op in change.decode().operations {
            let legacy::OpType::Put(ScalarValue::Str(json)) = &op.action else {
                continue;
            };
            let Ok(receipt) = serde_json::from_str::<Receipt>(json) else {
                continue;
            };
            if let Some(cadre) = receipt.cadre.as_deref()
                && !identity.allows_cadre(cadre)
            {
                return Err((
                    RefusalCode::InvalidValue,
                    format!("a receipt names cadre `{cadre}`, who is not registered on this phone"),
                )
                    .into());
            }
        }
    }
    Ok(())
}

/// The actors of `changes` to bind to this phone: those bound to no phone yet. Refuses a
/// change by the hub's own actor or by an actor bound to another phone (`owners` holds
/// the binding of every actor already bound).
pub(crate) fn actors_to_bind(
    changes: &[Change],
    identity: &Identity,
    hub_actor: &ActorId,
    owners: &HashMap<ActorId, String>,
) -> Result<Vec<ActorId>, Refused> {
    let mut unbound = Vec::new();
    for change in changes {
        let actor = change.actor_id();
        let foreign = actor == hub_actor
            || owners
                .get(actor)
                .is_some_and(|d| d.as_str() != identity.device.as_str());
        if foreign {
            return Err(not_a_record(format!(
                "change {} was made by another device's automerge actor",
                change.hash()
            )));
        }
        if !owners.contains_key(actor) && !unbound.contains(actor) {
            unbound.push(actor.clone());
        }
    }
    Ok(unbound)
}

/// Whether a change's operations create the record (they write its `entity`).
fn is_creation(ops: &[legacy::Op]) -> bool {
    ops.iter().any(|op| {
        matches!((&op.obj, &op.key), (legacy::ObjectId::Root, legacy::Key::Map(k)) if k == "entity")
    })
}

/// Refuses a write to the top of a record other than a tombstone, unless the change
/// creates the record and writes one of its creation keys.
fn check_root_op(key: &str, action: &legacy::OpType, creates: bool) -> Result<(), Refused> {
    let ok = match (key, action) {
        ("deleted", legacy::OpType::Put(ScalarValue::Boolean(_))) => true,
        ("fields", legacy::OpType::Make(automerge::ObjType::Map)) => creates,
        (k, legacy::OpType::Put(_)) if CREATE_KEYS.contains(&k) => creates,
        _ => false,
    };
    if !ok {
        return Err(not_a_record(format!(
            "a change may not write `{key}` at the top of a record"
        )));
    }
    Ok(())
}

/// What one record's operations are checked against: its entity type and the id of
/// its `fields` map.
struct Layout<'a> {
    schema: &'a Schema,
    entity: String,
    entity_def: &'a EntityDef,
    fields_id: (u64, ActorId),
}

impl<'a> Layout<'a> {
    /// The layout of `record`; refused if its entity type is unknown or it has no
    /// fields map.
    fn of(schema: &'a Schema, record: &Record) -> Result<Self, Refused> {
        let entity = record.entity();
        let Some(entity_def) = schema.entity(&entity) else {
            return Err(not_a_record(format!("unknown entity type `{entity}`")));
        };
        let fields_id = match record.doc().get(automerge::ROOT, "fields") {
            Ok(Some((_, ObjId::Id(counter, actor, _)))) => (counter, actor),
            _ => return Err(not_a_record("record has no fields map".into())),
        };
        Ok(Self {
            schema,
            entity,
            entity_def,
            fields_id,
        })
    }

    /// Checks one operation: only map keys, only at the top or in the fields map.
    fn check_op(&self, op: &legacy::Op, creates: bool) -> Result<(), Refused> {
        let legacy::Key::Map(key) = &op.key else {
            return Err(not_a_record("records hold no lists".into()));
        };
        match &op.obj {
            legacy::ObjectId::Root => check_root_op(key, &op.action, creates),
            legacy::ObjectId::Id(legacy::OpId(counter, actor))
                if (*counter, actor) == (self.fields_id.0, &self.fields_id.1) =>
            {
                self.check_field_op(key, &op.action)
            }
            _ => Err(not_a_record("records hold no nested objects".into())),
        }
    }

    /// Checks an operation on the fields map: a valid value put, or a field unset.
    fn check_field_op(&self, key: &str, action: &legacy::OpType) -> Result<(), Refused> {
        match action {
            legacy::OpType::Put(scalar) => {
                let value = self.field_value(key, scalar)?;
                self.schema
                    .validate(&self.entity, key, &value)
                    .map_err(Refused::from)
            }
            legacy::OpType::Delete => Ok(()),
            _ => Err(not_a_record(format!(
                "field `{key}` may only be set or unset"
            ))),
        }
    }

    /// The value `scalar` stands for in field `key`; refused if the entity type does
    /// not hold the field or the scalar has the wrong type.
    fn field_value(&self, key: &str, scalar: &ScalarValue) -> Result<Value, Refused> {
        match self.schema.field(key) {
            Some(def) if self.entity_def.fields.iter().any(|f| f == key) => {
                def.ty.from_scalar(scalar).ok_or_else(|| {
                    Refused::from(ValidationError {
                        field: key.to_owned(),
                        labels: Some(Box::new(def.labels.clone())),
                        reason: ValidationReason::WrongType {
                            expected: def.ty.name(),
                            got: format!("{scalar}").chars().take(40).collect(),
                        },
                    })
                })
            }
            _ => {
                // Let the dictionary phrase the refusal.
                let probe = Value::Text(String::new());
                let err = self.schema.validate(&self.entity, key, &probe).err();
                Err(match err {
                    Some(e) => e.into(),
                    None => (
                        RefusalCode::InvalidValue,
                        format!("field `{key}` is not allowed"),
                    )
                        .into(),
                })
            }
        }
    }
}

/// Field values typed in `changes`: one `(change time ms, field)` per field a change puts
/// a value into (a resolve counts too: someone chose a value). Distinct fields per change,
/// not operations: writing one field a million times in a change is one value typed.
/// The burden report's input.
pub(crate) fn typed_values(record: &Record, changes: &[Change]) -> Vec<(i64, String)> {
    let Ok(Some((_, ObjId::Id(counter, actor, _)))) = record.doc().get(automerge::ROOT, "fields")
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for change in changes {
        let mut fields = std::collections::HashSet::new();
        for op in change.decode().operations {
            let in_fields = matches!(&op.obj,
                legacy::ObjectId::Id(legacy::OpId(c, a)) if (*c, a) == (counter, &actor));
            if let (true, legacy::Key::Map(key), legacy::OpType::Put(_)) =
                (in_fields, &op.key, &op.action)
                && fields.insert(key.to_string())
            {
                out.push((change.timestamp(), key.to_string()));
            }
        }
    }
    out
}
