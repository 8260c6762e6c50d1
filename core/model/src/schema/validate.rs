//! Checking one value against the dictionary, with messages a cadre can act on.

use std::fmt;

use rust_decimal::Decimal;

use super::{FieldDef, Schema};
use crate::value::{FieldType, ValidationReason, Value};

/// A value refused by the dictionary: which field, and why. Nothing was written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ValidationError {
    /// The field key as given by the caller.
    pub field: String,
    /// The field's Chinese label, when the field exists.
    pub label_zh: Option<String>,
    /// What is wrong.
    pub reason: ValidationReason,
}

impl ValidationError {
    pub(crate) fn new(def: &FieldDef, reason: ValidationReason) -> Self {
        Self {
            field: def.key.clone(),
            label_zh: Some(def.labels.zh.clone()),
            reason,
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.label_zh {
            Some(zh) if !zh.is_empty() => write!(f, "field `{}` ({zh}) ", self.field)?,
            _ => write!(f, "field `{}` ", self.field)?,
        }
        match &self.reason {
            ValidationReason::UnknownField => write!(f, "is not in the field dictionary"),
            ValidationReason::NotInEntity { entity } => {
                write!(f, "is not a field of entity type `{entity}`")
            }
            ValidationReason::WrongType { expected, got } => {
                write!(f, "expects {expected}, got {got}")
            }
            ValidationReason::NotAnOption { option, allowed } => write!(
                f,
                "has no option \"{option}\"; allowed: {}",
                allowed.join(", ")
            ),
            ValidationReason::BelowMin { min, got } => {
                write!(f, "must be at least {min}, got {got}")
            }
            ValidationReason::AboveMax { max, got } => {
                write!(f, "must be at most {max}, got {got}")
            }
            ValidationReason::TooManyDecimals { scale, got } => {
                write!(f, "allows {scale} digits after the point, got {got}")
            }
            ValidationReason::TooLong { max, len } => {
                write!(f, "allows at most {max} characters, got {len}")
            }
            ValidationReason::PatternMismatch { expected } => {
                write!(f, "must be {expected}")
            }
            ValidationReason::Blank => write!(f, "is blank; unset the field instead"),
            ValidationReason::BadDate { got } => {
                write!(f, "expects a real date written YYYY-MM-DD, got \"{got}\"")
            }
            ValidationReason::GpsOutOfRange { lat, lon } => write!(
                f,
                "expects latitude -90..90 and longitude -180..180, got {lat}, {lon}"
            ),
            ValidationReason::BadAttachment { problem } => {
                write!(f, "has a bad attachment reference: {problem}")
            }
        }
    }
}

/// The definition of `field`, provided records of `entity` may hold it.
pub fn field_of_entity<'s>(
    schema: &'s Schema,
    entity: &str,
    field: &str,
) -> Result<&'s FieldDef, ValidationError> {
    let Some(def) = schema.fields.get(field) else {
        return Err(ValidationError {
            field: field.to_owned(),
            label_zh: None,
            reason: ValidationReason::UnknownField,
        });
    };
    let allowed = schema
        .entities
        .get(entity)
        .is_some_and(|e| e.fields.iter().any(|f| f == field));
    if !allowed {
        return Err(ValidationError::new(
            def,
            ValidationReason::NotInEntity {
                entity: entity.to_owned(),
            },
        ));
    }
    Ok(def)
}

pub(super) fn validate(
    schema: &Schema,
    entity: &str,
    field: &str,
    value: &Value,
) -> Result<(), ValidationError> {
    let def = field_of_entity(schema, entity, field)?;
    check(&def.ty, value).map_err(|reason| ValidationError::new(def, reason))
}

fn check(ty: &FieldType, value: &Value) -> Result<(), ValidationReason> {
    if !ty.accepts(value) {
        return Err(ValidationReason::WrongType {
            expected: ty.expects(),
            got: crate::value::short_json(&value.to_json()),
        });
    }
    match (ty, value) {
        (FieldType::Text { max_len, pattern }, Value::Text(text)) => {
            if text.trim().is_empty() {
                return Err(ValidationReason::Blank);
            }
            let len = text.chars().count();
            if let Some(max) = *max_len
                && len > max
            {
                return Err(ValidationReason::TooLong { max, len });
            }
            if let Some(p) = pattern
                && !p.regex.is_match(text)
            {
                return Err(ValidationReason::PatternMismatch {
                    expected: p
                        .message
                        .clone()
                        .unwrap_or_else(|| format!("text matching {}", p.source)),
                });
            }
        }
        (FieldType::Integer { min, max }, Value::Integer(i)) => {
            range(
                min.map(Decimal::from),
                max.map(Decimal::from),
                Decimal::from(*i),
            )?;
        }
        (FieldType::Decimal { min, max, scale }, Value::Decimal(d)) => {
            range(*min, *max, *d)?;
            if let Some(scale) = *scale
                && d.normalize().scale() > scale
            {
                return Err(ValidationReason::TooManyDecimals {
                    scale,
                    got: d.normalize().to_string(),
                });
            }
        }
        (FieldType::Choice { options }, Value::Choice(key)) => {
            one_of(options, key)?;
        }
        (FieldType::MultiChoice { options }, Value::MultiChoice(keys)) => {
            for key in keys {
                one_of(options, key)?;
            }
        }
        (FieldType::Gps, Value::Gps(p)) => {
            let ok = p.lat.is_finite()
                && p.lon.is_finite()
                && (-90.0..=90.0).contains(&p.lat)
                && (-180.0..=180.0).contains(&p.lon);
            if !ok {
                return Err(ValidationReason::GpsOutOfRange {
                    lat: p.lat,
                    lon: p.lon,
                });
            }
        }
        (FieldType::Attachment, Value::Attachment(a)) => {
            let hex_ok = a.sha256.len() == 64
                && a.sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            let problem = if !hex_ok {
                Some("sha256 must be 64 lowercase hex digits")
            } else if a.name.trim().is_empty() {
                Some("name is empty")
            } else if !a.mime.contains('/') {
                Some("mime must look like type/subtype")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(ValidationReason::BadAttachment { problem });
            }
        }
        _ => {}
    }
    Ok(())
}

fn range(min: Option<Decimal>, max: Option<Decimal>, got: Decimal) -> Result<(), ValidationReason> {
    if let Some(min) = min
        && got < min
    {
        return Err(ValidationReason::BelowMin {
            min: min.normalize().to_string(),
            got: got.normalize().to_string(),
        });
    }
    if let Some(max) = max
        && got > max
    {
        return Err(ValidationReason::AboveMax {
            max: max.normalize().to_string(),
            got: got.normalize().to_string(),
        });
    }
    Ok(())
}

fn one_of(options: &[crate::value::ChoiceOption], key: &str) -> Result<(), ValidationReason> {
    if options.iter().any(|o| o.key == key) {
        Ok(())
    } else {
        Err(ValidationReason::NotAnOption {
            option: key.chars().take(40).collect(),
            allowed: options.iter().map(|o| o.key.clone()).collect(),
        })
    }
}
