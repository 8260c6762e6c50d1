//! `demo`: two village cadres' phones, offline, with real SQLite stores on disk.
//!
//! 1. Cadre 阿木 registers a household on phone A for the 低保 check.
//! 2. The record reaches phone B (in this demo by copying the document; the sync server
//!    arrives with the sync issue).
//! 3. Both phones, offline, change the household size differently; B adds a phone number.
//! 4. The phones exchange changes: the conflict is kept with both values and authors.
//! 5. Cadre 吉克 resolves it; both phones agree; the history says who typed what.
//! 6. What the 低保 check and the poverty-alleviation visit still need: fields typed once
//!    count for both forms.
//!
//! Usage: `demo [--data-dir DIR] [--schema FILE]` (defaults: a temporary directory and the
//! shipped Baru schema).

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use yibiao_model::record::HistoryEvent;
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_store::{Query, Store};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    data_dir: Option<PathBuf>,
    schema: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        data_dir: None,
        schema: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--data-dir" => {
                args.data_dir = Some(it.next().ok_or("--data-dir needs a directory")?.into())
            }
            "--schema" => args.schema = Some(it.next().ok_or("--schema needs a file")?.into()),
            "-h" | "--help" => {
                println!("usage: demo [--data-dir DIR] [--schema FILE]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`; try --help")),
        }
    }
    Ok(args)
}

fn set(field: &str, value: Value) -> FieldEdit {
    FieldEdit::Set(field.to_owned(), value)
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn run() -> Res<()> {
    let args = parse_args()?;
    let schema = Arc::new(match &args.schema {
        Some(path) => Schema::from_toml_file(path)?,
        None => Schema::baru_example(),
    });
    let tmp = tempfile::tempdir()?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir)?;

    println!(
        "一表 yibiao demo: schema `{}` rev {} ({} fields, {} forms, {} departments)",
        schema.name,
        schema.revision,
        schema.fields.len(),
        schema.forms.len(),
        schema.departments.len()
    );
    println!("stores in {}\n", dir.display());

    let phone_a = Store::open(dir.join("phone-a.db"), schema.clone(), CadreId::new("amu")?)?;
    let phone_b = Store::open(
        dir.join("phone-b.db"),
        schema.clone(),
        CadreId::new("jike")?,
    )?;
    let id = register(&phone_a)?;
    edit_apart(&phone_a, &phone_b, id)?;
    resolve(&phone_a, &phone_b, id)?;
    form_status(&schema, &phone_a, id)?;
    println!(
        "\nstores are sound: A {}, B {}",
        phone_a.integrity_check()?,
        phone_b.integrity_check()?
    );
    Ok(())
}

/// 1. One entry on phone A; a bad value is refused with the field and the reason.
fn register(phone_a: &Store) -> Res<RecordId> {
    let id = phone_a.create(
        "household",
        Some("tujiang"),
        &[
            set("household_head", Value::Text("阿木日哈".into())),
            set("id_number", Value::Text("513401197001011231".into())),
            set("household_size", Value::Integer(4)),
            set(
                "annual_income",
                Value::Decimal(rust_decimal_from("9600.50")?),
            ),
            set("dibao_status", Value::Choice("enrolled".into())),
        ],
    )?;
    println!("1. phone A (cadre amu) registered household {id} in 土匠村");

    // Nothing is written.
    if let Err(e) = phone_a.set(id, "household_size", Value::Text("three".into())) {
        println!("   refused as it should be: {e}");
    }
    Ok(id)
}

/// 2-4. The record reaches phone B; both phones edit offline, then exchange changes:
/// the conflict keeps both values and their authors.
fn edit_apart(phone_a: &Store, phone_b: &Store, id: RecordId) -> Res<()> {
    phone_b.merge(id, &phone_a.export(id)?)?;
    println!("2. phone B (cadre jike) received it");

    phone_a.set(id, "household_size", Value::Integer(5))?;
    phone_b.update(
        id,
        &[
            set("household_size", Value::Integer(6)),
            set("phone", Value::Text("13912345678".into())),
        ],
    )?;
    println!("3. offline: A sets household size 5; B sets 6 and adds a phone number");

    phone_a.merge(id, &phone_b.export(id)?)?;
    phone_b.merge(id, &phone_a.export(id)?)?;
    println!("4. after exchanging changes, both phones show:");
    for conflict in phone_b.conflicts(id)? {
        println!("   conflict on `{}`:", conflict.field);
        for v in &conflict.values {
            println!(
                "     {} by cadre {} on {} at {}{}",
                v.value.as_ref().map(|j| j.to_string()).unwrap_or_default(),
                v.by.cadre.as_deref().unwrap_or("?"),
                v.by.device.as_deref().unwrap_or("?"),
                v.by.at_ms,
                if v.shown { " (shown)" } else { "" }
            );
        }
    }
    Ok(())
}

/// 5. B resolves, passes it on; both phones agree, and the history says who typed what.
fn resolve(phone_a: &Store, phone_b: &Store, id: RecordId) -> Res<()> {
    phone_b.resolve(id, "household_size", Some(Value::Integer(6)))?;
    phone_a.merge(id, &phone_b.export(id)?)?;
    let a = phone_a.get(id)?;
    let b = phone_b.get(id)?;
    if a != b || !a.conflicted.is_empty() {
        return Err("phones disagree after resolving".into());
    }
    println!("5. B resolved household size = 6; both phones agree, no conflicts left");
    println!("   history:");
    for h in phone_a.history(id)? {
        let what = match &h.event {
            HistoryEvent::Created { entity } => format!("created {entity}"),
            HistoryEvent::Set { field, value } => format!("{field} = {value}"),
            HistoryEvent::Resolved { field, value } => {
                format!("{field} conflict resolved: {value}")
            }
            HistoryEvent::Unset { field } => format!("{field} cleared"),
            HistoryEvent::Deleted => "deleted".into(),
            HistoryEvent::Restored => "restored".into(),
        };
        println!(
            "     {:<40} by {}",
            what,
            h.by.cadre.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

/// 6. One entry, many forms: what each form still needs for this household.
fn form_status(schema: &Schema, phone_a: &Store, id: RecordId) -> Res<()> {
    println!("6. what each form still needs for this household:");
    for form in [
        "dibao_check",
        "poverty_visit",
        "grid_patrol",
        "living_environment",
    ] {
        let status = phone_a.form_status(id, form)?;
        let label = schema
            .form(form)
            .map(|f| f.labels.zh.clone())
            .unwrap_or_default();
        println!(
            "   {label:<14} {}/{} required filled; missing: {}",
            status.filled_required,
            status.total_required,
            if status.missing_required.is_empty() {
                "nothing".to_owned()
            } else {
                status.missing_required.join(", ")
            }
        );
    }
    let incomplete = phone_a.query(&Query {
        incomplete_for: Some("dibao_check".into()),
        ..Query::default()
    })?;
    println!(
        "   households in phone A still incomplete for 低保: {}",
        incomplete.records.len()
    );
    Ok(())
}

fn rust_decimal_from(s: &str) -> Result<yibiao_model::value::Decimal, String> {
    yibiao_model::value::Decimal::from_str(s).map_err(|e| e.to_string())
}
