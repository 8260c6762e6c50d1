//! The store's public API, on real SQLite files: writes, validation, queries, form status,
//! conflicts and provenance, tombstones, sync bookkeeping, compaction and migrations.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::str::FromStr;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde_json::json;
use yibiao_model::Error as ModelError;
use yibiao_model::clock::ManualClock;
use yibiao_model::record::HistoryEvent;
use yibiao_model::value::{AttachmentRef, GpsPoint};
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_store::StoreConfig;
use yibiao_store::{Error, Query, Store};

fn schema() -> Arc<Schema> {
    Arc::new(Schema::baru_example())
}

fn open(dir: &tempfile::TempDir, name: &str, cadre: &str, clock: Arc<ManualClock>) -> Store {
    Store::open_with(
        dir.path().join(name),
        schema(),
        CadreId::new(cadre).unwrap(),
        clock,
        StoreConfig::default(),
    )
    .unwrap()
}

fn set(field: &str, value: Value) -> FieldEdit {
    FieldEdit::Set(field.to_owned(), value)
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn household(store: &Store, village: &str, head: &str, size: i64) -> RecordId {
    store
        .create(
            "household",
            Some(village),
            &[
                set("household_head", text(head)),
                set("household_size", Value::Integer(size)),
            ],
        )
        .unwrap()
}

#[test]
fn a_created_record_reads_back_with_its_values_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_764_000_000_000));
    let id = {
        let store = open(&dir, "phone.db", "cadre-amu", clock.clone());
        let id = household(&store, "tujiang", "阿木", 5);
        store
            .set(
                id,
                "annual_income",
                Value::Decimal(Decimal::from_str("12345.60").unwrap()),
            )
            .unwrap();
        id
    };
    let store = open(&dir, "phone.db", "cadre-amu", clock);
    let view = store.get(id).unwrap();
    assert_eq!(view.entity, "household");
    assert_eq!(view.scope.village.as_deref(), Some("tujiang"));
    assert_eq!(view.scope.township, "baru");
    assert_eq!(view.value("household_head"), Some(&json!("阿木")));
    assert_eq!(view.value("household_size"), Some(&json!(5)));
    assert_eq!(view.value("annual_income"), Some(&json!("12345.60")));
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn every_validation_error_names_the_field_and_the_reason_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "v.db", "cadre-1", Arc::new(ManualClock::new(1)));
    let id = household(&store, "baru", "吉克", 4);
    let before = store.history(id).unwrap().len();

    let attachment = |sha: &str, name: &str, mime: &str| {
        Value::Attachment(AttachmentRef {
            sha256: sha.to_owned(),
            name: name.to_owned(),
            mime: mime.to_owned(),
            size: 10,
        })
    };
    let good_sha = "a".repeat(64);
    let cases: Vec<(FieldEdit, &str)> = vec![
        (
            set("favourite_colour", text("red")),
            "field `favourite_colour` is not in the field dictionary",
        ),
        (
            set("party_status", Value::Choice("member".into())),
            "field `party_status` (Party membership) is not a field of entity type `household`",
        ),
        (
            set("household_size", text("three")),
            "field `household_size` (Household size) expects a whole number, got \"three\"",
        ),
        (
            set("dibao_status", Value::Choice("rich".into())),
            "field `dibao_status` (Minimum living allowance status) has no option \"rich\"; allowed: Not enrolled, Enrolled, Extreme-poverty support, Suspended",
        ),
        (
            set(
                "income_sources",
                Value::multi_choice(vec!["wages".into(), "lottery".into()]),
            ),
            "field `income_sources` (Income sources) has no option \"lottery\"; allowed: Crops, Livestock, Wages, Business, Transfers and allowances",
        ),
        (
            set("household_size", Value::Integer(0)),
            "field `household_size` (Household size) must be at least 1, got 0",
        ),
        (
            set("household_size", Value::Integer(31)),
            "field `household_size` (Household size) must be at most 30, got 31",
        ),
        (
            set(
                "annual_income",
                Value::Decimal(Decimal::from_str("-1").unwrap()),
            ),
            "field `annual_income` (Annual household income (yuan)) must be at least 0, got -1",
        ),
        (
            set(
                "annual_income",
                Value::Decimal(Decimal::from_str("10.123").unwrap()),
            ),
            "field `annual_income` (Annual household income (yuan)) allows 2 digits after the point, got 10.123",
        ),
        (
            set("household_head", text(&"长".repeat(41))),
            "field `household_head` (Household head) allows at most 40 characters, got 41",
        ),
        (
            set("id_number", text("51340119900101123")),
            "field `id_number` (Resident ID number) must be 18 characters: 17 digits, then a digit or X",
        ),
        (
            set("household_head", text("   ")),
            "field `household_head` (Household head) is blank; unset the field instead",
        ),
        (
            set(
                "location",
                Value::Gps(GpsPoint {
                    lat: 95.0,
                    lon: 102.0,
                }),
            ),
            "field `location` (Location) expects latitude -90..90 and longitude -180..180, got 95, 102",
        ),
        (
            set("photo", attachment("xyz", "a.jpg", "image/jpeg")),
            "field `photo` (Photo) has a bad attachment reference: sha256 must be 64 lowercase hex digits",
        ),
        (
            set("photo", attachment(&good_sha, " ", "image/jpeg")),
            "field `photo` (Photo) has a bad attachment reference: name is empty",
        ),
        (
            set("photo", attachment(&good_sha, "a.jpg", "jpeg")),
            "field `photo` (Photo) has a bad attachment reference: mime must look like type/subtype",
        ),
        (
            FieldEdit::Unset("favourite_colour".into()),
            "field `favourite_colour` is not in the field dictionary",
        ),
    ];
    for (edit, want) in cases {
        let err = store.update(id, std::slice::from_ref(&edit)).unwrap_err();
        assert!(
            matches!(err, Error::Model(ModelError::Invalid(_))),
            "{edit:?}: {err:?}"
        );
        assert_eq!(err.to_string(), want, "{edit:?}");
    }
    // JSON input from apps: bad dates and wrong shapes are named too.
    let err = store
        .set_json(id, "visit_date", &json!("2026-02-30"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `visit_date` (Visit date) expects a real date written 2027-01-05, 2027-1-5, 2027/1/5 or 2027年1月5日, got \"2026-02-30\""
    );
    let err = store
        .set_json(id, "housing_safe", &json!("maybe"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `housing_safe` (Housing is safe) expects true or false, got \"maybe\""
    );

    // A batch with one bad edit writes none of it.
    let err = store
        .update(
            id,
            &[
                set("phone", text("13800000000")),
                set("household_size", Value::Integer(99)),
            ],
        )
        .unwrap_err();
    assert!(err.to_string().contains("household_size"));
    assert_eq!(store.get(id).unwrap().value("phone"), None);
    assert_eq!(
        store.history(id).unwrap().len(),
        before,
        "nothing was written"
    );

    // Record-level mistakes.
    assert_eq!(
        store
            .create("castle", Some("baru"), &[])
            .unwrap_err()
            .to_string(),
        "unknown entity type `castle`"
    );
    assert_eq!(
        store
            .create("household", Some("atlantis"), &[])
            .unwrap_err()
            .to_string(),
        "unknown village `atlantis`"
    );
    let missing = RecordId::new();
    assert_eq!(
        store.get(missing).unwrap_err().to_string(),
        format!("record {missing} not found")
    );
    assert_eq!(store.stats().unwrap().records, 1);
}

#[test]
fn form_status_says_what_a_form_still_needs_and_shared_fields_fill_every_form() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "f.db", "cadre-1", Arc::new(ManualClock::new(1)));
    let id = household(&store, "heping", "沙马", 6);
    let dibao = store.form_status(id, "dibao_check").unwrap();
    assert_eq!(
        dibao.missing_required,
        vec!["id_number", "annual_income", "dibao_status", "visit_date"]
    );
    assert_eq!((dibao.filled_required, dibao.total_required), (2, 6));
    store
        .update(
            id,
            &[
                set("id_number", text("513401198001011236")),
                set("annual_income", Value::Decimal(Decimal::from(8000))),
                set("dibao_status", Value::Choice("enrolled".into())),
                set(
                    "visit_date",
                    Value::Date(chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()),
                ),
            ],
        )
        .unwrap();
    assert!(store.form_status(id, "dibao_check").unwrap().complete());
    // The poverty visit reuses head, ID, size, income and visit date typed for 低保.
    let visit = store.form_status(id, "poverty_visit").unwrap();
    assert_eq!(
        visit.missing_required,
        vec!["monitoring_status", "housing_safe", "drinking_water"]
    );

    assert_eq!(
        store
            .form_status(id, "hazard_patrol")
            .unwrap_err()
            .to_string(),
        "form `hazard_patrol` is for `hazard_site` records, but this record is a `household`"
    );
    assert_eq!(
        store.form_status(id, "nope").unwrap_err().to_string(),
        "unknown form `nope`"
    );
}

#[test]
fn queries_filter_by_entity_village_value_text_and_completeness_and_page_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "q.db", "cadre-1", Arc::new(ManualClock::new(1)));
    let mut tujiang = Vec::new();
    for i in 0..25 {
        let id = household(&store, "tujiang", &format!("阿木{i}"), (i % 7) + 1);
        tujiang.push(id);
    }
    let other = household(&store, "baru", "吉克阿木", 3);
    store.create("hazard_site", Some("tujiang"), &[]).unwrap();
    store
        .set(tujiang[3], "dibao_status", Value::Choice("enrolled".into()))
        .unwrap();
    store
        .set(tujiang[4], "dibao_status", Value::Choice("enrolled".into()))
        .unwrap();

    // Paging through a village returns every record once, in id order.
    let mut seen = Vec::new();
    let mut q = Query {
        entity: Some("household".into()),
        village: Some("tujiang".into()),
        limit: 10,
        ..Query::default()
    };
    loop {
        let page = store.query(&q).unwrap();
        seen.extend(page.records.iter().map(|r| r.id));
        match page.next {
            Some(next) => q.after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, tujiang);

    let enrolled = store
        .query(&Query {
            equals: vec![("dibao_status".into(), Value::Choice("enrolled".into()))],
            ..Query::default()
        })
        .unwrap();
    assert_eq!(
        enrolled.records.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![tujiang[3], tujiang[4]]
    );
    assert_eq!(enrolled.records[0].values["household_head"], json!("阿木3"));

    let contains = store
        .query(&Query {
            contains: vec![("household_head".into(), "吉克".into())],
            ..Query::default()
        })
        .unwrap();
    assert_eq!(contains.records.len(), 1);
    assert_eq!(contains.records[0].id, other);

    // Nothing is complete for the grid patrol yet; everything is incomplete.
    let incomplete = store
        .query(&Query {
            incomplete_for: Some("grid_patrol".into()),
            limit: 1000,
            ..Query::default()
        })
        .unwrap();
    assert_eq!(incomplete.records.len(), 26);
    store
        .update(
            other,
            &[
                set("grid_issue", Value::Choice("none".into())),
                set(
                    "inspection_date",
                    Value::Date(chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()),
                ),
            ],
        )
        .unwrap();
    let complete = store
        .query(&Query {
            complete_for: Some("grid_patrol".into()),
            ..Query::default()
        })
        .unwrap();
    assert_eq!(
        complete.records.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![other]
    );

    // A LIKE wildcard typed by a user is literal text.
    let pct = store
        .query(&Query {
            contains: vec![("household_head".into(), "%".into())],
            ..Query::default()
        })
        .unwrap();
    assert!(pct.records.is_empty());

    for (bad, want) in [
        (
            Query {
                entity: Some("castle".into()),
                ..Query::default()
            },
            "unknown entity type `castle`",
        ),
        (
            Query {
                village: Some("atlantis".into()),
                ..Query::default()
            },
            "unknown village `atlantis`",
        ),
        (
            Query {
                limit: 5000,
                ..Query::default()
            },
            "bad query: limit 5000 is above the maximum page of 1000",
        ),
        (
            Query {
                equals: vec![("household_size".into(), text("3"))],
                ..Query::default()
            },
            "bad query: field `household_size` holds a whole number, the query value does not",
        ),
        (
            Query {
                entity: Some("person".into()),
                complete_for: Some("dibao_check".into()),
                ..Query::default()
            },
            "bad query: form `dibao_check` is for `household` records, not `person`",
        ),
    ] {
        assert_eq!(store.query(&bad).unwrap_err().to_string(), want);
    }
}

#[test]
fn concurrent_edits_of_one_field_are_kept_with_authors_and_resolve_settles_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_764_000_000_000));
    let a = open(&dir, "a.db", "cadre-a", clock.clone());
    let b = open(&dir, "b.db", "cadre-b", clock.clone());
    let id = household(&a, "xinmin", "曲比", 4);
    b.merge(id, &a.export(id).unwrap()).unwrap();

    clock.advance(60_000);
    a.set(id, "household_size", Value::Integer(5)).unwrap();
    clock.advance(1_000);
    b.set(id, "household_size", Value::Integer(6)).unwrap();
    b.set(id, "phone", text("13912345678")).unwrap();

    // Exchange both ways; duplicates are harmless.
    let from_a = a.export(id).unwrap();
    let from_b = b.export(id).unwrap();
    assert_eq!(a.merge(id, &from_b).unwrap().new_changes, 2);
    assert_eq!(b.merge(id, &from_a).unwrap().new_changes, 1);
    assert_eq!(b.merge(id, &from_a).unwrap().new_changes, 0);

    for store in [&a, &b] {
        let conflicts = store.conflicts(id).unwrap();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].field, "household_size");
        let mut values: Vec<(serde_json::Value, Option<String>, i64)> = conflicts[0]
            .values
            .iter()
            .map(|v| (v.value.clone().unwrap(), v.by.cadre.clone(), v.by.at_ms))
            .collect();
        values.sort_by_key(|v| v.2);
        assert_eq!(
            values,
            vec![
                (json!(5), Some("cadre-a".into()), 1_764_000_060_000),
                (json!(6), Some("cadre-b".into()), 1_764_000_061_000),
            ]
        );
        assert_eq!(conflicts[0].values.iter().filter(|v| v.shown).count(), 1);
        let view = store.get(id).unwrap();
        assert_eq!(view.conflicted, vec!["household_size"]);
        assert_eq!(view.value("phone"), Some(&json!("13912345678")));
    }
    assert_eq!(
        a.index_rows().unwrap(),
        b.index_rows().unwrap(),
        "indexes converge"
    );
    let conflicted = a
        .query(&Query {
            conflicted_only: true,
            ..Query::default()
        })
        .unwrap();
    assert_eq!(conflicted.records.len(), 1);

    // Resolving needs a conflict, and validates the chosen value.
    assert!(matches!(
        a.resolve(id, "phone", None),
        Err(Error::Model(ModelError::NoConflict { .. }))
    ));
    assert!(matches!(
        a.resolve(id, "household_size", Some(Value::Integer(0))),
        Err(Error::Model(ModelError::Invalid(_)))
    ));
    a.resolve(id, "household_size", Some(Value::Integer(6)))
        .unwrap();
    b.merge(id, &a.export(id).unwrap()).unwrap();
    for store in [&a, &b] {
        assert!(store.conflicts(id).unwrap().is_empty());
        assert_eq!(
            store.get(id).unwrap().value("household_size"),
            Some(&json!(6))
        );
    }
    assert_eq!(a.index_rows().unwrap(), b.index_rows().unwrap());

    // History keeps every value with who, which device and when.
    let history = b.history(id).unwrap();
    let sizes: Vec<(serde_json::Value, String, String)> = history
        .iter()
        .filter_map(|h| match &h.event {
            HistoryEvent::Set { field, value } if field == "household_size" => Some((
                value.clone(),
                h.by.cadre.clone().unwrap(),
                h.by.device.clone().unwrap(),
            )),
            _ => None,
        })
        .collect();
    let values: Vec<_> = sizes.iter().map(|s| s.0.clone()).collect();
    for v in [json!(4), json!(5), json!(6)] {
        assert!(values.contains(&v), "{v} in history {values:?}");
    }
    assert!(
        sizes
            .iter()
            .any(|s| s.1 == "cadre-a" && s.2 == a.device_id().as_str())
    );
    assert!(
        sizes
            .iter()
            .any(|s| s.1 == "cadre-b" && s.2 == b.device_id().as_str())
    );
    assert!(matches!(history[0].event, HistoryEvent::Created { .. }));
    // Depending on which value automerge showed, the resolution is stored as a new write
    // of 6 or as the removal of the competing 5; either way history shows it as RESOLVED
    // (not as an ordinary set), by cadre-a, with 6 kept.
    let resolution = history.last().unwrap();
    assert_eq!(resolution.by.cadre.as_deref(), Some("cadre-a"));
    assert!(
        matches!(&resolution.event,
            HistoryEvent::Resolved { field, value }
                if field == "household_size" && *value == json!(6)),
        "{resolution:?}"
    );
    assert_eq!(
        serde_json::to_value(resolution).unwrap()["kind"],
        json!("resolved")
    );
}

#[test]
fn resolving_with_a_new_value_shows_as_resolved_in_history_and_a_plain_set_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_764_000_000_000));
    let a = open(&dir, "a.db", "cadre-a", clock.clone());
    let b = open(&dir, "b.db", "cadre-b", clock.clone());
    let id = household(&a, "xinmin", "曲比", 4);
    b.merge(id, &a.export(id).unwrap()).unwrap();
    a.set(id, "household_size", Value::Integer(5)).unwrap();
    b.set(id, "household_size", Value::Integer(6)).unwrap();
    a.merge(id, &b.export(id).unwrap()).unwrap();
    a.resolve(id, "household_size", Some(Value::Integer(7)))
        .unwrap();
    a.set(id, "household_size", Value::Integer(8)).unwrap();
    let events: Vec<HistoryEvent> = a
        .history(id)
        .unwrap()
        .into_iter()
        .map(|h| h.event)
        .filter(|e| matches!(e, HistoryEvent::Set { field, .. } | HistoryEvent::Resolved { field, .. } if field == "household_size"))
        .collect();
    let shown: Vec<String> = events
        .iter()
        .map(|e| match e {
            HistoryEvent::Set { value, .. } => format!("SET {value}"),
            HistoryEvent::Resolved { value, .. } => format!("RESOLVED {value}"),
            _ => unreachable!(),
        })
        .collect();
    let mut concurrent = shown[1..3].to_vec();
    concurrent.sort();
    assert_eq!(shown[0], "SET 4");
    assert_eq!(concurrent, vec!["SET 5", "SET 6"]);
    assert_eq!(shown[3..], ["RESOLVED 7", "SET 8"]);
}

#[test]
fn delete_is_a_recoverable_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "d.db", "cadre-1", Arc::new(ManualClock::new(1)));
    let id = household(&store, "lianhe", "马海", 2);
    assert!(store.delete(id).unwrap());
    assert!(!store.delete(id).unwrap(), "deleting twice changes nothing");
    assert!(store.query(&Query::default()).unwrap().records.is_empty());
    let all = store
        .query(&Query {
            include_deleted: true,
            ..Query::default()
        })
        .unwrap();
    assert!(all.records[0].deleted);
    assert_eq!(
        store
            .set(id, "phone", text("13800000000"))
            .unwrap_err()
            .to_string(),
        format!("record {id} is deleted; restore it before editing")
    );
    assert!(store.restore(id).unwrap());
    assert_eq!(
        store.get(id).unwrap().value("household_head"),
        Some(&json!("马海"))
    );
    let kinds: Vec<_> = store
        .history(id)
        .unwrap()
        .into_iter()
        .filter(|h| matches!(h.event, HistoryEvent::Deleted | HistoryEvent::Restored))
        .map(|h| h.event)
        .collect();
    assert_eq!(kinds, vec![HistoryEvent::Deleted, HistoryEvent::Restored]);
}

#[test]
fn pending_tracks_what_the_server_has_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let phone = open(&dir, "p.db", "cadre-1", Arc::new(ManualClock::new(1)));
    let server = open(&dir, "s.db", "server", Arc::new(ManualClock::new(1)));
    let id = household(&phone, "shanzhong", "阿苏", 3);
    let id2 = household(&phone, "shanzhong", "阿苏二", 3);
    let pending = phone.pending(100).unwrap();
    assert_eq!(
        pending.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![id, id2]
    );
    assert!(pending[0].server_heads.is_empty());

    // Send the first; the server acknowledges with its heads.
    let bytes = phone.outgoing(id, &pending[0].server_heads).unwrap();
    server.merge(id, &bytes).unwrap();
    phone
        .acknowledge(id, pending[0].local_seq, &server.heads(id).unwrap())
        .unwrap();
    assert_eq!(
        phone
            .pending(100)
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect::<Vec<_>>(),
        vec![id2]
    );

    // A later edit makes it pending again, and only the new change travels.
    phone.set(id, "household_size", Value::Integer(4)).unwrap();
    let p = phone
        .pending(100)
        .unwrap()
        .into_iter()
        .find(|p| p.id == id)
        .unwrap();
    let delta = phone.outgoing(id, &p.server_heads).unwrap();
    assert!(
        delta.len() < bytes.len(),
        "delta {} < full {}",
        delta.len(),
        bytes.len()
    );
    assert_eq!(server.merge(id, &delta).unwrap().new_changes, 1);
    // An acknowledgement of an older write does not hide a newer one.
    phone
        .acknowledge(id, p.local_seq - 1, &server.heads(id).unwrap())
        .unwrap();
    assert!(phone.pending(100).unwrap().iter().any(|x| x.id == id));
    phone
        .acknowledge(id, p.local_seq, &server.heads(id).unwrap())
        .unwrap();
    assert!(!phone.pending(100).unwrap().iter().any(|x| x.id == id));
    assert_eq!(
        server.get(id).unwrap().value("household_size"),
        Some(&json!(4))
    );
    // Records that arrive from the server are not pending on the receiver.
    assert!(server.pending(100).unwrap().is_empty());
    // Pending survives reopen.
    drop(phone);
    let phone = open(&dir, "p.db", "cadre-1", Arc::new(ManualClock::new(1)));
    assert_eq!(
        phone
            .pending(100)
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect::<Vec<_>>(),
        vec![id2]
    );
}

#[test]
fn merge_refuses_documents_that_are_not_records_and_keeps_the_store_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, "m.db", "cadre-1", Arc::new(ManualClock::new(1)));
    let id = RecordId::new();
    assert!(store.merge(id, b"garbage").is_err());
    let mut doc = automerge::AutoCommit::new();
    automerge::transaction::Transactable::put(&mut doc, automerge::ROOT, "x", 1).unwrap();
    let err = store.merge(id, &doc.save()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("record {id} is damaged: not a yibiao record (no format marker)")
    );
    assert_eq!(store.stats().unwrap().records, 0);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn documents_compact_into_one_snapshot_without_losing_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let store = Store::open_with(
        &path,
        schema(),
        CadreId::new("cadre-1").unwrap(),
        Arc::new(ManualClock::new(1)),
        StoreConfig {
            compact_after_chunks: 8,
            cached_documents: 1,
        },
    )
    .unwrap();
    let id = household(&store, "baru", "日色", 1);
    for i in 1..=20 {
        store
            .set(id, "household_size", Value::Integer(i % 30 + 1))
            .unwrap();
    }
    let stats = store.stats().unwrap();
    assert!(
        stats.chunks < 8,
        "automatic compaction kept chunks low: {}",
        stats.chunks
    );
    store.compact_all().unwrap();
    assert_eq!(store.stats().unwrap().chunks, 1);
    drop(store);
    let store = Store::open(&path, schema(), CadreId::new("cadre-1").unwrap()).unwrap();
    assert_eq!(
        store.get(id).unwrap().value("household_size"),
        Some(&json!(21))
    );
    assert_eq!(
        store.history(id).unwrap().len(),
        2 + 1 + 20,
        "history survives compaction"
    );
}

#[test]
fn the_device_keeps_its_identity_across_reopen_and_stores_differ() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir, "a.db", "c", Arc::new(ManualClock::new(1)));
    let (dev, actor) = (a.device_id().clone(), a.actor_hex());
    drop(a);
    let a = open(&dir, "a.db", "c", Arc::new(ManualClock::new(1)));
    assert_eq!((a.device_id().clone(), a.actor_hex()), (dev, actor.clone()));
    let b = open(&dir, "b.db", "c", Arc::new(ManualClock::new(1)));
    assert_ne!(b.actor_hex(), actor);
}
