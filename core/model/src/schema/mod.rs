//! The "one table": a field dictionary, entity types, forms and department views.
//!
//! Every fact a township collects is defined **once** in the field dictionary
//! ([`FieldDef`]). Entity types ([`EntityDef`]) say which facts a kind of real thing
//! (a household, a person, a hazard site) may hold. A department's form ([`FormDef`]) is
//! only an ordered view over dictionary fields, so a value typed for one form fills every
//! other form that asks for the same fact. A department's view ([`DepartmentDef`]) says
//! which forms, fields and villages it may read.
//!
//! The schema is written by people, in TOML (see `examples/schema/baru.toml`), and loaded
//! with [`Schema::from_toml_file`]. A broken schema is reported with the file, the line and
//! the offending key ([`SchemaError`]), because the person fixing it is a county IT worker
//! with a text editor, not a Rust developer.
//!
//! Value validation ([`Schema::validate`]) lives here too: the dictionary is the single
//! place that decides whether `"three"` is a household size.

mod display;
mod parse;
mod strand;
mod validate;
mod view;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use crate::value::{Labels, ValidationReason};
pub use parse::SchemaError;
pub use strand::{Stranded, Stranding};
pub use validate::ValidationError;
pub use validate::field_of_entity;
pub use view::{ViewError, ViewFilter};

use crate::value::{FieldType, Value};

/// The newest schema file format this build understands (`format = N` in the file).
///
/// Format 2 added `[finding_categories]`. A schema keeps the format its file declares, and
/// the server offers phones that format: an app that reads only format 1 keeps working
/// with a format-1 schema, and is told to update (never handed text it would refuse) when
/// the township's schema takes format 2.
pub const SCHEMA_FORMAT: u32 = 2;

/// The first schema format with `[finding_categories]`.
pub const FINDING_CATEGORIES_FORMAT: u32 = 2;

/// A parsed, cross-checked schema. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Short machine name of the schema, e.g. `baru`.
    pub name: String,
    /// Revision of this schema's content, bumped by the operator on every edit.
    pub revision: u32,
    /// The file format the schema declares (`format = N`), at most [`SCHEMA_FORMAT`].
    pub format: u32,
    /// The township this schema describes.
    pub township: Township,
    /// Villages of the township, by id.
    pub villages: BTreeMap<String, Labels>,
    /// The field dictionary, by field key.
    pub fields: BTreeMap<String, FieldDef>,
    /// Entity types, by key.
    pub entities: BTreeMap<String, EntityDef>,
    /// Forms, by key.
    pub forms: BTreeMap<String, FormDef>,
    /// Departments and their views, by key.
    pub departments: BTreeMap<String, DepartmentDef>,
    /// Kinds of inspection findings, by key (empty: any category key is accepted, as
    /// before format 2).
    pub finding_categories: BTreeMap<String, FindingCategory>,
    /// The text this schema was parsed from: what the server sends phones.
    source: Arc<str>,
}

/// The township a schema belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Township {
    /// Machine id, e.g. `baru`.
    pub id: String,
    /// Labels.
    pub labels: Labels,
}

/// One fact of the dictionary.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// Field key, e.g. `household_size`.
    pub key: String,
    /// Labels shown in forms and exports.
    pub labels: Labels,
    /// Value type and its constraints.
    pub ty: FieldType,
    /// Optional help text for cadres.
    pub help: Option<String>,
}

/// A kind of real thing a record describes.
#[derive(Debug, Clone)]
pub struct EntityDef {
    /// Entity key, e.g. `household`.
    pub key: String,
    /// Labels.
    pub labels: Labels,
    /// Dictionary fields a record of this type may hold, in display order.
    pub fields: Vec<String>,
}

/// What one department asks for: an entity type and an ordered list of fields.
#[derive(Debug, Clone)]
pub struct FormDef {
    /// Form key, e.g. `dibao_check`.
    pub key: String,
    /// Labels.
    pub labels: Labels,
    /// The entity type the form is filled for.
    pub entity: String,
    /// The department that owns the form, if any.
    pub department: Option<String>,
    /// Dictionary fields in the form's order.
    pub fields: Vec<String>,
    /// The subset of `fields` that must be filled for the form to be complete.
    pub required: Vec<String>,
}

/// A kind of inspection finding (epidemic prevention, livelihood funds, ...) and what a
/// hand-over of one takes when the office names no deadline or unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingCategory {
    /// Category key, e.g. `livelihood_funds`.
    pub key: String,
    /// Labels shown in lists, the report and on phones.
    pub labels: Labels,
    /// Days from the hand-over to the deadline, when the hand-over names none.
    pub deadline_days: Option<u32>,
    /// Who resolves it, when the hand-over names no unit.
    pub unit: Option<DefaultUnit>,
}

/// The responsible unit a category hands its findings to by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultUnit {
    /// The village the finding is about (`unit = "village"`).
    OwnVillage,
    /// A department, by key (`unit = "civil_affairs"`).
    Department(String),
}

/// Which villages a department may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VillageScope {
    /// Every village of the township (and township-level records).
    All,
    /// Only these villages.
    Only(Vec<String>),
}

/// A department and its view of the data.
#[derive(Debug, Clone)]
pub struct DepartmentDef {
    /// Department key, e.g. `civil_affairs`.
    pub key: String,
    /// Labels.
    pub labels: Labels,
    /// The township office this department belongs to, if given.
    pub office: Option<String>,
    /// Forms the department may read.
    pub forms: Vec<String>,
    /// Entity types whose records the department may read: those of its forms plus any
    /// listed under `entities` in the schema.
    pub entities: Vec<String>,
    /// The fields the department may read, per entity type it reads: the fields of its
    /// forms (each for its form's entity only) plus those listed under
    /// `[departments.<key>.fields]`, in order of first appearance. An entity type read with
    /// no field listed shows records without values.
    pub fields: BTreeMap<String, Vec<String>>,
    /// Villages the department may read.
    pub villages: VillageScope,
}

impl Schema {
    /// Loads and checks a schema file.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, SchemaError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| SchemaError::Io {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses and checks schema text; `file` names the source in errors.
    pub fn from_toml_str(text: &str, file: &str) -> Result<Self, SchemaError> {
        parse::parse(text, file)
    }

    /// The example schema for Baru township that ships with yibiao.
    pub fn baru_example() -> Self {
        #[allow(
            clippy::expect_used,
            reason = "the shipped example is checked by tests"
        )]
        Self::from_toml_str(BARU_TOML, "examples/schema/baru.toml")
            .expect("the shipped Baru example schema is valid")
    }

    /// The schema file's text, as parsed (what the server hands phones at sync).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Looks up a dictionary field.
    pub fn field(&self, key: &str) -> Option<&FieldDef> {
        self.fields.get(key)
    }

    /// Looks up an entity type.
    pub fn entity(&self, key: &str) -> Option<&EntityDef> {
        self.entities.get(key)
    }

    /// Looks up a form.
    pub fn form(&self, key: &str) -> Option<&FormDef> {
        self.forms.get(key)
    }

    /// Looks up a department.
    pub fn department(&self, key: &str) -> Option<&DepartmentDef> {
        self.departments.get(key)
    }

    /// Looks up a finding category.
    pub fn finding_category(&self, key: &str) -> Option<&FindingCategory> {
        self.finding_categories.get(key)
    }

    /// True when `village` is a village of this township.
    pub fn has_village(&self, village: &str) -> bool {
        self.villages.contains_key(village)
    }

    /// Forms that ask for `field`: how many departments one entry serves.
    pub fn forms_using(&self, field: &str) -> impl Iterator<Item = &FormDef> {
        self.forms
            .values()
            .filter(move |f| f.fields.iter().any(|k| k == field))
    }

    /// Checks that `value` may be stored in `field` of a record of `entity`.
    ///
    /// Nothing is written by a caller unless this returns `Ok`.
    pub fn validate(
        &self,
        entity: &str,
        field: &str,
        value: &Value,
    ) -> Result<(), ValidationError> {
        validate::validate(self, entity, field, value)
    }

    /// Parses a JSON value typed by a user or an app for `field` of `entity`, then validates it.
    pub fn parse_json(
        &self,
        entity: &str,
        field: &str,
        json: &serde_json::Value,
    ) -> Result<Value, ValidationError> {
        let def = validate::field_of_entity(self, entity, field)?;
        let value = def
            .ty
            .parse_json(json)
            .map_err(|reason| ValidationError::new(def, reason))?;
        self.validate(entity, field, &value)?;
        Ok(value)
    }
}

impl Schema {
    /// Parses a value an app sends as JSON *text* (`5`, `"阿木"`, `["wages"]`) for `field`
    /// of `entity`, then validates it. Text that is not JSON at all is named as such.
    pub fn parse_json_text(
        &self,
        entity: &str,
        field: &str,
        text: &str,
    ) -> Result<Value, ValidationError> {
        let json = self.json_text(field, text)?;
        self.parse_json(entity, field, &json)
    }

    /// Parses a search value for `field` by the field's type only: constraints (range,
    /// options, pattern) apply to what is stored, not to what is looked for.
    pub fn parse_query_json(
        &self,
        field: &str,
        json: &serde_json::Value,
    ) -> Result<Value, ValidationError> {
        let Some(def) = self.field(field) else {
            return Err(ValidationError::unknown_field(field));
        };
        def.ty
            .parse_json(json)
            .map_err(|reason| ValidationError::new(def, reason))
    }

    /// [`Schema::parse_query_json`] from JSON text.
    pub fn parse_query_text(&self, field: &str, text: &str) -> Result<Value, ValidationError> {
        let json = self.json_text(field, text)?;
        self.parse_query_json(field, &json)
    }

    fn json_text(&self, field: &str, text: &str) -> Result<serde_json::Value, ValidationError> {
        serde_json::from_str(text).map_err(|_| {
            let def = self.field(field);
            ValidationError {
                field: field.to_owned(),
                labels: def.map(|d| Box::new(d.labels.clone())),
                reason: match def {
                    Some(d) => ValidationReason::WrongType {
                        expected: d.ty.name(),
                        got: format!(
                            "{} (not JSON text; quote strings)",
                            text.chars().take(40).collect::<String>()
                        ),
                    },
                    None => ValidationReason::UnknownField,
                },
            }
        })
    }
}

impl DepartmentDef {
    /// True when the department may see records of `entity` in `village`.
    pub fn sees_record(&self, entity: &str, village: Option<&str>) -> bool {
        self.sees_village(village) && self.entities.iter().any(|e| e == entity)
    }

    /// True when the department may read `field` of records of `entity`.
    pub fn sees_field(&self, entity: &str, field: &str) -> bool {
        self.fields_of(entity).iter().any(|f| f == field)
    }

    /// The fields the department may read of records of `entity`, in order (empty for an
    /// entity type it does not read).
    pub fn fields_of(&self, entity: &str) -> &[String] {
        self.fields.get(entity).map_or(&[], Vec::as_slice)
    }

    /// True when the department may read records of `village` (`None` = township level).
    pub fn sees_village(&self, village: Option<&str>) -> bool {
        match (&self.villages, village) {
            (VillageScope::All, _) => true,
            (VillageScope::Only(list), Some(v)) => list.iter().any(|x| x == v),
            (VillageScope::Only(_), None) => false,
        }
    }
}

/// The text of the shipped Baru example schema.
pub const BARU_TOML: &str = include_str!("../../../../examples/schema/baru.toml");
