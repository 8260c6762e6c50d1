//! Who is at the browser: the session cookie, the [`ConsoleUser`] extractor (signed in,
//! or sent to the sign-in page), [`ConsoleAdmin`] (township admins only), [`Posted`]
//! (a form whose CSRF token matches its session's, refused otherwise), and the page
//! language.
//!
//! The cookie `yb_session` holds 256 random bits; the database holds their SHA-256.
//! Cookies are `HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` when the
//! configuration says the console is served over TLS.

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::de::DeserializeOwned;

use super::PageError;
use super::i18n::Lang;
use super::staff::{self, Role, Scope};
use crate::limits::ClientAddr;
use crate::state::AppState;
use crate::storage::{SessionRow, StaffRow};
use crate::tokens::token_hash;

/// The session cookie.
pub const SESSION_COOKIE: &str = "yb_session";
/// The sign-in form's own CSRF cookie (there is no session yet).
pub const LOGIN_COOKIE: &str = "yb_login";
/// The language cookie.
pub const LANG_COOKIE: &str = "yb_lang";

/// A cookie with the console's attributes.
pub fn cookie(state: &AppState, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.console.secure_cookies)
        .path("/")
        .build()
}

/// The client's address as the listener saw it (`-` when unknown, e.g. in-process tests).
pub fn client_addr(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map_or_else(|| "-".to_owned(), |c| c.0.0.ip().to_string())
}

/// The page language: `?lang=` first, then the cookie, else Chinese.
pub fn lang(parts: &Parts) -> Lang {
    let from_query = parts.uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("lang="))
            .and_then(Lang::parse)
    });
    from_query
        .or_else(|| {
            CookieJar::from_headers(&parts.headers)
                .get(LANG_COOKIE)
                .and_then(|c| Lang::parse(c.value()))
        })
        .unwrap_or_default()
}

/// A signed-in staff member, with the session and the page language.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    /// The account.
    pub staff: StaffRow,
    /// Whom it speaks for.
    pub scope: Scope,
    /// The session (its CSRF token goes into every form).
    pub session: SessionRow,
    /// The page language.
    pub lang: Lang,
    /// The client's address, for the audit log.
    pub addr: String,
}

impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let lang = lang(parts);
        let Some(id) = CookieJar::from_headers(&parts.headers)
            .get(SESSION_COOKIE)
            .map(|c| c.value().to_owned())
        else {
            return Err(PageError::SignIn);
        };
        let st = state.clone();
        let found = tokio::task::spawn_blocking(move || {
            staff::session(
                st.storage.as_ref(),
                &st.config.console,
                &id,
                st.clock.now_ms(),
            )
        })
        .await
        .map_err(|e| PageError::internal("session check failed", e))?
        .map_err(|e| PageError::internal("session check failed", e))?;
        let Some((session, staff)) = found else {
            return Err(PageError::SignIn);
        };
        let scope = Scope::of(&staff).map_err(|e| PageError::internal("stored staff role", e))?;
        Ok(ConsoleUser {
            staff,
            scope,
            session,
            lang,
            addr: client_addr(parts),
        })
    }
}

/// A township admin: any other signed-in user is refused with 403.
#[derive(Debug, Clone)]
pub struct ConsoleAdmin(pub ConsoleUser);

impl FromRequestParts<AppState> for ConsoleAdmin {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        ConsoleAdmin::check(ConsoleUser::from_request_parts(parts, state).await?)
    }
}

impl ConsoleAdmin {
    /// `user` if a township admin, else the 403 page.
    pub fn check(user: ConsoleUser) -> Result<Self, PageError> {
        if user.scope == Scope::Township(Role::Admin) {
            Ok(ConsoleAdmin(user))
        } else {
            Err(PageError::forbidden(
                "这个页面只对镇管理员开放。",
                "This page is for township administrators only.",
            ))
        }
    }
}

/// A form posted by a signed-in user whose `csrf` field equals the session's token; any
/// other post (no token, another session's, a forged page's) is refused with 403 before
/// the form is read.
#[derive(Debug)]
pub struct Posted<T> {
    /// Who posted.
    pub user: ConsoleUser,
    /// The form, without its token.
    pub form: T,
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// True when `given` equals `expected`, compared by hash (no early exit on the secret).
pub fn same_token(given: Option<&str>, expected: &str) -> bool {
    given.is_some_and(|g| !g.is_empty() && token_hash(g) == token_hash(expected))
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Posted<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = req.into_parts();
        let user = ConsoleUser::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| PageError::bad_form("表单无法读取。", "The form could not be read."))?;
        if !same_token(form_field(&body, "csrf").as_deref(), &user.session.csrf) {
            tracing::warn!(staff = %user.staff.login, "console form refused: no or wrong CSRF token");
            return Err(PageError::csrf());
        }
        let form = serde_urlencoded::from_bytes(&body).map_err(|e| {
            PageError::bad_form("表单内容不完整。", &format!("The form is incomplete: {e}"))
        })?;
        Ok(Posted { user, form })
    }
}
