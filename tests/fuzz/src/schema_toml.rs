//! The schema parser: TOML text (an operator's file) into a checked `Schema`.
//!
//! Input: the file's bytes (not UTF-8: nothing to parse, as `from_toml_file` would refuse
//! it). Must hold: no panic, no hang; a schema that loads can check values: every field
//! of every entity takes a few sample values through `parse_json_text` (type, range,
//! options, pattern) without panicking, and every department's view answers.

use yibiao_model::Schema;

/// Sample values typed by an app, of every JSON kind the field types read.
const SAMPLES: &[&str] = &[
    "1",
    "-7",
    "2.50",
    "\"阿木\"",
    "\"2026-05-01\"",
    "true",
    "[\"a\", \"b\"]",
    "{\"lat\": 27.9, \"lon\": 102.2}",
    "null",
];

/// One input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(schema) = Schema::from_toml_str(text, "fuzz.toml") else {
        return;
    };
    for entity in schema.entities.values() {
        for field in &entity.fields {
            for sample in SAMPLES {
                let _ = schema.parse_json_text(&entity.key, field, sample);
            }
        }
    }
    for department in schema.departments.values() {
        for entity in schema.entities.keys() {
            for field in department.fields_of(entity) {
                assert!(
                    department.sees_field(entity, field),
                    "a department's own field list must agree with sees_field"
                );
            }
        }
        for village in schema.villages.keys() {
            let _ = department.sees_village(Some(village));
        }
    }
}
