//! Data generators: households and field values as Baru cadres type them, on the kit's one
//! [`Rng`], every value checked against the schema it is for
//! (`examples/schema/baru.toml`, [`Schema::baru_example`](yibiao_model::Schema::baru_example)).

use serde_json::{Value as Json, json};
use yibiao_model::{FieldEdit, Schema, Value};

use crate::Result;
use crate::rng::Rng;

/// The entity every generator makes.
pub const ENTITY: &str = "household";

// Liangshan is mostly Yi; Yi names are written in Chinese characters as clan name + name.
const YI_SURNAMES: &[&str] = &[
    "吉克", "阿苏", "沙马", "曲比", "马海", "海来", "俄木", "阿尔", "吉伍", "加拉", "阿木", "勒格",
    "瓦其", "日火", "吉吉", "苏呷",
];
const YI_GIVEN: &[&str] = &[
    "拉哈", "木呷", "石者", "阿依", "尔古", "日哈", "伍各", "阿果", "拉则", "子拉", "莫色", "史体",
    "阿支", "木乃", "有格", "以作",
];
const HAN_SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "罗", "何", "蒋", "邓",
];
const HAN_GIVEN: &[&str] = &[
    "建国", "秀英", "志强", "桂兰", "明", "华", "德芳", "永福", "玉珍", "春梅", "光荣", "国平",
    "小军", "红",
];
// Xichang city and neighbouring Liangshan counties.
const REGION_CODES: &[&str] = &["513401", "513424", "513425", "513431", "513432", "513433"];
const MOBILE_PREFIXES: &[&str] = &[
    "130", "133", "135", "138", "139", "150", "152", "158", "180", "183", "187", "199",
];
const INCOME_SOURCES: &[&str] = &["farming", "livestock", "wages", "business", "transfers"];
const NOTES: &[&str] = &[
    "户主常年在外务工，由妻子代为填报。",
    "家中有一名重度残疾人，需每月走访。",
    "住房已完成危房改造，2024年入住。",
    "子女在西昌读高中，申请教育资助。",
    "饮水管道冬季易冻，已报村委会维修。",
    "养殖能繁母牛两头，收入较上年增加。",
    "低保金已按季度发放，本人确认无误。",
    "老人独居，邻居协助照料，建议纳入监测。",
];

/// `(key, Chinese name)` of every village of `schema`, in the schema's order.
pub fn villages(schema: &Schema) -> Vec<(String, String)> {
    schema
        .villages
        .iter()
        .map(|(k, l)| (k.clone(), l.zh.clone()))
        .collect()
}

/// A person's name: a Yi clan name and name for `ethnicity == "yi"`, else a Han name.
pub fn chinese_name(rng: &mut Rng, ethnicity: &str) -> String {
    if ethnicity == "yi" {
        format!("{}{}", rng.pick(YI_SURNAMES), rng.pick(YI_GIVEN))
    } else {
        format!("{}{}", rng.pick(HAN_SURNAMES), rng.pick(HAN_GIVEN))
    }
}

/// The GB 11643 (ISO 7064) check character of a resident ID number's first 17 digits.
pub fn id_check_char(digits17: &str) -> char {
    yibiao_model::formats::id_check_char(digits17).unwrap_or('0')
}

/// A valid 18-character resident ID number (born 1940..2002) with its check character.
pub fn id_number(rng: &mut Rng) -> String {
    let (y, m, d) = (rng.range(1940, 2002), rng.range(1, 12), rng.range(1, 28));
    let body = format!(
        "{}{y:04}{m:02}{d:02}{:03}",
        rng.pick(REGION_CODES),
        rng.range(1, 999)
    );
    let check = id_check_char(&body);
    format!("{body}{check}")
}

/// A Chinese mobile number.
pub fn phone(rng: &mut Rng) -> String {
    format!(
        "{}{:08}",
        rng.pick(MOBILE_PREFIXES),
        rng.range(0, 99_999_999)
    )
}

/// An annual income of 3,000.00 .. 150,000.00 yuan, to the fen, as decimal text.
pub fn income(rng: &mut Rng) -> Json {
    let fen = rng.range(300_000, 15_000_000);
    json!(format!("{}.{:02}", fen / 100, fen % 100))
}

/// A date in 2025 or 2026, `YYYY-MM-DD`.
pub fn date(rng: &mut Rng) -> Json {
    json!(format!(
        "{}-{:02}-{:02}",
        rng.range(2025, 2026),
        rng.range(1, 12),
        rng.range(1, 28)
    ))
}

/// Income sources, each with probability 40% (at least `farming`).
pub fn sources(rng: &mut Rng) -> Json {
    let mut s: Vec<&str> = INCOME_SOURCES
        .iter()
        .copied()
        .filter(|_| rng.chance(40))
        .collect();
    if s.is_empty() {
        s.push("farming");
    }
    json!(s)
}

/// An address in Baru township.
pub fn address(rng: &mut Rng, village_zh: &str, group: i64) -> Json {
    json!(format!(
        "四川省凉山州西昌市巴汝镇{village_zh}{group}组{}号",
        rng.range(1, 80)
    ))
}

const ETHNICITY: &[(&str, u32)] = &[("yi", 70), ("han", 25), ("tibetan", 3), ("other", 2)];
const DIBAO: &[(&str, u32)] = &[
    ("none", 70),
    ("enrolled", 18),
    ("special", 4),
    ("suspended", 8),
];
const HOUSING: &[(&str, u32)] = &[("brick", 55), ("earth", 25), ("wood", 15), ("other", 5)];
const WATER: &[(&str, u32)] = &[("piped", 60), ("well", 15), ("spring", 20), ("unsafe", 5)];
const TOILET: &[(&str, u32)] = &[("flush", 30), ("improved", 40), ("pit", 25), ("none", 5)];
const SIZE: &[(&str, u32)] = &[
    ("1", 8),
    ("2", 14),
    ("3", 18),
    ("4", 22),
    ("5", 18),
    ("6", 11),
    ("7", 6),
    ("8", 3),
];

/// A value of `field` of a household in `village_zh`, group `group`, as a cadre types it
/// into a form (JSON); `None` for a field the generator does not know.
pub fn field_json(rng: &mut Rng, field: &str, village_zh: &str, group: i64) -> Option<Json> {
    Some(match field {
        "household_head" => {
            let eth = rng.weighted(&[("yi", 70), ("han", 30)]);
            json!(chinese_name(rng, eth))
        }
        "id_number" => json!(id_number(rng)),
        "phone" => json!(phone(rng)),
        "address" => address(rng, village_zh, group),
        "village_group" => json!(group),
        "ethnicity" => json!(rng.weighted(ETHNICITY)),
        "household_size" => json!(rng.range(1, 8)),
        "labour_count" => json!(rng.range(0, 4)),
        "annual_income" => income(rng),
        "income_sources" => sources(rng),
        "dibao_status" => json!(rng.weighted(DIBAO)),
        "housing_type" => json!(rng.weighted(HOUSING)),
        "housing_safe" => json!(rng.chance(85)),
        "drinking_water" => json!(rng.weighted(WATER)),
        "toilet_type" => json!(rng.weighted(TOILET)),
        "visit_date" => date(rng),
        _ => return None,
    })
}

/// `json` as the typed value of `field` of a household; an error names a value the
/// schema refuses (a bug of the generator).
pub fn typed(schema: &Schema, field: &str, json: &Json) -> Result<Value> {
    schema
        .parse_json(ENTITY, field, json)
        .map_err(|e| format!("generated value {json} of {field} is refused: {e}").into())
}

/// A typed value of `field`, generated by [`field_json`] and checked by [`typed`].
pub fn field_value(
    rng: &mut Rng,
    schema: &Schema,
    field: &str,
    village_zh: &str,
    group: i64,
) -> Result<Value> {
    let json = field_json(rng, field, village_zh, group)
        .ok_or_else(|| format!("no generator for field {field}"))?;
    typed(schema, field, &json)
}

/// One household: its village and typed field values.
#[derive(Debug, Clone)]
pub struct Household {
    /// The village key.
    pub village: String,
    /// Field values in the order they were generated.
    pub fields: Vec<(&'static str, Value)>,
}

impl Household {
    /// Fields [`household`] always gives a household.
    pub const FIELD_COUNT: usize = 15;

    /// The value of `field`, if the household has one.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v)
    }

    /// Sets `field` (adding it when absent).
    pub fn set(&mut self, field: &'static str, value: Value) {
        match self.fields.iter_mut().find(|(f, _)| *f == field) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((field, value)),
        }
    }

    /// The edits that create this household.
    pub fn edits(&self) -> Vec<FieldEdit> {
        self.fields
            .iter()
            .map(|(f, v)| FieldEdit::Set((*f).to_owned(), v.clone()))
            .collect()
    }

    /// The values as one JSON object (field -> value).
    pub fn json(&self) -> Json {
        Json::Object(
            self.fields
                .iter()
                .map(|(f, v)| ((*f).to_owned(), v.to_json()))
                .collect(),
        )
    }
}

/// A household of one of `villages` (see [`villages`]) with [`Household::FIELD_COUNT`]
/// fields: 14 always, then a `visit_date` (70%: visited, so `dibao_check` can be
/// complete) or, for households not visited yet, a `toilet_type` from the
/// living-environment inspection.
pub fn household(
    rng: &mut Rng,
    schema: &Schema,
    villages: &[(String, String)],
) -> Result<Household> {
    let (village, village_zh) = rng.pick(villages).clone();
    let ethnicity = rng.weighted(ETHNICITY);
    let size: i64 = rng.weighted(SIZE).parse()?;
    let group = rng.range(1, 12);
    let sources = sources(rng);
    let mut json: Vec<(&'static str, Json)> = vec![
        ("household_head", json!(chinese_name(rng, ethnicity))),
        ("id_number", json!(id_number(rng))),
        ("phone", json!(phone(rng))),
        ("address", address(rng, &village_zh, group)),
        ("village_group", json!(group)),
        ("ethnicity", json!(ethnicity)),
        ("household_size", json!(size)),
        ("labour_count", json!(rng.range(0, size))),
        ("annual_income", income(rng)),
        ("income_sources", sources),
        ("dibao_status", json!(rng.weighted(DIBAO))),
        ("housing_type", json!(rng.weighted(HOUSING))),
        ("housing_safe", json!(rng.chance(85))),
        ("drinking_water", json!(rng.weighted(WATER))),
    ];
    if rng.chance(70) {
        json.push(("visit_date", date(rng)));
    } else {
        json.push(("toilet_type", json!(rng.weighted(TOILET))));
    }
    let fields = json
        .iter()
        .map(|(f, j)| Ok((*f, typed(schema, f, j)?)))
        .collect::<Result<_>>()?;
    Ok(Household { village, fields })
}

/// A fuller household as a phone sends it (about 17 fields: the [`household`] kinds plus
/// disability, monitoring, allowance, a GPS point in 50%, a photo in 20%, notes in 30%).
/// `yi` picks a Yi name and ethnicity.
pub fn rich_household(rng: &mut Rng, village_zh: &str, yi: bool) -> Vec<(&'static str, Json)> {
    let head = chinese_name(rng, if yi { "yi" } else { "han" });
    let group = rng.range(1, 12);
    let size = rng.range(1, 8);
    let labour = rng.range(0, size);
    let dibao = rng.weighted(&[
        ("none", 70),
        ("enrolled", 20),
        ("special", 5),
        ("suspended", 5),
    ]);
    let ethnicity = if yi {
        "yi"
    } else {
        *rng.pick(&["han", "han", "han", "tibetan", "other"])
    };
    let mut v: Vec<(&'static str, Json)> = vec![
        ("household_head", json!(head)),
        ("id_number", json!(id_number(rng))),
        ("phone", json!(phone(rng))),
        ("address", address(rng, village_zh, group)),
        ("village_group", json!(group)),
        ("ethnicity", json!(ethnicity)),
        ("household_size", json!(size)),
        (
            "annual_income",
            json!(format!(
                "{}.{:02}",
                rng.range(3_000, 89_999),
                rng.range(0, 99)
            )),
        ),
        ("income_sources", sources(rng)),
        ("dibao_status", json!(dibao)),
        ("disabled_members", json!(i64::from(rng.chance(12)))),
        (
            "monitoring_status",
            json!(rng.pick(&[
                "stable",
                "stable",
                "stable",
                "at_risk",
                "monitored",
                "cleared"
            ])),
        ),
        ("housing_safe", json!(rng.chance(93))),
        (
            "drinking_water",
            json!(rng.pick(&["piped", "piped", "piped", "well", "spring", "unsafe"])),
        ),
        ("visit_date", date(rng)),
    ];
    if rng.chance(60) {
        v.push(("labour_count", json!(labour)));
        v.push(("migrant_workers", json!(rng.range(0, labour))));
    }
    if dibao == "enrolled" || dibao == "special" {
        v.push((
            "dibao_amount_monthly",
            json!(format!("{}.00", size * rng.range(200, 450))),
        ));
    }
    if rng.chance(50) {
        v.push(("location", location(rng)));
    }
    if rng.chance(20) {
        v.push(("photo", photo(rng)));
    }
    if rng.chance(30) {
        v.push(("notes", json!(rng.pick(NOTES))));
    }
    v
}

/// A GPS point in Baru.
fn location(rng: &mut Rng) -> Json {
    let (lat, lon) = (rng.range(0, 199_999), rng.range(0, 299_999));
    json!({
        "lat": 27.7 + micro(lat),
        "lon": 102.1 + micro(lon),
    })
}

/// `n` millionths.
fn micro(n: i64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "n < 2^53")]
    let x = n as f64;
    x / 1_000_000.0
}

/// A photo attachment's metadata.
fn photo(rng: &mut Rng) -> Json {
    let sha: String = (0..64)
        .map(|_| char::from(b"0123456789abcdef"[rng.below(16)]))
        .collect();
    json!({
        "sha256": sha,
        "name": format!(
            "IMG_2025{:02}{:02}_{:04}.jpg",
            rng.range(1, 12),
            rng.range(1, 28),
            rng.range(0, 9_999)
        ),
        "mime": "image/jpeg",
        "size": rng.range(200_000, 2_999_999),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn every_generated_household_is_valid_against_the_baru_schema() {
        let schema = Schema::baru_example();
        let villages = villages(&schema);
        let mut rng = Rng::new(20_260_214);
        for _ in 0..200 {
            let h = household(&mut rng, &schema, &villages).unwrap();
            assert_eq!(h.fields.len(), Household::FIELD_COUNT);
            let yi = rng.chance(80);
            for (f, v) in rich_household(&mut rng, "土江村", yi) {
                typed(&schema, f, &v).unwrap();
            }
        }
    }
}
