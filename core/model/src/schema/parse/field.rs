//! The field dictionary of a schema file: each field's type, and the parameters that
//! type takes.

use std::collections::BTreeMap;
use std::str::FromStr;

use regex::Regex;
use rust_decimal::Decimal;
use serde::Deserialize;
use toml::Spanned;

use super::{Ctx, SchemaError};
use crate::schema::{FieldDef, Labels};
use crate::value::{ChoiceOption, FieldType, Pattern};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawField {
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

/// The field dictionary, by field key.
pub(super) fn dictionary(
    cx: &Ctx<'_>,
    raw: BTreeMap<Spanned<String>, RawField>,
) -> Result<BTreeMap<String, FieldDef>, SchemaError> {
    let mut fields = BTreeMap::new();
    for (key, raw_field) in raw {
        let k = cx.key(&key, "field")?;
        let def = field_def(cx, k.clone(), raw_field)?;
        fields.insert(k, def);
    }
    Ok(fields)
}

/// One field of the dictionary.
fn field_def(cx: &Ctx<'_>, key: String, raw: RawField) -> Result<FieldDef, SchemaError> {
    let ty = field_type(cx, &key, &raw)?;
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

/// A field's type and its parameters; a parameter its type does not take is refused.
fn field_type(cx: &Ctx<'_>, key: &str, raw: &RawField) -> Result<FieldType, SchemaError> {
    let ty_name = raw.ty.get_ref().as_str();
    match ty_name {
        "text" => {
            raw.takes_only(cx, key, &["max_len", "pattern", "pattern_message"])?;
            text_type(cx, key, raw)
        }
        "integer" => {
            raw.takes_only(cx, key, &["min", "max"])?;
            integer_type(cx, key, raw)
        }
        "decimal" => {
            raw.takes_only(cx, key, &["min", "max", "scale"])?;
            decimal_type(cx, key, raw)
        }
        "boolean" | "date" | "gps" | "attachment" | "id_number" | "phone" => {
            raw.takes_only(cx, key, &[])?;
            Ok(match ty_name {
                "boolean" => FieldType::Boolean,
                "date" => FieldType::Date,
                "gps" => FieldType::Gps,
                "id_number" => FieldType::IdNumber,
                "phone" => FieldType::Phone,
                _ => FieldType::Attachment,
            })
        }
        "choice" | "multi_choice" => {
            raw.takes_only(cx, key, &["options"])?;
            let options = choice_options(cx, key, raw)?;
            Ok(if ty_name == "choice" {
                FieldType::Choice { options }
            } else {
                FieldType::MultiChoice { options }
            })
        }
        other => Err(cx.err(
            &raw.ty,
            format!("{key}.type"),
            format!(
                "unknown type \"{other}\"; use one of text, integer, decimal, boolean, date, choice, multi_choice, gps, attachment, id_number, phone"
            ),
        )),
    }
}

impl RawField {
    /// Each type parameter with where it starts if given, in the order they are checked.
    fn params(&self) -> [(&'static str, Option<usize>); 7] {
        fn start<T>(v: &Option<Spanned<T>>) -> Option<usize> {
            v.as_ref().map(|v| v.span().start)
        }
        [
            ("max_len", start(&self.max_len)),
            ("pattern", start(&self.pattern)),
            ("pattern_message", start(&self.pattern_message)),
            ("min", start(&self.min)),
            ("max", start(&self.max)),
            ("scale", start(&self.scale)),
            ("options", start(&self.options)),
        ]
    }

    /// Refuses the first parameter given that is not in `takes`.
    fn takes_only(&self, cx: &Ctx<'_>, key: &str, takes: &[&str]) -> Result<(), SchemaError> {
        for (param, start) in self.params() {
            if let Some(start) = start
                && !takes.contains(&param)
            {
                return Err(self.not_for(cx, key, param, start));
            }
        }
        Ok(())
    }

    /// The error for `param`, given at byte `start`, that this field's type does not take.
    fn not_for(&self, cx: &Ctx<'_>, key: &str, param: &str, start: usize) -> SchemaError {
        SchemaError::Invalid {
            file: cx.file.to_owned(),
            line: cx.line(start),
            key: format!("{key}.{param}"),
            message: format!(
                "`{param}` does not apply to a field of type {}",
                self.ty.get_ref()
            ),
        }
    }
}

/// A text field: an optional length limit and pattern; a pattern message needs a pattern.
fn text_type(cx: &Ctx<'_>, key: &str, raw: &RawField) -> Result<FieldType, SchemaError> {
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
            if let Some(m) = &raw.pattern_message {
                return Err(raw.not_for(cx, key, "pattern_message", m.span().start));
            }
            None
        }
    };
    Ok(FieldType::Text {
        max_len: raw.max_len.as_ref().map(|m| *m.get_ref()),
        pattern,
    })
}

/// An integer field: optional whole-number bounds, `min` at most `max`.
fn integer_type(cx: &Ctx<'_>, key: &str, raw: &RawField) -> Result<FieldType, SchemaError> {
    let (min, max) = (
        integer_bound(cx, key, &raw.min, "min")?,
        integer_bound(cx, key, &raw.max, "max")?,
    );
    if let (Some(lo), Some(hi), Some(m)) = (min, max, &raw.min)
        && lo > hi
    {
        return Err(cx.err(m, format!("{key}.min"), "min is greater than max"));
    }
    Ok(FieldType::Integer { min, max })
}

/// One bound of an integer field, if given.
fn integer_bound(
    cx: &Ctx<'_>,
    key: &str,
    bound: &Option<Spanned<toml::Value>>,
    name: &str,
) -> Result<Option<i64>, SchemaError> {
    match bound {
        None => Ok(None),
        Some(v) => v.get_ref().as_integer().map(Some).ok_or_else(|| {
            cx.err(
                v,
                format!("{key}.{name}"),
                "must be a whole number for an integer field",
            )
        }),
    }
}

/// A decimal field: optional bounds and scale.
fn decimal_type(cx: &Ctx<'_>, key: &str, raw: &RawField) -> Result<FieldType, SchemaError> {
    Ok(FieldType::Decimal {
        min: decimal_bound(cx, key, &raw.min, "min")?,
        max: decimal_bound(cx, key, &raw.max, "max")?,
        scale: raw.scale.as_ref().map(|s| *s.get_ref()),
    })
}

/// One bound of a decimal field, if given: an integer, a float or a numeric string.
fn decimal_bound(
    cx: &Ctx<'_>,
    key: &str,
    bound: &Option<Spanned<toml::Value>>,
    name: &str,
) -> Result<Option<Decimal>, SchemaError> {
    let Some(v) = bound else { return Ok(None) };
    let parsed = match v.get_ref() {
        toml::Value::Integer(i) => Some(Decimal::from(*i)),
        toml::Value::Float(f) => Decimal::from_str(&f.to_string()).ok(),
        toml::Value::String(s) => Decimal::from_str(s).ok(),
        _ => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| cx.err(v, format!("{key}.{name}"), "must be a number"))
}

/// The options of a choice field: at least one, each key once.
fn choice_options(
    cx: &Ctx<'_>,
    key: &str,
    raw: &RawField,
) -> Result<Vec<ChoiceOption>, SchemaError> {
    let Some(raw_options) = &raw.options else {
        return Err(cx.err(
            &raw.ty,
            format!("{key}.type"),
            format!("a {} field needs `options`", raw.ty.get_ref()),
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
            return Err(cx.err(&o.key, &ok, format!("option listed twice in field `{key}`")));
        }
        options.push(ChoiceOption {
            key: ok,
            labels: Labels {
                zh: o.zh.clone(),
                en: o.en.clone(),
            },
        });
    }
    Ok(options)
}
