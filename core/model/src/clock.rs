//! Time as an injected dependency, so tests and simulations are deterministic; and the
//! township's calendar (China Standard Time, UTC+8, where every township we serve lies),
//! the one place that turns instants into days and back.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};

/// The township's offset from UTC, in seconds (China Standard Time, no daylight saving).
pub const TOWNSHIP_OFFSET_S: i32 = 8 * 3600;

const TOWNSHIP_TZ: FixedOffset = match FixedOffset::east_opt(TOWNSHIP_OFFSET_S) {
    Some(tz) => tz,
    None => panic!("the township offset is within a day"),
};

fn township_tz() -> FixedOffset {
    TOWNSHIP_TZ
}

/// Reads a calendar day as people write it: `2027-01-05`, `2027-1-5`, `2027/1/5`,
/// `2027.1.5` or `2027年1月5日` (white space around it ignored). `None` when it is not a
/// real day. Every day that enters (values, due dates, report bounds) is read here and
/// written back as `YYYY-MM-DD`.
pub fn parse_day(typed: &str) -> Option<NaiveDate> {
    let text = typed.trim();
    let text = text.strip_suffix('日').unwrap_or(text);
    let parts: Vec<&str> = text.split(['-', '/', '.', '年', '月']).collect();
    let [y, m, d] = parts.as_slice() else {
        return None;
    };
    let number = |s: &str, max_len: usize| -> Option<u32> {
        let ok = !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit());
        if ok { s.parse().ok() } else { None }
    };
    if y.len() != 4 {
        return None;
    }
    let year = i32::try_from(number(y, 4)?).ok()?;
    NaiveDate::from_ymd_opt(year, number(m, 2)?, number(d, 2)?)
}

/// The first millisecond of `day` in the township, ms since the epoch.
pub fn day_start_ms(day: NaiveDate) -> i64 {
    at_ms(day, NaiveTime::MIN)
}

/// The last millisecond of `day` in the township, ms since the epoch.
pub fn day_end_ms(day: NaiveDate) -> i64 {
    day_start_ms(day) + 24 * 3_600_000 - 1
}

fn at_ms(day: NaiveDate, time: NaiveTime) -> i64 {
    township_tz()
        .from_local_datetime(&day.and_time(time))
        .single()
        .map_or(0, |t| t.timestamp_millis())
}

/// The township's calendar day holding the instant `ms`.
pub fn day_of(ms: i64) -> NaiveDate {
    local(ms).date_naive()
}

/// The instant `ms` as the township's wall time (`%Y-%m-%d %H:%M` and the like).
pub fn local(ms: i64) -> DateTime<FixedOffset> {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&township_tz())
}

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    /// Now, in ms since the epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `ms`.
    pub fn new(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }
    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_read_as_people_write_them() {
        let want = NaiveDate::from_ymd_opt(2027, 1, 5);
        for typed in [
            "2027-01-05",
            "2027-1-5",
            "2027/1/5",
            "2027.1.5",
            "2027年1月5日",
            " 2027年01月05日 ",
        ] {
            assert_eq!(parse_day(typed), want, "{typed}");
        }
        for typed in [
            "2027-02-30",
            "27-1-5",
            "2027年1月",
            "2027-1-5-1",
            "tomorrow",
            "",
        ] {
            assert_eq!(parse_day(typed), None, "{typed}");
        }
    }

    #[test]
    fn township_days_are_utc_plus_8() {
        let day = parse_day(" 2026-11-25 ").expect("a day");
        // 2026-11-25 00:00 +08:00 = 2026-11-24 16:00 UTC.
        assert_eq!(day_start_ms(day), 1_795_536_000_000);
        assert_eq!(day_end_ms(day), 1_795_622_399_999);
        assert_eq!(day_of(day_start_ms(day)), day);
        assert_eq!(day_of(day_end_ms(day)), day);
        assert_eq!(day_of(day_start_ms(day) - 1).to_string(), "2026-11-24");
        assert_eq!(
            local(day_start_ms(day))
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            "2026-11-25 00:00"
        );
        assert!(parse_day("2026-02-30").is_none());
        assert!(parse_day("tomorrow").is_none());
    }
}
