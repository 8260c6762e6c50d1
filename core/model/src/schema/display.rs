//! How a record reads for people: a stored value with option labels instead of keys,
//! 是/否 for booleans, multi-choice labels joined; and whether a form is complete. One
//! rule for every place that shows them (task progress, the web console today;
//! spreadsheets next), so no two places disagree.

use serde_json::Value as Json;

use super::{FieldDef, FormDef, Schema};
use crate::value::{ChoiceOption, FieldType, Labels};

impl Labels {
    /// The label in English (`en`) or Chinese.
    pub fn get(&self, en: bool) -> &str {
        if en { &self.en } else { &self.zh }
    }
}

fn option_label<'a>(options: &'a [ChoiceOption], key: &'a str, en: bool) -> &'a str {
    options
        .iter()
        .find(|o| o.key == key)
        .map_or(key, |o| o.labels.get(en))
}

impl FieldDef {
    /// `value` (the JSON of [`crate::Value::to_json`]) as a person reads it. A value that
    /// does not fit the field (an older schema's option, say) is shown as stored.
    pub fn display(&self, value: &Json, en: bool) -> String {
        match (&self.ty, value) {
            (FieldType::Choice { options }, Json::String(k)) => {
                option_label(options, k, en).to_owned()
            }
            (FieldType::MultiChoice { options }, Json::Array(keys)) => keys
                .iter()
                .map(|k| match k {
                    Json::String(k) => option_label(options, k, en).to_owned(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(if en { ", " } else { "、" }),
            (FieldType::Boolean, Json::Bool(b)) => match (b, en) {
                (true, false) => "是".into(),
                (false, false) => "否".into(),
                (true, true) => "yes".into(),
                (false, true) => "no".into(),
            },
            (FieldType::Gps, Json::Object(p)) => match (p.get("lat"), p.get("lon")) {
                (Some(lat), Some(lon)) => format!("{lat}, {lon}"),
                _ => value.to_string(),
            },
            (FieldType::Attachment, Json::Object(a)) => a
                .get("name")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_owned(),
            (_, Json::String(s)) => s.clone(),
            (_, other) => other.to_string(),
        }
    }
}

impl FormDef {
    /// True when every required field of the form has a value (`has` says which do).
    pub fn is_complete(&self, has: impl Fn(&str) -> bool) -> bool {
        self.required.iter().all(|f| has(f))
    }
}

impl Schema {
    /// The value of `field` as a person reads it; an unknown field's value as stored.
    pub fn display(&self, field: &str, value: &Json, en: bool) -> String {
        match self.field(field) {
            Some(def) => def.display(value, en),
            None => match value {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::Schema;

    #[test]
    fn values_show_labels_not_keys() {
        let s = Schema::baru_example();
        assert_eq!(
            s.display("dibao_status", &json!("enrolled"), false),
            "低保户"
        );
        assert_eq!(
            s.display("dibao_status", &json!("enrolled"), true),
            "Enrolled"
        );
        assert_eq!(
            s.display("income_sources", &json!(["farming", "wages"]), false),
            "种植、务工"
        );
        assert_eq!(s.display("housing_safe", &json!(true), false), "是");
        assert_eq!(
            s.display("id_number", &json!("513401198505052222"), false),
            "513401198505052222"
        );
        assert_eq!(s.display("household_size", &json!(5), false), "5");
        // An option an older schema had: shown as stored, never dropped.
        assert_eq!(s.display("dibao_status", &json!("gone"), false), "gone");
    }
}
