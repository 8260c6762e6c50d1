//! The web console: pages for department clerks, the township office and its leaders,
//! served by the same binary at `/` (ADR 0009).
//!
//! Server-rendered HTML from askama templates (`server/templates/console/`, checked at
//! compile time), one embedded stylesheet, no JavaScript needed. [`session`] says who is
//! at the browser (cookies, CSRF, roles), [`staff`] holds the account operations the
//! pages and the `staff` CLI share, [`i18n`] the fixed words in Chinese and English, and
//! [`pages`] one module per page. The pages are thin: the records pages read through the
//! same `DepartmentDef::filter` / `project` and `ServerStorage::records_page` as the JSON
//! API, so a clerk sees exactly what the department's token would.
//!
//! These routes are HTML, not API, and stay out of the OpenAPI document; the console's
//! own authorization matrix is in `server/tests/console.rs`.

pub mod i18n;
pub mod pages;
pub mod session;
pub mod staff;

use askama::Template;
use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use yibiao_model::Schema;
use yibiao_model::messages::Lang as MsgLang;
use yibiao_model::schema::{DepartmentDef, VillageScope};

use crate::state::AppState;
use i18n::{Lang, Strings};
use session::{ConsoleUser, LANG_COOKIE};
use staff::{Role, Scope};

/// The stylesheet, embedded: no CDN, no second file to deploy.
const STYLE: &str = include_str!("../../templates/console/style.css");

/// The console's routes, merged once into the server's router.
#[allow(
    clippy::disallowed_methods,
    reason = "HTML pages, not API: kept out of the OpenAPI document (ADR 0009); their authorization matrix is in tests/console.rs"
)]
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/records") }))
        .route("/console/style.css", get(style))
        .route("/login", get(pages::login::form).post(pages::login::submit))
        .route("/logout", post(pages::login::logout))
        .route("/records", get(pages::records::list))
        .route("/records.xlsx", get(pages::export::records))
        .route("/records/{id}", get(pages::records::one))
        .route("/tasks", get(pages::tasks::list).post(pages::tasks::issue))
        .route("/tasks/cancel", post(pages::tasks::cancel))
        .route("/reports/summary", get(pages::reports::summary))
        .route("/reports/burden", get(pages::reports::burden))
        .route(
            "/findings",
            get(pages::finding::list).post(pages::finding::record),
        )
        .route("/findings/report", get(pages::findings::report))
        .route("/findings/{id}", get(pages::finding::one))
        .route("/findings/{id}/steps", post(pages::finding::step))
        .route("/records/{id}/resolve", post(pages::resolve::resolve))
        .route(
            "/records/{id}/attachments/{sha256}",
            get(pages::attachments::original),
        )
        .route(
            "/records/{id}/attachments/{sha256}/thumbnail",
            get(pages::attachments::thumbnail),
        )
        .route("/tasks.xlsx", get(pages::export::tasks))
        .route("/summary.xlsx", get(pages::export::summary))
        .route(
            "/account/password",
            get(pages::account::form).post(pages::account::submit),
        )
        .route("/admin/staff", get(pages::admin::staff))
        .route("/admin/staff/reset", post(pages::admin::reset))
        .route("/admin/staff/add", post(pages::admin::add))
        .route("/admin/staff/disable", post(pages::admin::disable))
        .route(
            "/admin/cadres",
            get(pages::township::cadres).post(pages::township::add_cadre),
        )
        .route(
            "/admin/cadres/disable",
            post(pages::township::disable_cadre),
        )
        .route("/admin/cadres/move", post(pages::township::move_cadre))
        .route("/admin/cadres/code", post(pages::township::issue_code))
        .route(
            "/admin/devices/revoke",
            post(pages::township::revoke_device),
        )
        .route(
            "/admin/tokens",
            get(pages::township::tokens).post(pages::township::issue_token),
        )
        .route("/admin/tokens/revoke", post(pages::township::revoke_token))
        .layer(middleware::from_fn(remember_lang))
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        STYLE,
    )
        .into_response()
}

/// `?lang=en` / `?lang=zh` is remembered in a cookie for the next pages.
async fn remember_lang(req: Request, next: Next) -> Response {
    let chosen = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("lang="))
            .and_then(Lang::parse)
    });
    let mut response = next.run(req).await;
    if let Some(lang) = chosen {
        let value = format!(
            "{LANG_COOKIE}={}; Path=/; SameSite=Strict; Max-Age=31536000",
            lang.strings().html_lang.split('-').next().unwrap_or("zh")
        );
        if let Ok(v) = value.parse() {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// What a department clerk reads is the department's view; township staff read the
/// township's: every entity type, every field of it, every village.
pub fn view_of(schema: &Schema, scope: &Scope) -> Option<DepartmentDef> {
    match scope {
        Scope::Department(key) => schema.department(key).cloned(),
        Scope::Township(_) => Some(DepartmentDef {
            key: crate::blobs::access::TOWNSHIP_VIEW.into(),
            labels: schema.township.labels.clone(),
            office: None,
            forms: schema.forms.keys().cloned().collect(),
            entities: schema.entities.keys().cloned().collect(),
            fields: schema
                .entities
                .iter()
                .map(|(k, e)| (k.clone(), e.fields.clone()))
                .collect(),
            villages: VillageScope::All,
        }),
    }
}

/// One link of the navigation.
#[derive(Debug)]
pub struct NavLink {
    /// Where.
    pub href: &'static str,
    /// Its words.
    pub label: &'static str,
    /// The current page.
    pub current: bool,
}

/// What every signed-in page shows around its content: words, the user, navigation.
#[derive(Debug)]
pub struct Layout {
    /// The words of the page's language.
    pub s: &'static Strings,
    /// Who is signed in, and as what (e.g. "王芳 · 民政").
    pub who: String,
    /// The navigation, by role.
    pub nav: Vec<NavLink>,
    /// The session's CSRF token (the sign-out form).
    pub csrf: String,
}

impl Layout {
    /// The layout of `user`'s pages, `current` being the page's own link.
    pub fn of(user: &ConsoleUser, schema: &Schema, current: &str) -> Self {
        let s = user.lang.strings();
        let en = user.lang.en();
        let role = match &user.scope {
            Scope::Department(d) => schema
                .department(d)
                .map_or_else(|| d.clone(), |d| d.labels.get(en).to_owned()),
            Scope::Township(Role::Admin) => s.role_admin.to_owned(),
            Scope::Township(Role::Leader) => s.role_leader.to_owned(),
            Scope::Township(Role::Clerk) => s.role_clerk.to_owned(),
        };
        let mut nav = vec![
            NavLink {
                href: "/records",
                label: s.records,
                current: false,
            },
            NavLink {
                href: "/tasks",
                label: s.tasks,
                current: false,
            },
        ];
        if matches!(user.scope, Scope::Township(Role::Admin | Role::Leader)) {
            for (href, label) in [
                ("/reports/summary", s.summary),
                ("/reports/burden", s.burden),
            ] {
                nav.push(NavLink {
                    href,
                    label,
                    current: false,
                });
            }
        }
        // Every staff member sees findings: a department's clerk those handed to it.
        {
            nav.push(NavLink {
                href: "/findings",
                label: if en { "Findings" } else { "纪检问题" },
                current: false,
            });
        }
        if user.scope == Scope::Township(Role::Admin) {
            for (href, label) in [
                ("/admin/cadres", s.cadres),
                ("/admin/tokens", s.dept_tokens),
                ("/admin/staff", s.staff),
            ] {
                nav.push(NavLink {
                    href,
                    label,
                    current: false,
                });
            }
        }
        nav.push(NavLink {
            href: "/account/password",
            label: s.change_password,
            current: false,
        });
        for link in &mut nav {
            link.current = link.href == current;
        }
        Layout {
            s,
            who: format!("{} · {role}", user.staff.name),
            nav,
            csrf: user.session.csrf.clone(),
        }
    }
}

/// Renders a template as a page.
pub fn render(t: &impl Template) -> Result<Response, PageError> {
    let html = t
        .render()
        .map_err(|e| PageError::internal("template failed", e))?;
    Ok(Html(html).into_response())
}

/// Why a console page was not shown: an HTML answer in both languages (the language of
/// the request may be what failed), or the way to the sign-in page.
#[derive(Debug)]
pub enum PageError {
    /// Not signed in (or the session ended): go to the sign-in page.
    SignIn,
    /// Any other refusal, with its status and words.
    Page {
        /// The status.
        status: StatusCode,
        /// 中文.
        zh: String,
        /// English.
        en: String,
    },
}

impl PageError {
    /// 403 with its words.
    pub fn forbidden(zh: &str, en: &str) -> Self {
        Self::Page {
            status: StatusCode::FORBIDDEN,
            zh: zh.into(),
            en: en.into(),
        }
    }

    /// 404 with its words.
    pub fn not_found(zh: &str, en: &str) -> Self {
        Self::Page {
            status: StatusCode::NOT_FOUND,
            zh: zh.into(),
            en: en.into(),
        }
    }

    /// 400 with its words.
    pub fn bad_form(zh: &str, en: &str) -> Self {
        Self::Page {
            status: StatusCode::BAD_REQUEST,
            zh: zh.into(),
            en: en.into(),
        }
    }

    /// 403: a form without its session's CSRF token.
    pub fn csrf() -> Self {
        Self::forbidden(
            "表单已过期或不是从本系统提交的，请刷新页面后重试。",
            "The form has expired or was not sent from this console; reload the page and try again.",
        )
    }

    /// 500; the detail goes to the log only.
    pub fn internal(context: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!("console: {context}: {e}");
        Self::Page {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            zh: "服务器出错，请联系管理员查看日志。".into(),
            en: "The server failed; the operator can find details in the server log.".into(),
        }
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    zh: &'a str,
    en: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn => Redirect::to("/login").into_response(),
            PageError::Page { status, zh, en } => {
                let html = ErrorPage { zh: &zh, en: &en }
                    .render()
                    .unwrap_or_else(|_| en.clone());
                (status, Html(html)).into_response()
            }
        }
    }
}

/// A refused account operation as a page shows it, in the page's language: "未能完成：" and
/// the reason's sentence.
pub fn refusal_sentence(lang: Lang, e: &crate::accounts::AccountError) -> String {
    use crate::accounts::AccountError as A;
    let lead = if lang.en() {
        "Not done: "
    } else {
        "未能完成："
    };
    match e {
        A::Invalid(m) | A::NotFound(m) | A::Conflict(m) | A::BadCode(m) => {
            format!("{lead}{}", m.render(lang.message()))
        }
        A::Storage(_) => format!("{lead}{e}"),
    }
}

impl From<crate::accounts::AccountError> for PageError {
    fn from(e: crate::accounts::AccountError) -> Self {
        use crate::accounts::AccountError as A;
        match e {
            A::Invalid(m) | A::Conflict(m) | A::BadCode(m) => {
                PageError::bad_form(&m.render(MsgLang::Zh), &m.render(MsgLang::En))
            }
            A::NotFound(m) => PageError::not_found(&m.render(MsgLang::Zh), &m.render(MsgLang::En)),
            A::Storage(m) => PageError::internal("storage", m),
        }
    }
}

/// Runs blocking storage work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PageError::internal("blocking task", e))?
}
