//! Property: random concurrent edits on several replicas, exchanged in random partial
//! syncs and finally merged in random orders, converge to identical documents and
//! identical index rows, and no value that was ever set is lost: it is the current value,
//! a listed conflict, or in the history, on every replica.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;

use proptest::prelude::*;
use yibiao_model::Error as ModelError;
use yibiao_model::clock::ManualClock;
use yibiao_model::record::HistoryEvent;
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_store::{Error, Store};

const REPLICAS: usize = 4;
const RECORDS: usize = 2;

#[derive(Debug, Clone)]
enum Action {
    Set(&'static str, Value),
    Unset(&'static str),
    Delete,
    Restore,
    /// Resolve the first conflicted field with the `n`-th competing value.
    Resolve(usize),
    /// Replica `to` merges what `from` holds of this record (a partial sync).
    SyncFrom(usize),
}

#[derive(Debug, Clone)]
struct Op {
    replica: usize,
    record: usize,
    action: Action,
}

fn value_strategy() -> impl Strategy<Value = (&'static str, Value)> {
    prop_oneof![
        (1i64..6).prop_map(|n| ("household_size", Value::Integer(n))),
        prop::sample::select(vec!["阿木", "吉克", "曲比", "沙马"])
            .prop_map(|s| ("household_head", Value::Text(s.into()))),
        prop::sample::select(vec!["none", "enrolled", "special"])
            .prop_map(|s| ("dibao_status", Value::Choice(s.into()))),
        prop::collection::vec(
            prop::sample::select(vec!["wages", "farming", "livestock"]),
            0..3
        )
        .prop_map(|v| (
            "income_sources",
            Value::multi_choice(v.into_iter().map(String::from).collect())
        )),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let action = prop_oneof![
        6 => value_strategy().prop_map(|(f, v)| Action::Set(f, v)),
        1 => prop::sample::select(vec!["household_size", "household_head", "dibao_status"]).prop_map(Action::Unset),
        1 => Just(Action::Delete),
        1 => Just(Action::Restore),
        1 => (0usize..3).prop_map(Action::Resolve),
        3 => (0usize..REPLICAS).prop_map(Action::SyncFrom),
    ];
    (0..REPLICAS, 0..RECORDS, action).prop_map(|(replica, record, action)| Op {
        replica,
        record,
        action,
    })
}

struct World {
    stores: Vec<Store>,
    ids: Vec<RecordId>,
    clock: Arc<ManualClock>,
    /// Every (record, field, value) a replica's write accepted.
    written: Vec<(usize, &'static str, serde_json::Value)>,
}

impl World {
    fn new() -> Self {
        let schema = Arc::new(Schema::baru_example());
        let clock = Arc::new(ManualClock::new(1_764_000_000_000));
        let stores: Vec<Store> = (0..REPLICAS)
            .map(|i| {
                Store::open_in_memory(
                    schema.clone(),
                    CadreId::new(format!("cadre-{i}")).unwrap(),
                    clock.clone(),
                )
                .unwrap()
            })
            .collect();
        let mut ids = Vec::new();
        let mut written = Vec::new();
        for r in 0..RECORDS {
            let head = Value::Text(format!("户主{r}"));
            let id = stores[0]
                .create(
                    "household",
                    Some("tujiang"),
                    &[FieldEdit::Set("household_head".into(), head.clone())],
                )
                .unwrap();
            written.push((r, "household_head", head.to_json()));
            let bytes = stores[0].export(id).unwrap();
            for s in &stores[1..] {
                s.merge(id, &bytes).unwrap();
            }
            ids.push(id);
        }
        Self {
            stores,
            ids,
            clock,
            written,
        }
    }

    fn apply(&mut self, op: &Op) {
        self.clock.advance(1_000);
        let store = &self.stores[op.replica];
        let id = self.ids[op.record];
        match &op.action {
            Action::Set(field, value) => match store.set(id, field, value.clone()) {
                Ok(_) => self.written.push((op.record, field, value.to_json())),
                Err(Error::Model(ModelError::Deleted(_))) => {}
                Err(e) => panic!("set failed: {e}"),
            },
            Action::Unset(field) => match store.unset(id, field) {
                Ok(_) | Err(Error::Model(ModelError::Deleted(_))) => {}
                Err(e) => panic!("unset failed: {e}"),
            },
            Action::Delete => {
                store.delete(id).unwrap();
            }
            Action::Restore => {
                store.restore(id).unwrap();
            }
            Action::Resolve(n) => {
                let conflicts = store.conflicts(id).unwrap();
                if let Some(c) = conflicts.first() {
                    let chosen = &c.values[n % c.values.len()];
                    let value = chosen.value.as_ref().map(|json| {
                        store
                            .schema()
                            .parse_json("household", &c.field, json)
                            .unwrap()
                    });
                    match store.resolve(id, &c.field, value) {
                        Ok(()) | Err(Error::Model(ModelError::Deleted(_))) => {}
                        Err(e) => panic!("resolve failed: {e}"),
                    }
                }
            }
            Action::SyncFrom(from) => {
                let bytes = self.stores[*from].export(id).unwrap();
                store.merge(id, &bytes).unwrap();
            }
        }
    }

    /// Every replica receives every other replica's documents, in `order`, twice over so
    /// that what arrived late is passed on too.
    fn merge_all(&self, order: &[usize]) {
        for _round in 0..2 {
            for &to in order {
                for &from in order.iter().rev() {
                    if from == to {
                        continue;
                    }
                    for &id in &self.ids {
                        // Mix full snapshots and incremental deltas.
                        let heads = self.stores[to].heads(id).unwrap();
                        let bytes = if (from + to) % 2 == 0 {
                            self.stores[from].export(id).unwrap()
                        } else {
                            self.stores[from].outgoing(id, &heads).unwrap()
                        };
                        self.stores[to].merge(id, &bytes).unwrap();
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_concurrent_edits_converge_and_lose_no_value(
        ops in prop::collection::vec(op_strategy(), 1..40),
        order in Just((0..REPLICAS).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op);
        }
        world.merge_all(&order);

        let first = &world.stores[0];
        for other in &world.stores[1..] {
            prop_assert_eq!(first.index_rows().unwrap(), other.index_rows().unwrap());
            for &id in &world.ids {
                prop_assert_eq!(first.heads(id).unwrap(), other.heads(id).unwrap());
                prop_assert_eq!(first.get(id).unwrap(), other.get(id).unwrap());
                prop_assert_eq!(first.conflicts(id).unwrap(), other.conflicts(id).unwrap());
                prop_assert_eq!(first.history(id).unwrap(), other.history(id).unwrap());
            }
        }
        for store in &world.stores {
            for (record, field, value) in &world.written {
                let id = world.ids[*record];
                let current = store.get(id).unwrap();
                let is_current = current.value(field) == Some(value);
                let in_conflict = store.conflicts(id).unwrap().iter().any(|c| {
                    c.field == *field && c.values.iter().any(|v| v.value.as_ref() == Some(value))
                });
                // A write that settles a conflict is in the history as `Resolved`.
                let in_history = store.history(id).unwrap().iter().any(|h| matches!(
                    &h.event,
                    HistoryEvent::Set { field: f, value: v }
                        | HistoryEvent::Resolved { field: f, value: v }
                        if f == field && v == value
                ));
                prop_assert!(is_current || in_conflict || in_history, "lost {field}={value} of record {record}");
            }
        }
    }
}
