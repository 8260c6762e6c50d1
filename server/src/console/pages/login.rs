//! Sign in and sign out.
//!
//! The sign-in form has no session yet, so its CSRF token is a random value in both a
//! `yb_login` cookie and a hidden field, which must match (a forged page elsewhere can
//! send neither). A refusal re-renders the form with the reason: wrong account or
//! password (the same words for both), or locked with the seconds to wait.

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use serde::Deserialize;

use super::super::i18n::Strings;
use super::super::session::{
    self, LOGIN_COOKIE, Posted, SESSION_COOKIE, cookie, form_field, same_token,
};
use super::super::staff::{self, SignInRefusal};
use super::super::{PageError, blocking, render};
use crate::state::AppState;
use crate::tokens::new_secret;

/// The sign-in page.
#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    s: &'static Strings,
    csrf: &'a str,
    login: &'a str,
    message: Option<String>,
}

fn page(
    state: &AppState,
    jar: CookieJar,
    s: &'static Strings,
    login: &str,
    message: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let csrf = new_secret()
        .map(hex::encode)
        .map_err(|e| PageError::internal("no randomness", e))?;
    let html = render(&LoginPage {
        s,
        csrf: &csrf,
        login,
        message,
    })?;
    let jar = jar.add(cookie(state, LOGIN_COOKIE, csrf));
    Ok((status, jar, html).into_response())
}

/// `GET /login`.
pub async fn form(State(state): State<AppState>, req: Request) -> Result<Response, PageError> {
    let (parts, _) = req.into_parts();
    let s = session::lang(&parts).strings();
    page(
        &state,
        CookieJar::from_headers(&parts.headers),
        s,
        "",
        None,
        StatusCode::OK,
    )
}

/// `POST /login`: checks the form's token, the lockout rule and the password; on success
/// opens a session and goes to the records.
pub async fn submit(State(state): State<AppState>, req: Request) -> Result<Response, PageError> {
    let (mut parts, body) = req.into_parts();
    let s = session::lang(&parts).strings();
    let addr = session::client_addr(&parts);
    let jar = CookieJar::from_request_parts(&mut parts, &state)
        .await
        .unwrap_or_else(|e| match e {});
    let body = Bytes::from_request(Request::from_parts(parts, body), &state)
        .await
        .map_err(|_| PageError::bad_form("表单无法读取。", "The form could not be read."))?;
    let expected = jar.get(LOGIN_COOKIE).map(|c| c.value().to_owned());
    let given = form_field(&body, "csrf");
    if !expected.is_some_and(|e| same_token(given.as_deref(), &e)) {
        tracing::warn!(%addr, "console sign-in refused: no or wrong CSRF token");
        return Err(PageError::csrf());
    }
    let login = form_field(&body, "login").unwrap_or_default();
    let password = form_field(&body, "password").unwrap_or_default();
    let st = state.clone();
    let (who, a) = (login.clone(), addr.clone());
    let outcome = blocking(move || {
        let now = st.clock.now_ms();
        let storage = st.storage.as_ref();
        match staff::sign_in(storage, &st.config.console, &who, &password, &a, now)? {
            Ok(row) => {
                let (id, _) = staff::open_session(storage, &row.login, now)?;
                staff::audit(storage, now, &row.login, "sign_in", "", &a)?;
                Ok(Ok(id))
            }
            Err(refusal) => {
                if matches!(refusal, SignInRefusal::Locked { .. }) {
                    staff::audit(storage, now, &who, "sign_in_locked", "", &a)?;
                }
                Ok(Err(refusal))
            }
        }
    })
    .await?;
    match outcome {
        Ok(id) => {
            let jar = jar
                .remove(Cookie::build(LOGIN_COOKIE).path("/"))
                .add(cookie(&state, SESSION_COOKIE, id));
            Ok((jar, Redirect::to("/records")).into_response())
        }
        Err(SignInRefusal::Wrong) => page(
            &state,
            jar,
            s,
            &login,
            Some(s.wrong_password.to_owned()),
            StatusCode::UNAUTHORIZED,
        ),
        Err(SignInRefusal::Locked { retry_after_secs }) => page(
            &state,
            jar,
            s,
            &login,
            Some(format!("{} {retry_after_secs}", s.locked)),
            StatusCode::TOO_MANY_REQUESTS,
        ),
    }
}

/// The sign-out form: only its token.
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// `POST /logout`: ends the session.
pub async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    Posted { user, .. }: Posted<Empty>,
) -> Result<Response, PageError> {
    let id = jar
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    blocking(move || {
        let storage = state.storage.as_ref();
        staff::close_session(storage, &id)?;
        staff::audit(
            storage,
            state.clock.now_ms(),
            &user.staff.login,
            "sign_out",
            "",
            &user.addr,
        )?;
        Ok(())
    })
    .await?;
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Redirect::to("/login")).into_response())
}
