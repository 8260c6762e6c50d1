//! The discipline inspection of the Baru day (issue 15, ADR 0012): the discipline office
//! records five findings in three villages over HTTP and hands them over; the village
//! phones receive them through the weak links, resolve them offline and sync; one is
//! sent back and resolved again; one is left unresolved past its deadline and held to
//! account; the weekly report (通报) is printed and checked against what the day did.

use super::*;

/// One finding of the inspection and what the day does with it.
struct Planned {
    village: &'static str,
    category: &'static str,
    description: &'static str,
    severity: &'static str,
    /// The village resolves it (false: nobody does, it becomes overdue).
    resolved: bool,
    /// The first resolution is sent back.
    sent_back: bool,
}

const PLAN: [Planned; 5] = [
    Planned {
        village: "tujiang",
        category: "epidemic_prevention",
        description: "村卫生室门口未落实口罩要求 / masks not enforced at the clinic door",
        severity: "medium",
        resolved: true,
        sent_back: false,
    },
    Planned {
        village: "tujiang",
        category: "living_environment",
        description: "村口建筑垃圾未清运 / construction rubbish at the village entrance not cleared",
        severity: "low",
        resolved: true,
        sent_back: false,
    },
    Planned {
        village: "baru",
        category: "livelihood_funds",
        description: "上月低保发放未公示 / last month's minimum-living-allowance payments not posted",
        severity: "high",
        resolved: true,
        sent_back: true,
    },
    Planned {
        village: "baru",
        category: "work_style",
        description: "村委会值班表无人签到 / the committee's duty roster left unsigned",
        severity: "medium",
        resolved: true,
        sent_back: false,
    },
    Planned {
        village: "xinmin",
        category: "safety_hazard",
        description: "河边护栏损坏未修复 / broken riverside railing not repaired",
        severity: "high",
        resolved: false,
        sent_back: false,
    },
];

/// The figures the report must show for the plan (found, handed over, resolved, on
/// time, overdue, sent back, held to account, closed).
fn expected_counts(rows: &[&Planned]) -> [u64; 8] {
    let n = |f: &dyn Fn(&Planned) -> bool| rows.iter().filter(|p| f(p)).count() as u64;
    [
        rows.len() as u64,
        rows.len() as u64,
        n(&|p| p.resolved),
        n(&|p| p.resolved),
        n(&|p| !p.resolved),
        n(&|p| p.sent_back),
        n(&|p| !p.resolved),
        n(&|p| p.resolved),
    ]
}

const COLUMNS: [&str; 8] = [
    "found",
    "handed_over",
    "resolved",
    "resolved_on_time",
    "overdue",
    "sent_back",
    "held_to_account",
    "closed",
];

fn counts_of(c: &Json) -> [u64; 8] {
    COLUMNS.map(|k| c[k].as_u64().unwrap_or(u64::MAX))
}

/// Phones of `villages`, to sync through their weak links.
fn phones_of(t: &Township, villages: &[&str]) -> Vec<usize> {
    villages
        .iter()
        .flat_map(|v| t.by_village.get(*v).cloned().unwrap_or_default())
        .collect()
}

/// The first phone of a village: its cadre resolves the village's findings.
fn resolver<'a>(t: &'a Township, village: &str) -> Res<&'a Phone> {
    let i = *t
        .by_village
        .get(village)
        .and_then(|p| p.first())
        .ok_or_else(|| format!("no phone in {village}"))?;
    Ok(&t.phones[i])
}

/// Resolves offline, on the village's phone, every finding of `ids` it holds.
fn resolve_offline(t: &Township, ids: &[(String, &Planned)], note: &str) -> Res<u32> {
    let mut n = 0;
    for (id, p) in ids {
        let phone = resolver(t, p.village)?;
        let rid: RecordId = id.parse()?;
        let f = phone.store.finding(rid)?;
        if !f.ours_to_resolve {
            return Err(format!("{} does not hold finding {id} as its own", phone.name).into());
        }
        phone.store.open_finding(rid)?;
        phone
            .store
            .resolve_finding(rid, &format!("{note}: {}", p.description), Vec::new())?;
        n += 1;
    }
    Ok(n)
}

fn step(t: &Township, token: &str, id: &str, body: Json) -> Res<Json> {
    t.http.json(
        "POST",
        &format!("/v1/findings/{id}/steps"),
        token,
        Some(&body),
    )
}

/// Runs the inspection and checks it; mismatches go to `check`.
pub(super) fn discipline_inspection(t: &Township, check: &mut Check) -> Res<()> {
    let disc = t
        .dept_tokens
        .get("discipline_inspection")
        .ok_or("the schema has no discipline_inspection department")?;
    let (ids, short) = record_and_hand_over(t, disc)?;
    resolve_and_verify(t, disc, &ids)?;
    hold_overdue(t, disc, &ids, short, check)?;
    check_findings(t, disc, &ids, check)?;
    check_report(t, disc, check)
}

/// The three villages inspected.
const VILLAGES: [&str; 3] = ["tujiang", "baru", "xinmin"];

type Ids = Vec<(String, &'static Planned)>;

/// Records the five findings and hands them over; the villages' phones sync them.
/// Returns the findings and the short deadline of the one nobody resolves.
fn record_and_hand_over(t: &Township, disc: &str) -> Res<(Ids, i64)> {
    println!(
        "\n[20:30] the discipline office records its afternoon visit to three villages (five findings, over HTTP)"
    );
    let now = chrono::Utc::now().timestamp_millis();
    let week = now + 7 * 24 * 3600 * 1000;
    // The railing is due almost at once: nobody repairs it, so it is overdue tonight.
    let short = now + 3_000;
    let mut ids: Vec<(String, &Planned)> = Vec::new();
    for p in &PLAN {
        let f = t.http.json(
            "POST",
            "/v1/findings",
            disc,
            Some(&json!({
                "village": p.village,
                "category": p.category,
                "description": p.description,
                "severity": p.severity,
            })),
        )?;
        let id = f["id"].as_str().ok_or("no finding id")?.to_owned();
        // Categories the schema hands to "the village" with days to spare are handed
        // over naming nothing: the server writes the category's unit and deadline.
        let by_default = p.resolved
            && matches!(
                p.category,
                "epidemic_prevention" | "living_environment" | "work_style"
            );
        let body = if by_default {
            json!({"hand_over": {}})
        } else {
            let deadline = if p.resolved { week } else { short };
            json!({"hand_over": {"unit": {"village": p.village}, "deadline_ms": deadline}})
        };
        let handed = step(t, disc, &id, body)?;
        if handed["lifecycle"]["unit"] != json!({"village": p.village})
            || handed["lifecycle"]["deadline_ms"]
                .as_i64()
                .is_none_or(|d| d <= now)
        {
            return Err(format!(
                "the hand-over of {} is not to {}: {handed}",
                p.category, p.village
            )
            .into());
        }
        let how = if by_default {
            "category defaults"
        } else {
            "named"
        };
        println!(
            "  {:<8} {:<20} {} ({how})",
            p.village, p.category, p.description
        );
        ids.push((id, p));
    }
    let which = phones_of(t, &VILLAGES);
    sync_round(
        "findings reach the villages",
        &t.phones,
        &which,
        t.args.parallel,
        &t.wire,
    )?;

    Ok((ids, short))
}

/// The villages resolve offline and sync; the office accepts or sends back; the
/// reworked one is resolved again and accepted.
fn resolve_and_verify(t: &Township, disc: &str, ids: &Ids) -> Res<()> {
    let which = phones_of(t, &VILLAGES);
    println!("[21:00] the village cadres resolve them offline, then sync through the weak links");
    let to_resolve: Vec<(String, &Planned)> = ids
        .iter()
        .filter(|(_, p)| p.resolved)
        .map(|(id, p)| (id.clone(), *p))
        .collect();
    let n = resolve_offline(t, &to_resolve, "已整改 / put right")?;
    sync_round(
        "resolutions go up",
        &t.phones,
        &which,
        t.args.parallel,
        &t.wire,
    )?;
    println!("  {n} resolved offline and synced");

    println!("[21:30] the discipline office verifies: accepts, or sends back for rework");
    for (id, p) in &to_resolve {
        let body = if p.sent_back {
            json!({"send_back": {"reason": "公示照片缺少村委会签章 / the posting's photo lacks the committee's seal"}})
        } else {
            json!("accept")
        };
        step(t, disc, id, body)?;
    }
    let reworked: Vec<(String, &Planned)> = to_resolve
        .iter()
        .filter(|(_, p)| p.sent_back)
        .cloned()
        .collect();
    let baru_phones = phones_of(t, &["baru"]);
    sync_round(
        "the send-back reaches baru",
        &t.phones,
        &baru_phones,
        t.args.parallel,
        &t.wire,
    )?;
    resolve_offline(
        t,
        &reworked,
        "已加盖签章重新公示 / posted again with the seal",
    )?;
    sync_round(
        "the rework goes up",
        &t.phones,
        &baru_phones,
        t.args.parallel,
        &t.wire,
    )?;
    for (id, _) in &reworked {
        step(t, disc, id, json!("accept"))?;
    }
    println!(
        "  {} sent back, resolved again and accepted",
        reworked.len()
    );

    Ok(())
}

/// The short deadline passes unresolved: the office holds the village to account.
fn hold_overdue(t: &Township, disc: &str, ids: &Ids, short: i64, check: &mut Check) -> Res<()> {
    let which = phones_of(t, &VILLAGES);
    // The railing's deadline passes unresolved: the office holds the village to account.
    let wait_until = short + 1_000;
    let left = wait_until - chrono::Utc::now().timestamp_millis();
    if left > 0 {
        std::thread::sleep(Duration::from_millis(left as u64));
    }
    for (id, p) in ids.iter().filter(|(_, p)| !p.resolved) {
        let f = t
            .http
            .json("GET", &format!("/v1/findings/{id}"), disc, None)?;
        if f["overdue"] != json!(true) {
            check.mismatch(format!("finding {id} ({}) is not overdue", p.category));
        }
        step(
            t,
            disc,
            id,
            json!({"hold_to_account": {"who": format!("{}村委会 / the {} village committee", p.village, p.village), "measure": "提醒谈话 / reminder talk"}}),
        )?;
        println!(
            "  {} overdue in {}: the village committee is held to account (reminder talk)",
            p.category, p.village
        );
    }
    // The phones learn the day's end too.
    sync_round(
        "findings settle on the phones",
        &t.phones,
        &which,
        t.args.parallel,
        &t.wire,
    )?;

    Ok(())
}

/// Each finding's state on the server and on every phone of its village.
fn check_findings(t: &Township, disc: &str, ids: &Ids, check: &mut Check) -> Res<()> {
    // Self-check: each finding's status on the server and on its village's phone.
    for (id, p) in ids {
        let f = t
            .http
            .json("GET", &format!("/v1/findings/{id}"), disc, None)?;
        let l = &f["lifecycle"];
        let want = if p.resolved { "closed" } else { "handed_over" };
        if l["state"] != json!(want) {
            check.mismatch(format!(
                "finding {} in {} is `{}`, expected `{want}`",
                p.category, p.village, l["state"]
            ));
        }
        let (sb, held) = (l["sent_back"].as_u64(), l["held_to_account"].as_u64());
        if sb != Some(u64::from(p.sent_back)) || held != Some(u64::from(!p.resolved)) {
            check.mismatch(format!(
                "finding {} in {}: sent back {sb:?}, held to account {held:?}",
                p.category, p.village
            ));
        }
        let delivered = f["receipts"]
            .as_object()
            .is_some_and(|r| r.values().any(|m| m["delivered_ms"].is_i64()));
        if !delivered {
            check.mismatch(format!(
                "finding {} never reached {}'s phones",
                p.category, p.village
            ));
        }
        for &i in &t.by_village[p.village] {
            let phone = &t.phones[i];
            let pf = phone.store.finding(id.parse()?)?;
            if pf.state.as_str() != want {
                check.mismatch(format!(
                    "{} shows finding {} as `{}`, the server `{want}`",
                    phone.name,
                    p.category,
                    pf.state.as_str()
                ));
            }
        }
    }

    Ok(())
}

/// The weekly report (通报): printed, and every figure checked against the plan.
fn check_report(t: &Township, disc: &str, check: &mut Check) -> Res<()> {
    // The weekly report (通报).
    let report = t.http.json(
        "GET",
        &format!(
            "/v1/findings/report?from={}&to={}",
            today_plus(-6),
            today_plus(1)
        ),
        disc,
        None,
    )?;
    print_report(&report)?;
    for (section, want) in [
        ("by_category", PLAN.len()),
        ("by_village", 3),
        ("by_unit", 3),
    ] {
        let got = report[section].as_array().map_or(0, Vec::len);
        if got != want {
            check.mismatch(format!("report {section}: {got} rows, expected {want}"));
        }
    }
    let all: Vec<&Planned> = PLAN.iter().collect();
    let mut expect_row = |label: &str, got: &Json, rows: Vec<&Planned>| {
        let want = expected_counts(&rows);
        let got = counts_of(got);
        if got != want {
            check.mismatch(format!(
                "report {label}: {got:?}, expected {want:?} ({})",
                COLUMNS.join(", ")
            ));
        }
    };
    expect_row("total", &report["total"], all.clone());
    let row = |section: &str, key: &str| -> Json {
        report[section]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["key"] == json!(key)))
            .cloned()
            .unwrap_or(Json::Null)
    };
    for v in VILLAGES {
        let rows = all.iter().copied().filter(|p| p.village == v).collect();
        expect_row(&format!("village {v}"), &row("by_village", v), rows);
        let rows = all.iter().copied().filter(|p| p.village == v).collect();
        expect_row(
            &format!("unit village:{v}"),
            &row("by_unit", &format!("village:{v}")),
            rows,
        );
    }
    for p in &PLAN {
        let rows = all
            .iter()
            .copied()
            .filter(|q| q.category == p.category)
            .collect();
        expect_row(
            &format!("category {}", p.category),
            &row("by_category", p.category),
            rows,
        );
    }
    if report["total"]["avg_resolve_ms"]
        .as_i64()
        .is_none_or(|ms| ms <= 0)
    {
        check.mismatch("the report has no average time to resolve".into());
    }
    Ok(())
}

/// Prints the report as the township circulates it.
fn print_report(r: &Json) -> Res<()> {
    println!(
        "\n---------------- 纪检通报 / discipline inspection report (this week) ----------------"
    );
    let header = || {
        println!(
            "    {:<26} {:>5} {:>7} {:>8} {:>7} {:>7} {:>9} {:>6} {:>6} {:>10}",
            "",
            "found",
            "handed",
            "resolved",
            "on time",
            "overdue",
            "sent back",
            "held",
            "closed",
            "avg (s)"
        );
    };
    let line = |key: &str, c: &Json| {
        let n = |k: &str| {
            c[k].as_u64()
                .map_or_else(|| "?".to_owned(), |n| n.to_string())
        };
        let avg = c["avg_resolve_ms"]
            .as_i64()
            .map(|ms| format!("{:.1}", ms as f64 / 1000.0))
            .unwrap_or_else(|| "-".into());
        println!(
            "    {:<26} {:>5} {:>7} {:>8} {:>7} {:>7} {:>9} {:>6} {:>6} {:>10}",
            key,
            n("found"),
            n("handed_over"),
            n("resolved"),
            n("resolved_on_time"),
            n("overdue"),
            n("sent_back"),
            n("held_to_account"),
            n("closed"),
            avg
        );
    };
    for (section, title) in [
        ("by_category", "per category"),
        ("by_village", "per village"),
        ("by_unit", "per responsible unit"),
    ] {
        println!("  {title}");
        header();
        for row in r[section].as_array().ok_or("a report without rows")? {
            let (key, label) = (
                row["key"].as_str().unwrap_or(""),
                row["label_zh"].as_str().unwrap_or(""),
            );
            line(&format!("{label} {key}"), row);
        }
    }
    println!("  total");
    header();
    line("all", &r["total"]);
    Ok(())
}
