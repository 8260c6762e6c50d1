//! Checking one value against the dictionary, with messages a cadre can act on.

use std::fmt;

use rust_decimal::Decimal;

use super::{FieldDef, Labels, Schema};
use crate::formats;
use crate::messages::{Lang, Message};
use crate::value::{ChoiceOption, FieldType, ValidationReason, Value};

/// A value refused by the dictionary: which field, and why. Nothing was written.
///
/// As data: [`ValidationError::message`] gives the stable code and parameters;
/// [`ValidationError::render`] the sentence in Chinese or English. `Display` is English
/// (logs, operators).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ValidationError {
    /// The field key as given by the caller.
    pub field: String,
    /// The field's Chinese and English labels, when the field exists (boxed to keep
    /// errors small).
    pub labels: Option<Box<Labels>>,
    /// What is wrong.
    pub reason: ValidationReason,
}

impl ValidationError {
    pub(crate) fn new(def: &FieldDef, reason: ValidationReason) -> Self {
        Self {
            field: def.key.clone(),
            labels: Some(Box::new(def.labels.clone())),
            reason,
        }
    }

    /// A refusal for a field the dictionary does not hold.
    pub(crate) fn unknown_field(field: &str) -> Self {
        Self {
            field: field.to_owned(),
            labels: None,
            reason: ValidationReason::UnknownField,
        }
    }

    /// The reason as a stable code and its parameters (`field`, `field_zh`, `field_en`
    /// and the reason's own).
    pub fn message(&self) -> Message {
        let m = Message::new(self.reason.code())
            .with("field", &self.field)
            .with(
                "field_zh",
                self.labels.as_ref().map_or("", |l| l.zh.as_str()),
            )
            .with(
                "field_en",
                self.labels.as_ref().map_or("", |l| l.en.as_str()),
            );
        self.reason.with_params(m)
    }

    /// The sentence in `lang`.
    pub fn render(&self, lang: Lang) -> String {
        self.message().render(lang)
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Lang::En))
    }
}

impl ValidationReason {
    /// The stable machine code of this reason.
    pub fn code(&self) -> &'static str {
        match self {
            ValidationReason::UnknownField => "unknown_field",
            ValidationReason::NotInEntity { .. } => "not_in_entity",
            ValidationReason::WrongType { .. } => "wrong_type",
            ValidationReason::NotAnOption { .. } => "not_an_option",
            ValidationReason::BelowMin { .. } => "below_min",
            ValidationReason::AboveMax { .. } => "above_max",
            ValidationReason::TooManyDecimals { .. } => "too_many_decimals",
            ValidationReason::TooLong { .. } => "too_long",
            ValidationReason::PatternMismatch { .. } => "pattern_mismatch",
            ValidationReason::Blank => "blank",
            ValidationReason::BadDate { .. } => "bad_date",
            ValidationReason::GpsOutOfRange { .. } => "gps_out_of_range",
            ValidationReason::BadAttachment { .. } => "bad_attachment",
            ValidationReason::BadIdNumber { .. } => "bad_id_number",
            ValidationReason::BadPhone => "bad_phone",
        }
    }

    /// `m` with this reason's parameters added. Option lists are given by label
    /// (`allowed_zh`, `allowed_en`, joined) and by key (`allowed`, comma-separated).
    fn with_params(&self, m: Message) -> Message {
        match self {
            ValidationReason::UnknownField
            | ValidationReason::Blank
            | ValidationReason::BadPhone => m,
            ValidationReason::NotInEntity { entity, labels } => m
                .with("entity", entity)
                .with("entity_zh", &labels.zh)
                .with("entity_en", &labels.en),
            ValidationReason::WrongType { expected, got } => {
                m.with("expected", *expected).with("got", got)
            }
            ValidationReason::NotAnOption { option, allowed } => {
                let join = |f: fn(&ChoiceOption) -> &str, sep| {
                    allowed.iter().map(f).collect::<Vec<_>>().join(sep)
                };
                m.with("option", option)
                    .with("allowed", join(|o| &o.key, ","))
                    .with("allowed_zh", join(|o| &o.labels.zh, "、"))
                    .with("allowed_en", join(|o| &o.labels.en, ", "))
            }
            ValidationReason::BelowMin { min, got } => m.with("min", min).with("got", got),
            ValidationReason::AboveMax { max, got } => m.with("max", max).with("got", got),
            ValidationReason::TooManyDecimals { scale, got } => {
                m.with("scale", scale.to_string()).with("got", got)
            }
            ValidationReason::TooLong { max, len } => {
                m.with("max", max.to_string()).with("len", len.to_string())
            }
            ValidationReason::PatternMismatch { expected } => m.with("expected", expected),
            ValidationReason::BadDate { got } => m.with("got", got),
            ValidationReason::GpsOutOfRange { lat, lon } => {
                m.with("lat", lat.to_string()).with("lon", lon.to_string())
            }
            ValidationReason::BadAttachment { problem }
            | ValidationReason::BadIdNumber { problem } => m.with("problem", *problem),
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
        return Err(ValidationError::unknown_field(field));
    };
    let entity_def = schema.entities.get(entity);
    if !entity_def.is_some_and(|e| e.fields.iter().any(|f| f == field)) {
        return Err(ValidationError::new(
            def,
            ValidationReason::NotInEntity {
                entity: entity.to_owned(),
                labels: Box::new(entity_def.map(|e| e.labels.clone()).unwrap_or_default()),
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
            expected: ty.name(),
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
        (FieldType::IdNumber, Value::Text(text)) => {
            formats::id_number(text, formats::today())
                .map_err(|problem| ValidationReason::BadIdNumber { problem })?;
        }
        (FieldType::Phone, Value::Text(text)) => {
            formats::phone(text).ok_or(ValidationReason::BadPhone)?;
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
                Some("sha256")
            } else if a.name.trim().is_empty() {
                Some("name")
            } else if !a.mime.contains('/') {
                Some("mime")
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

fn one_of(options: &[ChoiceOption], key: &str) -> Result<(), ValidationReason> {
    if options.iter().any(|o| o.key == key) {
        Ok(())
    } else {
        Err(ValidationReason::NotAnOption {
            option: key.chars().take(40).collect(),
            allowed: options.to_vec(),
        })
    }
}
