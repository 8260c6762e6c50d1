//! The field history of the record page: every value each field of the view held, with
//! who typed it, when and on which phone, and the resolutions marked. Read from the
//! record's automerge document through the model's `Record::history` (the one reading of
//! history, shared with the phone), only for the fields the user's view holds.

use std::collections::HashMap;

use yibiao_model::record::HistoryEvent;
use yibiao_model::schema::DepartmentDef;
use yibiao_model::{RecordId, Schema, clock};

use super::super::PageError;
use crate::state::AppState;

/// One line of the history.
#[derive(Debug)]
pub struct HistoryRow {
    /// When (township time).
    pub at: String,
    /// The field's label.
    pub field: String,
    /// The value as a person reads it (empty when cleared).
    pub value: String,
    /// Who.
    pub by: String,
    /// Which phone (or the console).
    pub phone: String,
    /// This change settled a conflict.
    pub resolved: bool,
}

/// Names of the people and phones a history names: cadres by id, phones by device id,
/// staff (`staff.<login>`, the console's resolutions) by login.
pub struct Names {
    /// Cadre id -> name.
    pub cadres: HashMap<String, String>,
    /// Phone device id -> device name.
    pub phones: HashMap<String, String>,
}

impl Names {
    /// Reads every cadre and device.
    pub fn read(state: &AppState) -> Result<Self, PageError> {
        let cadres = state
            .storage
            .cadres()
            .map_err(|e| PageError::internal("cadres read", e))?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect();
        let phones = state
            .storage
            .devices()
            .map_err(|e| PageError::internal("devices read", e))?
            .into_iter()
            .filter_map(|d| Some((d.phone_device?, d.name)))
            .collect();
        Ok(Names { cadres, phones })
    }

    /// `name (id)` of a cadre or a staff member, else the id.
    pub fn who(&self, state: &AppState, cadre: &str) -> String {
        if let Some(login) = cadre.strip_prefix("staff.")
            && let Ok(Some(s)) = state.storage.staff(login)
        {
            return format!("{} ({login})", s.name);
        }
        self.cadres
            .get(cadre)
            .map_or_else(|| cadre.to_owned(), |n| format!("{n} ({cadre})"))
    }

    /// `name (id)` of a phone, else the id.
    pub fn phone(&self, device: &str) -> String {
        self.phones
            .get(device)
            .map_or_else(|| device.to_owned(), |n| format!("{n} ({device})"))
    }
}

/// The history of the view's fields of record `id`, newest first.
pub fn field_history(
    state: &AppState,
    schema: &Schema,
    view: &DepartmentDef,
    entity: &str,
    id: RecordId,
    names: &Names,
    en: bool,
) -> Result<Vec<HistoryRow>, PageError> {
    let Some(record) = state
        .hub
        .record(id)
        .map_err(|e| PageError::internal("record load", e))?
    else {
        return Ok(Vec::new());
    };
    let fields = view.fields_of(entity);
    let mut rows: Vec<HistoryRow> = record
        .history(schema)
        .into_iter()
        .filter_map(|h| {
            let (field, value, resolved) = match h.event {
                HistoryEvent::Set { field, value } => (field, Some(value), false),
                HistoryEvent::Resolved { field, value } => (field, Some(value), true),
                HistoryEvent::Unset { field } => (field, None, false),
                _ => return None,
            };
            if !fields.contains(&field) {
                return None;
            }
            Some(HistoryRow {
                at: clock::local(h.by.at_ms)
                    .format("%Y-%m-%d %H:%M")
                    .to_string(),
                value: value
                    .map(|v| schema.display(&field, &v, en))
                    .unwrap_or_default(),
                field: schema
                    .field(&field)
                    .map_or_else(|| field.clone(), |d| d.labels.get(en).to_owned()),
                by: h
                    .by
                    .cadre
                    .as_deref()
                    .map(|c| names.who(state, c))
                    .unwrap_or_default(),
                phone: h
                    .by
                    .device
                    .as_deref()
                    .map(|d| names.phone(d))
                    .unwrap_or_default(),
                resolved,
            })
        })
        .collect();
    rows.reverse();
    Ok(rows)
}
