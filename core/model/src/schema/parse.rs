//! Reading a schema file: TOML into raw structs that keep their source spans, then a
//! cross-check that turns every mistake into `file:line: \`key\`: message`.

mod field;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::{
    DefaultUnit, DepartmentDef, EntityDef, FINDING_CATEGORIES_FORMAT, FieldDef, FindingCategory,
    FormDef, Labels, SCHEMA_FORMAT, Schema, Township, VillageScope,
};
use field::RawField;

/// A schema file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The file could not be read.
    #[error("{file}: cannot read schema: {message}")]
    Io {
        /// The file.
        file: String,
        /// The operating system's reason.
        message: String,
    },
    /// The file was read but is wrong.
    #[error("{file}:{line}: `{key}`: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line of the offending key.
        line: usize,
        /// The offending key or value, as written.
        key: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    format: Spanned<u32>,
    name: Spanned<String>,
    revision: u32,
    township: RawTownship,
    #[serde(default)]
    villages: BTreeMap<Spanned<String>, RawLabels>,
    fields: BTreeMap<Spanned<String>, RawField>,
    entities: BTreeMap<Spanned<String>, RawEntity>,
    #[serde(default)]
    forms: BTreeMap<Spanned<String>, RawForm>,
    #[serde(default)]
    departments: BTreeMap<Spanned<String>, RawDepartment>,
    #[serde(default)]
    finding_categories: BTreeMap<Spanned<String>, RawCategory>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    zh: String,
    en: String,
    deadline_days: Option<Spanned<i64>>,
    unit: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTownship {
    id: Spanned<String>,
    zh: String,
    en: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabels {
    zh: String,
    en: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntity {
    zh: String,
    en: String,
    fields: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForm {
    zh: String,
    en: String,
    entity: Spanned<String>,
    department: Option<Spanned<String>>,
    fields: Vec<Spanned<String>>,
    #[serde(default)]
    required: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDepartment {
    zh: String,
    en: String,
    office: Option<String>,
    #[serde(default)]
    forms: Vec<Spanned<String>>,
    /// Before per-entity views: a flat list, accepted when each field belongs to exactly
    /// one entity type the department reads.
    #[serde(default)]
    extra_fields: Vec<Spanned<String>>,
    /// `[departments.<key>.fields]`: entity type → the fields read of it.
    #[serde(default, deserialize_with = "per_entity_fields")]
    fields: PerEntityFields,
    #[serde(default)]
    entities: Vec<Spanned<String>>,
    villages: Vec<Spanned<String>>,
}

/// Entity type → field names, as written.
type PerEntityFields = BTreeMap<Spanned<String>, Vec<Spanned<String>>>;

/// A department's `fields`: a table of lists per entity type. A flat list is refused with
/// how to write it, since a flat list cannot say which entity type a field is read of.
fn per_entity_fields<'de, D>(de: D) -> Result<PerEntityFields, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct PerEntity;
    impl<'de> serde::de::Visitor<'de> for PerEntity {
        type Value = PerEntityFields;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table of field lists per entity type")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(serde::de::Error::custom(
                "a department's `fields` names the entity type each field is read of: \
                 write a table `[departments.<key>.fields]` with lines such as \
                 `household = [\"housing_safe\", \"household_size\"]`",
            ))
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Deserialize::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    de.deserialize_any(PerEntity)
}

/// Turns spans into `SchemaError`s for one file.
struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    /// The 1-based line of byte `offset`.
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// An error at `spanned`'s line.
    fn err<T>(
        &self,
        spanned: &Spanned<T>,
        key: impl fmt::Display,
        message: impl fmt::Display,
    ) -> SchemaError {
        SchemaError::Invalid {
            file: self.file.to_owned(),
            line: self.line(spanned.span().start),
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    /// `key` as a schema key, if it is one: lowercase ASCII letters, digits and `_`.
    fn key(&self, key: &Spanned<String>, what: &str) -> Result<String, SchemaError> {
        let k = key.get_ref();
        let ok = k.len() <= 64
            && k.starts_with(|c: char| c.is_ascii_lowercase())
            && k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(k.clone())
        } else {
            Err(self.err(
                key,
                k,
                format!("{what} keys are lowercase ASCII letters, digits and _ (at most 64), starting with a letter"),
            ))
        }
    }

    /// A TOML syntax or shape mistake, keyed by the text it points at.
    fn toml_error(&self, e: &toml::de::Error) -> SchemaError {
        let span = e.span().unwrap_or(0..0);
        SchemaError::Invalid {
            file: self.file.to_owned(),
            line: self.line(span.start),
            key: self.snippet(span).trim().to_owned(),
            message: e.message().trim().to_owned(),
        }
    }

    /// The start of the text at `span`, or of its line when the span shows nothing.
    fn snippet(&self, span: Range<usize>) -> String {
        let snippet = line_start(self.text.get(span.clone()).unwrap_or(""));
        if !snippet.trim().is_empty() {
            return snippet;
        }
        // The span is empty (e.g. an unterminated string): show the line instead.
        let start = self.text[..span.start.min(self.text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        line_start(&self.text[start..])
    }

    /// Refuses a schema format this build does not read.
    fn check_format(&self, format: &Spanned<u32>) -> Result<(), SchemaError> {
        if !(1..=SCHEMA_FORMAT).contains(format.get_ref()) {
            return Err(self.err(
                format,
                "format",
                format!(
                    "schema format {} is not supported; this build reads formats 1 to {SCHEMA_FORMAT}",
                    format.get_ref()
                ),
            ));
        }
        Ok(())
    }

    /// `f`'s key, if the field dictionary holds it.
    fn known_field(
        &self,
        fields: &BTreeMap<String, FieldDef>,
        f: &Spanned<String>,
        owner: &str,
    ) -> Result<String, SchemaError> {
        if fields.contains_key(f.get_ref()) {
            Ok(f.get_ref().clone())
        } else {
            Err(self.err(
                f,
                f.get_ref(),
                format!("{owner} names a field that is not in [fields]"),
            ))
        }
    }

    /// Refuses a list that names a field twice.
    fn no_repeats(&self, list: &[Spanned<String>], owner: &str) -> Result<(), SchemaError> {
        let mut seen = BTreeSet::new();
        for f in list {
            if !seen.insert(f.get_ref()) {
                return Err(self.err(f, f.get_ref(), format!("{owner} lists this field twice")));
            }
        }
        Ok(())
    }
}

/// The first line of `s`, cut to 40 characters.
fn line_start(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(40).collect()
}

/// Reads the schema file `text` (named `file` in errors) and cross-checks its sections.
pub(super) fn parse(text: &str, file: &str) -> Result<Schema, SchemaError> {
    let cx = Ctx { text, file };
    let raw: RawSchema = toml::from_str(text).map_err(|e| cx.toml_error(&e))?;
    cx.check_format(&raw.format)?;
    let name = cx.key(&raw.name, "schema name")?;
    let township = Township {
        id: cx.key(&raw.township.id, "township")?,
        labels: Labels {
            zh: raw.township.zh,
            en: raw.township.en,
        },
    };
    let mut schema = Schema {
        name,
        revision: raw.revision,
        format: *raw.format.get_ref(),
        township,
        villages: villages(&cx, raw.villages)?,
        fields: field::dictionary(&cx, raw.fields)?,
        entities: BTreeMap::new(),
        forms: BTreeMap::new(),
        departments: BTreeMap::new(),
        finding_categories: BTreeMap::new(),
        source: text.into(),
    };
    // Each later section is checked against the sections already in `schema`.
    schema.entities = entities(&cx, &schema, raw.entities)?;
    let department_keys: BTreeSet<String> = raw
        .departments
        .keys()
        .map(|k| k.get_ref().clone())
        .collect();
    schema.forms = forms(&cx, &schema, &department_keys, raw.forms)?;
    schema.departments = departments(&cx, &schema, raw.departments)?;
    schema.finding_categories = finding_categories(&cx, &schema, raw.finding_categories)?;
    Ok(schema)
}

/// Longest default deadline of a finding category, in days.
const MAX_DEADLINE_DAYS: i64 = 365;

/// Finding categories: only from format 2 (older apps would refuse the section), labelled,
/// with a deadline of 1 to 365 days and a unit that is `village` or a department.
fn finding_categories(
    cx: &Ctx<'_>,
    schema: &Schema,
    raw: BTreeMap<Spanned<String>, RawCategory>,
) -> Result<BTreeMap<String, FindingCategory>, SchemaError> {
    let mut out = BTreeMap::new();
    for (key, c) in raw {
        let k = cx.key(&key, "finding category")?;
        if schema.format < FINDING_CATEGORIES_FORMAT {
            return Err(cx.err(
                &key,
                &k,
                format!(
                    "[finding_categories] needs `format = {FINDING_CATEGORIES_FORMAT}` at the top of the file \
                     (phones with an app that reads only format 1 are then told to update it)"
                ),
            ));
        }
        let owner = format!("finding category `{k}`");
        if c.zh.trim().is_empty() || c.en.trim().is_empty() {
            return Err(cx.err(
                &key,
                &k,
                format!("{owner} needs both labels, `zh` and `en`"),
            ));
        }
        let deadline_days = match c.deadline_days {
            Some(d) if !(1..=MAX_DEADLINE_DAYS).contains(d.get_ref()) => {
                return Err(cx.err(
                    &d,
                    d.get_ref(),
                    format!("{owner}: `deadline_days` is a whole number of days from 1 to {MAX_DEADLINE_DAYS}"),
                ));
            }
            Some(d) => u32::try_from(*d.get_ref()).ok(),
            None => None,
        };
        let unit = match c.unit {
            None => None,
            Some(u) if u.get_ref() == "village" => Some(DefaultUnit::OwnVillage),
            Some(u) if schema.departments.contains_key(u.get_ref()) => {
                Some(DefaultUnit::Department(u.get_ref().clone()))
            }
            Some(u) => {
                return Err(cx.err(
                    &u,
                    u.get_ref(),
                    format!(
                        "{owner}: `unit` is \"village\" (the village the finding is about) or a key of [departments]"
                    ),
                ));
            }
        };
        out.insert(
            k.clone(),
            FindingCategory {
                key: k,
                labels: Labels { zh: c.zh, en: c.en },
                deadline_days,
                unit,
            },
        );
    }
    Ok(out)
}

/// The villages of the township, by key.
fn villages(
    cx: &Ctx<'_>,
    raw: BTreeMap<Spanned<String>, RawLabels>,
) -> Result<BTreeMap<String, Labels>, SchemaError> {
    let mut villages = BTreeMap::new();
    for (key, labels) in raw {
        let k = cx.key(&key, "village")?;
        villages.insert(
            k,
            Labels {
                zh: labels.zh,
                en: labels.en,
            },
        );
    }
    Ok(villages)
}

/// Entity types, each listing dictionary fields once.
fn entities(
    cx: &Ctx<'_>,
    schema: &Schema,
    raw: BTreeMap<Spanned<String>, RawEntity>,
) -> Result<BTreeMap<String, EntityDef>, SchemaError> {
    let mut entities = BTreeMap::new();
    for (key, raw_entity) in raw {
        let k = cx.key(&key, "entity")?;
        let owner = format!("entity `{k}`");
        cx.no_repeats(&raw_entity.fields, &owner)?;
        let list = raw_entity
            .fields
            .iter()
            .map(|f| cx.known_field(&schema.fields, f, &owner))
            .collect::<Result<Vec<_>, _>>()?;
        entities.insert(
            k.clone(),
            EntityDef {
                key: k,
                labels: Labels {
                    zh: raw_entity.zh,
                    en: raw_entity.en,
                },
                fields: list,
            },
        );
    }
    Ok(entities)
}

/// Forms, each over an entity type of `schema`, owned by one of `department_keys` if any.
fn forms(
    cx: &Ctx<'_>,
    schema: &Schema,
    department_keys: &BTreeSet<String>,
    raw: BTreeMap<Spanned<String>, RawForm>,
) -> Result<BTreeMap<String, FormDef>, SchemaError> {
    let mut forms = BTreeMap::new();
    for (key, raw_form) in raw {
        let k = cx.key(&key, "form")?;
        forms.insert(
            k.clone(),
            form_def(cx, schema, department_keys, k, raw_form)?,
        );
    }
    Ok(forms)
}

/// One form: its entity type and department exist, it asks once each for fields the
/// entity type holds, and requires only fields it asks for.
fn form_def(
    cx: &Ctx<'_>,
    schema: &Schema,
    department_keys: &BTreeSet<String>,
    k: String,
    raw: RawForm,
) -> Result<FormDef, SchemaError> {
    let owner = format!("form `{k}`");
    let Some(entity) = schema.entities.get(raw.entity.get_ref()) else {
        return Err(cx.err(
            &raw.entity,
            raw.entity.get_ref(),
            format!("{owner} is for an entity type that is not in [entities]"),
        ));
    };
    if let Some(d) = &raw.department
        && !department_keys.contains(d.get_ref())
    {
        return Err(cx.err(
            d,
            d.get_ref(),
            format!("{owner} names a department that is not in [departments]"),
        ));
    }
    cx.no_repeats(&raw.fields, &owner)?;
    cx.no_repeats(&raw.required, &format!("{owner} required"))?;
    let list = form_fields(cx, schema, entity, &owner, &raw.fields)?;
    let required = form_required(cx, &list, &owner, &raw.required)?;
    Ok(FormDef {
        key: k,
        labels: Labels {
            zh: raw.zh,
            en: raw.en,
        },
        entity: entity.key.clone(),
        department: raw.department.map(|d| d.into_inner()),
        fields: list,
        required,
    })
}

/// A form's fields: dictionary fields that its entity type holds.
fn form_fields(
    cx: &Ctx<'_>,
    schema: &Schema,
    entity: &EntityDef,
    owner: &str,
    raw: &[Spanned<String>],
) -> Result<Vec<String>, SchemaError> {
    let mut list = Vec::new();
    for f in raw {
        let name = cx.known_field(&schema.fields, f, owner)?;
        if !entity.fields.contains(&name) {
            return Err(cx.err(
                f,
                &name,
                format!(
                    "{owner} asks for a field that entity `{}` does not hold",
                    entity.key
                ),
            ));
        }
        list.push(name);
    }
    Ok(list)
}

/// A form's required fields: some of the fields it asks for.
fn form_required(
    cx: &Ctx<'_>,
    list: &[String],
    owner: &str,
    raw: &[Spanned<String>],
) -> Result<Vec<String>, SchemaError> {
    let mut required = Vec::new();
    for f in raw {
        if !list.contains(f.get_ref()) {
            return Err(cx.err(
                f,
                f.get_ref(),
                format!("{owner} requires a field missing from its `fields`"),
            ));
        }
        required.push(f.get_ref().clone());
    }
    Ok(required)
}

/// Departments and their views.
fn departments(
    cx: &Ctx<'_>,
    schema: &Schema,
    raw: BTreeMap<Spanned<String>, RawDepartment>,
) -> Result<BTreeMap<String, DepartmentDef>, SchemaError> {
    let mut departments = BTreeMap::new();
    for (key, raw_dept) in raw {
        let def = department_def(cx, schema, &key, raw_dept)?;
        departments.insert(def.key.clone(), def);
    }
    Ok(departments)
}

/// One department: not called `township`, reading some records of known entity types,
/// forms, fields and villages.
fn department_def(
    cx: &Ctx<'_>,
    schema: &Schema,
    key: &Spanned<String>,
    raw: RawDepartment,
) -> Result<DepartmentDef, SchemaError> {
    let k = cx.key(key, "department")?;
    if k == "township" {
        return Err(cx.err(
            key,
            &k,
            String::from(
                "`township` is reserved: it names the township itself as a task issuer; pick another key",
            ),
        ));
    }
    let owner = format!("department `{k}`");
    let reads = Reads::gather(cx, schema, &owner, &raw)?;
    if reads.entities.is_empty() {
        return Err(cx.err(
            key,
            &k,
            format!("{owner} reads no records: give it `forms` or `entities`"),
        ));
    }
    let villages = village_scope(cx, schema, &owner, &raw.villages)?;
    Ok(DepartmentDef {
        key: k,
        labels: Labels {
            zh: raw.zh,
            en: raw.en,
        },
        office: raw.office,
        forms: reads.forms,
        entities: reads.entities,
        fields: reads.fields,
        villages,
    })
}

/// What a department reads, each list in the order first named, without repeats.
#[derive(Default)]
struct Reads {
    forms: Vec<String>,
    entities: Vec<String>,
    /// Entity type → fields read of it.
    fields: BTreeMap<String, Vec<String>>,
}

impl Reads {
    /// Gathers the entity types a department names, then its forms (with their entity
    /// types and fields), then its per-entity fields, then its flat `extra_fields`, each
    /// checked against `schema`.
    fn gather(
        cx: &Ctx<'_>,
        schema: &Schema,
        owner: &str,
        raw: &RawDepartment,
    ) -> Result<Self, SchemaError> {
        let mut reads = Reads::default();
        for e in &raw.entities {
            reads.entity(cx, schema, owner, e)?;
        }
        for f in &raw.forms {
            let Some(form) = schema.forms.get(f.get_ref()) else {
                return Err(cx.err(
                    f,
                    f.get_ref(),
                    format!("{owner} names a form that is not in [forms]"),
                ));
            };
            reads.forms.push(form.key.clone());
            add_once(&mut reads.entities, &form.entity);
            let list = reads.fields.entry(form.entity.clone()).or_default();
            for field in &form.fields {
                add_once(list, field);
            }
        }
        for (e, list) in &raw.fields {
            let entity = reads.entity(cx, schema, owner, e)?;
            let owner = format!("{owner} fields of `{}`", entity.key);
            cx.no_repeats(list, &owner)?;
            for f in list {
                let name = cx.known_field(&schema.fields, f, &owner)?;
                if !entity.fields.contains(&name) {
                    return Err(cx.err(
                        f,
                        &name,
                        format!(
                            "{owner} names a field that entity `{}` does not hold",
                            entity.key
                        ),
                    ));
                }
                add_once(reads.fields.entry(entity.key.clone()).or_default(), &name);
            }
        }
        for f in &raw.extra_fields {
            let name = cx.known_field(&schema.fields, f, owner)?;
            let holders: Vec<&String> = reads
                .entities
                .iter()
                .filter(|e| {
                    schema
                        .entities
                        .get(*e)
                        .is_some_and(|d| d.fields.contains(&name))
                })
                .collect();
            match holders.as_slice() {
                [one] => {
                    let one = (*one).clone();
                    add_once(reads.fields.entry(one).or_default(), &name);
                }
                [] => {
                    return Err(cx.err(
                        f,
                        &name,
                        format!("{owner} reads no entity type that holds this field"),
                    ));
                }
                several => {
                    let names: Vec<String> = several.iter().map(|e| format!("`{e}`")).collect();
                    return Err(cx.err(
                        f,
                        &name,
                        format!(
                            "{owner} `extra_fields` is ambiguous: {} all hold this field; \
                             say which one under `[departments.<key>.fields]`, e.g. \
                             `{} = [\"{name}\"]`",
                            names.join(", "),
                            several[0]
                        ),
                    ));
                }
            }
        }
        Ok(reads)
    }

    /// Adds the entity type `e` to what the department reads, if the schema has it.
    fn entity<'s>(
        &mut self,
        cx: &Ctx<'_>,
        schema: &'s Schema,
        owner: &str,
        e: &Spanned<String>,
    ) -> Result<&'s EntityDef, SchemaError> {
        let Some(entity) = schema.entities.get(e.get_ref()) else {
            return Err(cx.err(
                e,
                e.get_ref(),
                format!("{owner} names an entity type that is not in [entities]"),
            ));
        };
        add_once(&mut self.entities, &entity.key);
        self.fields.entry(entity.key.clone()).or_default();
        Ok(entity)
    }
}

/// Appends `item` unless `list` already holds it.
fn add_once(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_owned());
    }
}

/// The villages a department reads: `"*"` for all, else villages of the township.
fn village_scope(
    cx: &Ctx<'_>,
    schema: &Schema,
    owner: &str,
    raw: &[Spanned<String>],
) -> Result<VillageScope, SchemaError> {
    if raw.iter().any(|v| v.get_ref() == "*") {
        return Ok(VillageScope::All);
    }
    let mut list = Vec::new();
    for v in raw {
        if !schema.villages.contains_key(v.get_ref()) {
            return Err(cx.err(
                v,
                v.get_ref(),
                format!("{owner} names a village that is not in [villages]; use \"*\" for all"),
            ));
        }
        list.push(v.get_ref().clone());
    }
    Ok(VillageScope::Only(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"format = 1
name = "mini"
revision = 1

[township]
id = "t"
zh = "镇"
en = "Town"

[villages]
a = { zh = "甲村", en = "A" }

[fields.head]
type = "text"
zh = "户主"
en = "Head"

[fields.size]
type = "integer"
zh = "人口"
en = "Size"
min = 1

[entities.household]
zh = "户"
en = "Household"
fields = ["head", "size"]

[forms.check]
zh = "核查"
en = "Check"
entity = "household"
fields = ["head", "size"]
required = ["head"]

[departments.office]
zh = "办"
en = "Office"
forms = ["check"]
villages = ["a"]
"#;

    fn broken(from: &str, to: &str) -> String {
        assert!(MINI.contains(from), "fixture lacks {from:?}");
        let text = MINI.replacen(from, to, 1);
        match parse(&text, "mini.toml") {
            Ok(_) => panic!("accepted a broken schema ({from:?} -> {to:?})"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_department_may_not_be_called_township() {
        let e = broken("[departments.office]", "[departments.township]");
        assert!(e.contains("`township` is reserved"), "{e}");
        assert!(e.starts_with("mini.toml:"), "{e}");
    }

    #[test]
    fn the_minimal_schema_parses_and_the_view_unions_form_fields() {
        let s = parse(MINI, "mini.toml").expect("valid");
        let d = s.department("office").expect("office");
        assert_eq!(
            d.fields_of("household"),
            ["head".to_owned(), "size".to_owned()]
        );
        assert!(d.sees_village(Some("a")) && !d.sees_village(Some("b")) && !d.sees_village(None));
    }

    #[test]
    fn the_shipped_baru_schema_is_valid_and_shares_fields_across_forms() {
        let s = Schema::baru_example();
        assert!(s.forms.len() >= 5 && s.departments.len() >= 7);
        // The point of the product: one household head serves many forms.
        assert!(s.forms_using("household_head").count() >= 4);
        assert!(s.forms_using("id_number").count() >= 3);
    }

    /// MINI in format 2 with one finding category, `category` written after its labels.
    fn with_category(category: &str) -> Result<Schema, String> {
        let text = format!(
            "{}\n[finding_categories.dust]\nzh = \"扬尘\"\nen = \"Dust\"\n{category}\n",
            MINI.replacen("format = 1", "format = 2", 1)
        );
        parse(&text, "mini.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn finding_categories_take_labels_a_deadline_and_a_unit_that_exist() {
        let s = with_category("deadline_days = 7\nunit = \"office\"").expect("valid");
        assert_eq!(s.format, 2);
        let c = s.finding_category("dust").expect("dust");
        assert_eq!((c.labels.zh.as_str(), c.deadline_days), ("扬尘", Some(7)));
        assert_eq!(c.unit, Some(DefaultUnit::Department("office".into())));
        let own = with_category("unit = \"village\"").expect("valid");
        assert_eq!(
            own.finding_category("dust").and_then(|c| c.unit.clone()),
            Some(DefaultUnit::OwnVillage)
        );
        for (extra, want) in [
            (
                "deadline_days = 0",
                "mini.toml:45: `0`: finding category `dust`: `deadline_days` is a whole number of days from 1 to 365",
            ),
            (
                "deadline_days = 400",
                "mini.toml:45: `400`: finding category `dust`: `deadline_days` is a whole number of days from 1 to 365",
            ),
            (
                "unit = \"police\"",
                "mini.toml:45: `police`: finding category `dust`: `unit` is \"village\" (the village the finding is about) or a key of [departments]",
            ),
            ("colour = \"red\"", "unknown field `colour`"),
        ] {
            let e = with_category(extra).expect_err(extra);
            assert!(e.contains(want), "{extra}: {e}");
        }
        let e = parse(
            &format!(
                "{}\n[finding_categories.Dust]\nzh = \"扬尘\"\nen = \"Dust\"\n",
                MINI.replacen("format = 1", "format = 2", 1)
            ),
            "mini.toml",
        )
        .expect_err("a key in capitals");
        assert!(
            e.to_string()
                .contains("finding category keys are lowercase"),
            "{e}"
        );
    }

    #[test]
    fn every_schema_mistake_names_file_line_and_key() {
        let cases = [
            (
                "format = 1",
                "format = 3",
                "mini.toml:1: `format`: schema format 3 is not supported; this build reads formats 1 to 2",
            ),
            (
                "villages = [\"a\"]",
                "villages = [\"a\"]\n\n[finding_categories.dust]\nzh = \"扬尘\"\nen = \"Dust\"",
                "mini.toml:42: `dust`: [finding_categories] needs `format = 2` at the top of the file (phones with an app that reads only format 1 are then told to update it)",
            ),
            (
                "type = \"integer\"",
                "type = \"number\"",
                "mini.toml:19: `size.type`: unknown type \"number\"; use one of text, integer, decimal, boolean, date, choice, multi_choice, gps, attachment, id_number, phone",
            ),
            (
                "min = 1",
                "min = \"one\"",
                "mini.toml:22: `size.min`: must be a whole number for an integer field",
            ),
            (
                "en = \"Head\"",
                "en = \"Head\"\nmin = 3",
                "mini.toml:17: `head.min`: `min` does not apply to a field of type text",
            ),
            (
                "fields = [\"head\", \"size\"]\n\n[forms",
                "fields = [\"head\", \"sise\"]\n\n[forms",
                "mini.toml:27: `sise`: entity `household` names a field that is not in [fields]",
            ),
            (
                "entity = \"household\"",
                "entity = \"house\"",
                "mini.toml:32: `house`: form `check` is for an entity type that is not in [entities]",
            ),
            (
                "required = [\"head\"]",
                "required = [\"phone\"]",
                "mini.toml:34: `phone`: form `check` requires a field missing from its `fields`",
            ),
            (
                "forms = [\"check\"]",
                "forms = [\"audit\"]",
                "mini.toml:39: `audit`: department `office` names a form that is not in [forms]",
            ),
            (
                "villages = [\"a\"]",
                "villages = [\"b\"]",
                "mini.toml:40: `b`: department `office` names a village that is not in [villages]; use \"*\" for all",
            ),
            (
                "[fields.head]",
                "[fields.Head]",
                "mini.toml:13: `Head`: field keys are lowercase ASCII letters, digits and _ (at most 64), starting with a letter",
            ),
            (
                "fields = [\"head\", \"size\"]\nrequired",
                "fields = [\"head\", \"head\"]\nrequired",
                "mini.toml:33: `head`: form `check` lists this field twice",
            ),
        ];
        for (from, to, want) in cases {
            assert_eq!(broken(from, to), want, "{from:?} -> {to:?}");
        }
    }

    #[test]
    fn syntax_errors_and_unknown_keys_point_at_the_line() {
        let msg = broken("zh = \"户主\"", "zh = \"户主");
        assert!(
            msg == "mini.toml:15: `zh = \"户主`: invalid basic string, expected `\"`",
            "{msg}"
        );
        let msg = broken("en = \"Size\"", "en = \"Size\"\nmaximum = 3");
        assert!(
            msg.starts_with("mini.toml:22: `maximum`: unknown field `maximum`"),
            "{msg}"
        );
    }

    #[test]
    fn choice_fields_need_unique_options_and_patterns_must_compile() {
        let msg = broken(
            "type = \"text\"\nzh = \"户主\"",
            "type = \"choice\"\noptions = [{ key = \"x\", zh = \"x\", en = \"x\" }, { key = \"x\", zh = \"y\", en = \"y\" }]\nzh = \"户主\"",
        );
        assert!(
            msg.contains("`x`: option listed twice in field `head`"),
            "{msg}"
        );
        let msg = broken(
            "type = \"text\"\nzh = \"户主\"",
            "type = \"text\"\npattern = \"[0-9\"\nzh = \"户主\"",
        );
        assert!(
            msg.starts_with("mini.toml:15: `head.pattern`: not a valid regular expression"),
            "{msg}"
        );
    }

    #[test]
    fn a_department_must_read_some_entity_and_name_real_ones() {
        let msg = broken("forms = [\"check\"]\n", "");
        assert_eq!(
            msg,
            "mini.toml:36: `office`: department `office` reads no records: give it `forms` or `entities`"
        );
        let msg = broken("forms = [\"check\"]\n", "entities = [\"castle\"]\n");
        assert_eq!(
            msg,
            "mini.toml:39: `castle`: department `office` names an entity type that is not in [entities]"
        );
        let s = parse(
            &MINI.replace(
                "forms = [\"check\"]\n",
                "entities = [\"household\"]\nextra_fields = [\"head\"]\n",
            ),
            "m",
        )
        .expect("valid");
        let d = s.department("office").expect("office");
        assert!(
            d.sees_record("household", Some("a"))
                && d.sees_field("household", "head")
                && !d.sees_field("household", "size")
        );
    }

    /// MINI with a second entity type holding `head` too, read by `office`.
    fn two_entities(dept_lines: &str) -> Result<Schema, SchemaError> {
        let text = MINI
            .replace(
                "[forms.check]",
                "[entities.shop]\nzh = \"店\"\nen = \"Shop\"\nfields = [\"head\"]\n\n[forms.check]",
            )
            .replace("forms = [\"check\"]\n", dept_lines);
        parse(&text, "mini.toml")
    }

    #[test]
    fn department_fields_are_read_per_entity_type() {
        // The table comes last in the department; `#` comments out MINI's own `villages`.
        let s = two_entities(
            "forms = [\"check\"]\nvillages = [\"a\"]\n[departments.office.fields]\nshop = [\"head\"]\n#",
        );
        let s = s.expect("valid");
        let d = s.department("office").expect("office");
        assert_eq!(d.entities, vec!["household".to_owned(), "shop".to_owned()]);
        assert!(d.sees_field("shop", "head") && d.sees_field("household", "size"));
        assert!(!d.sees_field("shop", "size"));

        // Only the shop's head, not the household's.
        let s =
            two_entities("villages = [\"a\"]\n[departments.office.fields]\nshop = [\"head\"]\n#")
                .expect("valid");
        let d = s.department("office").expect("office");
        assert!(d.sees_field("shop", "head") && !d.sees_field("household", "head"));
        assert!(!d.sees_record("household", Some("a")));
    }

    #[test]
    fn department_field_mistakes_name_the_line_and_how_to_write_it() {
        let e =
            two_entities("villages = [\"a\"]\n[departments.office.fields]\nshop = [\"size\"]\n#")
                .expect_err("shop holds no size");
        assert_eq!(
            e.to_string(),
            "mini.toml:46: `size`: department `office` fields of `shop` names a field that entity `shop` does not hold"
        );
        let e =
            two_entities("villages = [\"a\"]\n[departments.office.fields]\ncastle = [\"size\"]\n#")
                .expect_err("no castle");
        assert!(
            e.to_string()
                .starts_with("mini.toml:46: `castle`: department `office` names an entity type"),
            "{e}"
        );
        let e = two_entities("fields = [\"head\"]\n").expect_err("flat fields");
        let msg = e.to_string();
        assert!(msg.starts_with("mini.toml:44: "), "{msg}");
        assert!(msg.contains("[departments.<key>.fields]"), "{msg}");
        // The old flat list stays valid while each field has one entity type to belong to...
        let s = two_entities("forms = [\"check\"]\nextra_fields = [\"size\"]\n").expect("valid");
        assert!(
            s.department("office")
                .expect("office")
                .sees_field("household", "size")
        );
        // ...and is refused, saying how to write it, when two could hold it.
        let e =
            two_entities("forms = [\"check\"]\nentities = [\"shop\"]\nextra_fields = [\"head\"]\n")
                .expect_err("ambiguous");
        let msg = e.to_string();
        assert!(msg.starts_with("mini.toml:46: `head`: department `office` `extra_fields` is ambiguous: `shop`, `household` all hold this field"), "{msg}");
        assert!(msg.contains("`shop = [\"head\"]`"), "{msg}");
    }

    #[test]
    fn a_missing_file_is_reported_with_its_path() {
        let e = Schema::from_toml_file("/nonexistent/schema.toml").expect_err("missing");
        assert!(
            e.to_string()
                .starts_with("/nonexistent/schema.toml: cannot read schema:"),
            "{e}"
        );
    }
}
