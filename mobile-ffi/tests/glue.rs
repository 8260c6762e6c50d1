//! The FFI surface called from Rust, as the generated bindings call it: values as JSON
//! text in and out, core errors turned into the app's few variants, observers told.
//! (The generated Kotlin and Python are run for real by scripts/test-bindings.sh.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use yibiao_ffi::{ChangeObserver, RecordQuery, YibiaoError, YibiaoStore};

fn open(dir: &tempfile::TempDir) -> Arc<YibiaoStore> {
    let path = dir.path().join("phone.db").display().to_string();
    YibiaoStore::open(path, None, "amu".into()).expect("open")
}

fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[derive(Default)]
struct Seen(Mutex<Vec<Vec<String>>>);
impl ChangeObserver for Seen {
    fn on_records_changed(&self, ids: Vec<String>) {
        self.0.lock().expect("lock").push(ids);
    }
}

#[test]
fn values_cross_as_json_text_and_come_back_in_entity_order() -> Result<(), YibiaoError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let id = store.create(
        "household".into(),
        Some("tujiang".into()),
        fields(&[
            ("household_size", "5"),
            ("household_head", "\"阿木\""),
            ("income_sources", "[\"wages\",\"farming\"]"),
        ]),
    )?;
    let record = store.get(id.clone())?;
    let shown: Vec<(&str, &str)> = record
        .fields
        .iter()
        .map(|f| (f.field.as_str(), f.value_json.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("household_head", "\"阿木\""),
            ("household_size", "5"),
            ("income_sources", "[\"farming\",\"wages\"]"),
        ]
    );
    assert_eq!(record.village.as_deref(), Some("tujiang"));
    let page = store.query(RecordQuery {
        equals: fields(&[("household_head", "\"阿木\"")]),
        ..RecordQuery::default()
    })?;
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].values["household_size"], "5");
    Ok(())
}

#[test]
fn refusals_name_the_field_and_write_nothing() -> Result<(), YibiaoError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let id = store.create("household".into(), None, fields(&[("household_size", "4")]))?;
    for bad in ["\"three\"", "three", "31"] {
        match store.set_field(id.clone(), "household_size".into(), bad.into()) {
            Err(YibiaoError::InvalidValue { field, detail }) => {
                assert_eq!(field, "household_size");
                assert!(detail.contains("家庭人口数"), "{detail}");
            }
            other => panic!("{bad}: expected InvalidValue, got {other:?}"),
        }
    }
    // A batch with one bad value writes none of it.
    let r = store.set_fields(
        id.clone(),
        fields(&[("household_size", "6"), ("village_group", "99")]),
    );
    assert!(matches!(r, Err(YibiaoError::InvalidValue { field, .. }) if field == "village_group"));
    assert_eq!(store.get(id.clone())?.fields[0].value_json, "4");
    assert!(matches!(
        store.get("0192f5e4-7c1a-7b3e-9a10-5f2b8c7d9e01".into()),
        Err(YibiaoError::NotFound { .. })
    ));
    assert!(matches!(
        store.form_status(id, "no_such_form".into()),
        Err(YibiaoError::InvalidInput { .. })
    ));
    assert!(matches!(
        store.sync(None),
        Err(YibiaoError::NotEnrolled { .. })
    ));
    Ok(())
}

#[test]
fn local_writes_tell_the_observer_only_when_something_changed() -> Result<(), YibiaoError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let seen = Arc::new(Seen::default());
    store.set_observer(Some(seen.clone()));
    let id = store.create("household".into(), None, HashMap::new())?;
    assert!(store.set_field(id.clone(), "household_size".into(), "3".into())?);
    assert!(!store.set_field(id.clone(), "household_size".into(), "3".into())?);
    assert_eq!(
        *seen.0.lock().expect("lock"),
        vec![vec![id.clone()], vec![id]]
    );
    Ok(())
}
