//! The user's own password change: the current password, then a new one; every session
//! of the account ends (this one too), so the user signs in again.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar};
use serde::Deserialize;

use super::super::i18n::Strings;
use super::super::session::{ConsoleUser, Posted, SESSION_COOKIE};
use super::super::{Layout, PageError, blocking, render, staff};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "console/password.html")]
struct PasswordPage {
    l: Layout,
    s: &'static Strings,
    message: Option<String>,
}

/// `GET /account/password`.
pub async fn form(user: ConsoleUser, State(state): State<AppState>) -> Result<Response, PageError> {
    render(&PasswordPage {
        l: Layout::of(&user, state.hub.schema(), "/account/password"),
        s: user.lang.strings(),
        message: None,
    })
}

/// The password form.
#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    current: String,
    new: String,
}

/// `POST /account/password`.
pub async fn submit(
    State(state): State<AppState>,
    jar: CookieJar,
    Posted { user, form }: Posted<PasswordForm>,
) -> Result<Response, PageError> {
    let st = state.clone();
    let u = user.clone();
    let done = blocking(move || {
        let storage = st.storage.as_ref();
        match staff::change_password(storage, &u.staff.login, &form.current, &form.new) {
            Ok(()) => {
                let now = st.clock.now_ms();
                staff::audit(
                    storage,
                    now,
                    &u.staff.login,
                    "password_change",
                    &u.staff.login,
                    &u.addr,
                )?;
                Ok(None)
            }
            Err(crate::accounts::AccountError::Invalid(m)) => Ok(Some(m.render(u.lang.message()))),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    match done {
        None => {
            let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
            Ok((jar, Redirect::to("/login")).into_response())
        }
        Some(message) => {
            let page = render(&PasswordPage {
                l: Layout::of(&user, state.hub.schema(), "/account/password"),
                s: user.lang.strings(),
                message: Some(message),
            })?;
            Ok((axum::http::StatusCode::BAD_REQUEST, page).into_response())
        }
    }
}
