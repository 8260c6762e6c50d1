//! The HTTP JSON bodies: every route that reads a JSON body, through the real router
//! (`yibiao_server::app`) on a real SQLite database, with real tokens.
//!
//! Input: one route byte, then the body. The routes ([`ROUTES`]): enrolment, a task
//! issued by the township (admin token) or by a department, a new cadre, an enrolment
//! code, a department token. Each request goes through the body limit, the `JsonBody`
//! extractor (serde into the route's request type) and the handler's checks into
//! storage, as a real client's would.
//!
//! Must hold: never a 5xx (a panic in a handler, a storage error from bad input); every
//! refusal is the JSON envelope `{"error": {"code", "message"}}`; every success is JSON.
//!
//! The rate limits are lifted (they would answer 429 before reading any body), and the
//! database is started afresh every [`RUNS_PER_DATABASE`] inputs so it stays small. It
//! lives in `$TMPDIR` (the fuzz script points it at a scratch directory, on tmpfs when
//! there is one).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use yibiao_model::Schema;
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::limits::{Guards, RateLimiter};
use yibiao_server::{AppState, accounts, app};

/// Inputs served by one database before it is replaced by a fresh one.
pub const RUNS_PER_DATABASE: usize = 500;

/// The JSON routes, by the input's first byte (modulo their number).
pub const ROUTES: &[Route] = &[
    Route::Enrol,
    Route::TaskByTownship,
    Route::TaskByDepartment,
    Route::NewCadre,
    Route::EnrolCode,
    Route::DepartmentToken,
];

/// A route that takes a JSON body, with the token it is called with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/enrol`, no token.
    Enrol,
    /// `POST /v1/tasks`, the admin token.
    TaskByTownship,
    /// `POST /v1/tasks`, a department token.
    TaskByDepartment,
    /// `POST /v1/admin/cadres`.
    NewCadre,
    /// `POST /v1/admin/cadres/amu/codes` (an existing cadre).
    EnrolCode,
    /// `POST /v1/admin/departments/<department>/tokens` (an existing department).
    DepartmentToken,
}

/// The department whose token issues tasks and is issued tokens.
pub const DEPARTMENT: &str = "public_services";

/// An input for `route` with `body`.
pub fn input(route: Route, body: &[u8]) -> Vec<u8> {
    let index = ROUTES.iter().position(|r| *r == route).unwrap_or(0);
    let mut data = vec![index as u8];
    data.extend_from_slice(body);
    data
}

struct Server {
    runtime: tokio::runtime::Runtime,
    state: AppState,
    admin: String,
    department: String,
    dir: PathBuf,
    runs: usize,
    generation: usize,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[allow(
    clippy::expect_used,
    reason = "the harness's own setup; a failure is not a finding"
)]
fn open(generation: usize) -> Server {
    let dir = std::env::temp_dir().join(format!(
        "yibiao-fuzz-http-{}-{generation}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let over = Overrides {
        data_dir: Some(dir.clone()),
        ..Overrides::default()
    };
    let file = FileConfig {
        // 0 = no per-token limit: a 429 would come before the body is read.
        rate_per_minute: Some(0),
        ..FileConfig::default()
    };
    let config = Config::resolve(over, file).expect("the fuzz configuration is valid");
    let mut state = AppState::open(config, Schema::baru_example()).expect("the database opens");
    let mut guards = Guards::new(&state.config);
    guards.enrol_per_address = RateLimiter::new(0, 0);
    guards.enrol_per_code = RateLimiter::new(0, 0);
    state.guards = Arc::new(guards);
    state.limiter_enrol = Arc::new(RateLimiter::new(0, 0));
    let storage = state.storage.as_ref();
    let schema = state.hub.schema();
    accounts::create_cadre(storage, schema, "amu", "阿木", Some("tujiang")).expect("a cadre");
    let admin = accounts::rotate_admin_token(storage).expect("an admin token");
    let (_, department) =
        accounts::issue_department_token(storage, schema, DEPARTMENT, "fuzz").expect("a token");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    Server {
        runtime,
        state,
        admin,
        department,
        dir,
        runs: 0,
        generation,
    }
}

fn server() -> &'static Mutex<Option<Server>> {
    static SERVER: OnceLock<Mutex<Option<Server>>> = OnceLock::new();
    SERVER.get_or_init(|| Mutex::new(None))
}

/// One input.
pub fn run(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let route = ROUTES[which as usize % ROUTES.len()];
    let mut slot = server().lock().unwrap_or_else(|p| p.into_inner());
    let generation = slot.as_ref().map_or(0, |s| s.generation + 1);
    if slot.as_ref().is_none_or(|s| s.runs >= RUNS_PER_DATABASE) {
        // Drop the old server (and its directory) before opening the next.
        *slot = None;
        *slot = Some(open(generation));
    }
    let Some(server) = slot.as_mut() else {
        return;
    };
    server.runs += 1;
    let (path, token) = match route {
        Route::Enrol => ("/v1/enrol".to_owned(), None),
        Route::TaskByTownship => ("/v1/tasks".to_owned(), Some(&server.admin)),
        Route::TaskByDepartment => ("/v1/tasks".to_owned(), Some(&server.department)),
        Route::NewCadre => ("/v1/admin/cadres".to_owned(), Some(&server.admin)),
        Route::EnrolCode => ("/v1/admin/cadres/amu/codes".to_owned(), Some(&server.admin)),
        Route::DepartmentToken => (
            format!("/v1/admin/departments/{DEPARTMENT}/tokens"),
            Some(&server.admin),
        ),
    };
    let mut request = Request::post(path).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = match request.body(Body::from(body.to_vec())) {
        Ok(r) => r,
        Err(e) => panic!("the harness built a bad request: {e}"),
    };
    let router = app(server.state.clone());
    let (status, answer) = server.runtime.block_on(async move {
        let response = match router.oneshot(request).await {
            Ok(r) => r,
            Err(e) => match e {},
        };
        let status = response.status();
        let bytes = match response.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => panic!("the response body failed: {e}"),
        };
        (status, bytes)
    });
    check(route, status, &answer);
}

/// What every answer must be.
fn check(route: Route, status: StatusCode, answer: &[u8]) {
    let text = String::from_utf8_lossy(answer);
    assert!(
        !status.is_server_error(),
        "{route:?} answered {status}: {text}"
    );
    let json: serde_json::Value = match serde_json::from_slice(answer) {
        Ok(v) => v,
        Err(e) => panic!("{route:?} answered {status} with a body that is not JSON ({e}): {text}"),
    };
    if !status.is_success() {
        let error = &json["error"];
        assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{route:?} answered {status} outside the error envelope: {text}"
        );
    }
}
