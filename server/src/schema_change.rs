//! A new schema revision on a server with data: what it would strand, the refusal to
//! serve it unless the operator agrees, and the read model rebuilt with it.
//!
//! The revision last served is kept beside the database (`DATA_DIR/schema.served.toml`).
//! When `serve` starts with other text, every stored record's summary is checked against
//! the new revision ([`Stranding`]: values it refuses, records of entity types or villages
//! it drops, forms, fields and departments' view fields it removes, department tokens of
//! departments it no longer has, finding categories it removes and findings that carry
//! them). Anything found stops the start, listed, unless
//! `--allow-stranding`; stranded values stay stored either way (phones show them
//! flagged). Then every record's `values_json`/`conflicts_json` (what departments pull)
//! is recomputed from its document with the new revision, and the revision is noted as
//! served. `yibiao-server check-schema FILE --against DATA_DIR` prints the same report
//! without changing anything.

use std::path::{Path, PathBuf};

use automerge::ActorId;
use yibiao_model::finding::FINDING_ENTITY;
use yibiao_model::record::Record;
use yibiao_model::schema::{Schema, Stranding};
use yibiao_model::task::TASK_ENTITY;

use crate::storage::ServerStorage;

/// Records read per page while checking or rebuilding.
const PAGE: usize = 500;

/// Where the revision last served is kept.
pub fn served_path(data_dir: &Path) -> PathBuf {
    data_dir.join("schema.served.toml")
}

/// The revision last served from `data_dir`, if one was noted and still loads.
pub fn served(data_dir: &Path) -> Option<Schema> {
    let path = served_path(data_dir);
    let text = std::fs::read_to_string(&path).ok()?;
    Schema::from_toml_str(&text, &path.display().to_string())
        .map_err(|e| tracing::warn!(error = %e, "the schema last served does not load; checking stored values only"))
        .ok()
}

/// What serving `new` over `storage` would strand, given the revision served until now.
pub fn stranding(
    storage: &dyn ServerStorage,
    old: Option<&Schema>,
    new: &Schema,
) -> Result<Stranding, String> {
    let mut report = Stranding::new(old, new);
    let mut tokens: std::collections::BTreeMap<String, usize> = Default::default();
    for t in storage.department_tokens().map_err(|e| e.to_string())? {
        if t.revoked_ms.is_none() && new.department(&t.department).is_none() {
            *tokens.entry(t.department).or_default() += 1;
        }
    }
    for (dept, n) in tokens {
        report.dropped.push(format!(
            "department `{dept}` has {n} live token(s) but is not in the schema"
        ));
    }
    let mut after = None;
    loop {
        let page = storage
            .all_records_page(after, PAGE)
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for r in page
            .iter()
            .filter(|r| !r.deleted && r.entity != TASK_ENTITY && r.entity != FINDING_ENTITY)
        {
            let values: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&r.values_json).unwrap_or_default();
            report.add_record(
                new,
                &r.id.to_string(),
                &r.entity,
                r.village.as_deref(),
                &values,
            );
        }
    }
    for f in storage.findings().map_err(|e| e.to_string())? {
        let json: serde_json::Value = serde_json::from_str(&f.json).unwrap_or_default();
        if let Some(category) = json["spec"]["category"].as_str() {
            report.add_finding(new, &f.id.to_string(), category);
        }
    }
    Ok(report)
}

/// Recomputes every record's summaries with `schema` (task documents keep theirs);
/// returns how many were rewritten. A record that does not load is left as it was.
pub fn rebuild_read_model(storage: &dyn ServerStorage, schema: &Schema) -> Result<usize, String> {
    let actor = ActorId::random();
    let mut after = None;
    let mut rewritten = 0;
    loop {
        let page = storage
            .all_records_page(after, PAGE)
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let mut rows = Vec::with_capacity(page.len());
        for r in page
            .iter()
            .filter(|r| r.entity != TASK_ENTITY && r.entity != FINDING_ENTITY)
        {
            let chunks = storage.load(r.id).map_err(|e| e.to_string())?;
            match chunks.map(|c| Record::load(r.id, actor.clone(), &c)) {
                Some(Ok(record)) => rows.push((
                    r.id,
                    record.values_json(schema),
                    record.conflicts_json(schema),
                )),
                Some(Err(e)) => {
                    tracing::warn!(record = %r.id, error = %e, "record not rebuilt: it does not load")
                }
                None => {}
            }
        }
        rewritten += rows.len();
        storage.set_summaries(&rows).map_err(|e| e.to_string())?;
    }
    Ok(rewritten)
}

/// Before serving `schema` from `data_dir`: when it differs from the revision served
/// until now, refuses it if it strands data (unless `allow_stranding`), rebuilds the read
/// model and notes it as served. Returns the records rebuilt (`None`: nothing changed).
pub fn prepare(
    data_dir: &Path,
    storage: &dyn ServerStorage,
    schema: &Schema,
    allow_stranding: bool,
) -> Result<Option<usize>, String> {
    let path = served_path(data_dir);
    if std::fs::read_to_string(&path).is_ok_and(|t| t == schema.source()) {
        return Ok(None);
    }
    let old = served(data_dir);
    let report = stranding(storage, old.as_ref(), schema)?;
    if !report.is_empty() {
        let lines = report.lines().join("\n  ");
        if !allow_stranding {
            return Err(format!(
                "schema revision {} would strand data:\n  {lines}\nfix the schema, or start with --allow-stranding to serve it anyway (stranded values stay stored and are flagged on phones)",
                schema.revision
            ));
        }
        tracing::warn!(revision = schema.revision, stranded = %lines, "serving a schema that strands data (--allow-stranding)");
    }
    let rebuilt = rebuild_read_model(storage, schema)?;
    write_atomically(&path, schema.source())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    tracing::info!(
        from = old.map(|s| s.revision),
        to = schema.revision,
        records = rebuilt,
        "schema changed: department read model rebuilt"
    );
    Ok(Some(rebuilt))
}

/// Writes `text` to a new file beside `path`, synced, then renamed over it.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
