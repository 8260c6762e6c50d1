//! Who may read a blob: the one rule behind every door to an attachment's bytes
//! (`GET /v1/blobs/{sha256}` and its thumbnail for phones and department tokens, the
//! console's attachment routes for staff).
//!
//! A blob has no owner of its own: it is readable when some live record referencing it
//! ([`BlobRefStorage`]) is one the reader may read *that field of*. A phone reads its
//! village's records (a township phone every village's); a department, and a console
//! user through the view the console gives them (`console::view_of`: a department
//! clerk the department's, township staff every field of every village), what
//! [`DepartmentDef::sees_value`] says. A tombstoned record lends its photos to nobody.
//! Anything else is answered exactly as a blob that does not exist.

use yibiao_model::RecordId;
use yibiao_model::finding::FINDING_ENTITY;
use yibiao_model::finding::rules::DISCIPLINE;
use yibiao_model::schema::DepartmentDef;
use yibiao_sync::DeviceScope;
use yibiao_sync::hub::StorageError;

use super::BlobHash;
use crate::storage::{BlobRefStorage, BlobReference};

/// The key of the view the console gives township staff (`console::view_of`).
pub const TOWNSHIP_VIEW: &str = "township";

/// Who asks for a blob.
#[derive(Debug, Clone)]
pub enum Reader {
    /// A phone: its enrolled scope.
    Device(DeviceScope),
    /// A department token, or a console user through the view the console gives them.
    View(DepartmentDef),
}

impl Reader {
    /// True when this reader may read the field of the record `r` names. A finding's
    /// photos and evidence follow who sees the finding (ADR 0012): its village's
    /// phones, township staff, the discipline office, a department it was handed to.
    pub fn sees(&self, r: &BlobReference) -> bool {
        let finding = r.entity == FINDING_ENTITY;
        !r.deleted
            && match self {
                Reader::View(view) if finding => {
                    view.key == TOWNSHIP_VIEW
                        || view.key == DISCIPLINE
                        || r.handed_to.contains(&view.key)
                }
                Reader::View(view) => view.sees_value(&r.entity, r.village.as_deref(), &r.field),
                Reader::Device(scope) => scope.contains(r.village.as_deref()),
            }
    }
}

/// True when `reader` may read blob `hash`: some record referencing it lets them read
/// the field holding it. With `record`, only that record's references count (the
/// console's links name the record the photo is shown on).
pub fn may_read(
    refs: &dyn BlobRefStorage,
    hash: &BlobHash,
    reader: &Reader,
    record: Option<RecordId>,
) -> Result<bool, StorageError> {
    Ok(refs
        .blob_references(hash.as_str())?
        .iter()
        .filter(|r| record.is_none_or(|id| r.record == id))
        .any(|r| reader.sees(r)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use yibiao_model::Schema;

    struct Refs(Vec<BlobReference>);

    impl BlobRefStorage for Refs {
        fn blob_references(&self, _: &str) -> Result<Vec<BlobReference>, StorageError> {
            Ok(self.0.clone())
        }
    }

    fn reference(record: RecordId, village: &str, deleted: bool) -> BlobReference {
        BlobReference {
            record,
            entity: "household".into(),
            village: Some(village.into()),
            field: "photo".into(),
            deleted,
            handed_to: Vec::new(),
        }
    }

    #[test]
    fn a_blob_is_read_through_a_live_record_whose_field_the_reader_sees() {
        let schema = Schema::baru_example();
        let dept = |k: &str| Reader::View(schema.department(k).unwrap().clone());
        let (live, gone) = (RecordId::new(), RecordId::new());
        let refs = Refs(vec![
            reference(live, "tujiang", false),
            reference(gone, "baru", true),
        ]);
        let hash = BlobHash::of(b"photo");
        let may = |reader: &Reader, record| may_read(&refs, &hash, reader, record).unwrap();
        // Public services reads household photos (its dibao form has the field).
        assert!(may(&dept("public_services"), None));
        assert!(may(&dept("public_services"), Some(live)));
        // Only through the named record, and never through a tombstoned one.
        assert!(!may(&dept("public_services"), Some(gone)));
        assert!(!may(&dept("public_services"), Some(RecordId::new())));
        // Social governance reads households, not their photos; the health station
        // reads Tujiang's households, not their photos.
        assert!(!may(&dept("social_governance"), None));
        assert!(!may(&dept("tujiang_health_station"), None));
        // Phones: their village's records, a township phone all.
        let village = |v: &str| Reader::Device(DeviceScope::Village(v.into()));
        assert!(may(&village("tujiang"), None));
        assert!(!may(&village("baru"), None), "baru's record is tombstoned");
        assert!(may(&Reader::Device(DeviceScope::Township), None));
    }

    #[test]
    fn a_findings_photos_follow_who_sees_the_finding() {
        let schema = Schema::baru_example();
        let dept = |k: &str| Reader::View(schema.department(k).unwrap().clone());
        let refs = Refs(vec![BlobReference {
            record: RecordId::new(),
            entity: FINDING_ENTITY.into(),
            village: Some("tujiang".into()),
            field: "evidence".into(),
            deleted: false,
            handed_to: vec!["public_services".into()],
        }]);
        let hash = BlobHash::of(b"evidence");
        let may = |reader: &Reader| may_read(&refs, &hash, reader, None).unwrap();
        assert!(may(&dept("public_services")), "handed to it");
        assert!(may(&dept("discipline_inspection")), "the discipline office");
        assert!(!may(&dept("emergency_management")), "never handed to it");
        let mut township = schema.department("administration").unwrap().clone();
        township.key = TOWNSHIP_VIEW.into();
        assert!(may(&Reader::View(township)), "township staff");
        assert!(may(&Reader::Device(DeviceScope::Village("tujiang".into()))));
        assert!(!may(&Reader::Device(DeviceScope::Village("baru".into()))));
    }
}
