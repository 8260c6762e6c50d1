//! Findings (ADR 0012): the log converges under any merge order, the rules say who may
//! take which step, a phone's pushed changes are checked by them, and the report counts
//! a case worked out by hand.

#![allow(clippy::unwrap_used, reason = "tests")]

use automerge::ActorId;
use proptest::prelude::*;
use yibiao_model::Schema;
use yibiao_model::finding::report::{Entry, report};
use yibiao_model::finding::{
    Actor, FindingSpec, FindingState, Role, Severity, Step, StepKind, Unit, append_step,
    check_finding_changes, fold, may_record, may_take, new_finding_doc, read_finding,
};
use yibiao_model::ids::{Author, CadreId, DeviceId, RecordId};
use yibiao_model::record::Record;

fn author(cadre: &str, device: &str) -> Author {
    Author {
        cadre: CadreId::new(cadre).unwrap(),
        device: DeviceId::new(device).unwrap(),
    }
}

fn spec(category: &str, found_by: Actor, found_ms: i64) -> FindingSpec {
    FindingSpec {
        category: category.into(),
        description: "建筑垃圾未清运".into(),
        record: None,
        gps: Some(yibiao_model::finding::GpsPoint {
            lat: 27.7,
            lon: 102.3,
        }),
        photos: vec!["sha256:ab12".into()],
        severity: Severity::Medium,
        found_by,
        found_ms,
    }
}

fn staff_doc() -> Record {
    new_finding_doc(
        RecordId::new(),
        ActorId::random(),
        &spec(
            "living_environment",
            Actor::Department("discipline".into()),
            1,
        ),
        "baru",
        Some("tujiang"),
        &author("server", "server"),
        1,
    )
    .unwrap()
}

fn village() -> Unit {
    Unit::Village("tujiang".into())
}

fn hand_over(unit: Unit) -> StepKind {
    StepKind::HandOver {
        unit,
        deadline_ms: 1_000,
    }
}

fn resolve(unit: Unit) -> StepKind {
    StepKind::Resolve {
        unit,
        note: "已清运".into(),
        evidence: vec!["sha256:cd34".into()],
    }
}

/// Step kinds a replica may append, by index.
fn kind(i: u8) -> StepKind {
    match i % 7 {
        0 => hand_over(village()),
        1 => hand_over(Unit::Department("housing".into())),
        2 => resolve(village()),
        3 => resolve(Unit::Department("housing".into())),
        4 => StepKind::Accept,
        5 => StepKind::SendBack {
            reason: "未清运干净".into(),
        },
        _ => StepKind::HoldToAccount {
            who: "村主任".into(),
            measure: "提醒谈话".into(),
        },
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append { replica: usize, kind: u8, at: i64 },
    Merge { into: usize, from: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, any::<u8>(), 0..100i64).prop_map(|(replica, kind, at)| Op::Append {
            replica,
            kind,
            at
        }),
        (0..3usize, 0..3usize).prop_map(|(into, from)| Op::Merge { into, from }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random concurrent steps on three replicas, merged in random orders: every replica
    /// ends with the same log and the same status, and no step is lost.
    #[test]
    fn concurrent_steps_merged_in_any_order_give_one_log_and_one_status(
        ops in prop::collection::vec(op(), 1..40),
        order in Just(vec![0usize, 1, 2]).prop_shuffle(),
    ) {
        let origin = staff_doc();
        let mut replicas: Vec<Record> = (0..3)
            .map(|_| Record::load(origin.id(), ActorId::random(), &[origin.save()]).unwrap())
            .collect();
        let mut written = Vec::new();
        for op in ops {
            match op {
                Op::Append { replica, kind: k, at } => {
                    let step = Step::new(kind(k), Actor::Staff(format!("s{replica}")), at);
                    written.push(step.id.clone());
                    append_step(&mut replicas[replica], &step, &author("c1", "d1"), at).unwrap();
                }
                Op::Merge { into, from } if into != from => {
                    let bytes = replicas[from].save();
                    replicas[into].merge_bytes(&bytes).unwrap();
                }
                Op::Merge { .. } => {}
            }
        }
        // Each replica merges the others in its own random order.
        let saved: Vec<Vec<u8>> = replicas.iter().map(Record::save).collect();
        for (i, r) in replicas.iter_mut().enumerate() {
            for &j in order.iter().cycle().skip(i).take(3) {
                r.merge_bytes(&saved[j]).unwrap();
            }
        }
        let docs: Vec<_> = replicas.iter().map(|r| read_finding(r).unwrap()).collect();
        let ids = |d: &yibiao_model::finding::FindingDoc| {
            d.steps.iter().map(|s| s.id.clone()).collect::<Vec<_>>()
        };
        for d in &docs[1..] {
            prop_assert_eq!(ids(d), ids(&docs[0]));
            prop_assert_eq!(d.lifecycle(), docs[0].lifecycle());
        }
        let mut held = ids(&docs[0]);
        held.sort();
        written.sort();
        prop_assert_eq!(held, written, "every step written is in the log");
        prop_assert_eq!(docs[0].lifecycle().steps.len(), docs[0].steps.len());
    }
}

#[test]
fn two_cadres_resolving_at_once_keep_both_and_the_first_in_list_order_counts() {
    let mut office = staff_doc();
    let hand = Step::new(hand_over(village()), Actor::Staff("li".into()), 2);
    append_step(&mut office, &hand, &author("server", "server"), 2).unwrap();
    let mut a = Record::load(office.id(), ActorId::random(), &[office.save()]).unwrap();
    let mut b = Record::load(office.id(), ActorId::random(), &[office.save()]).unwrap();
    let ra = Step::new(resolve(village()), Actor::Cadre("amu".into()), 3);
    let rb = Step::new(resolve(village()), Actor::Cadre("jiji".into()), 4);
    append_step(&mut a, &ra, &author("amu", "dev-a"), 3).unwrap();
    append_step(&mut b, &rb, &author("jiji", "dev-b"), 4).unwrap();
    office.merge_bytes(&b.save()).unwrap();
    office.merge_bytes(&a.save()).unwrap();
    let l = read_finding(&office).unwrap().lifecycle();
    assert_eq!(l.state, FindingState::Resolved);
    assert_eq!(l.steps.len(), 3);
    let superseded: Vec<_> = l.steps.iter().filter_map(|s| s.superseded).collect();
    assert_eq!(superseded, vec!["already_resolved"]);
}

/// Every role against every step: allowed ones pass, forbidden ones name the role, the
/// step and why.
#[test]
fn each_role_may_take_exactly_its_steps() {
    let mut doc = staff_doc();
    let dept = Unit::Department("housing".into());
    for unit in [village(), dept.clone()] {
        let s = Step::new(hand_over(unit), Actor::Staff("li".into()), 2);
        append_step(&mut doc, &s, &author("server", "server"), 2).unwrap();
    }
    let handed = read_finding(&doc).unwrap();
    let fresh = read_finding(&staff_doc()).unwrap();
    let hold = kind(6);
    let back = kind(5);
    let roles = [
        Role::Village("tujiang".into()),
        Role::Village("xiba".into()),
        Role::Department("housing".into()),
        Role::Department("civil_affairs".into()),
        Role::Township,
        Role::Discipline,
    ];
    // (step, finding, roles allowed by index into `roles`)
    let cases: Vec<(StepKind, &_, Vec<usize>)> = vec![
        (hand_over(village()), &fresh, vec![4, 5]),
        (hand_over(Unit::Village("xiba".into())), &fresh, vec![]),
        (resolve(village()), &handed, vec![0]),
        (resolve(village()), &fresh, vec![]),
        (resolve(dept.clone()), &handed, vec![2]),
        (StepKind::Accept, &handed, vec![4, 5]),
        (back, &handed, vec![4, 5]),
        (hold, &handed, vec![5]),
    ];
    for (step, finding, allowed) in cases {
        for (i, role) in roles.iter().enumerate() {
            let got = may_take(role, &step, finding);
            if allowed.contains(&i) {
                assert!(got.is_ok(), "{role:?} may take {}: {got:?}", step.name());
            } else {
                let m = got.expect_err("refused");
                assert_eq!(m.code, "finding_forbidden");
                assert_eq!(m.param("step"), step.name());
                assert_eq!(m.param("role"), role.name());
                assert!(!m.param("why").is_empty());
            }
        }
    }
    assert_eq!(
        may_take(&roles[0], &resolve(village()), &fresh)
            .unwrap_err()
            .param("why"),
        "not_handed_to_you"
    );
    assert!(may_record(&roles[0], Some("tujiang")).is_ok());
    assert!(may_record(&roles[1], Some("tujiang")).is_err());
    assert!(may_record(&roles[2], Some("tujiang")).is_err());
    assert!(may_record(&Role::Discipline, Some("tujiang")).is_ok());
    assert!(Role::Department("housing".into()).sees(&handed));
    assert!(!Role::Department("housing".into()).sees(&fresh));
    assert!(!Role::Village("xiba".into()).sees(&handed));
}

/// What a phone pushes, checked as the hub checks it: a change by `cadre` on `device`
/// after `before`, merged into `server`.
fn push(
    server: &Record,
    phone: &mut Record,
    before: &[automerge::ChangeHash],
    role: &Role,
    device: &str,
) -> Result<(), yibiao_model::finding::FindingRefusal> {
    let mut merged = server.clone();
    merged.merge_bytes(&phone.save_after(before)).unwrap();
    let changes = merged.doc().get_changes(before);
    check_finding_changes(
        &Schema::baru_example(),
        &merged,
        &changes,
        before.is_empty(),
        role,
        device,
    )
}

#[test]
fn a_phone_records_in_its_village_and_resolves_what_was_handed_to_it() {
    let amu = author("amu", "dev-a");
    let tujiang = Role::Village("tujiang".into());
    // Recording a finding about its own village passes; another village's is refused.
    let phone = new_finding_doc(
        RecordId::new(),
        ActorId::random(),
        &spec("safety_hazard", Actor::Cadre("amu".into()), 5),
        "baru",
        Some("tujiang"),
        &amu,
        5,
    )
    .unwrap();
    let created = phone.doc().get_changes(&[]);
    check_finding_changes(
        &Schema::baru_example(),
        &phone,
        &created,
        true,
        &tujiang,
        "dev-a",
    )
    .unwrap();
    let xiba = Role::Village("xiba".into());
    let err = check_finding_changes(
        &Schema::baru_example(),
        &phone,
        &created,
        true,
        &xiba,
        "dev-a",
    )
    .unwrap_err();
    assert_eq!(err.reason.code, "finding_forbidden");
    assert_eq!(err.reason.param("why"), "other_village");
    assert_eq!(
        err.reason.render(yibiao_model::messages::Lang::Zh),
        "village:xiba 不能执行「登记问题」：只能处理本村的问题"
    );

    // Resolving before the hand-over is refused; after it, it passes.
    let mut server = Record::load(phone.id(), ActorId::random(), &[phone.save()]).unwrap();
    let before = server.heads();
    let mut p = Record::load(phone.id(), ActorId::random(), &[server.save()]).unwrap();
    let r = Step::new(resolve(village()), Actor::Cadre("amu".into()), 6);
    append_step(&mut p, &r, &amu, 6).unwrap();
    let err = push(&server, &mut p, &before, &tujiang, "dev-a").unwrap_err();
    assert_eq!(err.reason.param("why"), "not_handed_to_you");
    let h = Step::new(hand_over(village()), Actor::Staff("li".into()), 7);
    append_step(&mut server, &h, &author("server", "server"), 7).unwrap();
    let before = server.heads();
    let mut p = Record::load(phone.id(), ActorId::random(), &[server.save()]).unwrap();
    append_step(&mut p, &r, &amu, 8).unwrap();
    push(&server, &mut p, &before, &tujiang, "dev-a").unwrap();

    // A phone may not hand over, hold to account, sign as another cadre, or reword.
    for (kind, by) in [
        (hand_over(village()), "amu"),
        (kind(6), "amu"),
        (resolve(village()), "jiji"),
    ] {
        let mut p = Record::load(phone.id(), ActorId::random(), &[server.save()]).unwrap();
        append_step(
            &mut p,
            &Step::new(kind, Actor::Cadre(by.into()), 9),
            &amu,
            9,
        )
        .unwrap();
        assert!(push(&server, &mut p, &before, &tujiang, "dev-a").is_err());
    }
    let mut p = Record::load(phone.id(), ActorId::random(), &[server.save()]).unwrap();
    p.set_deleted(true, &amu, 10).unwrap();
    let err = push(&server, &mut p, &before, &tujiang, "dev-a").unwrap_err();
    assert!(err.detail.contains("only append steps"), "{}", err.detail);
}

/// Five findings, worked by hand:
///
/// | # | category | village | steps | as of 100 |
/// |---|---|---|---|---|
/// | 1 | work_style | tujiang | hand 10 (due 50), resolve 30, accept 40 | closed, on time, 20 |
/// | 2 | work_style | xiba | hand 10 (due 50), resolve 20, send back 25, resolve 60, accept | closed, late, sent back, 50 |
/// | 3 | livelihood_funds | xiba | hand 10 (due 50), hold to account 70 | overdue, held |
/// | 4 | livelihood_funds | tujiang | none | found only |
/// | 5 | work_style | tujiang | found at 200: outside the period | not counted |
#[test]
fn the_report_counts_a_period_as_worked_by_hand() {
    let office = || Actor::Staff("li".into());
    let at = |kind, ms| Step::new(kind, office(), ms);
    let hand = |v: &str| {
        at(
            StepKind::HandOver {
                unit: Unit::Village(v.into()),
                deadline_ms: 50,
            },
            10,
        )
    };
    let res = |v: &str, ms| at(resolve(Unit::Village(v.into())), ms);
    let logs = [
        (
            "work_style",
            "tujiang",
            1,
            vec![
                hand("tujiang"),
                res("tujiang", 30),
                at(StepKind::Accept, 40),
            ],
        ),
        (
            "work_style",
            "xiba",
            2,
            vec![
                hand("xiba"),
                res("xiba", 20),
                at(kind(5), 25),
                res("xiba", 60),
                at(StepKind::Accept, 61),
            ],
        ),
        (
            "livelihood_funds",
            "xiba",
            3,
            vec![hand("xiba"), at(kind(6), 70)],
        ),
        ("livelihood_funds", "tujiang", 4, vec![]),
        ("work_style", "tujiang", 200, vec![]),
    ];
    let specs: Vec<_> = logs
        .iter()
        .map(|(c, _, t, _)| spec(c, office(), *t))
        .collect();
    let folded: Vec<_> = logs.iter().map(|(_, _, _, s)| fold(s)).collect();
    let entries = (0..logs.len()).map(|i| Entry {
        spec: &specs[i],
        village: Some(logs[i].1),
        lifecycle: &folded[i],
    });
    let r = report(entries, 0, 100, 100);
    let t = &r.total;
    assert_eq!(
        (
            t.found,
            t.handed_over,
            t.resolved,
            t.resolved_on_time,
            t.overdue
        ),
        (4, 3, 2, 1, 2)
    );
    assert_eq!((t.sent_back, t.held_to_account, t.closed), (1, 1, 2));
    // (30 - 10 + 60 - 10) / 2
    assert_eq!(t.avg_resolve_ms, Some(35));
    let keys = |rows: &[yibiao_model::finding::report::Row]| {
        rows.iter()
            .map(|r| (r.key.clone(), r.counts.found, r.counts.overdue))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&r.by_category),
        vec![
            ("livelihood_funds".into(), 2, 1),
            ("work_style".into(), 2, 1)
        ]
    );
    assert_eq!(
        keys(&r.by_village),
        vec![("tujiang".into(), 2, 0), ("xiba".into(), 2, 2)]
    );
    assert_eq!(
        keys(&r.by_unit),
        vec![
            ("unassigned".into(), 1, 0),
            ("village:tujiang".into(), 1, 0),
            ("village:xiba".into(), 2, 2)
        ]
    );
}

/// A phone's change inserting `step` at `index` of the steps list as the phone holds it
/// (`phone_bytes`), checked as the hub checks it after merging into `server`.
fn insert_at(
    server: &Record,
    phone_bytes: &[u8],
    before: &[automerge::ChangeHash],
    index: usize,
    step: &Step,
    who: &Author,
) -> Result<(), yibiao_model::finding::FindingRefusal> {
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ReadDoc};
    let mut doc = automerge::Automerge::load(phone_bytes)
        .unwrap()
        .with_actor(ActorId::random());
    let steps = match doc.get(automerge::ROOT, "steps").unwrap() {
        Some((automerge::Value::Object(ObjType::List), id)) => id,
        other => panic!("no steps list: {other:?}"),
    };
    let mut tx = doc.transaction();
    tx.insert(&steps, index, serde_json::to_string(step).unwrap())
        .unwrap();
    tx.commit_with(
        automerge::transaction::CommitOptions::default()
            .with_message(serde_json::to_string(who).unwrap())
            .with_time(9),
    );
    let mut merged = server.clone();
    merged.merge_bytes(&doc.save_after(before)).unwrap();
    // What the phone pushes: the changes the server does not hold yet.
    let changes = merged.doc().get_changes(&server.heads());
    assert_eq!(changes.len(), 1);
    check_finding_changes(
        &Schema::baru_example(),
        &merged,
        &changes,
        false,
        &Role::Village("tujiang".into()),
        "dev-a",
    )
}

#[test]
fn a_phone_may_only_append_after_the_steps_it_had_seen() {
    let amu = author("amu", "dev-a");
    let office = author("server", "server");
    let mut server = staff_doc();
    let first = Step::new(hand_over(village()), Actor::Staff("li".into()), 7);
    append_step(&mut server, &first, &office, 7).unwrap();
    let seen_first = server.heads();
    let phone_saw_first = server.save();
    // The office hands it over again (a new deadline); the phone syncs and sees that.
    let again = Step::new(
        StepKind::HandOver {
            unit: village(),
            deadline_ms: 2_000,
        },
        Actor::Staff("li".into()),
        8,
    );
    append_step(&mut server, &again, &office, 8).unwrap();
    let seen_both = server.heads();
    let resolved = Step::new(resolve(village()), Actor::Cadre("amu".into()), 9);

    // Slipping the resolution in before the hand-over it had seen is refused.
    let err = insert_at(&server, &server.save(), &seen_both, 1, &resolved, &amu).unwrap_err();
    assert!(
        err.detail.contains("appended after every step"),
        "{}",
        err.detail
    );
    let err = insert_at(&server, &server.save(), &seen_both, 0, &resolved, &amu).unwrap_err();
    assert!(
        err.detail.contains("appended after every step"),
        "{}",
        err.detail
    );
    // Appended at the end of what it had seen, it passes.
    insert_at(&server, &server.save(), &seen_both, 2, &resolved, &amu).unwrap();
    // A phone that had seen only the first hand-over appends after it: concurrent with
    // the second, not inserted before anything it knew, so it passes.
    insert_at(&server, &phone_saw_first, &seen_first, 1, &resolved, &amu).unwrap();
}

/// Categories (schema format 2): a phone's finding of a category the schema does not
/// know is refused by the hub's rule with a coded reason in both languages; a schema
/// without categories accepts any key, as before format 2.
#[test]
fn a_finding_of_a_category_the_schema_does_not_know_is_refused_with_the_choices() {
    use yibiao_model::messages::Lang;
    let amu = author("amu", "dev-a");
    let tujiang = Role::Village("tujiang".into());
    let phone = new_finding_doc(
        RecordId::new(),
        ActorId::random(),
        &spec("dust", Actor::Cadre("amu".into()), 5),
        "baru",
        Some("tujiang"),
        &amu,
        5,
    )
    .unwrap();
    let created = phone.doc().get_changes(&[]);
    let baru = Schema::baru_example();
    let err = check_finding_changes(&baru, &phone, &created, true, &tujiang, "dev-a").unwrap_err();
    assert_eq!(err.reason.code, "unknown_category");
    assert_eq!(err.reason.param("got"), "dust");
    let zh = err.reason.render(Lang::Zh);
    assert!(
        zh.starts_with("问题类别「dust」不在本镇的类别中；可选：")
            && zh.contains("疫情防控 (epidemic_prevention)"),
        "{zh}"
    );
    let en = err.reason.render(Lang::En);
    assert!(en.contains("Livelihood funds (livelihood_funds)"), "{en}");

    // The same schema without its categories (format 1) accepts the key.
    let cut = yibiao_model::schema::BARU_TOML
        .split("# Finding categories")
        .next()
        .unwrap()
        .replace("format = 2 ", "format = 1 ");
    let older = Schema::from_toml_str(&cut, "older.toml").unwrap();
    assert!(older.finding_categories.is_empty() && older.format == 1);
    check_finding_changes(&older, &phone, &created, true, &tujiang, "dev-a").unwrap();
}

/// A hand-over that names no unit or deadline takes the category's, written out in
/// full; what the office names wins; a township-level finding of a category whose
/// unit is "the village" must name its unit.
#[test]
fn a_hand_over_takes_the_category_defaults_for_what_it_leaves_out() {
    use yibiao_model::finding::categories::hand_over;
    const DAY: i64 = 24 * 3600 * 1000;
    let baru = Schema::baru_example();
    let now = 1_000_000;
    let env = spec("living_environment", Actor::Staff("li".into()), 1);
    assert_eq!(
        hand_over(&baru, &env, Some("tujiang"), None, None, now).unwrap(),
        StepKind::HandOver {
            unit: village(),
            deadline_ms: now + 7 * DAY
        }
    );
    let funds = spec("livelihood_funds", Actor::Staff("li".into()), 1);
    assert_eq!(
        hand_over(&baru, &funds, Some("tujiang"), None, None, now).unwrap(),
        StepKind::HandOver {
            unit: Unit::Department("public_services".into()),
            deadline_ms: now + 10 * DAY
        }
    );
    assert_eq!(
        hand_over(
            &baru,
            &funds,
            Some("tujiang"),
            Some(village()),
            Some(5),
            now
        )
        .unwrap(),
        StepKind::HandOver {
            unit: village(),
            deadline_ms: 5
        }
    );
    let err = hand_over(&baru, &env, None, None, None, now).unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.param("what")),
        ("hand_over_needs", "unit")
    );
    assert_eq!(
        err.render(yibiao_model::messages::Lang::Zh),
        "类别「living_environment」没有默认的责任单位，移交时请写明"
    );
    let odd = spec("not_in_schema", Actor::Staff("li".into()), 1);
    let err = hand_over(&baru, &odd, Some("tujiang"), Some(village()), None, now).unwrap_err();
    assert_eq!(err.param("what"), "deadline");
}

/// The report's rows carry the schema's labels: a category's, a village's, a unit's;
/// a key the schema does not name reads as itself.
#[test]
fn the_report_rows_read_with_the_schema_labels() {
    let baru = Schema::baru_example();
    let specs = [
        spec("livelihood_funds", Actor::Staff("li".into()), 10),
        spec("retired_key", Actor::Staff("li".into()), 11),
    ];
    let handed = fold(&[Step::new(
        StepKind::HandOver {
            unit: Unit::Department("public_services".into()),
            deadline_ms: 100,
        },
        Actor::Staff("li".into()),
        12,
    )]);
    let none = fold(&[]);
    let entries = [
        Entry {
            spec: &specs[0],
            village: Some("tujiang"),
            lifecycle: &handed,
        },
        Entry {
            spec: &specs[1],
            village: None,
            lifecycle: &none,
        },
    ];
    let r = report(entries, 0, 1_000, 50).labelled(&baru);
    let labels = |rows: &[yibiao_model::finding::report::Row]| {
        rows.iter()
            .map(|r| (r.key.clone(), r.label_zh.clone(), r.label_en.clone()))
            .collect::<Vec<_>>()
    };
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        labels(&r.by_category),
        [
            s("livelihood_funds", "民生资金", "Livelihood funds"),
            s("retired_key", "retired_key", "retired_key")
        ]
    );
    assert_eq!(
        labels(&r.by_village),
        [
            s("township", "镇级", "Township level"),
            s("tujiang", "土匠村", "Tujiang")
        ]
    );
    assert_eq!(
        labels(&r.by_unit),
        [
            s(
                "department:public_services",
                "公共服务办公室(民政)",
                "Public services office (civil affairs)"
            ),
            s("unassigned", "未移交", "Not handed over")
        ]
    );
}
