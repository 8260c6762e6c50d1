//! The one rule that turns a finding's log into its status (ADR 0012).
//!
//! Steps are taken in the log's list order, which automerge keeps identical on every
//! replica and which, for appends, never puts a step before one its writer had seen. The
//! fold is a pure function of that list: no clock, nothing replica-local. A step that is
//! not valid where it falls is kept and shown as superseded, with the reason.

use serde::Serialize;

use super::{Step, StepKind, Unit};

/// Where a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FindingState {
    /// Recorded, not handed over yet.
    Found,
    /// Handed over to a unit, awaiting its resolution.
    HandedOver,
    /// Resolved by the unit, awaiting verification.
    Resolved,
    /// The resolution was sent back for rework; awaiting a new resolution.
    SentBack,
    /// Verified and closed.
    Closed,
}

impl FindingState {
    /// The state as JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingState::Found => "found",
            FindingState::HandedOver => "handed_over",
            FindingState::Resolved => "resolved",
            FindingState::SentBack => "sent_back",
            FindingState::Closed => "closed",
        }
    }
}

/// One step as the fold saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepView {
    /// The step.
    pub step: Step,
    /// `None` when it counted; else why it was superseded (a stable code:
    /// `not_handed_over`, `already_resolved`, `not_the_responsible_unit`,
    /// `not_resolved`, `closed`).
    pub superseded: Option<&'static str>,
}

/// What the log says: the state, who is responsible until when, and the dated facts the
/// report counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lifecycle {
    /// The state.
    pub state: FindingState,
    /// The responsible unit (the last hand-over that counted).
    pub unit: Option<Unit>,
    /// Its deadline, ms since the epoch.
    pub deadline_ms: Option<i64>,
    /// When it was first handed over.
    pub handed_ms: Option<i64>,
    /// When the standing resolution was made (state resolved or closed).
    pub resolved_ms: Option<i64>,
    /// When it was closed.
    pub closed_ms: Option<i64>,
    /// How many times a resolution was sent back.
    pub sent_back: u32,
    /// How many hold-to-account steps counted.
    pub held_to_account: u32,
    /// Every step in log order, with whether it counted.
    pub steps: Vec<StepView>,
}

impl Lifecycle {
    /// The standing resolution was made by the deadline.
    pub fn resolved_on_time(&self) -> bool {
        matches!((self.resolved_ms, self.deadline_ms), (Some(r), Some(d)) if r <= d)
    }

    /// Past its deadline without a standing resolution at `now_ms`, or resolved late.
    pub fn overdue(&self, now_ms: i64) -> bool {
        match (self.deadline_ms, self.resolved_ms) {
            (Some(d), Some(r)) => r > d,
            (Some(d), None) => now_ms > d,
            _ => false,
        }
    }

    /// Ms from the first hand-over to the standing resolution.
    pub fn time_to_resolve_ms(&self) -> Option<i64> {
        // Step times are writers' clocks: never overflow on a nonsense one.
        Some(self.resolved_ms?.saturating_sub(self.handed_ms?))
    }
}

/// Folds the log, in order, into the lifecycle. The one rule.
pub fn fold(steps: &[Step]) -> Lifecycle {
    let mut l = Lifecycle {
        state: FindingState::Found,
        unit: None,
        deadline_ms: None,
        handed_ms: None,
        resolved_ms: None,
        closed_ms: None,
        sent_back: 0,
        held_to_account: 0,
        steps: Vec::with_capacity(steps.len()),
    };
    for step in steps {
        let superseded = apply(&mut l, step).err();
        l.steps.push(StepView {
            step: step.clone(),
            superseded,
        });
    }
    l
}

/// Applies one step, or says why it does not count.
fn apply(l: &mut Lifecycle, step: &Step) -> Result<(), &'static str> {
    use FindingState::*;
    match (&step.kind, l.state) {
        (_, Closed) => Err("closed"),
        (StepKind::HandOver { unit, deadline_ms }, Found | HandedOver | SentBack) => {
            l.unit = Some(unit.clone());
            l.deadline_ms = Some(*deadline_ms);
            l.handed_ms.get_or_insert(step.at_ms);
            l.state = HandedOver;
            Ok(())
        }
        (StepKind::HandOver { .. }, Resolved) => Err("already_resolved"),
        (StepKind::Resolve { unit, .. }, HandedOver | SentBack) => {
            if l.unit.as_ref() != Some(unit) {
                return Err("not_the_responsible_unit");
            }
            l.resolved_ms = Some(step.at_ms);
            l.state = Resolved;
            Ok(())
        }
        (StepKind::Resolve { .. }, Resolved) => Err("already_resolved"),
        (StepKind::Accept, Resolved) => {
            l.closed_ms = Some(step.at_ms);
            l.state = Closed;
            Ok(())
        }
        (StepKind::SendBack { .. }, Resolved) => {
            l.resolved_ms = None;
            l.sent_back += 1;
            l.state = SentBack;
            Ok(())
        }
        (StepKind::Accept | StepKind::SendBack { .. }, _) => Err("not_resolved"),
        (StepKind::HoldToAccount { .. }, Found) => Err("not_handed_over"),
        (StepKind::HoldToAccount { .. }, _) => {
            l.held_to_account += 1;
            Ok(())
        }
        (_, Found) => Err("not_handed_over"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Actor;

    fn step(kind: StepKind, at_ms: i64) -> Step {
        Step::new(kind, Actor::Staff("office".into()), at_ms)
    }

    fn hand(v: &str, deadline_ms: i64, at: i64) -> Step {
        step(
            StepKind::HandOver {
                unit: Unit::Village(v.into()),
                deadline_ms,
            },
            at,
        )
    }

    fn resolve(v: &str, at: i64) -> Step {
        step(
            StepKind::Resolve {
                unit: Unit::Village(v.into()),
                note: "done".into(),
                evidence: vec![],
            },
            at,
        )
    }

    #[test]
    fn a_finding_goes_found_handed_resolved_sent_back_resolved_closed() {
        let back = step(
            StepKind::SendBack {
                reason: "rubbish still there".into(),
            },
            40,
        );
        let log = vec![
            hand("tujiang", 100, 10),
            resolve("tujiang", 30),
            back,
            resolve("tujiang", 120),
            step(StepKind::Accept, 130),
        ];
        assert_eq!(fold(&log[..0]).state, FindingState::Found);
        assert_eq!(fold(&log[..1]).state, FindingState::HandedOver);
        assert_eq!(fold(&log[..2]).state, FindingState::Resolved);
        assert!(fold(&log[..2]).resolved_on_time());
        let sent = fold(&log[..3]);
        assert_eq!((sent.state, sent.sent_back), (FindingState::SentBack, 1));
        assert!(sent.overdue(101) && !sent.overdue(99));
        let l = fold(&log);
        assert_eq!(l.state, FindingState::Closed);
        assert_eq!(l.resolved_ms, Some(120));
        assert!(!l.resolved_on_time() && l.overdue(0));
        assert_eq!(l.time_to_resolve_ms(), Some(110));
        assert!(l.steps.iter().all(|s| s.superseded.is_none()));
    }

    #[test]
    fn invalid_steps_are_kept_and_marked_superseded_never_dropped() {
        let log = vec![
            resolve("tujiang", 1),
            hand("tujiang", 100, 2),
            resolve("tujiang", 3),
            resolve("tujiang", 4),
            hand("xiba", 100, 5),
            step(StepKind::Accept, 6),
            step(StepKind::Accept, 7),
            hand("xiba", 100, 8),
        ];
        let l = fold(&log);
        let why: Vec<_> = l.steps.iter().map(|s| s.superseded).collect();
        assert_eq!(
            why,
            vec![
                Some("not_handed_over"),
                None,
                None,
                Some("already_resolved"),
                Some("already_resolved"),
                None,
                Some("closed"),
                Some("closed"),
            ]
        );
        assert_eq!(l.steps.len(), log.len());
        assert_eq!(l.unit, Some(Unit::Village("tujiang".into())));
    }

    #[test]
    fn nonsense_clocks_do_not_overflow_the_time_to_resolve() {
        let l = fold(&[hand("tujiang", 0, i64::MIN), resolve("tujiang", i64::MAX)]);
        assert_eq!(l.time_to_resolve_ms(), Some(i64::MAX));
    }

    #[test]
    fn a_resolution_after_a_reassignment_does_not_count_for_the_old_unit() {
        let l = fold(&[
            hand("tujiang", 100, 1),
            hand("xiba", 200, 2),
            resolve("tujiang", 3),
        ]);
        assert_eq!(l.state, FindingState::HandedOver);
        assert_eq!(l.steps[2].superseded, Some("not_the_responsible_unit"));
        assert_eq!(l.deadline_ms, Some(200));
        assert_eq!(l.handed_ms, Some(1));
    }
}
