//! Reading a schema file: TOML into raw structs that keep their source spans, then a
//! cross-check that turns every mistake into `file:line: \`key\`: message`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use regex::Regex;
use rust_decimal::Decimal;
use serde::Deserialize;
use toml::Spanned;

use super::{
    DepartmentDef, EntityDef, FieldDef, FormDef, Labels, SCHEMA_FORMAT, Schema, Township,
    VillageScope,
};
use crate::value::{ChoiceOption, FieldType, Pattern};

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
struct RawField {
    #[serde(rename = "type")]
    ty: Spanned<String>,
    zh: String,
    en: String,
    help: Option<String>,
    max_len: Option<Spanned<usize>>,
    pattern: Option<Spanned<String>>,
    pattern_message: Option<Spanned<String>>,
    min: Option<Spanned<toml::Value>>,
    max: Option<Spanned<toml::Value>>,
    scale: Option<Spanned<u32>>,
    options: Option<Spanned<Vec<RawOption>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOption {
    key: Spanned<String>,
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
    #[serde(default)]
    extra_fields: Vec<Spanned<String>>,
    #[serde(default)]
    entities: Vec<Spanned<String>>,
    villages: Vec<Spanned<String>>,
}

/// Turns spans into `SchemaError`s for one file.
struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

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
}

pub(super) fn parse(text: &str, file: &str) -> Result<Schema, SchemaError> {
    let cx = Ctx { text, file };
    let raw: RawSchema = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let snippet: String = text
            .get(span.clone())
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(40)
            .collect();
        let key = if snippet.trim().is_empty() {
            // The span is empty (e.g. an unterminated string): show the line instead.
            let start = text[..span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            text[start..]
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(40)
                .collect::<String>()
        } else {
            snippet
        };
        SchemaError::Invalid {
            file: file.to_owned(),
            line: cx.line(span.start),
            key: key.trim().to_owned(),
            message: e.message().trim().to_owned(),
        }
    })?;

    if *raw.format.get_ref() != SCHEMA_FORMAT {
        return Err(cx.err(
            &raw.format,
            "format",
            format!(
                "schema format {} is not supported; this build reads format {SCHEMA_FORMAT}",
                raw.format.get_ref()
            ),
        ));
    }
    let name = cx.key(&raw.name, "schema name")?;
    let township = Township {
        id: cx.key(&raw.township.id, "township")?,
        labels: Labels {
            zh: raw.township.zh,
            en: raw.township.en,
        },
    };

    let mut villages = BTreeMap::new();
    for (key, labels) in raw.villages {
        let k = cx.key(&key, "village")?;
        villages.insert(
            k,
            Labels {
                zh: labels.zh,
                en: labels.en,
            },
        );
    }

    let mut fields = BTreeMap::new();
    for (key, raw_field) in raw.fields {
        let k = cx.key(&key, "field")?;
        let def = field_def(&cx, k.clone(), raw_field)?;
        fields.insert(k, def);
    }

    let known_field = |f: &Spanned<String>, owner: &str| -> Result<String, SchemaError> {
        if fields.contains_key(f.get_ref()) {
            Ok(f.get_ref().clone())
        } else {
            Err(cx.err(
                f,
                f.get_ref(),
                format!("{owner} names a field that is not in [fields]"),
            ))
        }
    };
    let no_repeats = |list: &[Spanned<String>], owner: &str| -> Result<(), SchemaError> {
        let mut seen = BTreeSet::new();
        for f in list {
            if !seen.insert(f.get_ref()) {
                return Err(cx.err(f, f.get_ref(), format!("{owner} lists this field twice")));
            }
        }
        Ok(())
    };

    let mut entities = BTreeMap::new();
    for (key, raw_entity) in raw.entities {
        let k = cx.key(&key, "entity")?;
        let owner = format!("entity `{k}`");
        no_repeats(&raw_entity.fields, &owner)?;
        let list = raw_entity
            .fields
            .iter()
            .map(|f| known_field(f, &owner))
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

    let department_keys: BTreeSet<String> = raw
        .departments
        .keys()
        .map(|k| k.get_ref().clone())
        .collect();

    let mut forms = BTreeMap::new();
    for (key, raw_form) in raw.forms {
        let k = cx.key(&key, "form")?;
        let owner = format!("form `{k}`");
        let Some(entity) = entities.get(raw_form.entity.get_ref()) else {
            return Err(cx.err(
                &raw_form.entity,
                raw_form.entity.get_ref(),
                format!("{owner} is for an entity type that is not in [entities]"),
            ));
        };
        if let Some(d) = &raw_form.department
            && !department_keys.contains(d.get_ref())
        {
            return Err(cx.err(
                d,
                d.get_ref(),
                format!("{owner} names a department that is not in [departments]"),
            ));
        }
        no_repeats(&raw_form.fields, &owner)?;
        no_repeats(&raw_form.required, &format!("{owner} required"))?;
        let mut list = Vec::new();
        for f in &raw_form.fields {
            let name = known_field(f, &owner)?;
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
        let mut required = Vec::new();
        for f in &raw_form.required {
            if !list.contains(f.get_ref()) {
                return Err(cx.err(
                    f,
                    f.get_ref(),
                    format!("{owner} requires a field missing from its `fields`"),
                ));
            }
            required.push(f.get_ref().clone());
        }
        forms.insert(
            k.clone(),
            FormDef {
                key: k,
                labels: Labels {
                    zh: raw_form.zh,
                    en: raw_form.en,
                },
                entity: entity.key.clone(),
                department: raw_form.department.map(|d| d.into_inner()),
                fields: list,
                required,
            },
        );
    }

    let mut departments = BTreeMap::new();
    for (key, raw_dept) in raw.departments {
        let k = cx.key(&key, "department")?;
        if k == "township" {
            return Err(cx.err(
                &key,
                &k,
                String::from(
                    "`township` is reserved: it names the township itself as a task issuer; pick another key",
                ),
            ));
        }
        let owner = format!("department `{k}`");
        let mut seen_fields = Vec::new();
        let mut dept_forms = Vec::new();
        let mut dept_entities: Vec<String> = Vec::new();
        for e in &raw_dept.entities {
            if !entities.contains_key(e.get_ref()) {
                return Err(cx.err(
                    e,
                    e.get_ref(),
                    format!("{owner} names an entity type that is not in [entities]"),
                ));
            }
            if !dept_entities.contains(e.get_ref()) {
                dept_entities.push(e.get_ref().clone());
            }
        }
        for f in &raw_dept.forms {
            let Some(form) = forms.get(f.get_ref()) else {
                return Err(cx.err(
                    f,
                    f.get_ref(),
                    format!("{owner} names a form that is not in [forms]"),
                ));
            };
            dept_forms.push(form.key.clone());
            if !dept_entities.contains(&form.entity) {
                dept_entities.push(form.entity.clone());
            }
            for field in &form.fields {
                if !seen_fields.contains(field) {
                    seen_fields.push(field.clone());
                }
            }
        }
        for f in &raw_dept.extra_fields {
            let name = known_field(f, &owner)?;
            if !seen_fields.contains(&name) {
                seen_fields.push(name);
            }
        }
        if dept_entities.is_empty() {
            return Err(cx.err(
                &key,
                &k,
                format!("{owner} reads no records: give it `forms` or `entities`"),
            ));
        }
        let villages_scope = if raw_dept.villages.iter().any(|v| v.get_ref() == "*") {
            VillageScope::All
        } else {
            let mut list = Vec::new();
            for v in &raw_dept.villages {
                if !villages.contains_key(v.get_ref()) {
                    return Err(cx.err(
                        v,
                        v.get_ref(),
                        format!(
                            "{owner} names a village that is not in [villages]; use \"*\" for all"
                        ),
                    ));
                }
                list.push(v.get_ref().clone());
            }
            VillageScope::Only(list)
        };
        departments.insert(
            k.clone(),
            DepartmentDef {
                key: k,
                labels: Labels {
                    zh: raw_dept.zh,
                    en: raw_dept.en,
                },
                office: raw_dept.office,
                forms: dept_forms,
                entities: dept_entities,
                fields: seen_fields,
                villages: villages_scope,
            },
        );
    }

    Ok(Schema {
        name,
        revision: raw.revision,
        township,
        villages,
        fields,
        entities,
        forms,
        departments,
    })
}

fn field_def(cx: &Ctx<'_>, key: String, raw: RawField) -> Result<FieldDef, SchemaError> {
    let ty_name = raw.ty.get_ref().as_str();
    let not_for = |param: &str, span: &dyn Fn() -> usize| SchemaError::Invalid {
        file: cx.file.to_owned(),
        line: cx.line(span()),
        key: format!("{key}.{param}"),
        message: format!("`{param}` does not apply to a field of type {ty_name}"),
    };
    macro_rules! reject {
        ($($param:ident),*) => {$(
            if let Some(v) = &raw.$param {
                return Err(not_for(stringify!($param), &|| v.span().start));
            }
        )*};
    }
    let ty = match ty_name {
        "text" => {
            reject!(min, max, scale, options);
            let pattern = match &raw.pattern {
                Some(p) => Some(Pattern {
                    regex: Regex::new(&format!("^(?:{})$", p.get_ref())).map_err(|e| {
                        cx.err(
                            p,
                            format!("{key}.pattern"),
                            format!(
                                "not a valid regular expression: {}",
                                e.to_string().lines().last().unwrap_or("")
                            ),
                        )
                    })?,
                    source: p.get_ref().clone(),
                    message: raw.pattern_message.as_ref().map(|m| m.get_ref().clone()),
                }),
                None => {
                    reject!(pattern_message);
                    None
                }
            };
            FieldType::Text {
                max_len: raw.max_len.as_ref().map(|m| *m.get_ref()),
                pattern,
            }
        }
        "integer" => {
            reject!(max_len, pattern, pattern_message, scale, options);
            let bound = |b: &Option<Spanned<toml::Value>>,
                         name: &str|
             -> Result<Option<i64>, SchemaError> {
                match b {
                    None => Ok(None),
                    Some(v) => v.get_ref().as_integer().map(Some).ok_or_else(|| {
                        cx.err(
                            v,
                            format!("{key}.{name}"),
                            "must be a whole number for an integer field",
                        )
                    }),
                }
            };
            let (min, max) = (bound(&raw.min, "min")?, bound(&raw.max, "max")?);
            if let (Some(lo), Some(hi), Some(m)) = (min, max, &raw.min)
                && lo > hi
            {
                return Err(cx.err(m, format!("{key}.min"), "min is greater than max"));
            }
            FieldType::Integer { min, max }
        }
        "decimal" => {
            reject!(max_len, pattern, pattern_message, options);
            let bound = |b: &Option<Spanned<toml::Value>>,
                         name: &str|
             -> Result<Option<Decimal>, SchemaError> {
                let Some(v) = b else { return Ok(None) };
                let parsed = match v.get_ref() {
                    toml::Value::Integer(i) => Some(Decimal::from(*i)),
                    toml::Value::Float(f) => Decimal::from_str(&f.to_string()).ok(),
                    toml::Value::String(s) => Decimal::from_str(s).ok(),
                    _ => None,
                };
                parsed
                    .map(Some)
                    .ok_or_else(|| cx.err(v, format!("{key}.{name}"), "must be a number"))
            };
            FieldType::Decimal {
                min: bound(&raw.min, "min")?,
                max: bound(&raw.max, "max")?,
                scale: raw.scale.as_ref().map(|s| *s.get_ref()),
            }
        }
        "boolean" | "date" | "gps" | "attachment" => {
            reject!(max_len, pattern, pattern_message, min, max, scale, options);
            match ty_name {
                "boolean" => FieldType::Boolean,
                "date" => FieldType::Date,
                "gps" => FieldType::Gps,
                _ => FieldType::Attachment,
            }
        }
        "choice" | "multi_choice" => {
            reject!(max_len, pattern, pattern_message, min, max, scale);
            let Some(raw_options) = &raw.options else {
                return Err(cx.err(
                    &raw.ty,
                    format!("{key}.type"),
                    format!("a {ty_name} field needs `options`"),
                ));
            };
            if raw_options.get_ref().is_empty() {
                return Err(cx.err(
                    raw_options,
                    format!("{key}.options"),
                    "needs at least one option",
                ));
            }
            let mut options: Vec<ChoiceOption> = Vec::new();
            for o in raw_options.get_ref() {
                let ok = cx.key(&o.key, "option")?;
                if options.iter().any(|x| x.key == ok) {
                    return Err(cx.err(
                        &o.key,
                        &ok,
                        format!("option listed twice in field `{key}`"),
                    ));
                }
                options.push(ChoiceOption {
                    key: ok,
                    labels: Labels {
                        zh: o.zh.clone(),
                        en: o.en.clone(),
                    },
                });
            }
            if ty_name == "choice" {
                FieldType::Choice { options }
            } else {
                FieldType::MultiChoice { options }
            }
        }
        other => {
            return Err(cx.err(
                &raw.ty,
                format!("{key}.type"),
                format!(
                    "unknown type \"{other}\"; use one of text, integer, decimal, boolean, date, choice, multi_choice, gps, attachment"
                ),
            ));
        }
    };
    Ok(FieldDef {
        key,
        labels: Labels {
            zh: raw.zh,
            en: raw.en,
        },
        ty,
        help: raw.help,
    })
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
        assert_eq!(d.fields, vec!["head".to_owned(), "size".to_owned()]);
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

    #[test]
    fn every_schema_mistake_names_file_line_and_key() {
        let cases = [
            (
                "format = 1",
                "format = 2",
                "mini.toml:1: `format`: schema format 2 is not supported; this build reads format 1",
            ),
            (
                "type = \"integer\"",
                "type = \"number\"",
                "mini.toml:19: `size.type`: unknown type \"number\"; use one of text, integer, decimal, boolean, date, choice, multi_choice, gps, attachment",
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
            d.sees_record("household", Some("a")) && d.sees_field("head") && !d.sees_field("size")
        );
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
