//! Every reason a value is refused, as the data apps read (code and parameters) and as
//! the sentences cadres read, in Chinese and in English, word for word; and values as
//! people type them (trimmed text, decimals at the field's scale, dates in any common
//! form, resident ID numbers checked against published examples, phone numbers).

use std::fmt::Write as _;

use serde_json::{Value as J, json};
use yibiao_model::Schema;
use yibiao_model::formats;
use yibiao_model::messages::Lang;
use yibiao_model::value::ValidationReason;

/// A schema for the reasons the Baru example cannot produce (a pattern).
const PATTERN_TOML: &str = r#"format = 1
name = "mini"
revision = 1

[township]
id = "t"
zh = "镇"
en = "Town"

[villages]
a = { zh = "甲村", en = "A" }

[fields.house_no]
type = "text"
zh = "门牌号"
en = "House number"
pattern = "[0-9]{1,4}"
pattern_message = "1 to 4 digits (1至4位数字)"

[entities.household]
zh = "户"
en = "Household"
fields = ["house_no"]
"#;

/// One refused value per reason: (schema, entity, field, typed JSON).
fn refused_values() -> Vec<(&'static str, &'static str, &'static str, J)> {
    vec![
        ("baru", "household", "no_such_field", json!("x")),
        ("baru", "hazard_site", "household_size", json!(3)),
        ("baru", "household", "household_size", json!("三")),
        ("baru", "household", "dibao_status", json!("困难户")),
        (
            "baru",
            "household",
            "income_sources",
            json!(["wages", "lottery"]),
        ),
        ("baru", "household", "household_size", json!(0)),
        ("baru", "household", "household_size", json!(31)),
        ("baru", "household", "annual_income", json!("450.005")),
        (
            "baru",
            "household",
            "household_head",
            json!("阿".repeat(41)),
        ),
        ("mini", "household", "house_no", json!("12A")),
        ("baru", "household", "household_head", json!("\u{3000} ")),
        ("baru", "household", "visit_date", json!("2027-02-30")),
        (
            "baru",
            "hazard_site",
            "location",
            json!({"lat": 95.0, "lon": 102.3}),
        ),
        (
            "baru",
            "hazard_site",
            "photo",
            json!({"sha256": "AB", "name": "a.jpg", "mime": "image/jpeg", "size": 1}),
        ),
        (
            "baru",
            "hazard_site",
            "photo",
            json!({"sha256": "ab".repeat(32), "name": " ", "mime": "image/jpeg", "size": 1}),
        ),
        (
            "baru",
            "hazard_site",
            "photo",
            json!({"sha256": "ab".repeat(32), "name": "a.jpg", "mime": "jpeg", "size": 1}),
        ),
        ("baru", "household", "id_number", json!("51340119850505222")),
        (
            "baru",
            "household",
            "id_number",
            json!("5134011985050522A6"),
        ),
        (
            "baru",
            "household",
            "id_number",
            json!("993401198505052226"),
        ),
        (
            "baru",
            "household",
            "id_number",
            json!("513401200102291230"),
        ),
        (
            "baru",
            "household",
            "id_number",
            json!("513401198505052222"),
        ),
        ("baru", "household", "phone", json!("2345678")),
    ]
}

#[test]
fn every_validation_reason_reads_the_same_in_chinese_and_english() {
    let baru = Schema::baru_example();
    let mini = Schema::from_toml_str(PATTERN_TOML, "mini.toml").expect("mini schema");
    let mut out = String::new();
    let mut codes = Vec::new();
    for (schema, entity, field, typed) in refused_values() {
        let schema = if schema == "baru" { &baru } else { &mini };
        let err = schema
            .parse_json(entity, field, &typed)
            .expect_err("this value is refused");
        let m = err.message();
        codes.push(m.code.clone());
        let _ = writeln!(
            out,
            "{} {}",
            m.code,
            serde_json::to_string(&m.params).unwrap_or_default()
        );
        let _ = writeln!(out, "  zh: {}", err.render(Lang::Zh));
        let _ = writeln!(out, "  en: {}", err.render(Lang::En));
        assert_eq!(err.to_string(), err.render(Lang::En), "Display is English");
    }
    // Every reason is in the list: a new reason must be added here, with its sentences.
    for code in [
        "unknown_field",
        "not_in_entity",
        "wrong_type",
        "not_an_option",
        "below_min",
        "above_max",
        "too_many_decimals",
        "too_long",
        "pattern_mismatch",
        "blank",
        "bad_date",
        "gps_out_of_range",
        "bad_attachment",
        "bad_id_number",
        "bad_phone",
    ] {
        assert!(codes.iter().any(|c| c == code), "no case for {code}");
    }
    insta::assert_snapshot!("validation_reasons", out);
}

#[test]
fn option_lists_name_labels_not_keys() {
    let err = Schema::baru_example()
        .parse_json("household", "dibao_status", &json!("困难户"))
        .expect_err("not an option");
    let zh = err.render(Lang::Zh);
    assert!(zh.contains("非低保、低保户、特困供养、暂停"), "{zh}");
    assert!(!zh.contains("enrolled"), "{zh}");
    let m = err.message();
    assert_eq!(m.param("allowed"), "none,enrolled,special,suspended");
    assert_eq!(m.param("field_zh"), "低保状态");
    assert_eq!(m.param("field_en"), "Minimum living allowance status");
}

#[test]
fn a_label_typed_for_a_choice_is_stored_as_its_key() {
    let baru = Schema::baru_example();
    let v = baru.parse_json("household", "dibao_status", &json!(" 低保户 "));
    assert_eq!(v.map(|v| v.to_json()), Ok(json!("enrolled")));
    let v = baru.parse_json("household", "income_sources", &json!(["务工", "crops"]));
    assert_eq!(v.map(|v| v.to_json()), Ok(json!(["farming", "wages"])));
}

#[test]
fn text_is_trimmed_before_it_is_checked_and_stored() {
    let baru = Schema::baru_example();
    let v = baru.parse_json("household", "household_head", &json!("\u{3000}阿木日哈 \n"));
    assert_eq!(v.map(|v| v.to_json()), Ok(json!("阿木日哈")));
    // 40 characters plus spaces around them fit a 40-character field.
    let forty = format!("  {}\u{3000}", "阿".repeat(40));
    assert!(
        baru.parse_json("household", "household_head", &json!(forty))
            .is_ok()
    );
}

#[test]
fn decimals_keep_the_scale_the_dictionary_gives() {
    let baru = Schema::baru_example();
    let income = |typed: J| {
        baru.parse_json("household", "annual_income", &typed)
            .map(|v| v.to_json())
    };
    assert_eq!(income(json!("450.00")), Ok(json!("450.00")));
    assert_eq!(income(json!("450")), Ok(json!("450.00")));
    assert_eq!(income(json!(450.5)), Ok(json!("450.50")));
    assert_eq!(income(json!("450.000")), Ok(json!("450.00")));
    let err = baru
        .parse_json("household", "annual_income", &json!("450.005"))
        .expect_err("three decimals");
    assert_eq!(
        err.reason,
        ValidationReason::TooManyDecimals {
            scale: 2,
            got: "450.005".into()
        }
    );
    // The stored scalar keeps the scale too.
    let v = baru
        .parse_json("household", "annual_income", &json!("450"))
        .expect("valid");
    assert_eq!(v.to_scalar(), automerge::ScalarValue::Str("450.00".into()));
}

#[test]
fn dates_are_accepted_as_people_write_them_and_stored_iso() {
    let baru = Schema::baru_example();
    for typed in [
        "2027-01-05",
        "2027-1-5",
        "2027/1/5",
        "2027年1月5日",
        " 2027.01.05 ",
    ] {
        let v = baru.parse_json("household", "visit_date", &json!(typed));
        assert_eq!(v.map(|v| v.to_json()), Ok(json!("2027-01-05")), "{typed}");
    }
}

/// Examples of resident ID numbers.
/// - `11010519491231002X`: the example given in GB 11643-1999 itself (a man born
///   1949-12-31 in Beijing's Chaoyang district), whose check character is X.
/// - The others were computed with the standard's rule (ISO 7064 MOD 11-2, weights
///   7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2) and checked again by an independent script when
///   this test was written: `440524188001010014` (Shantou, born 1880), `513401…` numbers
///   for Xichang (513401), the home of Baru township. The invalid ones change one thing
///   each: the check digit, the day (2001-02-29 does not exist), the region, the length.
#[test]
fn resident_id_numbers_follow_gb_11643() {
    let today = formats::today();
    for valid in [
        "11010519491231002X",
        "11010519491231002x",
        "440524188001010014",
        "513401198505052226",
        "513401199901010014",
    ] {
        assert_eq!(
            formats::id_number(valid, today),
            Ok(valid.to_uppercase()),
            "{valid} is valid"
        );
    }
    for (invalid, problem) in [
        ("513401198505052222", "check_digit"), // should end in 6
        ("513401197003033456", "check_digit"), // should end in 0
        ("110105194912310021", "check_digit"), // the standard's example with 1 for X
        ("513401200102291230", "birth_date"),  // 2001-02-29 does not exist
        ("513401210001010013", "birth_date"),  // born in 2100 (check digit right)
        ("003401198505052226", "region"),
        ("51340119850505222", "length"),
        ("5134011985050522226", "length"),
        ("51340119850505222Y", "characters"),
        ("5134011985X505222X", "characters"),
    ] {
        assert_eq!(
            formats::id_number(invalid, today),
            Err(problem),
            "{invalid}"
        );
    }
}

#[test]
fn an_id_number_typed_with_lowercase_x_is_stored_with_upper_case_x() {
    let v = Schema::baru_example().parse_json("person", "id_number", &json!("11010519491231002x "));
    assert_eq!(v.map(|v| v.to_json()), Ok(json!("11010519491231002X")));
}

#[test]
fn mobile_and_landline_numbers_are_accepted_and_written_one_way() {
    let baru = Schema::baru_example();
    let phone = |typed: &str| {
        baru.parse_json("household", "phone", &json!(typed))
            .map(|v| v.to_json())
    };
    assert_eq!(phone("139 1234 5678"), Ok(json!("13912345678")));
    assert_eq!(phone("+86 139-1234-5678"), Ok(json!("13912345678")));
    assert_eq!(phone("0834-3221234"), Ok(json!("0834-3221234")));
    assert_eq!(phone("08343221234"), Ok(json!("08343221234")));
    assert!(phone("12912345678").is_err());
    assert!(phone("3221234").is_err());
}
