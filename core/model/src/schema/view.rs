//! A department's view, applied in one place: which records a request may read (the
//! storage-neutral filter every storage turns into its own query) and which fields of a
//! record it may see (the projection every output format uses).

use super::{DepartmentDef, Schema, VillageScope};

/// What a department's request may read: its entities and villages, narrowed by the
/// request's own `entity` and `village`. Storage turns it into SQL (or anything else).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ViewFilter {
    /// Entity types the department may see (never empty for a real department).
    pub entities: Vec<String>,
    /// Villages it may see; `None` for all (township-level records included).
    pub villages: Option<Vec<String>>,
    /// Narrow to one entity type.
    pub entity: Option<String>,
    /// Narrow to one village.
    pub village: Option<String>,
}

/// Why a department's request cannot be narrowed as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// The entity type is not in the schema (a bad parameter).
    #[error("unknown entity type `{0}`")]
    UnknownEntity(String),
    /// The village is not in the schema (a bad parameter).
    #[error("unknown village `{0}`")]
    UnknownVillage(String),
    /// The department may not read records of this entity type.
    #[error("department `{department}` does not see `{entity}` records")]
    HiddenEntity {
        /// The department.
        department: String,
        /// The entity type asked for.
        entity: String,
    },
    /// The department may not read records of this village.
    #[error("department `{department}` does not see village `{village}`")]
    HiddenVillage {
        /// The department.
        department: String,
        /// The village asked for.
        village: String,
    },
}

impl ViewError {
    /// True when the request named something that does not exist (rather than something
    /// the department may not see).
    pub fn is_bad_parameter(&self) -> bool {
        matches!(
            self,
            ViewError::UnknownEntity(_) | ViewError::UnknownVillage(_)
        )
    }
}

impl DepartmentDef {
    /// The filter of this department's reads, narrowed to `entity` and `village` when
    /// given; refuses names the schema lacks and names outside the view.
    pub fn filter(
        &self,
        schema: &Schema,
        entity: Option<&str>,
        village: Option<&str>,
    ) -> Result<ViewFilter, ViewError> {
        if let Some(e) = entity {
            if schema.entity(e).is_none() {
                return Err(ViewError::UnknownEntity(e.to_owned()));
            }
            if !self.entities.iter().any(|x| x == e) {
                return Err(ViewError::HiddenEntity {
                    department: self.key.clone(),
                    entity: e.to_owned(),
                });
            }
        }
        if let Some(v) = village {
            if !schema.has_village(v) {
                return Err(ViewError::UnknownVillage(v.to_owned()));
            }
            if !self.sees_village(Some(v)) {
                return Err(ViewError::HiddenVillage {
                    department: self.key.clone(),
                    village: v.to_owned(),
                });
            }
        }
        Ok(ViewFilter {
            entities: self.entities.clone(),
            villages: match &self.villages {
                VillageScope::All => None,
                VillageScope::Only(list) => Some(list.clone()),
            },
            entity: entity.map(str::to_owned),
            village: village.map(str::to_owned),
        })
    }

    /// True when the department may read `field` of a record of `entity` in `village`
    /// (`None`: township level): the record is in its view and the field in its
    /// projection. What a download of an attachment asks (one rule with the reads).
    pub fn sees_value(&self, entity: &str, village: Option<&str>, field: &str) -> bool {
        self.entities.iter().any(|e| e == entity)
            && self.sees_village(village)
            && self.sees_field(entity, field)
    }

    /// The entries of a record's field-keyed values the department may read, in order,
    /// for a record of `entity`: a field the department reads of another entity type is
    /// not shown here.
    pub fn project<'a, K: AsRef<str>, V>(
        &'a self,
        entity: &str,
        values: impl IntoIterator<Item = (K, V)> + 'a,
    ) -> impl Iterator<Item = (K, V)> + 'a {
        let fields = self.fields_of(entity);
        values
            .into_iter()
            .filter(move |(k, _)| fields.iter().any(|f| f == k.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_department_filter_names_what_is_unknown_and_what_is_hidden() {
        let schema = Schema::baru_example();
        let (_, dept) = schema
            .departments
            .iter()
            .find(|(_, d)| {
                matches!(d.villages, VillageScope::Only(_))
                    || d.entities.len() < schema.entities.len()
            })
            .expect("the Baru schema has a department with a narrower view");
        let all = dept.filter(&schema, None, None).expect("the whole view");
        assert_eq!(all.entities, dept.entities);
        assert_eq!(
            dept.filter(&schema, Some("spaceship"), None),
            Err(ViewError::UnknownEntity("spaceship".into()))
        );
        assert!(
            dept.filter(&schema, None, Some("atlantis"))
                .expect_err("unknown village")
                .is_bad_parameter()
        );
        if let Some(hidden) = schema.entities.keys().find(|e| !dept.entities.contains(e)) {
            let err = dept
                .filter(&schema, Some(hidden), None)
                .expect_err("hidden");
            assert!(!err.is_bad_parameter());
            assert!(err.to_string().contains("does not see"), "{err}");
        }
        let (entity, fields) = dept.fields.iter().next().expect("an entity read");
        let field = fields.first().expect("a field").as_str();
        let shown: Vec<_> = dept
            .project(entity, [(field, 1), ("no_such_field", 2)])
            .collect();
        assert_eq!(shown, vec![(field, 1)]);
    }

    #[test]
    fn a_department_sees_only_the_fields_it_reads_of_each_entity_type() {
        let schema = Schema::baru_example();
        let em = schema
            .department("emergency_management")
            .expect("emergency management");
        // Hazard sites: its patrol form, phone and notes included.
        assert!(em.sees_field("hazard_site", "phone") && em.sees_field("hazard_site", "notes"));
        // Households: only what evacuation planning needs.
        assert!(em.sees_field("household", "housing_safe"));
        assert!(em.sees_field("household", "household_size"));
        for hidden in ["phone", "notes", "id_number", "household_head"] {
            assert!(!em.sees_field("household", hidden), "{hidden}");
        }
        let shown: Vec<_> = em
            .project(
                "household",
                [("phone", 1), ("household_size", 2), ("notes", 3)],
            )
            .collect();
        assert_eq!(shown, vec![("household_size", 2)]);
        assert_eq!(em.project("person", [("phone", 1)]).count(), 0);
    }
}
