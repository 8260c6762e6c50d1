//! The line protocol between the `crash_writer` binary and the crash-durability test.
//!
//! The writer numbers every write with a counter `n` that only grows (a run starts at
//! the counter the test gives it, and the test gives each run a range above the last).
//! Every value the writer stores is a pure function of `n`, so the test can tell from a
//! value alone which write put it there, and whether it is older or newer than the last
//! write the writer reported.
//!
//! After a write returns `Ok`, the writer prints exactly one [`Report`] line. A line is
//! printed only once its write is durable, so every complete line the test reads names
//! a write that must survive `kill -9`. The one write that may be on disk without a line
//! is the write in flight when the kill landed: the one numbered last reported + 1.

use std::fmt;
use std::str::FromStr;

use yibiao_model::RecordId;

/// Villages the writer spreads its households over (all in the Baru example schema).
pub const VILLAGES: &[&str] = &["tujiang", "baru", "shanzhong", "heping", "xinmin", "lianhe"];

/// The `household_head` of the household created by write `n`.
pub fn household_head(n: u64) -> String {
    format!("户主-{n}")
}

/// The `household_size` of the household created by write `n` (1..=30).
pub fn household_size(n: u64) -> i64 {
    i64::try_from(n % 30).unwrap_or(0) + 1
}

/// The `notes` text stored by write `n`.
pub fn notes(n: u64) -> String {
    format!("note-{n}")
}

/// The write number inside a `notes` text made by [`notes`].
pub fn notes_counter(text: &str) -> Option<u64> {
    text.strip_prefix("note-")?.parse().ok()
}

/// The write number inside a `household_head` made by [`household_head`].
pub fn household_head_counter(text: &str) -> Option<u64> {
    text.strip_prefix("户主-")?.parse().ok()
}

/// One durable write, as the writer reports it on stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Write `n` created household `id` with [`household_head`]`(n)` and
    /// [`household_size`]`(n)`.
    Create {
        /// The new record.
        id: RecordId,
        /// The write number.
        n: u64,
    },
    /// Write `n` set the `notes` of record `id` to [`notes`]`(n)`.
    SetNotes {
        /// The updated record.
        id: RecordId,
        /// The write number.
        n: u64,
    },
}

impl Report {
    /// The write number.
    pub fn n(&self) -> u64 {
        match self {
            Self::Create { n, .. } | Self::SetNotes { n, .. } => *n,
        }
    }
}

impl fmt::Display for Report {
    /// `create <id> <n> <household_head> <household_size>` or `set <id> <n> notes <text>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Create { id, n } => {
                write!(
                    f,
                    "create {id} {n} {} {}",
                    household_head(*n),
                    household_size(*n)
                )
            }
            Self::SetNotes { id, n } => write!(f, "set {id} {n} notes {}", notes(*n)),
        }
    }
}

impl FromStr for Report {
    type Err = String;

    /// Parses a line printed by [`Report`]'s `Display`, checking that the values it names
    /// are the ones its write number stands for.
    fn from_str(line: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("bad report line {line:?}: {why}");
        let parts: Vec<&str> = line.split(' ').collect();
        let id: RecordId = parts
            .get(1)
            .ok_or_else(|| bad("no record id"))?
            .parse()
            .map_err(|e| bad(&format!("{e}")))?;
        let n: u64 = parts
            .get(2)
            .ok_or_else(|| bad("no write number"))?
            .parse()
            .map_err(|_| bad("write number is not a number"))?;
        let (report, expected) = match parts.first() {
            Some(&"create") => (
                Self::Create { id, n },
                vec![household_head(n), household_size(n).to_string()],
            ),
            Some(&"set") => (Self::SetNotes { id, n }, vec!["notes".to_owned(), notes(n)]),
            _ => return Err(bad("unknown kind")),
        };
        if parts[3..] != expected.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            return Err(bad("values do not match the write number"));
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_round_trip() {
        let id = RecordId::new();
        for r in [
            Report::Create { id, n: 41 },
            Report::SetNotes { id, n: 1_000_007 },
        ] {
            let line = r.to_string();
            assert_eq!(line.parse::<Report>(), Ok(r), "{line}");
        }
        assert!(format!("create {id} 3 户主-4 4").parse::<Report>().is_err());
        assert!(format!("set {id} 3 notes note-").parse::<Report>().is_err());
        assert_eq!(notes_counter(&notes(12)), Some(12));
        assert_eq!(household_head_counter(&household_head(9)), Some(9));
        assert!((1..=30).contains(&household_size(29)) && household_size(30) == 1);
    }
}
