//! Typed field values, and how they are written in JSON and in automerge documents.
//!
//! A field value is one register in the record's CRDT: setting it replaces the whole
//! value, and two devices setting it concurrently produce a *conflict* that keeps both.
//! That is the right unit for the facts cadres enter: an ID number or a GPS point must
//! never be merged character by character. Compound values (multiple choice, GPS point,
//! attachment reference) are therefore stored as one scalar (compact JSON text), and
//! decimals as their exact decimal text, so that no float rounding touches money.
//!
//! [`FieldType::parse_json`] reads a value as people type it and writes it one way
//! (text trimmed, a decimal at the field's scale, a date as `YYYY-MM-DD`, an ID number's
//! `x` as `X`; see [`crate::formats`]); constraints (range, options, pattern, check digit)
//! are checked by `Schema::validate`, on the phone and again on the server.

use std::fmt;
use std::str::FromStr;

use automerge::ScalarValue;
use chrono::NaiveDate;
use regex::Regex;
pub use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::formats;

/// Chinese and English labels of a schema item.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Labels {
    /// Chinese label, shown to cadres.
    pub zh: String,
    /// English label.
    pub en: String,
}

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum ValidationReason {
    /// The field is not in the dictionary.
    UnknownField,
    /// The field exists but records of this entity type do not hold it.
    NotInEntity {
        /// The record's entity type.
        entity: String,
        /// Its labels (empty for an unknown entity type; boxed to keep errors small).
        labels: Box<Labels>,
    },
    /// The value has the wrong shape.
    WrongType {
        /// The type the field takes, as named in schema files (`integer`).
        expected: &'static str,
        /// What was given (shortened).
        got: String,
    },
    /// A choice that is not in the field's option list.
    NotAnOption {
        /// The option given.
        option: String,
        /// The allowed options (keys and labels), in display order.
        allowed: Vec<ChoiceOption>,
    },
    /// A number below the field's minimum.
    BelowMin {
        /// The minimum.
        min: String,
        /// The value given.
        got: String,
    },
    /// A number above the field's maximum.
    AboveMax {
        /// The maximum.
        max: String,
        /// The value given.
        got: String,
    },
    /// A decimal with more digits after the point than allowed.
    TooManyDecimals {
        /// Allowed digits after the point.
        scale: u32,
        /// The value given.
        got: String,
    },
    /// Text longer than allowed.
    TooLong {
        /// Maximum characters.
        max: usize,
        /// Characters given.
        len: usize,
    },
    /// Text not matching the field's pattern.
    PatternMismatch {
        /// What the pattern means, or the pattern itself.
        expected: String,
    },
    /// Empty or blank text; unset the field instead.
    Blank,
    /// Not a real calendar date.
    BadDate {
        /// The text given.
        got: String,
    },
    /// A GPS point outside -90..90 / -180..180.
    GpsOutOfRange {
        /// Latitude given.
        lat: f64,
        /// Longitude given.
        lon: f64,
    },
    /// An attachment reference with a bad hash, empty name or type.
    BadAttachment {
        /// What is wrong: `sha256`, `name` or `mime`.
        problem: &'static str,
    },
    /// Not a valid resident ID number (GB 11643). The number is not kept: it is
    /// personal data and messages travel.
    BadIdNumber {
        /// What is wrong: `length`, `characters`, `region`, `birth_date`, `check_digit`.
        problem: &'static str,
    },
    /// Not a mobile or landline phone number (not kept, as for ID numbers).
    BadPhone,
}

/// A field's value type with its constraints.
#[derive(Debug, Clone)]
pub enum FieldType {
    /// Free text.
    Text {
        /// Maximum length in characters.
        max_len: Option<usize>,
        /// A pattern the whole text must match.
        pattern: Option<Pattern>,
    },
    /// A whole number.
    Integer {
        /// Smallest allowed value.
        min: Option<i64>,
        /// Largest allowed value.
        max: Option<i64>,
    },
    /// An exact decimal number (money, areas).
    Decimal {
        /// Smallest allowed value.
        min: Option<Decimal>,
        /// Largest allowed value.
        max: Option<Decimal>,
        /// Maximum digits after the decimal point.
        scale: Option<u32>,
    },
    /// Yes or no.
    Boolean,
    /// A calendar date (`YYYY-MM-DD`).
    Date,
    /// One option out of a list.
    Choice {
        /// The allowed options, in display order.
        options: Vec<ChoiceOption>,
    },
    /// Any number of options out of a list.
    MultiChoice {
        /// The allowed options, in display order.
        options: Vec<ChoiceOption>,
    },
    /// A WGS84 point.
    Gps,
    /// A reference to a photo or document stored elsewhere.
    Attachment,
    /// An 18-character resident ID number (GB 11643): check character, birth date and
    /// region checked; stored as text with `X` upper case.
    IdNumber,
    /// A mobile (11 digits) or landline (area code + number) phone number, stored as text
    /// without spaces.
    Phone,
}

/// One allowed option of a choice field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceOption {
    /// Stored key, e.g. `brick`.
    pub key: String,
    /// Labels shown to people.
    pub labels: Labels,
}

/// A compiled text pattern with the message shown when it does not match.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The regular expression, anchored to the whole text.
    pub regex: Regex,
    /// The expression as written in the schema.
    pub source: String,
    /// What a person should be told, e.g. "18 digits, the last may be X".
    pub message: Option<String>,
}

/// A WGS84 point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GpsPoint {
    /// Latitude in degrees, -90..=90.
    pub lat: f64,
    /// Longitude in degrees, -180..=180.
    pub lon: f64,
}

/// A reference to an attachment (photo, scanned document) kept outside the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    /// Lowercase hex SHA-256 of the content: the attachment's identity.
    pub sha256: String,
    /// Original file name.
    pub name: String,
    /// MIME type, e.g. `image/jpeg`.
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
}

/// A typed field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// Whole number.
    Integer(i64),
    /// Exact decimal.
    Decimal(Decimal),
    /// Yes/no.
    Boolean(bool),
    /// Calendar date.
    Date(NaiveDate),
    /// The key of one option.
    Choice(String),
    /// Keys of several options, sorted and without repeats.
    MultiChoice(Vec<String>),
    /// A point.
    Gps(GpsPoint),
    /// An attachment reference.
    Attachment(AttachmentRef),
}

impl FieldType {
    /// A short name of the type for messages, in English ("a whole number").
    pub fn expects(&self) -> &'static str {
        crate::messages::type_phrase(self.name(), crate::messages::Lang::En)
    }

    /// The type's name as written in schema files.
    pub fn name(&self) -> &'static str {
        match self {
            FieldType::Text { .. } => "text",
            FieldType::Integer { .. } => "integer",
            FieldType::Decimal { .. } => "decimal",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Choice { .. } => "choice",
            FieldType::MultiChoice { .. } => "multi_choice",
            FieldType::Gps => "gps",
            FieldType::Attachment => "attachment",
            FieldType::IdNumber => "id_number",
            FieldType::Phone => "phone",
        }
    }

    /// True when `value` has this type's shape.
    pub fn accepts(&self, value: &Value) -> bool {
        matches!(
            (self, value),
            (FieldType::Text { .. }, Value::Text(_))
                | (FieldType::Integer { .. }, Value::Integer(_))
                | (FieldType::Decimal { .. }, Value::Decimal(_))
                | (FieldType::Boolean, Value::Boolean(_))
                | (FieldType::Date, Value::Date(_))
                | (FieldType::Choice { .. }, Value::Choice(_))
                | (FieldType::MultiChoice { .. }, Value::MultiChoice(_))
                | (FieldType::Gps, Value::Gps(_))
                | (FieldType::Attachment, Value::Attachment(_))
                | (FieldType::IdNumber | FieldType::Phone, Value::Text(_))
        )
    }

    /// Reads a JSON value of this type. Numbers may also arrive as strings ("3"),
    /// because form inputs on phones are text.
    pub fn parse_json(&self, json: &serde_json::Value) -> Result<Value, ValidationReason> {
        use serde_json::Value as J;
        let wrong = || ValidationReason::WrongType {
            expected: self.name(),
            got: short_json(json),
        };
        match self {
            FieldType::Text { .. } => match json {
                J::String(s) => Ok(Value::Text(formats::trimmed(s).to_owned())),
                _ => Err(wrong()),
            },
            FieldType::IdNumber => match json {
                J::String(s) => formats::id_number(s, formats::today())
                    .map(Value::Text)
                    .map_err(|problem| ValidationReason::BadIdNumber { problem }),
                _ => Err(wrong()),
            },
            FieldType::Phone => match json {
                J::String(s) => formats::phone(s)
                    .map(Value::Text)
                    .ok_or(ValidationReason::BadPhone),
                J::Number(n) => formats::phone(&n.to_string())
                    .map(Value::Text)
                    .ok_or(ValidationReason::BadPhone),
                _ => Err(wrong()),
            },
            FieldType::Integer { .. } => match json {
                J::Number(n) => n.as_i64().map(Value::Integer).ok_or_else(wrong),
                J::String(s) => s.trim().parse().map(Value::Integer).map_err(|_| wrong()),
                _ => Err(wrong()),
            },
            FieldType::Decimal { scale, .. } => {
                let d = match json {
                    J::Number(n) => Decimal::from_str(&n.to_string())
                        .or_else(|_| Decimal::from_scientific(&n.to_string()))
                        .map_err(|_| wrong())?,
                    J::String(s) => Decimal::from_str(s.trim()).map_err(|_| wrong())?,
                    _ => return Err(wrong()),
                };
                at_scale(d, *scale).map(Value::Decimal)
            }
            FieldType::Boolean => match json {
                J::Bool(b) => Ok(Value::Boolean(*b)),
                J::String(s) if s == "true" => Ok(Value::Boolean(true)),
                J::String(s) if s == "false" => Ok(Value::Boolean(false)),
                _ => Err(wrong()),
            },
            FieldType::Date => match json {
                J::String(s) => parse_date(s).map(Value::Date),
                _ => Err(wrong()),
            },
            FieldType::Choice { options } => match json {
                J::String(s) => Ok(Value::Choice(option_key(options, s))),
                _ => Err(wrong()),
            },
            FieldType::MultiChoice { options } => match json {
                J::Array(items) => {
                    let mut keys = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            J::String(s) => keys.push(option_key(options, s)),
                            _ => return Err(wrong()),
                        }
                    }
                    Ok(Value::multi_choice(keys))
                }
                _ => Err(wrong()),
            },
            FieldType::Gps => serde_json::from_value::<GpsPoint>(json.clone())
                .map(Value::Gps)
                .map_err(|_| wrong()),
            FieldType::Attachment => serde_json::from_value::<AttachmentRef>(json.clone())
                .map(Value::Attachment)
                .map_err(|_| wrong()),
        }
    }

    /// Decodes a value stored in a record document. `None` when the stored scalar does
    /// not have this type's shape (a schema changed under old data); callers report it.
    pub fn from_scalar(&self, scalar: &ScalarValue) -> Option<Value> {
        match (self, scalar) {
            (
                FieldType::Text { .. } | FieldType::IdNumber | FieldType::Phone,
                ScalarValue::Str(s),
            ) => Some(Value::Text(s.to_string())),
            (FieldType::Integer { .. }, ScalarValue::Int(i)) => Some(Value::Integer(*i)),
            (FieldType::Integer { .. }, ScalarValue::Uint(u)) => {
                i64::try_from(*u).ok().map(Value::Integer)
            }
            (FieldType::Decimal { .. }, ScalarValue::Str(s)) => {
                Decimal::from_str(s).ok().map(Value::Decimal)
            }
            (FieldType::Boolean, ScalarValue::Boolean(b)) => Some(Value::Boolean(*b)),
            (FieldType::Date, ScalarValue::Str(s)) => parse_date(s).ok().map(Value::Date),
            (FieldType::Choice { .. }, ScalarValue::Str(s)) => Some(Value::Choice(s.to_string())),
            (FieldType::MultiChoice { .. }, ScalarValue::Str(s)) => {
                serde_json::from_str::<Vec<String>>(s)
                    .ok()
                    .map(Value::multi_choice)
            }
            (FieldType::Gps, ScalarValue::Str(s)) => serde_json::from_str(s).ok().map(Value::Gps),
            (FieldType::Attachment, ScalarValue::Str(s)) => {
                serde_json::from_str(s).ok().map(Value::Attachment)
            }
            _ => None,
        }
    }
}

fn parse_date(s: &str) -> Result<NaiveDate, ValidationReason> {
    crate::clock::parse_day(s).ok_or_else(|| ValidationReason::BadDate {
        got: s.chars().take(40).collect(),
    })
}

/// A decimal written with the field's scale (`450` and `450.000` → `450.00` at scale 2),
/// refused when it has more significant digits after the point; without a scale, the
/// shortest exact form.
fn at_scale(d: Decimal, scale: Option<u32>) -> Result<Decimal, ValidationReason> {
    let d = d.normalize();
    match scale {
        None => Ok(d),
        Some(scale) if d.scale() > scale => Err(ValidationReason::TooManyDecimals {
            scale,
            got: d.to_string(),
        }),
        Some(scale) => {
            let mut d = d;
            d.rescale(scale);
            Ok(d)
        }
    }
}

/// The key of the option typed: its key, or (as people type it) its Chinese or English
/// label; white space around it dropped. Unknown text stays as typed, for the validator
/// to refuse with the allowed labels.
fn option_key(options: &[ChoiceOption], typed: &str) -> String {
    let typed = formats::trimmed(typed);
    options
        .iter()
        .find(|o| o.key == typed)
        .or_else(|| {
            options
                .iter()
                .find(|o| o.labels.zh == typed || o.labels.en.eq_ignore_ascii_case(typed))
        })
        .map_or_else(|| typed.to_owned(), |o| o.key.clone())
}

/// A JSON value shortened for an error message.
pub(crate) fn short_json(json: &serde_json::Value) -> String {
    let text = json.to_string();
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(37).collect();
        format!("{cut}...")
    } else {
        text
    }
}

impl Value {
    /// A multiple-choice value, sorted and without repeats, so equal sets compare equal.
    pub fn multi_choice(mut keys: Vec<String>) -> Self {
        keys.sort();
        keys.dedup();
        Value::MultiChoice(keys)
    }

    /// The value as JSON, the form used by every API and by the query index.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Text(s) | Value::Choice(s) => json!(s),
            Value::Integer(i) => json!(i),
            Value::Decimal(d) => json!(d.to_string()),
            Value::Boolean(b) => json!(b),
            Value::Date(d) => json!(d.format("%Y-%m-%d").to_string()),
            Value::MultiChoice(keys) => json!(keys),
            Value::Gps(p) => json!({ "lat": p.lat, "lon": p.lon }),
            Value::Attachment(a) => json!({
                "sha256": a.sha256, "name": a.name, "mime": a.mime, "size": a.size
            }),
        }
    }

    /// The scalar written into the record document.
    pub fn to_scalar(&self) -> ScalarValue {
        match self {
            Value::Text(s) | Value::Choice(s) => ScalarValue::Str(s.as_str().into()),
            Value::Integer(i) => ScalarValue::Int(*i),
            Value::Decimal(d) => ScalarValue::Str(d.to_string().into()),
            Value::Boolean(b) => ScalarValue::Boolean(*b),
            Value::Date(d) => ScalarValue::Str(d.format("%Y-%m-%d").to_string().into()),
            Value::MultiChoice(_) | Value::Gps(_) | Value::Attachment(_) => {
                ScalarValue::Str(self.to_json().to_string().into())
            }
        }
    }

    /// Text used by "contains" queries: the text itself for text-like values.
    pub fn search_text(&self) -> Option<String> {
        match self {
            Value::Text(s) | Value::Choice(s) => Some(s.clone()),
            Value::MultiChoice(keys) => Some(keys.join(" ")),
            Value::Attachment(a) => Some(a.name.clone()),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(s) | Value::Choice(s) => f.write_str(s),
            other => write!(f, "{}", other.to_json()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_the_document_scalar() {
        let cases = [
            (
                FieldType::Text {
                    max_len: None,
                    pattern: None,
                },
                Value::Text("阿木 Amu".into()),
            ),
            (
                FieldType::Integer {
                    min: None,
                    max: None,
                },
                Value::Integer(-7),
            ),
            (
                FieldType::Decimal {
                    min: None,
                    max: None,
                    scale: None,
                },
                Value::Decimal(Decimal::from_str("12345.67").unwrap_or_default()),
            ),
            (FieldType::Boolean, Value::Boolean(true)),
            (
                FieldType::Date,
                Value::Date(NaiveDate::from_ymd_opt(2026, 2, 28).unwrap_or_default()),
            ),
            (
                FieldType::MultiChoice { options: vec![] },
                Value::multi_choice(vec!["b".into(), "a".into(), "b".into()]),
            ),
            (
                FieldType::Gps,
                Value::Gps(GpsPoint {
                    lat: 27.9,
                    lon: 102.3,
                }),
            ),
            (
                FieldType::Attachment,
                Value::Attachment(AttachmentRef {
                    sha256: "ab".repeat(32),
                    name: "门牌.jpg".into(),
                    mime: "image/jpeg".into(),
                    size: 1024,
                }),
            ),
        ];
        for (ty, value) in cases {
            assert_eq!(
                ty.from_scalar(&value.to_scalar()),
                Some(value.clone()),
                "{ty:?}"
            );
            assert_eq!(ty.parse_json(&value.to_json()), Ok(value), "{ty:?}");
        }
    }

    #[test]
    fn numbers_typed_as_text_are_accepted_but_words_are_not() {
        let ty = FieldType::Integer {
            min: None,
            max: None,
        };
        assert_eq!(ty.parse_json(&json!(" 4 ")), Ok(Value::Integer(4)));
        assert!(ty.parse_json(&json!("three")).is_err());
        assert!(ty.parse_json(&json!(3.5)).is_err());
    }

    #[test]
    fn decimals_are_exact_and_canonical() {
        let ty = FieldType::Decimal {
            min: None,
            max: None,
            scale: None,
        };
        let a = ty.parse_json(&json!("1200.50")).ok();
        let b = ty.parse_json(&json!(1200.5)).ok();
        assert_eq!(a, b);
        assert_eq!(a.map(|v| v.to_json()), Some(json!("1200.5")));
    }
}
