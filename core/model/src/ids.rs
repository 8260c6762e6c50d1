//! Newtypes for the identities that travel through the system.
//!
//! Strings at the edges, types inside: a `RecordId` can never be passed where a
//! `CadreId` is meant. Every id is checked when it is built from outside input.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An id that failed its check; names the kind of id and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {kind} \"{got}\": {problem}")]
pub struct BadId {
    /// Which kind of id ("record id", "cadre id", ...).
    pub kind: &'static str,
    /// The input, shortened.
    pub got: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

fn check_token(kind: &'static str, s: &str) -> Result<(), BadId> {
    let bad = |problem| BadId {
        kind,
        got: s.chars().take(40).collect(),
        problem,
    };
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    if s.len() > 64 {
        return Err(bad("it is longer than 64 characters"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
    {
        return Err(bad("use ASCII letters, digits and - _ . @ only"));
    }
    Ok(())
}

/// Identifies one record (one real household, person, hazard site...). A UUIDv7, so ids
/// sort by creation time and paging by id is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RecordId(uuid::Uuid);

impl RecordId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
    /// The 16 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
    /// The id with these 16 raw bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Uuid::from_bytes(bytes))
    }
}

impl Default for RecordId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for RecordId {
    type Err = BadId;
    fn from_str(s: &str) -> Result<Self, BadId> {
        uuid::Uuid::parse_str(s.trim())
            .map(Self)
            .map_err(|_| BadId {
                kind: "record id",
                got: s.chars().take(40).collect(),
                problem: "expected a UUID like 0192f5e4-7c1a-7b3e-9a10-5f2b8c7d9e01",
            })
    }
}

impl TryFrom<String> for RecordId {
    type Error = BadId;
    fn try_from(s: String) -> Result<Self, BadId> {
        s.parse()
    }
}

impl From<RecordId> for String {
    fn from(id: RecordId) -> String {
        id.to_string()
    }
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps an id given from outside.
            pub fn new(s: impl Into<String>) -> Result<Self, BadId> {
                let s = s.into();
                check_token($kind, &s)?;
                Ok(Self(s))
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = BadId;
            fn from_str(s: &str) -> Result<Self, BadId> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = BadId;
            fn try_from(s: String) -> Result<Self, BadId> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

token_id!(
    /// Identifies a cadre (a person who enters data).
    CadreId,
    "cadre id"
);
token_id!(
    /// Identifies a device (one phone's store). Generated once per store and kept.
    DeviceId,
    "device id"
);

/// Who made a change: the cadre and the device. Carried in every change's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// The cadre who typed it.
    #[serde(rename = "c")]
    pub cadre: CadreId,
    /// The device it was typed on.
    #[serde(rename = "d")]
    pub device: DeviceId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_round_trip_and_sort_by_creation() {
        let a = RecordId::new();
        let b = RecordId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<RecordId>(), Ok(a));
    }

    #[test]
    fn bad_ids_say_what_is_wrong() {
        assert_eq!(
            CadreId::new("").map_err(|e| e.to_string()),
            Err("bad cadre id \"\": it is empty".to_owned())
        );
        assert_eq!(
            CadreId::new("王 五").map_err(|e| e.to_string()),
            Err("bad cadre id \"王 五\": use ASCII letters, digits and - _ . @ only".to_owned())
        );
        assert!("not-a-uuid".parse::<RecordId>().is_err());
    }
}
