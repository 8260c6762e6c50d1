//! Next morning on PostgreSQL (issue 14, ADR 0010): the county takes Baru onto its
//! PostgreSQL. The server stops; the operator's `migrate --to` (the real CLI, run in
//! process) copies the data directory's tables and photos and verifies them; the server
//! starts again on PostgreSQL at the same address, so the phones and the weak-link
//! proxies are untouched. Then the same phones edit, attach a photo and sync on with
//! their old cursors, and each department pages its feed on from where it stopped.
//!
//! Checks: every phone again holds exactly its village (old and new), no phone
//! downloads its village again (records pulled = the new edits' deliveries, at most
//! twice for retries through cuts), each department's feed after its old cursor holds
//! exactly the households changed this morning within its view (nothing lost, nothing
//! repeated), every full view equals what was typed, and every photo, moved or new,
//! downloads whole.

use super::*;

/// A department's feed from `cursor` to its end: (household ids in order, end cursor).
fn page_feed(t: &Township, token: &str, mut cursor: u64) -> Res<(Vec<RecordId>, u64)> {
    let mut ids = Vec::new();
    loop {
        let page = t.http.json(
            "GET",
            &format!("/v1/feed?cursor={cursor}&limit=50"),
            token,
            None,
        )?;
        for c in page["changes"].as_array().ok_or("feed without changes")? {
            let id: RecordId = c["id"].as_str().ok_or("change without id")?.parse()?;
            if t.model.records.contains_key(&id) {
                ids.push(id);
            }
        }
        cursor = page["next_cursor"]
            .as_u64()
            .ok_or("feed without next_cursor")?;
        if page["more"] != json!(true) {
            return Ok((ids, cursor));
        }
    }
}

/// Stops the SQLite server, migrates with the operator's command, starts on PostgreSQL
/// at the same address.
fn move_server(t: &mut Township, url: &str) -> Res<Duration> {
    let started = Instant::now();
    t.server.stop();
    let data_dir = t.server.data_dir.clone();
    let addr = t.server.addr;
    let dir = data_dir.to_string_lossy().into_owned();
    println!("  $ yibiao-server --data-dir {dir} migrate --to postgres://...");
    yibiao_server::cli::run_words(["yibiao-server", "--data-dir", &dir, "migrate", "--to", url])?;
    let old = std::mem::replace(
        &mut t.server,
        start_server(&t.schema, data_dir, Some(url.to_owned()), Some(addr))?,
    );
    old.runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(started.elapsed())
}

/// This morning's work on the phones: the first phone of each village corrects one
/// household and registers a new one; every third village attaches a yard photo.
/// Returns the records changed and the pulls their deliveries cost.
fn morning_edits(t: &mut Township) -> Res<(BTreeSet<RecordId>, u64, u32)> {
    let mut changed = BTreeSet::new();
    let (mut deliveries, mut photos) = (0u64, 0u32);
    for (vi, v) in t.villages.clone().iter().enumerate() {
        let idxs = t.by_village[v].clone();
        let p = &t.phones[idxs[0]];
        let id = t.households[v][0];
        let size = t.model.records[&id].1["household_size"]
            .as_i64()
            .unwrap_or(3);
        let edits = [set("household_size", Value::Integer(size + 1))];
        p.store.update(id, &edits)?;
        t.model.set(id, v, &edits);
        let head = [set("household_head", Value::Text(format!("{v} 新户 {vi}")))];
        let new = p.store.create("household", Some(v), &head)?;
        t.model.set(new, v, &head);
        if vi % 3 == 0 {
            let bytes = yard_photo(v, 1000 + vi);
            let r = p
                .blobs
                .attach(&p.store, new, "photo", &bytes, "image/png", "新户.png")?;
            t.model.set(new, v, &[set("photo", Value::Attachment(r))]);
            photos += 1;
        }
        changed.extend([id, new]);
        // Each of the two records reaches every other phone of the village once.
        deliveries += 2 * (idxs.len() as u64 - 1);
    }
    Ok((changed, deliveries, photos))
}

/// The next morning, on PostgreSQL.
pub(super) fn next_morning_on_postgres(t: &mut Township, url: &str, check: &mut Check) -> Res<()> {
    println!("\n[next morning] the county moves Baru onto its PostgreSQL");
    let mut cursors = BTreeMap::new();
    for (dept, token) in &t.dept_tokens {
        cursors.insert(dept.clone(), page_feed(t, token, 0)?.1);
    }
    let moved = move_server(t, url)?;
    println!(
        "  stopped, migrated and started on PostgreSQL at {} in {:.1} s",
        t.server.url,
        moved.as_secs_f64()
    );
    let (changed, deliveries, new_photos) = morning_edits(t)?;
    let pulled_before = t.wire.pulled.load(Ordering::Relaxed);
    t.sync_all("after the move: push")?;
    upload_photos(t)?;
    t.sync_all("after the move: pull")?;
    let pulled = t.wire.pulled.load(Ordering::Relaxed) - pulled_before;
    println!(
        "  {} records changed on the phones; the phones pulled {pulled} records ({deliveries} deliveries needed, none of yesterday's again)",
        changed.len()
    );
    if pulled < deliveries || pulled > 2 * deliveries {
        check.mismatch(format!(
            "after the move the phones pulled {pulled} records; the new edits need {deliveries} (a phone downloaded its village again, or missed an edit)"
        ));
    }
    check_phones(t, check)?;
    for (dept, token) in &t.dept_tokens {
        let def = t.schema.department(dept).ok_or("department vanished")?;
        let (ids, _) = page_feed(t, token, cursors[dept])?;
        let got: BTreeSet<RecordId> = ids.iter().copied().collect();
        let want: BTreeSet<RecordId> = changed
            .iter()
            .copied()
            .filter(|id| def.sees_record("household", Some(&t.model.records[id].0)))
            .collect();
        if got != want || ids.len() != got.len() {
            check.mismatch(format!(
                "{dept}: its feed after its old cursor holds {} changes of {} households; expected exactly the {} changed this morning in its view",
                ids.len(),
                got.len(),
                want.len()
            ));
        }
    }
    println!(
        "  every department's feed goes on from its old cursor with exactly this morning's changes"
    );
    department_pulls(t, check)?;
    let photos = check_photos(t, check)?;
    let attached = t
        .model
        .records
        .values()
        .filter(|(_, v)| v.contains_key("photo"))
        .count();
    if photos != attached {
        check.mismatch(format!(
            "{attached} photos attached (yesterday's moved, {new_photos} new), {photos} downloaded from PostgreSQL"
        ));
    }
    Ok(())
}
