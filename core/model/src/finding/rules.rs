//! Who may take which step of a finding, and what a phone may push to a finding
//! document. One home for the rule: the hub asks it of every change a phone pushes, the
//! server of every step taken over HTTP (ADR 0012).

use automerge::{Change, ObjId, ObjType, ScalarValue, legacy};

use super::{Actor, FindingDoc, FindingSpec, Step, StepKind, Unit, obj_at};
use crate::ids::Author;
use crate::messages::Message;
use crate::record::Record;
use crate::schema::Schema;
use crate::task::Receipt;

/// The department key of the discipline office (纪检).
pub const DISCIPLINE: &str = "discipline_inspection";

/// The role someone acts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A cadre of this village (a village phone).
    Village(String),
    /// A department (its token), other than the discipline office.
    Department(String),
    /// The township office: the admin token, township staff, a township phone.
    Township,
    /// The discipline office (the department `discipline_inspection`).
    Discipline,
}

impl Role {
    /// The role of a department token: the discipline office for `discipline_inspection`.
    pub fn of_department(key: &str) -> Self {
        if key == DISCIPLINE {
            Role::Discipline
        } else {
            Role::Department(key.to_owned())
        }
    }

    /// The role as a word for messages.
    pub fn name(&self) -> String {
        match self {
            Role::Village(v) => format!("village:{v}"),
            Role::Department(d) => format!("department:{d}"),
            Role::Township => "township".into(),
            Role::Discipline => DISCIPLINE.into(),
        }
    }

    /// May this role see the finding? A village the findings about it, a department
    /// those ever handed to it, the township and the discipline office all.
    pub fn sees(&self, finding: &FindingDoc) -> bool {
        match self {
            Role::Township | Role::Discipline => true,
            Role::Village(v) => finding.village.as_deref() == Some(v.as_str()),
            Role::Department(d) => handed_to(finding, &Unit::Department(d.clone())),
        }
    }
}

/// The refusal `finding_forbidden`: `role` may not take `step` (`why`: `role`,
/// `not_handed_to_you`, `other_village`).
pub fn forbidden(role: &Role, step: &str, why: &str) -> Message {
    Message::new("finding_forbidden")
        .with("role", role.name())
        .with("step", step)
        .with("why", why)
}

/// True when some hand-over in the log names `unit` (whether or not it still stands).
fn handed_to(finding: &FindingDoc, unit: &Unit) -> bool {
    finding
        .steps
        .iter()
        .any(|s| matches!(&s.kind, StepKind::HandOver { unit: u, .. } if u == unit))
}

/// May `role` record a finding about `village`? Refused with `finding_forbidden`.
pub fn may_record(role: &Role, village: Option<&str>) -> Result<(), Message> {
    match role {
        Role::Township | Role::Discipline => Ok(()),
        Role::Village(v) if village == Some(v.as_str()) => Ok(()),
        Role::Village(_) => Err(forbidden(role, "record", "other_village")),
        Role::Department(_) => Err(forbidden(role, "record", "role")),
    }
}

/// May `role` take `kind` on `finding`? Refused with `finding_forbidden` (params `role`,
/// `step`, `why`: `role` (never for this role), `not_handed_to_you`, `other_village`).
/// Whether the step then counts is the fold's business: a permitted step may still be
/// superseded by a concurrent one.
pub fn may_take(role: &Role, kind: &StepKind, finding: &FindingDoc) -> Result<(), Message> {
    let office = matches!(role, Role::Township | Role::Discipline);
    let refuse = |why| Err(forbidden(role, kind.name(), why));
    match kind {
        StepKind::HandOver { unit, .. } if office => match unit {
            Unit::Village(v)
                if finding.village.is_some() && finding.village.as_deref() != Some(v) =>
            {
                refuse("other_village")
            }
            _ => Ok(()),
        },
        StepKind::Accept | StepKind::SendBack { .. } if office => Ok(()),
        StepKind::HoldToAccount { .. } if *role == Role::Discipline => Ok(()),
        StepKind::Resolve { unit, .. } => {
            let mine = match (role, unit) {
                (Role::Village(v), Unit::Village(u)) => v == u,
                (Role::Department(d), Unit::Department(u)) => d == u,
                (Role::Discipline, Unit::Department(u)) => u == DISCIPLINE,
                _ => false,
            };
            if !mine {
                refuse("role")
            } else if !handed_to(finding, unit) {
                refuse("not_handed_to_you")
            } else {
                Ok(())
            }
        }
        _ => refuse("role"),
    }
}

/// Why a phone's change to a finding document is refused: the reason as data, and an
/// English sentence for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct FindingRefusal {
    /// The reason (`finding_forbidden`, or `not_a_record` with `detail`).
    pub reason: Message,
    /// English, for operators.
    pub detail: String,
}

impl FindingRefusal {
    fn malformed(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self {
            reason: Message::new("not_a_record").with("detail", &detail),
            detail,
        }
    }

    fn refused(reason: Message) -> Self {
        Self {
            detail: reason.render(crate::messages::Lang::En),
            reason,
        }
    }

    fn forbidden(reason: Message) -> Self {
        let detail = format!(
            "{} may not take step `{}` here ({})",
            reason.param("role"),
            reason.param("step"),
            reason.param("why")
        );
        Self { reason, detail }
    }
}

/// Checks a receipt a phone writes into a finding: delivered / opened marks only.
pub(crate) fn check_receipt(receipt: &Receipt) -> Result<(), String> {
    receipt.check()?;
    if receipt.done.is_some() || receipt.done_ms.is_some() || receipt.note.is_some() {
        return Err("a finding's receipt holds delivered and opened marks only".into());
    }
    Ok(())
}

const CREATE_KEYS: &[&str] = &["yb", "entity", "township", "village", "created", "deleted"];

/// What the server checks in the changes a phone (acting as `role`) pushes to a finding
/// document, merged into `record`: a creation writes the layout and a finding the role
/// may record, of a category `schema` knows, found by the change's cadre; later changes only append steps the role may
/// take, by the change's cadre, and write the phone's own receipt. Nothing is ever
/// overwritten or removed. The author's device and cadre were checked before (ADR 0007).
pub fn check_finding_changes(
    schema: &Schema,
    record: &Record,
    changes: &[Change],
    is_new: bool,
    role: &Role,
    device: &str,
) -> Result<(), FindingRefusal> {
    let finding =
        super::read_finding(record).map_err(|e| FindingRefusal::malformed(e.to_string()))?;
    let id_of = |key| match obj_at(
        record.doc(),
        key,
        if key == "steps" {
            ObjType::List
        } else {
            ObjType::Map
        },
    ) {
        Some(ObjId::Id(c, a, _)) => Ok((c, a)),
        _ => Err(FindingRefusal::malformed(format!(
            "a finding has no `{key}` object"
        ))),
    };
    let steps = id_of("steps")?;
    let receipts = id_of("receipts")?;
    let mut creations = 0;
    for change in changes {
        let author = change
            .message()
            .and_then(|m| serde_json::from_str::<Author>(m).ok())
            .ok_or_else(|| FindingRefusal::malformed("a change carries no cadre and device"))?;
        let by = Actor::Cadre(author.cadre.as_str().to_owned());
        let ops = change.decode().operations;
        // Where this change may insert a step: after the list's last element as the
        // writer saw it (its dependencies), then after its own previous insert.
        let mut tail = if creates_any(&ops) {
            None
        } else {
            Some(last_step_at(record, &steps, change)?)
        };
        let start_op = change.start_op().get();
        let creates = creates_any(&ops);
        if creates {
            creations += 1;
            if !is_new || creations > 1 {
                return Err(FindingRefusal::malformed("the finding already exists"));
            }
        }
        for (i, op) in ops.iter().enumerate() {
            let in_obj = |(c, a): &(u64, automerge::ActorId)| matches!(&op.obj, legacy::ObjectId::Id(legacy::OpId(oc, oa)) if oc == c && oa == a);
            match (&op.obj, &op.key, &op.action) {
                (legacy::ObjectId::Root, legacy::Key::Map(k), action) if creates => {
                    check_create_op(
                        schema,
                        k,
                        action,
                        &finding.spec,
                        &by,
                        role,
                        finding.village.as_deref(),
                    )?
                }
                (_, legacy::Key::Seq(after), legacy::OpType::Put(ScalarValue::Str(json)))
                    if op.insert && in_obj(&steps) =>
                {
                    if let Some(expected) = &tail
                        && after != expected
                    {
                        return Err(FindingRefusal::malformed(
                            "a step must be appended after every step the phone had seen, not inserted before one",
                        ));
                    }
                    check_step_op(json, &by, role, &finding)?;
                    tail = Some(legacy::ElementId::Id(legacy::OpId(
                        start_op + i as u64,
                        change.actor_id().clone(),
                    )));
                }
                (_, legacy::Key::Map(k), legacy::OpType::Put(ScalarValue::Str(json)))
                    if in_obj(&receipts) =>
                {
                    check_receipt_op(k, json, device, author.cadre.as_str())?;
                }
                _ => {
                    return Err(FindingRefusal::malformed(
                        "a phone may only append steps and write its own receipt to a finding",
                    ));
                }
            }
        }
    }
    if is_new && creations == 0 {
        return Err(FindingRefusal::malformed(
            "a new finding must start with its creation",
        ));
    }
    Ok(())
}

/// True when `ops` create the finding (its first change writes the layout and may
/// append its first steps anywhere in the new list).
fn creates_any(ops: &[legacy::Op]) -> bool {
    ops.iter().any(|op| {
        matches!((&op.obj, &op.key), (legacy::ObjectId::Root, legacy::Key::Map(k)) if k == "entity")
    })
}

/// The element a step appended by `change` must follow: the last element of the steps
/// list as of the change's dependencies (what its writer had seen), or the list's head
/// when it was empty then.
fn last_step_at(
    record: &Record,
    steps: &(u64, automerge::ActorId),
    change: &Change,
) -> Result<legacy::ElementId, FindingRefusal> {
    use automerge::ReadDoc;
    let doc = record.doc();
    let obj = ObjId::Id(steps.0, steps.1.clone(), 0);
    let Some(obj) = obj_at(doc, "steps", ObjType::List).filter(|o| same_obj(o, &obj)) else {
        return Err(FindingRefusal::malformed("a finding has no `steps` list"));
    };
    let deps = change.deps();
    let len = doc.length_at(&obj, deps);
    if len == 0 {
        return Ok(legacy::ElementId::Head);
    }
    match doc.get_at(&obj, len - 1, deps) {
        Ok(Some((_, ObjId::Id(counter, actor, _)))) => {
            Ok(legacy::ElementId::Id(legacy::OpId(counter, actor)))
        }
        _ => Err(FindingRefusal::malformed(
            "the steps the phone had seen cannot be read",
        )),
    }
}

fn same_obj(a: &ObjId, b: &ObjId) -> bool {
    matches!((a, b), (ObjId::Id(c1, a1, _), ObjId::Id(c2, a2, _)) if c1 == c2 && a1 == a2)
}

/// One appended step: well formed, signed by the change's cadre, permitted to the role.
fn check_step_op(
    json: &str,
    by: &Actor,
    role: &Role,
    finding: &FindingDoc,
) -> Result<(), FindingRefusal> {
    let step: Step = serde_json::from_str(json)
        .map_err(|e| FindingRefusal::malformed(format!("bad finding step: {e}")))?;
    step.kind.check().map_err(FindingRefusal::refused)?;
    if &step.by != by {
        return Err(FindingRefusal::malformed(
            "a step must be signed by the cadre who made the change",
        ));
    }
    may_take(role, &step.kind, finding).map_err(FindingRefusal::forbidden)
}

/// One receipt write: the phone's own key, marks only, naming the change's cadre.
fn check_receipt_op(
    key: &str,
    json: &str,
    device: &str,
    cadre: &str,
) -> Result<(), FindingRefusal> {
    if key != device {
        return Err(FindingRefusal::malformed(format!(
            "device `{device}` may not write the receipt of device `{key}`"
        )));
    }
    let r: Receipt = serde_json::from_str(json)
        .map_err(|e| FindingRefusal::malformed(format!("bad finding receipt: {e}")))?;
    check_receipt(&r).map_err(FindingRefusal::malformed)?;
    if r.cadre.as_deref().is_some_and(|c| c != cadre) {
        return Err(FindingRefusal::malformed("a receipt names another cadre"));
    }
    Ok(())
}

/// One top-level operation of a creating change.
fn check_create_op(
    schema: &Schema,
    key: &str,
    action: &legacy::OpType,
    spec: &FindingSpec,
    by: &Actor,
    role: &Role,
    village: Option<&str>,
) -> Result<(), FindingRefusal> {
    match (key, action) {
        (k, legacy::OpType::Put(_)) if CREATE_KEYS.contains(&k) => Ok(()),
        ("fields" | "receipts", legacy::OpType::Make(ObjType::Map))
        | ("steps", legacy::OpType::Make(ObjType::List)) => Ok(()),
        ("finding", legacy::OpType::Put(ScalarValue::Str(_))) => {
            spec.check().map_err(FindingRefusal::refused)?;
            super::categories::check_category(schema, &spec.category)
                .map_err(FindingRefusal::refused)?;
            if &spec.found_by != by {
                return Err(FindingRefusal::malformed(
                    "a finding must be signed by the cadre who recorded it",
                ));
            }
            may_record(role, village).map_err(FindingRefusal::forbidden)
        }
        _ => Err(FindingRefusal::malformed(format!(
            "a change may not write `{key}` at the top of a finding"
        ))),
    }
}
