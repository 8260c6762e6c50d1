//! Messages from structured reasons: the one place that turns a code and its parameters
//! into a sentence, in Chinese (the default: cadres read it) or English (on request).
//!
//! Every refusal that crosses a boundary (a value the dictionary refuses, a document the
//! server refuses, an HTTP error, an FFI error) carries a [`Message`]: a stable machine
//! `code` (`not_an_option`, `bad_id_number`, ...) and `params` (the field key, its Chinese
//! and English labels, what was expected, what was given, the allowed options' labels,
//! limits). Apps and department systems may render their own sentence from those; the
//! ones here are what the server, the CLI and the bindings show. Codes and parameter
//! names are part of the API: add, never rename.
//!
//! A plain `match` over codes: two languages and a few dozen sentences do not need an
//! i18n framework, and the compiler keeps every code's sentence next to its twin.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The language a message is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Chinese (simplified), the default: the people who read messages are cadres.
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// The language's tag: `zh` or `en`.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    /// A language tag (`zh`, `zh-CN`, `en`, `en-GB`, any case); `None` for others.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language an HTTP `Accept-Language` header asks for: the supported one with
    /// the highest weight (the first on a tie), Chinese when none is supported.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Lang::from_tag) else {
                continue;
            };
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::Zh, |(_, lang)| lang)
    }
}

/// A reason as data: a stable code and its parameters. [`Message::render`] makes the
/// sentence; apps can make their own from the same data.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Message {
    /// Stable machine code, e.g. `not_an_option`.
    pub code: String,
    /// Parameters by name (`field`, `field_zh`, `field_en`, `got`, `allowed_zh`, ...).
    pub params: BTreeMap<String, String>,
}

impl Message {
    /// A message with no parameters yet.
    pub fn new(code: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            params: BTreeMap::new(),
        }
    }

    /// Adds a parameter.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.insert(name.to_owned(), value.into());
        self
    }

    /// A sentence that has no code of its own yet: rendered as `text` in every language.
    pub fn detail(text: impl Into<String>) -> Self {
        Self::new("detail").with("detail", text)
    }

    /// A parameter, or the empty string.
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map_or("", String::as_str)
    }

    /// The sentence in `lang`. An unknown code (from a newer peer) renders its
    /// `detail` parameter, or the code itself.
    pub fn render(&self, lang: Lang) -> String {
        value_sentence(self, lang)
            .or_else(|| day_sentence(self, lang))
            .or_else(|| blob_sentence(self, lang))
            .or_else(|| finding_sentence(self, lang))
            .or_else(|| account_sentence(self, lang))
            .or_else(|| webhook_sentence(self, lang))
            .or_else(|| task_sentence(self, lang))
            .or_else(|| other_sentence(self, lang))
            .unwrap_or_else(|| match self.params.get("detail") {
                Some(d) => d.clone(),
                None => self.code.clone(),
            })
    }
}

/// How a field is named in a sentence: its label, and its key where it helps.
fn subject(m: &Message, lang: Lang) -> String {
    let (field, zh, en) = (m.param("field"), m.param("field_zh"), m.param("field_en"));
    match lang {
        Lang::Zh if !zh.is_empty() => format!("「{zh}」"),
        Lang::Zh => format!("字段 {field} "),
        Lang::En if !en.is_empty() => format!("field `{field}` ({en})"),
        Lang::En => format!("field `{field}`"),
    }
}

/// What a value of a type looks like, by the type's name in schema files.
pub fn type_phrase(type_name: &str, lang: Lang) -> &'static str {
    match (type_name, lang) {
        ("text", Lang::Zh) => "文字",
        ("text", Lang::En) => "text",
        ("integer", Lang::Zh) => "整数",
        ("integer", Lang::En) => "a whole number",
        ("decimal", Lang::Zh) => "数字（可带小数）",
        ("decimal", Lang::En) => "a decimal number",
        ("boolean", Lang::Zh) => "是或否（true 或 false）",
        ("boolean", Lang::En) => "true or false",
        ("date", Lang::Zh) => "日期（如 2027-01-05、2027/1/5 或 2027年1月5日）",
        ("date", Lang::En) => "a date (2027-01-05, 2027/1/5 or 2027年1月5日)",
        ("choice", Lang::Zh) => "一个选项",
        ("choice", Lang::En) => "one option",
        ("multi_choice", Lang::Zh) => "一组选项",
        ("multi_choice", Lang::En) => "a list of options",
        ("gps", Lang::Zh) => "GPS 坐标 {\"lat\": .., \"lon\": ..}",
        ("gps", Lang::En) => "a GPS point {\"lat\": .., \"lon\": ..}",
        ("attachment", Lang::Zh) => "附件 {\"sha256\", \"name\", \"mime\", \"size\"}",
        ("attachment", Lang::En) => "an attachment {\"sha256\", \"name\", \"mime\", \"size\"}",
        ("id_number", Lang::Zh) => "18 位身份证号",
        ("id_number", Lang::En) => "an 18-character resident ID number",
        ("phone", Lang::Zh) => "手机号或座机号",
        ("phone", Lang::En) => "a mobile or landline phone number",
        (_, Lang::Zh) => "其他类型",
        (_, Lang::En) => "another type",
    }
}

/// The forms a date may be written in, for hints.
pub const DATE_FORMS: &str = "2027-01-05, 2027-1-5, 2027/1/5 or 2027年1月5日";

/// Sentences of the value reasons (the dictionary's `ValidationReason`s).
fn value_sentence(m: &Message, lang: Lang) -> Option<String> {
    let s = subject(m, lang);
    let p = |name| m.param(name);
    let zh = lang == Lang::Zh;
    Some(match m.code.as_str() {
        "unknown_field" if zh => format!("字段 {} 不在字段字典中", p("field")),
        "unknown_field" => format!("field `{}` is not in the field dictionary", p("field")),
        "not_in_entity" if zh => format!("{s}不是「{}」记录的字段", label(m, "entity", lang)),
        "not_in_entity" => format!("{s} is not a field of entity type `{}`", p("entity")),
        "wrong_type" if zh => format!(
            "{s}应填{}，填的是 {}",
            type_phrase(p("expected"), lang),
            p("got")
        ),
        "wrong_type" => format!(
            "{s} expects {}, got {}",
            type_phrase(p("expected"), lang),
            p("got")
        ),
        "not_an_option" if zh => format!("{s}没有选项“{}”；可选：{}", p("option"), p("allowed_zh")),
        "not_an_option" => format!(
            "{s} has no option \"{}\"; allowed: {}",
            p("option"),
            p("allowed_en")
        ),
        "below_min" if zh => format!("{s}不能小于 {}，填的是 {}", p("min"), p("got")),
        "below_min" => format!("{s} must be at least {}, got {}", p("min"), p("got")),
        "above_max" if zh => format!("{s}不能大于 {}，填的是 {}", p("max"), p("got")),
        "above_max" => format!("{s} must be at most {}, got {}", p("max"), p("got")),
        "too_many_decimals" if zh => {
            format!("{s}最多 {} 位小数，填的是 {}", p("scale"), p("got"))
        }
        "too_many_decimals" => format!(
            "{s} allows {} digits after the point, got {}",
            p("scale"),
            p("got")
        ),
        "too_long" if zh => format!("{s}最多 {} 个字，填了 {} 个", p("max"), p("len")),
        "too_long" => format!(
            "{s} allows at most {} characters, got {}",
            p("max"),
            p("len")
        ),
        "pattern_mismatch" if zh => format!("{s}格式不对，应为：{}", p("expected")),
        "pattern_mismatch" => format!("{s} must be {}", p("expected")),
        "blank" if zh => format!("{s}是空的；不填请清除这一项"),
        "blank" => format!("{s} is blank; unset the field instead"),
        "bad_date" if zh => format!(
            "{s}不是有效日期：“{}”；可写作 2027-01-05、2027-1-5、2027/1/5 或 2027年1月5日",
            p("got")
        ),
        "bad_date" => format!(
            "{s} expects a real date written {DATE_FORMS}, got \"{}\"",
            p("got")
        ),
        "gps_out_of_range" if zh => format!(
            "{s}超出范围：纬度应在 -90 到 90 之间，经度应在 -180 到 180 之间，填的是 {}, {}",
            p("lat"),
            p("lon")
        ),
        "gps_out_of_range" => format!(
            "{s} expects latitude -90..90 and longitude -180..180, got {}, {}",
            p("lat"),
            p("lon")
        ),
        "bad_attachment" => attachment_sentence(&s, p("problem"), lang),
        "bad_id_number" => id_number_sentence(&s, p("problem"), lang),
        "bad_phone" if zh => {
            format!("{s}应为 11 位手机号（1 开头）或带区号的座机号（如 0834-3221234）")
        }
        "bad_phone" => format!(
            "{s} expects an 11-digit mobile number (starting with 1) or a landline with its area code (0834-3221234)"
        ),
        _ => return None,
    })
}

/// `name`'s label in `lang` (`name_zh` / `name_en`), or its key.
fn label<'m>(m: &'m Message, name: &str, lang: Lang) -> &'m str {
    let l = m.param(&format!("{name}_{}", lang.tag()));
    if l.is_empty() { m.param(name) } else { l }
}

fn attachment_sentence(s: &str, problem: &str, lang: Lang) -> String {
    let what = match (problem, lang) {
        ("sha256", Lang::Zh) => "sha256 应为 64 位小写十六进制数字",
        ("sha256", Lang::En) => "sha256 must be 64 lowercase hex digits",
        ("name", Lang::Zh) => "文件名为空",
        ("name", Lang::En) => "name is empty",
        (_, Lang::Zh) => "类型应写作 type/subtype",
        (_, Lang::En) => "mime must look like type/subtype",
    };
    match lang {
        Lang::Zh => format!("{s}附件信息有误：{what}"),
        Lang::En => format!("{s} has a bad attachment reference: {what}"),
    }
}

/// The ID number's problem; the number itself is personal data and never echoed.
fn id_number_sentence(s: &str, problem: &str, lang: Lang) -> String {
    match (problem, lang) {
        ("length", Lang::Zh) => format!("{s}应为 18 位：17 位数字，最后一位是数字或 X"),
        ("length", Lang::En) => {
            format!("{s} must be 18 characters: 17 digits, then a digit or X")
        }
        ("characters", Lang::Zh) => format!("{s}只能是数字，最后一位可以是 X"),
        ("characters", Lang::En) => format!("{s} may hold only digits; the last may be X"),
        ("region", Lang::Zh) => format!("{s}的前 6 位不是有效的地区代码"),
        ("region", Lang::En) => format!("{s} does not start with a valid region code"),
        ("birth_date", Lang::Zh) => format!("{s}第 7 到 14 位的出生日期不存在或晚于今天"),
        ("birth_date", Lang::En) => format!(
            "{s} holds a birth date (characters 7 to 14) that does not exist or is after today"
        ),
        (_, Lang::Zh) => format!("{s}校验位不对，请逐位核对号码"),
        (_, Lang::En) => format!("{s} has a wrong check digit; check the number digit by digit"),
    }
}

/// Sentences about days and due dates (tasks, reports).
fn day_sentence(m: &Message, lang: Lang) -> Option<String> {
    let got = m.param("got");
    Some(match (m.code.as_str(), lang) {
        ("bad_due", Lang::Zh) => format!(
            "截止时间“{got}”无法识别；请写日期（2027-01-05、2027-1-5、2027/1/5 或 2027年1月5日）或时间（2027-01-05T18:00:00+08:00）"
        ),
        ("bad_due", Lang::En) => format!(
            "due `{got}` is neither a date ({DATE_FORMS}) nor a time (2027-01-05T18:00:00+08:00)"
        ),
        ("due_past", Lang::Zh) => {
            format!("截止时间 {} 已经过去，请给一个更晚的日期", m.param("due"))
        }
        ("due_past", Lang::En) => {
            format!(
                "due `{}` is already past; give a later date",
                m.param("due")
            )
        }
        ("bad_day", Lang::Zh) => {
            format!("“{got}”不是有效日期；可写作 2027-01-05、2027-1-5、2027/1/5 或 2027年1月5日")
        }
        ("bad_day", Lang::En) => format!("`{got}` is not a day; write it as {DATE_FORMS}"),
        ("task_set_aside", Lang::Zh) => format!(
            "任务 {} 在村 {} 的文档已被隔离，暂时无法取消；请管理员先处理（yibiao-server quarantine show {}）",
            m.param("task"),
            m.param("village"),
            m.param("record")
        ),
        ("task_set_aside", Lang::En) => format!(
            "task `{}` cannot be cancelled: its document for village `{}` is set aside for the operator (yibiao-server quarantine show {})",
            m.param("task"),
            m.param("village"),
            m.param("record")
        ),
        _ => return None,
    })
}

/// Sentences about findings: who may take which step (`finding_forbidden`: `role`,
/// `step`, `why`).
fn finding_sentence(m: &Message, lang: Lang) -> Option<String> {
    if m.code != "finding_forbidden" {
        return finding_input_sentence(m, lang);
    }
    let (role, step, why) = (m.param("role"), m.param("step"), m.param("why"));
    Some(match lang {
        Lang::Zh => {
            let step_zh = match step {
                "record" => "登记问题",
                "hand_over" => "移交",
                "resolve" => "处置",
                "accept" => "核查通过",
                "send_back" => "退回返工",
                "hold_to_account" => "追责",
                "report" => "查看通报",
                other => other,
            };
            let why_zh = match why {
                "other_village" => "只能处理本村的问题",
                "not_handed_to_you" => "该问题没有移交给你们",
                _ => "这一步不属于该角色",
            };
            format!("{role} 不能执行「{step_zh}」：{why_zh}")
        }
        Lang::En => {
            let why_en = match why {
                "other_village" => "only findings about its own village",
                "not_handed_to_you" => "the finding was not handed over to it",
                _ => "this step belongs to another role",
            };
            format!("{role} may not take step `{step}`: {why_en}")
        }
    })
}

/// Sentences about what a finding or step holds (`unknown_category`, `hand_over_needs`,
/// `finding_*` limits).
fn finding_input_sentence(m: &Message, lang: Lang) -> Option<String> {
    let p = |k| m.param(k);
    let zh = lang == Lang::Zh;
    Some(match m.code.as_str() {
        "unknown_category" if zh => format!(
            "问题类别「{}」不在本镇的类别中；可选：{}",
            p("got"),
            p("allowed_zh")
        ),
        "unknown_category" => format!(
            "finding category `{}` is not one of this township's; choose one of: {}",
            p("got"),
            p("allowed_en")
        ),
        "hand_over_needs" if zh => format!(
            "类别「{}」没有默认的{}，移交时请写明",
            p("category"),
            if p("what") == "unit" {
                "责任单位"
            } else {
                "办理期限"
            }
        ),
        "hand_over_needs" => format!(
            "category `{}` has no default {}: name it in the hand-over",
            p("category"),
            if p("what") == "unit" {
                "responsible unit"
            } else {
                "deadline"
            }
        ),
        "finding_category_key" if zh => format!(
            "问题类别「{}」不是有效的代码（小写字母、数字和 _）",
            p("got")
        ),
        "finding_category_key" => format!(
            "finding category `{}` is not a key (lowercase letters, digits, _)",
            p("got")
        ),
        "finding_description" if zh => {
            format!("问题描述应填写 1 到 {} 个字", p("max_chars"))
        }
        "finding_description" => format!(
            "a finding's description holds 1 to {} characters",
            p("max_chars")
        ),
        "finding_photos" if zh => format!("一个问题最多附 {} 张照片", p("max_refs")),
        "finding_photos" => format!("a finding holds at most {} photo references", p("max_refs")),
        "finding_resolution_size" if zh => format!(
            "处置说明最多 {} 个字，佐证材料最多 {} 份",
            p("max_chars"),
            p("max_refs")
        ),
        "finding_resolution_size" => format!(
            "a resolution holds at most {} characters and {} evidence references",
            p("max_chars"),
            p("max_refs")
        ),
        "finding_send_back_reason" if zh => {
            format!("退回返工须写明理由（1 到 {} 个字）", p("max_chars"))
        }
        "finding_send_back_reason" => format!(
            "a send-back needs a reason of 1 to {} characters",
            p("max_chars")
        ),
        "finding_hold_fields" if zh => {
            format!("追责须写明对象和措施，各 1 到 {} 个字", p("max_chars"))
        }
        "finding_hold_fields" => format!(
            "holding to account names who and the measure, each 1 to {} characters",
            p("max_chars")
        ),
        _ => return None,
    })
}

/// Sentences of refusals that are not about one value: sync refusals and HTTP errors.
/// `detail` (English, for operators) is appended in English only.
/// Sentences of attachment uploads and thumbnails (`blob_*` codes; params `max`, `got`,
/// `size`, `expected`, `held`, `width`, `height`, `max_side`, `max_mib`).
fn blob_sentence(m: &Message, lang: Lang) -> Option<String> {
    let p = |k: &str| m.param(k).to_owned();
    Some(match (m.code.as_str(), lang) {
        ("blob_too_large", Lang::Zh) => format!(
            "附件过大：{} 字节，服务器最多接收 {} 字节；请压缩照片后再附上",
            p("size"),
            p("max")
        ),
        ("blob_too_large", Lang::En) => format!(
            "the attachment is too large: {} bytes, the server takes at most {}; compress the photo and attach it again",
            p("size"),
            p("max")
        ),
        ("blob_type_refused", Lang::Zh) => format!(
            "附件类型不被接受：内容不是 {}（声明为 {}）",
            p("allowed"),
            p("got")
        ),
        ("blob_type_refused", Lang::En) => format!(
            "the attachment's type is not accepted: its content is not {} (declared {})",
            p("allowed"),
            p("got")
        ),
        ("blob_hash_mismatch", Lang::Zh) => {
            "附件内容在传输中损坏（校验值不符），服务器已丢弃，请重新上传".to_owned()
        }
        ("blob_hash_mismatch", Lang::En) => "the attachment was damaged in transit (its SHA-256 does not match); the server discarded it, upload it again".to_owned(),
        ("blob_offset", Lang::Zh) => format!(
            "上传位置不符：服务器已有 {} 字节，请从该位置继续",
            p("held")
        ),
        ("blob_offset", Lang::En) => format!(
            "wrong upload offset: the server holds {} bytes; continue from there",
            p("held")
        ),
        ("blob_busy", Lang::Zh) => format!(
            "本设备未完成的附件上传过多（最多 {} 个），请先完成已有的上传",
            p("max")
        ),
        ("blob_busy", Lang::En) => format!(
            "this device has too many unfinished attachment uploads (at most {}); finish those first",
            p("max")
        ),
        ("blob_not_an_image", Lang::Zh) => format!(
            "该附件不是图片（{}），没有缩略图；请打开原文件查看",
            p("got")
        ),
        ("blob_not_an_image", Lang::En) => format!(
            "the attachment is not an image ({}), so it has no thumbnail; open the file itself",
            p("got")
        ),
        ("blob_image_too_large", Lang::Zh) => format!(
            "图片过大（{}×{} 像素），超出服务器生成缩略图的上限（每边最多 {} 像素、解码内存最多 {} MiB）；请打开原图查看",
            p("width"),
            p("height"),
            p("max_side"),
            p("max_mib")
        ),
        ("blob_image_too_large", Lang::En) => format!(
            "the image is too large for a thumbnail ({} x {} pixels; the server decodes at most {} pixels a side and {} MiB); open the image itself",
            p("width"),
            p("height"),
            p("max_side"),
            p("max_mib")
        ),
        ("blob_image_unreadable", Lang::Zh) => {
            "图片无法解码（文件损坏或格式不受支持），没有缩略图；请打开原文件查看".to_owned()
        }
        ("blob_image_unreadable", Lang::En) => "the image cannot be decoded (damaged, or a variant the server does not read), so it has no thumbnail; open the file itself".to_owned(),
        _ => return None,
    })
}

/// Sentences about accounts: cadres, devices, enrolment codes, department tokens and
/// staff (the operator's CLI, the admin API and the console's admin pages).
fn account_sentence(m: &Message, lang: Lang) -> Option<String> {
    let p = |name| m.param(name);
    let zh = lang == Lang::Zh;
    Some(match m.code.as_str() {
        "unknown_village" if zh => {
            format!("没有村 `{}`；字典中的村有：{}", p("village"), p("known"))
        }
        "unknown_village" => format!(
            "unknown village `{}`; the schema has: {}",
            p("village"),
            p("known")
        ),
        "unknown_department" if zh => format!(
            "没有部门 `{}`；字典中的部门有：{}",
            p("department"),
            p("known")
        ),
        "unknown_department" => format!(
            "unknown department `{}`; the schema has: {}",
            p("department"),
            p("known")
        ),
        "name_length" if zh => "姓名须为 1 到 60 个字".to_owned(),
        "name_length" => "name must be 1 to 60 characters".to_owned(),
        "name_empty" if zh => "姓名不能为空".to_owned(),
        "name_empty" => "the name is empty".to_owned(),
        "cadre_exists" if zh => format!("干部 `{}` 已存在", p("cadre")),
        "cadre_exists" => format!("cadre `{}` already exists", p("cadre")),
        "no_cadre" if zh => format!("没有干部 `{}`", p("cadre")),
        "no_cadre" => format!("no cadre `{}`", p("cadre")),
        "cadre_disabled" if zh => format!("干部 `{}` 已停用", p("cadre")),
        "cadre_disabled" => format!("cadre `{}` is disabled", p("cadre")),
        "cadre_disabled_no_code" if zh => {
            format!("干部 `{}` 已停用，不再为其发放注册码", p("cadre"))
        }
        "cadre_disabled_no_code" => format!(
            "cadre `{}` is disabled; no enrolment code is issued for them",
            p("cadre")
        ),
        "code_ttl" if zh => "注册码有效期须为 1 到 10080 分钟（一周）".to_owned(),
        "code_ttl" => "ttl_minutes must be between 1 and 10080 (a week)".to_owned(),
        "device_reserved" if zh => format!(
            "设备编号 `{}` 为服务器保留；手机应使用应用生成的编号",
            p("device")
        ),
        "device_reserved" => format!(
            "device id `{}` is reserved for the server; a phone uses the id its app generated",
            p("device")
        ),
        "device_taken" if zh => format!(
            "设备编号 `{}` 已注册；如果就是这部手机，请先让乡镇撤销它的旧令牌",
            p("device")
        ),
        "device_taken" => format!(
            "device id `{}` is already enrolled; if this is that phone, ask the township to revoke its old token first",
            p("device")
        ),
        "code_format" if zh => "注册码是 8 位字母和数字，例如 K7PM-Q2XD".to_owned(),
        "code_format" => "an enrolment code has 8 letters and digits, like K7PM-Q2XD".to_owned(),
        "code_unknown" if zh => "注册码无效，请向乡镇索取新的注册码".to_owned(),
        "code_unknown" => "unknown enrolment code; ask the township for a new one".to_owned(),
        "code_used" if zh => "该注册码已被使用，请索取新的注册码".to_owned(),
        "code_used" => "this enrolment code was already used; ask for a new one".to_owned(),
        "code_expired" if zh => "该注册码已过期，请索取新的注册码".to_owned(),
        "code_expired" => "this enrolment code has expired; ask for a new one".to_owned(),
        "no_device" if zh => format!("没有设备 `{}`", p("key")),
        "no_device" => format!("no device `{}`", p("key")),
        "no_department_token" if zh => format!("没有部门令牌 `{}`", p("key")),
        "no_department_token" => format!("no department token `{}`", p("key")),
        "unknown_role" if zh => format!("没有角色 `{}`；可用 admin、leader 或 clerk", p("role")),
        "unknown_role" => format!("unknown role `{}`; use admin, leader or clerk", p("role")),
        "password_short" if zh => format!("密码太短：至少 {} 个字符", p("min")),
        "password_short" => format!(
            "the password is too short: use at least {} characters",
            p("min")
        ),
        "login_format" if zh => format!(
            "登录名 `{}` 须为 1 到 64 个 ASCII 字母、数字或 - _ . @",
            p("login")
        ),
        "login_format" => format!(
            "login `{}` must be 1 to 64 ASCII letters, digits, - _ . or @",
            p("login")
        ),
        "login_taken" if zh => format!("登录名 `{}` 已被使用", p("login")),
        "login_taken" => format!("staff login `{}` is taken", p("login")),
        "no_enabled_staff" if zh => format!("没有启用中的账号 `{}`", p("login")),
        "no_enabled_staff" => format!("no enabled staff account `{}`", p("login")),
        "no_staff" if zh => format!("没有账号 `{}`", p("login")),
        "no_staff" => format!("no staff account `{}`", p("login")),
        "password_wrong" if zh => "当前密码不正确".to_owned(),
        "password_wrong" => "the current password is not right".to_owned(),
        "disable_self" if zh => "管理员不能停用自己的账号".to_owned(),
        "disable_self" => "an administrator cannot disable their own account".to_owned(),
        _ => return None,
    })
}

/// Webhook endpoints and their delivery log (the admin API and CLI).
fn webhook_sentence(m: &Message, lang: Lang) -> Option<String> {
    let p = |k: &str| m.param(k);
    let zh = lang == Lang::Zh;
    Some(match m.code.as_str() {
        "webhook_url" if zh => format!("`{}` 不是带主机名的 http(s) 地址", p("url")),
        "webhook_url" => format!("`{}` is not an http(s) URL with a host", p("url")),
        "webhook_plain_http" if zh => format!(
            "`{}` 是明文 http：数据变更和签名会明文经过网络；请用 https（在可信网络上可明确允许 http）",
            p("url")
        ),
        "webhook_plain_http" => format!(
            "`{}` is plain http: changes and the signature would cross the network in clear; use https (or allow http explicitly on a network you trust)",
            p("url")
        ),
        "no_webhook" if zh => format!("没有推送地址 `{}`", p("webhook")),
        "no_webhook" => format!("no webhook `{}`", p("webhook")),
        "no_delivery" if zh => format!(
            "推送地址 `{}` 没有第 {} 次投递",
            p("webhook"),
            p("delivery")
        ),
        "no_delivery" => format!(
            "webhook `{}` has no delivery {}",
            p("webhook"),
            p("delivery")
        ),
        "limit_range" if zh => format!("limit 须为 1 到 {} 之间的整数", p("max")),
        "limit_range" => format!("limit must be a whole number from 1 to {}", p("max")),
        _ => return None,
    })
}

/// Sentences of task requests (`task_*` codes, `period_reversed`).
fn task_sentence(m: &Message, lang: Lang) -> Option<String> {
    let p = |k| m.param(k);
    let zh = lang == Lang::Zh;
    Some(match m.code.as_str() {
        "task_unknown_form" if zh => format!("没有表单「{}」；可选：{}", p("form"), p("known")),
        "task_unknown_form" => format!(
            "unknown form `{}`; the schema has: {}",
            p("form"),
            p("known")
        ),
        "task_form_forbidden" if zh => format!(
            "部门 {} 只能为本部门的表单下发任务：{}",
            p("department"),
            p("forms")
        ),
        "task_form_forbidden" => format!(
            "department `{}` may issue tasks only for its forms: {}",
            p("department"),
            p("forms")
        ),
        "task_village_forbidden" if zh => {
            format!("{} 不能向村 {} 下发任务", p("issuer"), p("village"))
        }
        "task_village_forbidden" => format!(
            "`{}` may not issue tasks to village `{}`",
            p("issuer"),
            p("village")
        ),
        "task_targets" if zh => {
            "请二选一：选择村（这些村该表单的全部记录），或填写记录编号".to_owned()
        }
        "task_targets" => "give either `villages` (every record of the form in them) or `records` (those records), not both".to_owned(),
        "task_reaches_nothing" if zh => "任务没有发到您可查看的任何村".to_owned(),
        "task_reaches_nothing" => "the task reaches no village the issuer may see".to_owned(),
        "task_title_empty" if zh => "任务标题不能为空".to_owned(),
        "task_title_empty" => "`title` must not be empty".to_owned(),
        "task_title_long" if zh => format!("任务标题最多 {} 个字", p("max")),
        "task_title_long" => format!("`title` may hold at most {} characters", p("max")),
        "task_instructions_long" if zh => format!("任务说明最多 {} 个字", p("max")),
        "task_instructions_long" => {
            format!("`instructions` may hold at most {} characters", p("max"))
        }
        "task_villages_empty" if zh => "没有选择村".to_owned(),
        "task_villages_empty" => "`villages` is empty".to_owned(),
        "task_records_empty" if zh => "没有填写记录编号".to_owned(),
        "task_records_empty" => "`records` is empty".to_owned(),
        "task_records_many" if zh => format!("一个任务最多指定 {} 条记录", p("max")),
        "task_records_many" => format!("a task may name at most {} records", p("max")),
        "task_bad_record_id" if zh => format!("“{}”不是记录编号（UUID）", p("got")),
        "task_bad_record_id" => format!("`{}` is not a record id (a UUID)", p("got")),
        "task_record_entity" if zh => format!(
            "记录 {} 是「{}」，表单「{}」只用于「{}」记录",
            p("record"),
            p("entity"),
            p("form"),
            p("form_entity")
        ),
        "task_record_entity" => format!(
            "record {} is a `{}`, but form `{}` is for `{}` records",
            p("record"),
            p("entity"),
            p("form"),
            p("form_entity")
        ),
        "task_record_deleted" if zh => format!("记录 {} 已删除", p("record")),
        "task_record_deleted" => format!("record {} is deleted", p("record")),
        "period_reversed" if zh => format!("结束日期 {} 早于开始日期 {}", p("to"), p("from")),
        "period_reversed" => format!("`to` ({}) is before `from` ({})", p("to"), p("from")),
        _ => return None,
    })
}

fn other_sentence(m: &Message, lang: Lang) -> Option<String> {
    let detail = m.param("detail");
    let zh = match m.code.as_str() {
        "malformed" => "记录数据已损坏，服务器无法读取",
        "missing_history" => "服务器缺少这条记录的早先修改，下次同步会发送完整记录",
        "not_a_record" => "这不是有效的记录，或修改了不允许修改的内容",
        "invalid_value" => "记录中有不符合字段字典的值",
        "out_of_scope" => "这条记录不在本手机负责的范围内",
        "unauthorized" => "身份验证失败：令牌缺失、无效或已被撤销",
        "forbidden" => "没有权限执行此操作",
        "not_found" => "找不到所请求的内容",
        "conflict" => "该内容已经存在",
        "rate_limited" => "请求过于频繁，请稍后再试",
        "bad_request" => "请求有误",
        "protocol_version" => "应用版本过旧，请更新应用",
        "too_large" => "请求内容过大",
        "busy" => "服务器繁忙，请稍后再试",
        "internal" => "服务器内部错误，管理员可在服务器日志中查看详情",
        _ => return None,
    };
    Some(match lang {
        Lang::Zh if detail.is_empty() => zh.to_owned(),
        Lang::Zh => format!("{zh}（{detail}）"),
        Lang::En if detail.is_empty() => m.code.replace('_', " "),
        Lang::En => detail.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_supported_language_with_the_highest_weight() {
        assert_eq!(Lang::from_accept_language("en"), Lang::En);
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Lang::En);
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Lang::Zh
        );
        assert_eq!(
            Lang::from_accept_language("fr, en;q=0.5, zh;q=0.4"),
            Lang::En
        );
        assert_eq!(Lang::from_accept_language("zh;q=0.2, en;q=0.7"), Lang::En);
        assert_eq!(Lang::from_accept_language("fr-FR"), Lang::Zh);
        assert_eq!(Lang::from_accept_language(""), Lang::Zh);
        assert_eq!(Lang::from_accept_language("en;q=0"), Lang::Zh);
    }

    #[test]
    fn blob_refusals_are_worded_in_both_languages_with_their_figures() {
        let m = Message::new("blob_too_large")
            .with("size", "3000000")
            .with("max", "2000000");
        assert!(
            m.render(Lang::Zh).contains("3000000"),
            "{}",
            m.render(Lang::Zh)
        );
        assert!(m.render(Lang::En).contains("at most 2000000"));
        let t = Message::new("blob_type_refused")
            .with("allowed", "JPEG, PNG, WebP, PDF")
            .with("got", "image/jpeg");
        assert!(t.render(Lang::Zh).starts_with("附件类型不被接受"));
        assert!(t.render(Lang::En).contains("JPEG, PNG, WebP, PDF"));
        let pdf = Message::new("blob_not_an_image").with("got", "application/pdf");
        assert_eq!(
            pdf.render(Lang::Zh),
            "该附件不是图片（application/pdf），没有缩略图；请打开原文件查看"
        );
        assert!(
            pdf.render(Lang::En)
                .contains("not an image (application/pdf)")
        );
        let bomb = Message::new("blob_image_too_large")
            .with("width", "100000")
            .with("height", "100000")
            .with("max_side", "8192")
            .with("max_mib", "160");
        assert!(bomb.render(Lang::Zh).contains("100000×100000 像素"));
        assert!(
            bomb.render(Lang::En)
                .contains("at most 8192 pixels a side and 160 MiB")
        );
        assert!(
            Message::new("blob_image_unreadable")
                .render(Lang::Zh)
                .starts_with("图片无法解码")
        );
    }

    #[test]
    fn an_unknown_code_renders_its_detail() {
        let m = Message::new("from_the_future").with("detail", "something new");
        assert_eq!(m.render(Lang::Zh), "something new");
        assert_eq!(Message::new("x").render(Lang::En), "x");
    }
}
