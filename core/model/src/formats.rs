//! Values as people type them: resident ID numbers, phone numbers and dates, checked and
//! written one canonical way before they are stored.
//!
//! A cadre types `51340119850505222x`, `138 1234 5678` or `2027年1月5日`; a department
//! should receive `51340119850505222X`, `13812345678` and `2027-01-05`. Each function here
//! takes the typed text and returns the canonical text, or what is wrong with it (the
//! dictionary turns that into its refusal). Days are read by `clock::parse_day`, the
//! township calendar's one reader.

use chrono::{Datelike, NaiveDate};

/// ISO 7064 MOD 11-2 weights of the first 17 digits (GB 11643-1999).
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// The check character for each remainder modulo 11.
const ID_CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];
/// First two digits of the address code: the provinces of GB/T 2260 (and 71 Taiwan, 81
/// Hong Kong, 82 Macao, used on residence permits).
const PROVINCES: [u32; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
    53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
];

/// The check character GB 11643 gives the first 17 digits of an ID number.
pub fn id_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (c, w) in first17.chars().zip(ID_WEIGHTS) {
        sum += c.to_digit(10)? * w;
    }
    ID_CHECK.get((sum % 11) as usize).copied()
}

/// Checks an 18-character resident ID number (GB 11643-1999) and returns it with a final
/// `x` written `X`. `today` bounds the birth date (the township's calendar day).
///
/// Checked, in order: 17 digits and a digit or X; the address code's province; the birth
/// date (a real day, not after `today`, not before 1800); the check character
/// (ISO 7064 MOD 11-2). The problem is named by a stable word (`length`, `characters`,
/// `region`, `birth_date`, `check_digit`).
pub fn id_number(typed: &str, today: NaiveDate) -> Result<String, &'static str> {
    let id = typed.trim().to_uppercase();
    if id.chars().count() != 18 {
        return Err("length");
    }
    if !id.is_ascii() {
        return Err("characters");
    }
    let (first17, last) = id.split_at(17);
    if !first17.bytes().all(|b| b.is_ascii_digit())
        || !last.chars().all(|c| c.is_ascii_digit() || c == 'X')
    {
        return Err("characters");
    }
    let province: u32 = first17[..2].parse().map_err(|_| "region")?;
    if !PROVINCES.contains(&province) {
        return Err("region");
    }
    let birth = NaiveDate::parse_from_str(&first17[6..14], "%Y%m%d")
        .ok()
        .filter(|d| *d <= today && d.year() >= 1800);
    if birth.is_none() {
        return Err("birth_date");
    }
    if id_check_char(first17) != last.chars().next() {
        return Err("check_digit");
    }
    Ok(id)
}

/// Checks a phone number: a mobile number (11 digits, `1[3-9]…`, spaces, hyphens and a
/// leading `+86` allowed and dropped) or a landline (area code `0` + 2 or 3 digits, then
/// 7 or 8 digits, with or without a hyphen; spaces dropped, a hyphen kept as typed).
pub fn phone(typed: &str) -> Option<String> {
    let compact: String = typed
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // Mobile: drop hyphens and the country code.
    let mobile: String = compact.replace('-', "");
    let mobile = mobile
        .strip_prefix("+86")
        .or_else(|| mobile.strip_prefix("0086"))
        .unwrap_or(&mobile);
    if mobile.len() == 11
        && all_digits(mobile)
        && mobile.starts_with('1')
        && matches!(mobile.as_bytes()[1], b'3'..=b'9')
    {
        return Some(mobile.to_owned());
    }
    // Landline: 0 + area code, then the number.
    let landline = match compact.split_once('-') {
        Some((area, number)) => {
            all_digits(area)
                && all_digits(number)
                && (3..=4).contains(&area.len())
                && (7..=8).contains(&number.len())
        }
        None => all_digits(&compact) && (10..=12).contains(&compact.len()),
    };
    (landline && compact.starts_with('0') && !compact.starts_with("00")).then_some(compact)
}

/// Today in the township's calendar, by the system clock: the one clock read of
/// validation (a birth date after today is not real). A phone clock off by a day moves
/// that bound by a day, nothing else.
pub fn today() -> NaiveDate {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    crate::clock::day_of(now_ms)
}

/// Text as it should be stored: without leading or trailing white space (full-width
/// U+3000 included: Rust's `trim` follows Unicode's White_Space).
pub fn trimmed(typed: &str) -> &str {
    typed.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 2).unwrap_or_default()
    }

    #[test]
    fn the_check_character_follows_iso_7064_mod_11_2() {
        // The standard's own example (GB 11643-1999, appendix A): 11010519491231002X.
        assert_eq!(id_check_char("11010519491231002"), Some('X'));
        assert_eq!(id_check_char("51340119850505222"), Some('6'));
        assert_eq!(id_check_char("5134011985050522"), None);
        // 18 characters, not 18 bytes: no panic on a wide character.
        assert_eq!(
            id_number("５１３４０１１９８５０５０５２２２６", today()),
            Err("characters")
        );
        assert_eq!(id_number("51340119850505222６", today()), Err("characters"));
    }

    #[test]
    fn lowercase_x_is_stored_upper_case() {
        assert_eq!(
            id_number(" 11010519491231002x ", today()),
            Ok("11010519491231002X".to_owned())
        );
    }

    #[test]
    fn a_birth_date_in_the_future_is_refused() {
        // 2027-01-01 is after "today" (2026-12-02); the check digit is right.
        let first17 = "51340120270101001";
        let id = format!("{first17}{}", id_check_char(first17).unwrap_or('0'));
        assert!(matches!(id_number(&id, today()), Err("birth_date")));
    }

    #[test]
    fn phone_numbers_are_written_one_way() {
        assert_eq!(phone("138 1234 5678"), Some("13812345678".into()));
        assert_eq!(phone("+86 138-1234-5678"), Some("13812345678".into()));
        assert_eq!(phone("0834-3221234"), Some("0834-3221234".into()));
        assert_eq!(phone("08343221234"), Some("08343221234".into()));
        assert_eq!(phone("010-12345678"), Some("010-12345678".into()));
        for bad in [
            "12812345678",
            "1381234567",
            "834-3221234",
            "0834-12345",
            "电话",
            "",
        ] {
            assert!(phone(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn trimming_removes_full_width_spaces() {
        assert_eq!(trimmed("\u{3000}阿木日哈 \t"), "阿木日哈");
    }
}
