//! Township admin pages: cadres (add, disable, move, their phones, enrolment codes shown
//! as a QR code and as the 8 characters to type), devices (last sync, revoke) and
//! department tokens (issue, shown once; revoke). Only [`ConsoleAdmin`] reaches them;
//! every form is CSRF-checked by [`Posted`], calls the same `crate::accounts` function
//! as the CLI and the admin JSON API, and writes one audit line.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use qrcode::QrCode;
use qrcode::render::svg;
use serde::Deserialize;
use yibiao_model::clock;

use super::super::i18n::Strings;
use super::super::session::{ConsoleAdmin, Posted};
use super::super::staff;
use super::super::{Layout, PageError, blocking, render};
use crate::accounts::{self, AccountError};
use crate::state::AppState;

/// One phone as listed.
#[derive(Debug)]
pub struct PhoneLine {
    key: String,
    shown: String,
    name: String,
    cadre: String,
    village: String,
    last_seen: String,
    revoked: bool,
}

/// One cadre as listed.
#[derive(Debug)]
pub struct CadreLine {
    id: String,
    name: String,
    village: String,
    village_key: String,
    disabled: bool,
    phones: usize,
}

/// A code just issued: shown once, as characters and as a QR code.
#[derive(Debug)]
pub struct CodeShown {
    cadre: String,
    code: String,
    expires: String,
    qr_svg: String,
}

#[derive(Template)]
#[template(path = "console/cadres.html")]
struct CadresPage {
    l: Layout,
    s: &'static Strings,
    cadres: Vec<CadreLine>,
    phones: Vec<PhoneLine>,
    villages: Vec<(String, String)>,
    code: Option<CodeShown>,
    notice: Option<String>,
    error: Option<String>,
}

fn time(ms: Option<i64>, never: &str) -> String {
    ms.map_or_else(
        || never.to_owned(),
        |ms| clock::local(ms).format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// What an admin form produced, for the page shown after it.
#[derive(Debug, Default)]
struct Outcome {
    code: Option<CodeShown>,
    notice: Option<String>,
    error: Option<String>,
}

fn cadres_page(
    state: &AppState,
    admin: &ConsoleAdmin,
    out: Outcome,
) -> Result<Response, PageError> {
    let user = &admin.0;
    let (s, en) = (user.lang.strings(), user.lang.en());
    let schema = state.hub.schema();
    let storage = state.storage.as_ref();
    let label = |v: Option<&str>| match v {
        Some(v) => schema
            .villages
            .get(v)
            .map_or_else(|| v.to_owned(), |l| l.get(en).to_owned()),
        None => s.township_level.to_owned(),
    };
    let devices = accounts::devices(storage)?;
    let disabled = storage
        .disabled_cadres()
        .map_err(|e| PageError::internal("cadres read", e))?;
    let cadres = storage
        .cadres()
        .map_err(|e| PageError::internal("cadres read", e))?
        .into_iter()
        .map(|c| CadreLine {
            disabled: disabled.iter().any(|(d, _)| *d == c.id),
            phones: devices
                .iter()
                .filter(|d| {
                    d.device.cadre.as_deref() == Some(&c.id) && d.device.revoked_ms.is_none()
                })
                .count(),
            village: label(c.village.as_deref()),
            village_key: c.village.unwrap_or_default(),
            id: c.id,
            name: c.name,
        })
        .collect();
    let phones = devices
        .into_iter()
        .map(|l| PhoneLine {
            shown: l
                .device
                .phone_device
                .clone()
                .unwrap_or_else(|| l.device.key.clone()),
            name: l.device.name,
            cadre: l.device.cadre.unwrap_or_else(|| "-".into()),
            village: label(l.device.village.as_deref()),
            last_seen: time(l.last_seen_ms, s.never),
            revoked: l.device.revoked_ms.is_some(),
            key: l.device.key,
        })
        .collect();
    render(&CadresPage {
        l: Layout::of(user, schema, "/admin/cadres"),
        s,
        cadres,
        phones,
        villages: schema
            .villages
            .iter()
            .map(|(k, l)| (k.clone(), l.get(en).to_owned()))
            .collect(),
        code: out.code,
        notice: out.notice,
        error: out.error,
    })
}

/// A refused account operation as the page shows it; storage failures stay 500s.
fn refused(admin: &ConsoleAdmin, e: AccountError) -> Result<Outcome, PageError> {
    match e {
        AccountError::Storage(m) => Err(PageError::internal("account storage", m)),
        other => Ok(Outcome {
            error: Some(crate::console::refusal_sentence(admin.0.lang, &other)),
            ..Outcome::default()
        }),
    }
}

/// Runs an admin action: on success writes the audit line `action` / `target` and
/// shows `done`; on a refusal shows why.
fn act(
    state: &AppState,
    admin: &ConsoleAdmin,
    action: &str,
    target: &str,
    f: impl FnOnce() -> Result<Outcome, AccountError>,
) -> Result<Outcome, PageError> {
    match f() {
        Ok(out) => {
            let u = &admin.0;
            staff::audit(
                state.storage.as_ref(),
                state.clock.now_ms(),
                &u.staff.login,
                action,
                target,
                &u.addr,
            )?;
            Ok(out)
        }
        Err(e) => refused(admin, e),
    }
}

fn done(words: &str, what: &str) -> Outcome {
    Outcome {
        notice: Some(format!("{words}{what}")),
        ..Outcome::default()
    }
}

/// `GET /admin/cadres`.
pub async fn cadres(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    blocking(move || cadres_page(&state, &admin, Outcome::default())).await
}

/// The add-cadre form.
#[derive(Debug, Deserialize)]
pub struct AddCadre {
    id: String,
    name: String,
    /// Empty: township staff.
    #[serde(default)]
    village: String,
}

fn village_of(v: &str) -> Option<&str> {
    let v = v.trim();
    (!v.is_empty()).then_some(v)
}

/// `POST /admin/cadres`.
pub async fn add_cadre(
    State(state): State<AppState>,
    Posted { user, form }: Posted<AddCadre>,
) -> Result<Response, PageError> {
    let admin = ConsoleAdmin::check(user)?;
    blocking(move || {
        let s = admin.0.lang.strings();
        let out = act(&state, &admin, "cadre_add", &form.id, || {
            accounts::create_cadre(
                state.storage.as_ref(),
                state.hub.schema(),
                form.id.trim(),
                &form.name,
                village_of(&form.village),
            )?;
            Ok(done(s.cadre_added, &form.name))
        })?;
        cadres_page(&state, &admin, out)
    })
    .await
}

/// A form naming one cadre, device or token.
#[derive(Debug, Deserialize)]
pub struct Named {
    id: String,
}

/// `POST /admin/cadres/disable`.
pub async fn disable_cadre(
    State(state): State<AppState>,
    Posted { user, form }: Posted<Named>,
) -> Result<Response, PageError> {
    let admin = ConsoleAdmin::check(user)?;
    blocking(move || {
        let s = admin.0.lang.strings();
        let out = act(&state, &admin, "cadre_disable", &form.id, || {
            accounts::disable_cadre(state.storage.as_ref(), &form.id)?;
            Ok(done(s.cadre_disabled, &form.id))
        })?;
        cadres_page(&state, &admin, out)
    })
    .await
}

/// The move form.
#[derive(Debug, Deserialize)]
pub struct MoveCadre {
    id: String,
    #[serde(default)]
    village: String,
}

/// `POST /admin/cadres/move`.
pub async fn move_cadre(
    State(state): State<AppState>,
    Posted { user, form }: Posted<MoveCadre>,
) -> Result<Response, PageError> {
    let admin = ConsoleAdmin::check(user)?;
    blocking(move || {
        let s = admin.0.lang.strings();
        let target = format!(
            "{} -> {}",
            form.id,
            village_of(&form.village).unwrap_or("township")
        );
        let out = act(&state, &admin, "cadre_move", &target, || {
            accounts::move_cadre(
                state.storage.as_ref(),
                state.hub.schema(),
                &form.id,
                village_of(&form.village),
            )?;
            Ok(done(s.cadre_moved, &form.id))
        })?;
        cadres_page(&state, &admin, out)
    })
    .await
}

/// What the phone scans: the server's address and the code, as `yibiao:enrol?...`.
fn enrol_link(state: &AppState, headers: &HeaderMap, code: &str) -> String {
    let server = crate::origin::of(&state.config, headers);
    let query = serde_urlencoded::to_string([("server", server.as_str()), ("code", code)])
        .unwrap_or_default();
    format!("yibiao:enrol?{query}")
}

/// The QR code of `text` as an inline SVG.
fn qr_svg(text: &str) -> Result<String, AccountError> {
    let code =
        QrCode::new(text.as_bytes()).map_err(|e| AccountError::Storage(format!("qr code: {e}")))?;
    let doc = code
        .render::<svg::Color<'_>>()
        .min_dimensions(180, 180)
        .quiet_zone(true)
        .build();
    // Inline in HTML: the `<svg>` element without the XML declaration before it.
    Ok(doc
        .find("<svg")
        .map_or(doc.clone(), |at| doc[at..].to_owned()))
}

/// `POST /admin/cadres/code`: a new enrolment code (the cadre's earlier unused codes end).
pub async fn issue_code(
    State(state): State<AppState>,
    headers: HeaderMap,
    Posted { user, form }: Posted<Named>,
) -> Result<Response, PageError> {
    let admin = ConsoleAdmin::check(user)?;
    blocking(move || {
        let out = act(&state, &admin, "enrol_code", &form.id, || {
            let (code, expires) = accounts::issue_code(
                state.storage.as_ref(),
                &form.id,
                accounts::DEFAULT_CODE_TTL_MINUTES,
            )?;
            Ok(Outcome {
                code: Some(CodeShown {
                    cadre: form.id.clone(),
                    qr_svg: qr_svg(&enrol_link(&state, &headers, &code))?,
                    code,
                    expires: time(Some(expires), ""),
                }),
                ..Outcome::default()
            })
        })?;
        cadres_page(&state, &admin, out)
    })
    .await
}

/// `POST /admin/devices/revoke`: the phone's next sync is refused.
pub async fn revoke_device(
    State(state): State<AppState>,
    Posted { user, form }: Posted<Named>,
) -> Result<Response, PageError> {
    let admin = ConsoleAdmin::check(user)?;
    blocking(move || {
        let s = admin.0.lang.strings();
        let out = act(&state, &admin, "device_revoke", &form.id, || {
            accounts::revoke_device(state.storage.as_ref(), &form.id)?;
            Ok(done(s.device_revoked, &form.id))
        })?;
        cadres_page(&state, &admin, out)
    })
    .await
}

/// One department token as listed.
#[derive(Debug)]
pub struct TokenLine {
    key: String,
    department: String,
    name: String,
    created: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    l: Layout,
    s: &'static Strings,
    tokens: Vec<TokenLine>,
    departments: Vec<(String, String)>,
    /// A token just issued, shown once.
    issued: Option<String>,
    notice: Option<String>,
    error: Option<String>,
}

fn tokens_page(
    state: &AppState,
    admin: &ConsoleAdmin,
    issued: Option<String>,
    out: Outcome,
) -> Result<Response, PageError> {
    let user = &admin.0;
    let (s, en) = (user.lang.strings(), user.lang.en());
    let schema = state.hub.schema();
    let dept = |d: &str| {
        schema
            .department(d)
            .map_or_else(|| d.to_owned(), |d| d.labels.get(en).to_owned())
    };
    let tokens = state
        .storage
        .department_tokens()
        .map_err(|e| PageError::internal("tokens read", e))?
        .into_iter()
        .map(|t| TokenLine {
            department: dept(&t.department),
            created: time(Some(t.created_ms), ""),
            revoked: t.revoked_ms.is_some(),
            key: t.key,
            name: t.name,
        })
        .collect();
    render(&TokensPage {
        l: Layout::of(user, schema, "/admin/tokens"),
        s,
        tokens,
        departments: schema
            .departments
            .keys()
            .map(|k| (k.clone(), dept(k)))
            .collect(),
        issued,
        notice: out.notice,
        error: out.error,
    })
}

/// `GET /admin/tokens`.
pub async fn tokens(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    blocking(move || tokens_page(&state, &admin, None, Outcome::default())).await
}

/// The issue-token form.
#[derive(Debug, Deserialize)]
pub struct IssueToken {
    department: String,
    name: String,
}

/// `POST /admin/tokens`: the token is shown once.
pub async fn issue_token(
    State(state): State<AppState>,
    Posted { user, form }: Posted<IssueToken>,
) -> Result<Response, PageError> {
    let admin = ConsoleAdmin::check(user)?;
    blocking(move || {
        let mut secret = None;
        let out = act(&state, &admin, "token_issue", &form.department, || {
            let (_, token) = accounts::issue_department_token(
                state.storage.as_ref(),
                state.hub.schema(),
                &form.department,
                &form.name,
            )?;
            secret = Some(token);
            Ok(Outcome::default())
        })?;
        tokens_page(&state, &admin, secret, out)
    })
    .await
}

/// `POST /admin/tokens/revoke`.
pub async fn revoke_token(
    State(state): State<AppState>,
    Posted { user, form }: Posted<Named>,
) -> Result<Response, PageError> {
    let admin = ConsoleAdmin::check(user)?;
    blocking(move || {
        let s = admin.0.lang.strings();
        let out = act(&state, &admin, "token_revoke", &form.id, || {
            accounts::revoke_department_token(state.storage.as_ref(), &form.id)?;
            Ok(done(s.token_revoked, &form.id))
        })?;
        tokens_page(&state, &admin, None, out)
    })
    .await
}
