//! The web console over real HTTP on loopback: the router served by `axum::serve` on
//! a free port, a plain HTTP client that keeps cookies like a browser (no JavaScript, no
//! redirects followed), a manual clock for expiry and lockout, records typed on real
//! phone stores and merged by the real hub.
//!
//! Console routes are HTML, outside the OpenAPI document, so `authz_matrix.rs` cannot
//! see them; [`every_console_route_answers_each_kind_of_visitor_as_its_role_allows`] is
//! their matrix.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use yibiao_model::clock::ManualClock;
use yibiao_model::value::AttachmentRef;
use yibiao_model::{CadreId, FieldEdit, RecordId, Schema, Value};
use yibiao_server::blobs::BlobHash;
use yibiao_server::config::{Config, FileConfig, Overrides};
use yibiao_server::console::staff::{self, NewStaff, Role, Scope};
use yibiao_server::limits::{ClientAddr, GuardedListener};
use yibiao_server::storage::SqliteStorage;
use yibiao_server::{AppState, ServerHub, accounts};
use yibiao_store::Store;
use yibiao_sync::{DeviceScope, SyncOptions};
use yibiao_testkit::transport::InProcess;

/// 2026-11-24 09:00 in UTC+8.
const MORNING: i64 = 1_795_482_000_000;
const PASSWORD: &str = "console-pass-2026";

struct Fx {
    _dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
    state: AppState,
    clock: Arc<ManualClock>,
    base: String,
    /// 阿木日哈 of 土匠村: a conflict on household_size.
    conflicted: RecordId,
    /// 阿嘎 of 巴汝村.
    baru: RecordId,
    /// The SHA-256 of the photo of each of the two (a PNG of 640 x 480).
    photos: [String; 2],
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::resolve(
        Overrides {
            data_dir: Some(dir.path().to_owned()),
            ..Overrides::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    let storage = Arc::new(SqliteStorage::open(&dir.path().join("yibiao.db")).unwrap());
    let clock = Arc::new(ManualClock::new(MORNING));
    let state = AppState::with_clock(config, Schema::baru_example(), storage, clock.clone());
    let (conflicted, baru, photos) = seed(&state);
    for (login, scope) in [
        ("admin", Scope::Township(Role::Admin)),
        ("leader", Scope::Township(Role::Leader)),
        ("office", Scope::Township(Role::Clerk)),
        ("ps", Scope::Department("public_services".into())),
        ("clinic", Scope::Department("tujiang_health_station".into())),
    ] {
        let new = NewStaff {
            login,
            name: login,
            scope,
            password: PASSWORD,
        };
        staff::add(state.storage.as_ref(), state.hub.schema(), &new, MORNING).unwrap();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = yibiao_server::app(state.clone()).into_make_service_with_connect_info::<ClientAddr>();
    rt.spawn(async move {
        let listener = GuardedListener::new(listener, 64, Duration::from_secs(30));
        axum::serve(listener, app).await.unwrap();
    });
    Fx {
        _dir: dir,
        _rt: rt,
        state,
        clock,
        base,
        conflicted,
        baru,
        photos,
    }
}

type Link = InProcess<Arc<ServerHub>>;

fn phone(state: &AppState, cadre: &str, village: &str) -> (Store, Link) {
    let storage = state.storage.as_ref();
    accounts::create_cadre(storage, state.hub.schema(), cadre, cadre, Some(village)).unwrap();
    let store = Store::open_in_memory(
        state.hub.schema().clone(),
        CadreId::new(cadre).unwrap(),
        Arc::new(ManualClock::new(MORNING)),
    )
    .unwrap();
    let (row, _) = accounts::register_device(
        storage,
        state.hub.schema(),
        &format!("phone of {cadre}"),
        Some(cadre),
        Some(village),
    )
    .unwrap();
    storage
        .bind_phone_device(&row.key, store.device_id().as_str())
        .unwrap();
    let identity = accounts::identity(storage, &row, store.device_id().clone()).unwrap();
    let link = InProcess::new(
        state.hub.clone(),
        row.key,
        DeviceScope::Village(village.into()),
        identity,
    );
    (store, link)
}

fn sync(store: &Store, link: &Link) {
    let r = yibiao_store::sync_with_sleep(
        store,
        link,
        &SyncOptions::default(),
        &mut |_| {},
        &mut |_| {},
    )
    .unwrap();
    assert!(r.complete && r.refused.is_empty(), "{r:?}");
}

fn set(f: &str, v: Value) -> FieldEdit {
    FieldEdit::Set(f.into(), v)
}

/// A PNG photo of `width` x `height` in one `shade`, stored on the server as a phone's
/// upload would leave it; its reference.
fn stored_photo(state: &AppState, width: u32, height: u32, shade: u8, name: &str) -> AttachmentRef {
    let image = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([shade, (x % 256) as u8, (y % 256) as u8])
    }));
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    let bytes = bytes.into_inner();
    let hash = BlobHash::of(&bytes);
    state
        .blobs
        .append(&hash, "seed", 0, bytes.len() as u64, &bytes)
        .unwrap();
    AttachmentRef {
        sha256: hash.to_string(),
        name: name.into(),
        mime: "image/png".into(),
        size: bytes.len() as u64,
    }
}

/// Two phones of 土匠村 type different sizes for one household while apart; one
/// household of 巴汝村. Each household has a photo.
fn seed(state: &AppState) -> (RecordId, RecordId, [String; 2]) {
    let (a, la) = phone(state, "amu", "tujiang");
    let (b, lb) = phone(state, "jike", "tujiang");
    let (c, lc) = phone(state, "aga", "baru");
    let id = a
        .create(
            "household",
            Some("tujiang"),
            &[
                set("household_head", Value::Text("阿木日哈".into())),
                set("id_number", Value::Text("513401198505052226".into())),
                set("dibao_status", Value::Choice("enrolled".into())),
                set("toilet_type", Value::Choice("flush".into())),
            ],
        )
        .unwrap();
    let tujiang_photo = stored_photo(state, 640, 480, 40, "院子.png");
    let baru_photo = stored_photo(state, 480, 640, 200, "厨房.png");
    a.update(
        id,
        &[set("photo", Value::Attachment(tujiang_photo.clone()))],
    )
    .unwrap();
    let baru = c
        .create(
            "household",
            Some("baru"),
            &[
                set("household_head", Value::Text("阿嘎".into())),
                set("photo", Value::Attachment(baru_photo.clone())),
            ],
        )
        .unwrap();
    sync(&a, &la);
    sync(&b, &lb);
    sync(&c, &lc);
    a.update(id, &[set("household_size", Value::Integer(6))])
        .unwrap();
    b.update(id, &[set("household_size", Value::Integer(7))])
        .unwrap();
    sync(&a, &la);
    sync(&b, &lb);
    (id, baru, [tujiang_photo.sha256, baru_photo.sha256])
}

/// What a browser with JavaScript off does: keeps cookies, follows no redirect.
struct Browser {
    agent: ureq::Agent,
    base: String,
    cookies: BTreeMap<String, String>,
}

/// One answer: status, `Location`, the `Set-Cookie` lines, the body.
struct Answer {
    status: u16,
    location: String,
    set_cookies: Vec<String>,
    body: String,
}

impl Browser {
    fn new(fx: &Fx) -> Self {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .into();
        Browser {
            agent,
            base: fx.base.clone(),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, mut r: ureq::http::Response<ureq::Body>) -> Answer {
        let set_cookies: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Answer {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default(),
            set_cookies,
            body: String::from_utf8_lossy(&r.body_mut().read_to_vec().unwrap()).into_owned(),
        }
    }

    fn get(&mut self, path: &str) -> Answer {
        let r = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .call()
            .unwrap();
        self.keep(r)
    }

    /// A download: status, content type, bytes.
    fn download(&mut self, path: &str) -> (u16, String, Vec<u8>) {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .call()
            .unwrap();
        let kind = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = r.body_mut().read_to_vec().unwrap();
        (r.status().as_u16(), kind, bytes)
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let r = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send_form(form.iter().copied())
            .unwrap();
        self.keep(r)
    }

    /// The CSRF token of the first form of a page.
    fn csrf(page: &Answer) -> String {
        let at = page
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a token")
            + 19;
        page.body[at..].split('"').next().unwrap().to_owned()
    }

    fn sign_in(&mut self, login: &str, password: &str) -> Answer {
        let form = self.get("/login");
        let csrf = Self::csrf(&form);
        self.post(
            "/login",
            &[("csrf", &csrf), ("login", login), ("password", password)],
        )
    }

    fn signed_in(fx: &Fx, login: &str) -> Self {
        let mut b = Browser::new(fx);
        let a = b.sign_in(login, PASSWORD);
        assert_eq!(
            (a.status, a.location.as_str()),
            (303, "/records"),
            "{}",
            a.body
        );
        b
    }
}

#[test]
fn sign_in_sets_an_http_only_strict_session_cookie_whose_hash_alone_is_stored() {
    let fx = fixture();
    let mut b = Browser::new(&fx);
    let a = b.sign_in("ps", PASSWORD);
    assert_eq!(a.status, 303);
    let session = a
        .set_cookies
        .iter()
        .find(|c| c.starts_with("yb_session="))
        .expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "no TLS configured: {session}");
    let id = b.cookies["yb_session"].clone();
    // The database holds the hash, never the id.
    assert!(fx.state.storage.session(id.as_bytes()).unwrap().is_none());
    let hash = yibiao_server::tokens::token_hash(&id);
    assert_eq!(
        fx.state.storage.session(&hash).unwrap().unwrap().login,
        "ps"
    );
    assert_eq!(b.get("/records").status, 200);
}

#[test]
fn a_wrong_password_and_an_unknown_account_answer_alike() {
    let fx = fixture();
    let wrong = Browser::new(&fx).sign_in("ps", "not-the-password");
    let unknown = Browser::new(&fx).sign_in("nobody", "not-the-password");
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert!(wrong.body.contains("账号或密码不正确"));
    assert!(unknown.body.contains("账号或密码不正确"));
}

#[test]
fn forms_without_the_sessions_csrf_token_are_refused_and_change_nothing() {
    let fx = fixture();
    let mut ps = Browser::signed_in(&fx, "ps");
    let mut admin = Browser::signed_in(&fx, "admin");
    let other_token = Browser::csrf(&admin.get("/records"));
    for token in [None, Some(""), Some(other_token.as_str())] {
        let mut form = vec![("current", PASSWORD), ("new", "a-new-password-1")];
        if let Some(t) = token {
            form.push(("csrf", t));
        }
        let a = ps.post("/account/password", &form);
        assert_eq!(a.status, 403, "token {token:?}");
        assert!(a.body.contains("表单已过期"), "{}", a.body);
        assert_eq!(ps.post("/logout", &form).status, 403);
    }
    // Nothing changed: the session lives and the password is the old one.
    assert_eq!(ps.get("/records").status, 200);
    assert_eq!(Browser::new(&fx).sign_in("ps", PASSWORD).status, 303);
    // With its own token the same sign-out works.
    let token = Browser::csrf(&ps.get("/records"));
    let out = ps.post("/logout", &[("csrf", &token)]);
    assert_eq!((out.status, out.location.as_str()), (303, "/login"));
    assert_eq!(ps.get("/records").location, "/login");
    // The sign-in form's own token: a post without the form's cookie is refused.
    let mut fresh = Browser::new(&fx);
    let a = fresh.post(
        "/login",
        &[("csrf", "x"), ("login", "ps"), ("password", PASSWORD)],
    );
    assert_eq!(a.status, 403);
    let _ = admin.get("/records");
}

#[test]
fn wrong_passwords_lock_the_account_until_the_window_passes_or_an_admin_resets_it() {
    let fx = fixture();
    let max = fx.state.config.console.max_failed_logins;
    for _ in 0..max {
        assert_eq!(
            Browser::new(&fx).sign_in("ps", "wrong-password").status,
            401
        );
    }
    let locked = Browser::new(&fx).sign_in("ps", PASSWORD);
    assert_eq!(
        locked.status, 429,
        "the right password is refused while locked"
    );
    assert!(locked.body.contains("锁定"), "{}", locked.body);
    // Another account from the same address is not locked by these.
    assert_eq!(Browser::new(&fx).sign_in("clinic", PASSWORD).status, 303);
    // The lock ends with its window ...
    fx.clock
        .advance(fx.state.config.console.lockout_secs as i64 * 1000 + 1000);
    assert_eq!(Browser::new(&fx).sign_in("ps", PASSWORD).status, 303);
    // ... or when an admin resets the password.
    for _ in 0..max {
        Browser::new(&fx).sign_in("ps", "wrong-password");
    }
    assert_eq!(Browser::new(&fx).sign_in("ps", PASSWORD).status, 429);
    let mut admin = Browser::signed_in(&fx, "admin");
    let token = Browser::csrf(&admin.get("/admin/staff"));
    let reset = admin.post("/admin/staff/reset", &[("csrf", &token), ("login", "ps")]);
    assert_eq!(reset.status, 200);
    let at = reset.body.find("id=\"new-password\">").unwrap() + 18;
    let new = reset.body[at..].split('<').next().unwrap().to_owned();
    assert_eq!(Browser::new(&fx).sign_in("ps", &new).status, 303);
    let log = admin.get("/admin/staff").body;
    assert!(
        log.contains("sign_in_locked") && log.contains("password_reset"),
        "the audit log"
    );
}

#[test]
fn a_session_ends_when_idle_or_past_its_absolute_age_and_when_its_password_changes() {
    let fx = fixture();
    let cfg = fx.state.config.console.clone();
    let mut ps = Browser::signed_in(&fx, "ps");
    fx.clock.advance(cfg.session_idle_secs as i64 * 1000 - 1000);
    assert_eq!(
        ps.get("/records").status,
        200,
        "used just before the idle limit"
    );
    fx.clock.advance(cfg.session_idle_secs as i64 * 1000 + 1000);
    assert_eq!(ps.get("/records").location, "/login", "idle too long");

    let mut busy = Browser::signed_in(&fx, "ps");
    let step = cfg.session_idle_secs as i64 * 1000 / 2;
    let mut used = 0;
    while used + step < cfg.session_max_secs as i64 * 1000 {
        fx.clock.advance(step);
        used += step;
        assert_eq!(busy.get("/records").status, 200);
    }
    fx.clock.advance(step + 1000);
    assert_eq!(
        busy.get("/records").location,
        "/login",
        "past the absolute age"
    );

    let mut a = Browser::signed_in(&fx, "clinic");
    let mut b = Browser::signed_in(&fx, "clinic");
    let token = Browser::csrf(&a.get("/account/password"));
    let changed = a.post(
        "/account/password",
        &[
            ("csrf", &token),
            ("current", PASSWORD),
            ("new", "another-pass-1"),
        ],
    );
    assert_eq!(changed.location, "/login");
    assert_eq!(
        b.get("/records").location,
        "/login",
        "every session of the account ended"
    );
    assert_eq!(
        Browser::new(&fx).sign_in("clinic", "another-pass-1").status,
        303
    );
}

#[test]
fn a_department_clerk_sees_only_the_departments_fields_and_villages_on_every_page() {
    let fx = fixture();
    let mut ps = Browser::signed_in(&fx, "ps");
    let table = ps.get("/records").body;
    assert!(table.contains("阿木日哈") && table.contains("阿嘎"));
    assert!(table.contains("低保户"), "option labels");
    for hidden in ["厕所类型", "水冲式", "toilet_type", "flush"] {
        assert!(!table.contains(hidden), "public_services sees {hidden}");
    }
    let record = ps.get(&format!("/records/{}", fx.conflicted)).body;
    assert!(
        record.contains("amu") && record.contains("jike"),
        "both competing values' cadres"
    );
    assert!(!record.contains("厕所类型"));
    assert_eq!(
        ps.get("/records?entity=person").status,
        403,
        "an entity type outside the view"
    );

    let mut clinic = Browser::signed_in(&fx, "clinic");
    let table = clinic.get("/records").body;
    assert!(table.contains("阿木日哈"));
    for hidden in ["身份证号", "513401198505052226", "低保户", "阿嘎"] {
        assert!(!table.contains(hidden), "the clinic sees {hidden}");
    }
    assert_eq!(clinic.get("/records?village=baru").status, 403);
    // A record outside the view answers exactly as an unknown id.
    let outside = clinic.get(&format!("/records/{}", fx.baru));
    let unknown = clinic.get(&format!("/records/{}", RecordId::new()));
    assert_eq!(
        (outside.status, outside.body),
        (unknown.status, unknown.body)
    );

    let mut office = Browser::signed_in(&fx, "office");
    let all = office.get("/records?entity=household").body;
    assert!(
        all.contains("厕所类型") && all.contains("水冲式"),
        "the township reads every field"
    );
}

#[test]
fn the_records_table_filters_by_village_conflict_form_and_text() {
    let fx = fixture();
    let mut ps = Browser::signed_in(&fx, "ps");
    let count = |body: &str| {
        let at = body.find("id=\"total\">").unwrap() + 11;
        body[at..]
            .split('<')
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    assert_eq!(count(&ps.get("/records").body), 2);
    assert_eq!(count(&ps.get("/records?village=tujiang").body), 1);
    assert_eq!(count(&ps.get("/records?conflicted=1").body), 1);
    assert_eq!(
        count(&ps.get("/records?q=%E9%98%BF%E5%98%8E").body),
        1,
        "text 阿嘎"
    );
    assert_eq!(
        count(&ps.get("/records?form=dibao_check&state=complete").body),
        0
    );
    assert_eq!(
        count(&ps.get("/records?form=dibao_check&state=incomplete").body),
        2
    );
    let en = ps.get("/records?lang=en").body;
    assert!(
        en.contains("Household head") && en.contains("Enrolled"),
        "English labels"
    );
    // Paged by storage: a page past the end shows the last; newest first on request.
    let past = ps.get("/records?page=99").body;
    assert_eq!(count(&past), 2);
    assert!(past.contains("1 / 1"));
    let first_link = |body: &str| {
        let at = body.find("href=\"/records/").unwrap() + 15;
        body[at..at + 36].to_owned()
    };
    let asc = first_link(&ps.get("/records").body);
    let desc = first_link(&ps.get("/records?desc=1").body);
    assert_ne!(asc, desc, "descending starts at the other end");
    assert_eq!(
        asc,
        fx.conflicted.to_string(),
        "entry order: the first created first"
    );
    // A conflict outside the fields asked about does not count (a view without the field).
    let f = yibiao_server::storage::RecordFilter {
        view: fx
            .state
            .hub
            .schema()
            .department("public_services")
            .unwrap()
            .filter(fx.state.hub.schema(), Some("household"), None)
            .unwrap(),
        include_deleted: false,
    };
    for (fields, expected) in [(vec!["household_head"], 0), (vec!["household_size"], 1)] {
        let t = yibiao_server::storage::TableFilter {
            conflicted_in: Some(fields.iter().map(|f| (*f).to_owned()).collect()),
            ..Default::default()
        };
        let (_, total) = fx.state.storage.records_table(&f, &t, 0, None).unwrap();
        assert_eq!(total, expected, "{fields:?}");
    }
}

/// Who visits: nobody, each kind of staff.
const VISITORS: [&str; 6] = ["anonymous", "ps", "clinic", "office", "leader", "admin"];

#[test]
fn every_console_route_answers_each_kind_of_visitor_as_its_role_allows() {
    let fx = fixture();
    let record = format!("/records/{}", fx.conflicted);
    let photo = format!("{record}/attachments/{}", fx.photos[0]);
    let thumbnail = format!("{photo}/thumbnail");
    // (method, path, expected status per visitor in VISITORS order; 303 = to sign-in)
    let routes: [(&str, &str, [u16; 6]); 19] = [
        ("GET", "/", [303; 6]),
        ("GET", "/login", [200; 6]),
        ("GET", "/console/style.css", [200; 6]),
        ("GET", "/records", [303, 200, 200, 200, 200, 200]),
        ("GET", &record, [303, 200, 200, 200, 200, 200]),
        // The clinic reads Tujiang's households, not their photos.
        ("GET", &photo, [303, 200, 404, 200, 200, 200]),
        ("GET", &thumbnail, [303, 200, 404, 200, 200, 200]),
        ("GET", "/records.xlsx", [303, 200, 200, 200, 200, 200]),
        ("GET", "/account/password", [303, 200, 200, 200, 200, 200]),
        ("GET", "/tasks", [303, 200, 200, 200, 200, 200]),
        ("GET", "/tasks.xlsx", [303, 200, 200, 200, 200, 200]),
        ("GET", "/summary.xlsx", [303, 200, 200, 200, 200, 200]),
        ("GET", "/admin/staff", [303, 403, 403, 403, 403, 200]),
        ("GET", "/admin/cadres", [303, 403, 403, 403, 403, 200]),
        ("GET", "/admin/tokens", [303, 403, 403, 403, 403, 200]),
        ("GET", "/reports/summary", [303, 403, 403, 403, 200, 200]),
        ("GET", "/reports/burden", [303, 403, 403, 403, 200, 200]),
        ("GET", "/findings", [303, 200, 200, 200, 200, 200]),
        ("GET", "/findings/report", [303, 403, 403, 200, 200, 200]),
    ];
    let mut browsers: Vec<Browser> = VISITORS
        .iter()
        .map(|v| match *v {
            "anonymous" => Browser::new(&fx),
            login => Browser::signed_in(&fx, login),
        })
        .collect();
    for (method, path, expected) in routes {
        for (i, b) in browsers.iter_mut().enumerate() {
            let got = b.get(path).status;
            assert_eq!(got, expected[i], "{method} {path} as {}", VISITORS[i]);
        }
    }
    // Posts, each with the visitor's own token: only an admin resets a password.
    for (i, b) in browsers.iter_mut().enumerate().skip(1) {
        let token = Browser::csrf(&b.get("/account/password"));
        let reset = b.post(
            "/admin/staff/reset",
            &[("csrf", &token), ("login", "leader")],
        );
        let expected = if VISITORS[i] == "admin" { 200 } else { 403 };
        assert_eq!(reset.status, expected, "reset as {}", VISITORS[i]);
    }
    let anonymous = browsers[0].post("/admin/staff/reset", &[("login", "leader")]);
    assert_eq!(anonymous.location, "/login");
    // A bearer token opens no page: the console reads only its own session cookie.
    let token = accounts::rotate_admin_token(fx.state.storage.as_ref()).unwrap();
    let r = browsers[0]
        .agent
        .get(format!("{}/admin/staff", fx.base))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
}

#[test]
fn the_task_list_shows_the_issuers_tasks_with_progress_per_village_and_no_others() {
    let fx = fixture();
    let schema = fx.state.hub.schema();
    let issuer = yibiao_server::tasks::Issuer::Department(
        schema.department("public_services").unwrap().clone(),
    );
    let task = yibiao_server::tasks::NewTask {
        title: "低保核查 11月".into(),
        form: "dibao_check".into(),
        due: "2026-11-30".into(),
        villages: Some(vec!["tujiang".into(), "baru".into()]),
        ..Default::default()
    };
    yibiao_server::tasks::issue(
        &fx.state.hub,
        fx.state.storage.as_ref(),
        &issuer,
        &task,
        MORNING,
    )
    .unwrap();
    let page = Browser::signed_in(&fx, "ps").get("/tasks").body;
    assert!(
        page.contains("低保核查 11月") && page.contains("低保户核查表"),
        "{page}"
    );
    assert!(page.contains("土匠村") && page.contains("巴汝村"));
    assert!(page.contains("已下发"), "no phone synced since: sent");
    assert!(page.contains("0 / 1"), "records complete per village");
    let clinic = Browser::signed_in(&fx, "clinic").get("/tasks").body;
    assert!(!clinic.contains("低保核查"), "another department's task");
    let office = Browser::signed_in(&fx, "office").get("/tasks").body;
    assert!(
        office.contains("低保核查 11月"),
        "the township sees every task"
    );

    // The same progress and the village x form summary as Excel downloads.
    let mut ps = Browser::signed_in(&fx, "ps");
    let (status, _, bytes) = ps.download("/tasks.xlsx");
    assert_eq!(status, 200);
    let rows = xlsx_cells(bytes);
    assert_eq!(rows[0][0], "任务");
    assert_eq!(rows.len(), 4, "two header rows, one row per village");
    let tujiang = rows
        .iter()
        .find(|r| r.contains(&"土匠村".to_owned()))
        .unwrap();
    assert!(
        tujiang.contains(&"低保核查 11月".to_owned()) && tujiang.contains(&"已下发".to_owned())
    );
    let (_, _, bytes) = Browser::signed_in(&fx, "clinic").download("/tasks.xlsx");
    assert_eq!(
        xlsx_cells(bytes).len(),
        2,
        "only the header: not another department's task"
    );
    let (status, _, bytes) = ps.download("/summary.xlsx");
    assert_eq!(status, 200);
    let rows = xlsx_cells(bytes);
    let row = rows
        .iter()
        .find(|r| r[0] == "土匠村" && r[1] == "低保户核查表")
        .unwrap_or_else(|| panic!("{rows:?}"));
    assert_eq!(
        (row[2].as_str(), row[3].as_str(), row[4].as_str()),
        ("0", "1", "1")
    );
    assert!(rows.iter().any(|r| r[0] == "合计"));
    assert!(
        !rows.iter().any(|r| r[1] == "人居环境检查表"),
        "only the department's forms"
    );
}

/// Every cell of the first sheet of an XLSX, as text, by row.
fn xlsx_cells(bytes: Vec<u8>) -> Vec<Vec<String>> {
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes)).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    sheet
        .rows()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

#[test]
fn the_records_download_is_the_users_view_as_an_xlsx_with_id_numbers_as_text() {
    let fx = fixture();
    let mut ps = Browser::signed_in(&fx, "ps");
    let table = ps.get("/records?village=tujiang").body;
    assert!(table.contains("id=\"download-xlsx\""), "a download button");
    assert!(table.contains("village=tujiang"), "narrowed like the table");
    let (status, kind, bytes) = ps.download("/records.xlsx?entity=household&village=tujiang");
    assert_eq!(status, 200);
    assert!(kind.contains("spreadsheetml"), "{kind}");
    let rows = xlsx_cells(bytes);
    assert_eq!(
        rows.len(),
        3,
        "two header rows and the one tujiang household"
    );
    assert!(rows[0].contains(&"身份证号".to_owned()));
    assert!(rows[2].contains(&"513401198505052226".to_owned()));
    assert!(
        rows[2]
            .iter()
            .any(|c| c.contains("amu") || c.contains("jike"))
    );

    let mut clinic = Browser::signed_in(&fx, "clinic");
    let (status, _, bytes) = clinic.download("/records.xlsx");
    assert_eq!(status, 200);
    let all: Vec<String> = xlsx_cells(bytes).concat();
    assert!(all.contains(&"阿木日哈".to_owned()));
    for hidden in [
        "身份证号",
        "513401198505052226",
        "低保户",
        "阿嘎",
        "id_number",
    ] {
        assert!(
            !all.iter().any(|c| c.contains(hidden)),
            "the clinic's export has {hidden}"
        );
    }
    assert_eq!(clinic.download("/records.xlsx?village=baru").0, 403);
}

#[test]
fn the_township_office_resolves_a_conflict_that_reaches_phones_and_shows_in_history() {
    let fx = fixture();
    let record = format!("/records/{}", fx.conflicted);
    let resolve = format!("{record}/resolve");
    // Department clerks and leaders read; they get no form and may not post one.
    for login in ["ps", "leader"] {
        let mut b = Browser::signed_in(&fx, login);
        let page = b.get(&record);
        assert!(
            !page.body.contains("/resolve"),
            "{login} sees a resolve form"
        );
        let csrf = Browser::csrf(&b.get("/account/password"));
        let a = b.post(
            &resolve,
            &[("csrf", &csrf), ("field", "household_size"), ("pick", "6")],
        );
        assert_eq!(a.status, 403, "{login} resolved");
    }
    let mut office = Browser::signed_in(&fx, "office");
    let page = office.get(&record);
    assert!(page.body.contains(&resolve), "the office gets the form");
    let csrf = Browser::csrf(&page);
    // Without the token: refused, nothing written.
    let a = office.post(&resolve, &[("field", "household_size"), ("pick", "6")]);
    assert_eq!(a.status, 403);
    // A typed value the schema refuses: the page says why, in Chinese.
    let a = office.post(
        &resolve,
        &[
            ("csrf", &csrf),
            ("field", "household_size"),
            ("pick", "new"),
            ("other", "三"),
        ],
    );
    assert_eq!(a.status, 400);
    assert!(a.body.contains("家庭人口数"), "{}", a.body);
    assert!(
        office.get(&record).body.contains("采用此值"),
        "still in conflict"
    );
    // A new value, typed.
    let a = office.post(
        &resolve,
        &[
            ("csrf", &csrf),
            ("field", "household_size"),
            ("pick", "new"),
            ("other", "8"),
        ],
    );
    assert_eq!(
        (a.status, a.location.as_str()),
        (303, record.as_str()),
        "{}",
        a.body
    );
    let page = office.get(&record).body;
    assert!(!page.contains("采用此值"), "no conflict left");
    assert!(
        page.contains("冲突已处理") && page.contains("office (office)"),
        "history: resolved by whom"
    );
    // Resolving again: the conflict is gone, so it is refused with why.
    let again = office.post(
        &resolve,
        &[("csrf", &csrf), ("field", "household_size"), ("pick", "6")],
    );
    assert_eq!(again.status, 400);
    assert!(again.body.contains("已经没有冲突"));
    // A phone of the village syncs and sees the one value, with no conflict.
    let (p, link) = phone(&fx.state, "qubi", "tujiang");
    sync(&p, &link);
    let view = p.get(fx.conflicted).unwrap();
    assert_eq!(view.value("household_size"), Some(&serde_json::json!(8)));
    assert!(p.conflicts(fx.conflicted).unwrap().is_empty());
    let history = p.history(fx.conflicted).unwrap();
    assert!(history.iter().any(|h| matches!(
        &h.event,
        yibiao_model::record::HistoryEvent::Resolved { field, .. } if field == "household_size"
    ) && h.by.cadre.as_deref() == Some("staff.office")));
    // The audit log says who resolved what.
    let log = fx.state.storage.audit_log(10).unwrap();
    assert!(
        log.iter()
            .any(|r| r.action == "conflict_resolved" && r.login == "office")
    );
}

#[test]
fn the_records_page_travels_compressed_well_under_100_kb() {
    let fx = fixture();
    let mut ps = Browser::signed_in(&fx, "ps");
    let plain = ps.download("/records").2.len();
    let fetch = |b: &Browser, path: &str, encoding: &str| {
        let mut r = b
            .agent
            .get(format!("{}{path}", b.base))
            .header("cookie", b.cookie_header())
            .header("accept-encoding", encoding)
            .call()
            .unwrap();
        let got = r
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned());
        (got, r.body_mut().read_to_vec().unwrap().len())
    };
    for encoding in ["gzip", "br"] {
        let (got, page) = fetch(&ps, "/records", encoding);
        assert_eq!(got.as_deref(), Some(encoding));
        let (got, css) = fetch(&ps, "/console/style.css", encoding);
        assert_eq!(got.as_deref(), Some(encoding));
        println!(
            "records page: {plain} B plain, {page} B {encoding}; stylesheet {css} B {encoding}"
        );
        assert!(page < plain, "compressed is smaller");
        assert!(page + css < 100 * 1024);
    }
}

/// Posts `form` with the session's own CSRF token taken from `page`.
fn post_with_token(b: &mut Browser, page: &str, path: &str, form: &[(&str, &str)]) -> Answer {
    let token = Browser::csrf(&b.get(page));
    let mut all = vec![("csrf", token.as_str())];
    all.extend_from_slice(form);
    b.post(path, &all)
}

/// The ids of the tasks a page lists.
fn task_ids(body: &str) -> Vec<String> {
    body.split("data-task=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn a_clerk_issues_and_cancels_a_task_through_the_same_rules_as_the_api() {
    let fx = fixture();
    let mut ps = Browser::signed_in(&fx, "ps");
    let form = [
        ("title", "低保核查 12月"),
        ("form", "dibao_check"),
        ("due", "2026-12-20"),
        ("village", "tujiang"),
        ("village", "baru"),
        ("instructions", "逐户核对"),
    ];
    let issued = post_with_token(&mut ps, "/tasks", "/tasks", &form);
    assert_eq!(issued.status, 200, "{}", issued.body);
    assert!(
        issued.body.contains("已下发：低保核查 12月"),
        "{}",
        issued.body
    );
    let ids = task_ids(&issued.body);
    assert_eq!(ids.len(), 1);
    assert!(issued.body.contains("已送达 0 / 2"), "at a glance");
    // The same task through the JSON API's core: two villages, sent.
    let issuer = yibiao_server::tasks::Issuer::Department(
        fx.state
            .hub
            .schema()
            .department("public_services")
            .unwrap()
            .clone(),
    );
    let p = yibiao_server::tasks::progress(
        fx.state.storage.as_ref(),
        fx.state.hub.schema(),
        &issuer,
        &ids[0],
        MORNING,
    )
    .unwrap();
    assert_eq!((p.villages.len(), p.instructions.as_str()), (2, "逐户核对"));

    // The core's rules, in the page's words, with what was typed kept.
    let past = post_with_token(
        &mut ps,
        "/tasks",
        "/tasks",
        &[
            ("title", "晚了"),
            ("form", "dibao_check"),
            ("due", "2026-11-01"),
            ("village", "baru"),
        ],
    );
    assert_eq!(past.status, 200);
    assert!(
        past.body.contains("id=\"task-error\"") && past.body.contains("已经过去"),
        "{}",
        past.body
    );
    assert!(
        past.body.contains("value=\"晚了\""),
        "the typed title stays"
    );
    let other_form = post_with_token(
        &mut ps,
        "/tasks",
        "/tasks",
        &[
            ("title", "x"),
            ("form", "toilet_survey"),
            ("due", "2026-12-20"),
            ("village", "baru"),
        ],
    );
    assert!(
        other_form.body.contains("id=\"task-error\""),
        "a form of another department"
    );
    assert_eq!(task_ids(&other_form.body).len(), 1, "nothing issued");

    let cancelled = post_with_token(&mut ps, "/tasks", "/tasks/cancel", &[("task", &ids[0])]);
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert!(cancelled.body.contains("已取消：低保核查 12月"));
    let log = Browser::signed_in(&fx, "admin").get("/admin/staff").body;
    assert!(
        log.contains("task_issue") && log.contains("task_cancel"),
        "audit log"
    );
}

#[test]
fn cancelling_a_task_whose_document_is_set_aside_says_so_instead_of_failing() {
    use yibiao_sync::HubStorage;
    let fx = fixture();
    let mut office = Browser::signed_in(&fx, "office");
    let issued = post_with_token(
        &mut office,
        "/tasks",
        "/tasks",
        &[
            ("title", "环境整治"),
            ("form", "dibao_check"),
            ("due", "2026-12-20"),
            ("village", "tujiang"),
        ],
    );
    let task = task_ids(&issued.body).pop().unwrap();
    let doc = fx.state.storage.task_docs(Some(&task), None).unwrap()[0].id;
    fx.state
        .hub
        .storage()
        .quarantine(doc, "test: damaged", MORNING)
        .unwrap()
        .unwrap();
    let a = post_with_token(&mut office, "/tasks", "/tasks/cancel", &[("task", &task)]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body.contains("已被隔离") && a.body.contains(&doc.to_string()),
        "{}",
        a.body
    );
    // The JSON API answers the same refusal with its code, not a 500.
    let token = accounts::rotate_admin_token(fx.state.storage.as_ref()).unwrap();
    let r = office
        .agent
        .delete(format!("{}/v1/tasks/{task}", fx.base))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(
        r.into_body()
            .read_to_string()
            .unwrap()
            .contains("task_set_aside")
    );
}

#[test]
fn a_leader_reads_tasks_but_cannot_issue_or_cancel_them() {
    let fx = fixture();
    let mut leader = Browser::signed_in(&fx, "leader");
    let page = leader.get("/tasks").body;
    assert!(
        !page.contains("id=\"issue-task\""),
        "no issue form for a leader"
    );
    let a = post_with_token(
        &mut leader,
        "/tasks",
        "/tasks",
        &[
            ("title", "x"),
            ("form", "dibao_check"),
            ("due", "2026-12-20"),
            ("village", "baru"),
        ],
    );
    assert_eq!(a.status, 403);
    assert_eq!(
        post_with_token(&mut leader, "/tasks", "/tasks/cancel", &[("task", "t")]).status,
        403
    );
    assert!(fx.state.storage.task_docs(None, None).unwrap().is_empty());
}

/// A sync over real HTTP with a device token: its status and the phone's last-seen.
fn http_sync(fx: &Fx, token: &str, device: &str) -> u16 {
    let body = yibiao_sync::SyncRequest {
        device: device.into(),
        cursor: 0,
        push: Vec::new(),
        max_response_bytes: 65536,
        schema: None,
    }
    .encode();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    agent
        .post(format!("{}/v1/sync", fx.base))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/x-yibiao-sync")
        .send(&body[..])
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn the_admin_adds_a_cadre_issues_a_qr_enrolment_code_and_revokes_a_phone_that_synced() {
    let fx = fixture();
    let mut admin = Browser::signed_in(&fx, "admin");
    let added = post_with_token(
        &mut admin,
        "/admin/cadres",
        "/admin/cadres",
        &[("id", "mose"), ("name", "莫色"), ("village", "baru")],
    );
    assert_eq!(added.status, 200, "{}", added.body);
    assert!(added.body.contains("data-cadre=\"mose\"") && added.body.contains("莫色"));
    let dup = post_with_token(
        &mut admin,
        "/admin/cadres",
        "/admin/cadres",
        &[("id", "mose"), ("name", "x")],
    );
    assert!(
        dup.body.contains("id=\"admin-error\"")
            && dup.body.contains("未能完成：干部 `mose` 已存在"),
        "the refusal in the page's language: {}",
        dup.body
    );
    let mut english = Browser::signed_in(&fx, "admin");
    english.get("/admin/cadres?lang=en");
    let dup = post_with_token(
        &mut english,
        "/admin/cadres",
        "/admin/cadres",
        &[("id", "mose"), ("name", "x")],
    );
    assert!(
        dup.body.contains("Not done: cadre `mose` already exists"),
        "{}",
        dup.body
    );

    let first = post_with_token(
        &mut admin,
        "/admin/cadres",
        "/admin/cadres/code",
        &[("id", "mose")],
    );
    assert!(
        first.body.contains("<svg") && first.body.contains("id=\"enrol-code\""),
        "a QR code"
    );
    let code_of = |body: &str| {
        let at = body.find("id=\"code\">").unwrap() + 10;
        body[at..].split('<').next().unwrap().to_owned()
    };
    let old = code_of(&first.body);
    assert_eq!(old.len(), 9, "XXXX-XXXX: {old}");
    let second = post_with_token(
        &mut admin,
        "/admin/cadres",
        "/admin/cadres/code",
        &[("id", "mose")],
    );
    let new = code_of(&second.body);
    let storage = fx.state.storage.as_ref();
    // A new code cancels the old: the old one no longer enrols, the new one does.
    assert!(accounts::enrol(storage, &old, "dev-mose-1").is_err());
    let enrolled = accounts::enrol(storage, &new, "dev-mose-1").unwrap();

    assert_eq!(http_sync(&fx, &enrolled.token, "dev-mose-1"), 200);
    let page = admin.get("/admin/cadres").body;
    let row = page.split("data-phone=\"dev-mose-1\"").nth(1).unwrap();
    assert!(
        !row.split("</tr>").next().unwrap().contains("从未"),
        "last-seen shown: {row}"
    );
    let listed = accounts::devices(storage).unwrap();
    assert!(
        listed
            .iter()
            .any(|d| d.device.phone_device.as_deref() == Some("dev-mose-1")
                && d.last_seen_ms == Some(MORNING))
    );

    let revoked = post_with_token(
        &mut admin,
        "/admin/cadres",
        "/admin/devices/revoke",
        &[("id", "dev-mose-1")],
    );
    assert!(revoked.body.contains("已吊销手机"), "{}", revoked.body);
    assert_eq!(
        http_sync(&fx, &enrolled.token, "dev-mose-1"),
        401,
        "the revoked phone's next sync"
    );
    let log = admin.get("/admin/staff").body;
    for action in ["cadre_add", "enrol_code", "device_revoke"] {
        assert!(log.contains(action), "audit {action}");
    }
}

#[test]
fn moving_or_disabling_a_cadre_stops_their_phones_until_they_enrol_again() {
    let fx = fixture();
    let storage = fx.state.storage.as_ref();
    let (code, _) = accounts::issue_code(storage, "amu", 30).unwrap();
    let enrolled = accounts::enrol(storage, &code, "dev-amu-2").unwrap();
    assert_eq!(http_sync(&fx, &enrolled.token, "dev-amu-2"), 200);
    let mut admin = Browser::signed_in(&fx, "admin");
    let moved = post_with_token(
        &mut admin,
        "/admin/cadres",
        "/admin/cadres/move",
        &[("id", "amu"), ("village", "baru")],
    );
    assert!(moved.body.contains("已调动"), "{}", moved.body);
    assert_eq!(
        storage.cadre("amu").unwrap().unwrap().village.as_deref(),
        Some("baru")
    );
    assert_eq!(
        http_sync(&fx, &enrolled.token, "dev-amu-2"),
        401,
        "the old village's phone stops"
    );
    // A new code enrols the phone in the new village.
    let (code, _) = accounts::issue_code(storage, "amu", 30).unwrap();
    let again = accounts::enrol(storage, &code, "dev-amu-3").unwrap();
    assert_eq!(again.village.as_deref(), Some("baru"));
    assert_eq!(http_sync(&fx, &again.token, "dev-amu-3"), 200);
    let bad = post_with_token(
        &mut admin,
        "/admin/cadres",
        "/admin/cadres/move",
        &[("id", "amu"), ("village", "atlantis")],
    );
    assert!(bad.body.contains("没有村 `atlantis`"), "{}", bad.body);

    let disabled = post_with_token(
        &mut admin,
        "/admin/cadres",
        "/admin/cadres/disable",
        &[("id", "amu")],
    );
    assert!(disabled.body.contains("已停用"), "{}", disabled.body);
    assert_eq!(http_sync(&fx, &again.token, "dev-amu-3"), 401);
    let no_code = post_with_token(
        &mut admin,
        "/admin/cadres",
        "/admin/cadres/code",
        &[("id", "amu")],
    );
    assert!(
        no_code.body.contains("已停用，不再为其发放注册码") && !no_code.body.contains("<svg"),
        "{}",
        no_code.body
    );
    let log = admin.get("/admin/staff").body;
    assert!(log.contains("cadre_move") && log.contains("cadre_disable"));
}

#[test]
fn the_admin_issues_a_department_token_shown_once_and_revokes_it() {
    let fx = fixture();
    let mut admin = Browser::signed_in(&fx, "admin");
    let issued = post_with_token(
        &mut admin,
        "/admin/tokens",
        "/admin/tokens",
        &[("department", "public_services"), ("name", "民政系统")],
    );
    let at = issued.body.find("id=\"new-token\">").unwrap() + 15;
    let token = issued.body[at..].split('<').next().unwrap().to_owned();
    assert!(token.starts_with("ybk_"), "{token}");
    let again = admin.get("/admin/tokens").body;
    assert!(
        again.contains("民政系统") && !again.contains(&token),
        "shown once"
    );
    let agent = admin.agent.clone();
    let pull = |t: &str| {
        agent
            .get(format!("{}/v1/records", fx.base))
            .header("authorization", format!("Bearer {t}"))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(pull(&token), 200);
    let key = fx.state.storage.department_tokens().unwrap()[0].key.clone();
    let revoked = post_with_token(
        &mut admin,
        "/admin/tokens",
        "/admin/tokens/revoke",
        &[("id", &key)],
    );
    assert!(revoked.body.contains("已吊销令牌"), "{}", revoked.body);
    assert_eq!(pull(&token), 401);
    let log = admin.get("/admin/staff").body;
    assert!(log.contains("token_issue") && log.contains("token_revoke"));
}

#[test]
fn the_admin_adds_and_disables_staff_accounts() {
    let fx = fixture();
    let mut admin = Browser::signed_in(&fx, "admin");
    let added = post_with_token(
        &mut admin,
        "/admin/staff",
        "/admin/staff/add",
        &[
            ("login", "wangfang"),
            ("name", "王芳"),
            ("role", "dept:public_services"),
        ],
    );
    let at = added.body.find("id=\"new-password\">").unwrap() + 18;
    let password = added.body[at..].split('<').next().unwrap().to_owned();
    let mut wang = Browser::new(&fx);
    assert_eq!(wang.sign_in("wangfang", &password).status, 303);
    assert_eq!(wang.get("/records").status, 200);
    let bad = post_with_token(
        &mut admin,
        "/admin/staff",
        "/admin/staff/add",
        &[("login", "x1"), ("name", "x"), ("role", "dept:nope")],
    );
    assert!(bad.body.contains("没有部门 `nope`"), "{}", bad.body);
    let disabled = post_with_token(
        &mut admin,
        "/admin/staff",
        "/admin/staff/disable",
        &[("login", "wangfang")],
    );
    assert!(disabled.body.contains("已停用账号"), "{}", disabled.body);
    assert_eq!(wang.get("/records").location, "/login", "her session ended");
    let own = post_with_token(
        &mut admin,
        "/admin/staff",
        "/admin/staff/disable",
        &[("login", "admin")],
    );
    assert!(
        own.body.contains("id=\"admin-error\""),
        "no disabling oneself"
    );
    let log = admin.get("/admin/staff").body;
    assert!(log.contains("staff_add") && log.contains("staff_disable"));
}

#[test]
fn a_leader_reads_the_summary_and_burden_charts_and_clerks_are_refused() {
    let fx = fixture();
    let mut leader = Browser::signed_in(&fx, "leader");
    let summary = leader.get("/reports/summary");
    assert_eq!(summary.status, 200);
    let body = &summary.body;
    assert!(
        body.contains("<svg") && body.contains("class=\"bar\""),
        "a bar chart"
    );
    assert!(
        body.contains("低保户核查表") && body.contains("土匠村"),
        "labels"
    );
    assert!(body.contains("id=\"matrix\""), "the matrix");
    assert!(body.len() < 100_000, "{} bytes", body.len());
    // The chart draws what the core computes: 土匠村 has one household, none complete
    // for dibao_check, so its bar has zero done length.
    let sum = yibiao_server::tasks::summary(
        fx.state.storage.as_ref(),
        fx.state.hub.schema(),
        &yibiao_server::tasks::Issuer::Township,
        MORNING,
    )
    .unwrap();
    let cells = sum.rows.len();
    assert_eq!(
        body.matches("class=\"bar\"").count(),
        cells,
        "one bar per village x form"
    );

    let burden = leader.get("/reports/burden");
    assert_eq!(burden.status, 200);
    let b = yibiao_server::tasks::burden(
        fx.state.storage.as_ref(),
        fx.state.hub.schema(),
        "2026-10-26",
        "2026-11-24",
    )
    .unwrap();
    assert!(b.values_typed > 0);
    assert!(
        burden
            .body
            .contains(&format!("id=\"typed\">{}<", b.values_typed))
            && burden
                .body
                .contains(&format!("id=\"deliveries\">{}<", b.deliveries)),
        "the core's figures for the last 30 days"
    );
    assert!(burden.body.contains("<svg") && burden.body.contains("class=\"bar\""));
    assert!(burden.body.contains("户主姓名"), "field labels");
    let bad = leader.get("/reports/burden?from=2026-13-01");
    assert!(bad.body.contains("id=\"report-error\"") && bad.body.contains("不是有效日期"));

    for login in ["ps", "office"] {
        let mut b = Browser::signed_in(&fx, login);
        assert_eq!(b.get("/reports/summary").status, 403, "{login}");
        assert_eq!(b.get("/reports/burden").status, 403, "{login}");
    }
    assert_eq!(
        Browser::signed_in(&fx, "admin")
            .get("/reports/burden")
            .status,
        200
    );
}

/// Every admin form, with fields that would change something if accepted.
const ADMIN_FORMS: [(&str, &[(&str, &str)]); 9] = [
    ("/admin/staff/reset", &[("login", "leader")]),
    (
        "/admin/staff/add",
        &[("login", "intruder"), ("name", "x"), ("role", "admin")],
    ),
    ("/admin/staff/disable", &[("login", "office")]),
    (
        "/admin/cadres",
        &[("id", "intruder"), ("name", "x"), ("village", "baru")],
    ),
    ("/admin/cadres/disable", &[("id", "amu")]),
    ("/admin/cadres/move", &[("id", "amu"), ("village", "baru")]),
    ("/admin/cadres/code", &[("id", "amu")]),
    ("/admin/devices/revoke", &[("id", "dev-none")]),
    (
        "/admin/tokens",
        &[("department", "public_services"), ("name", "x")],
    ),
];

#[test]
fn only_an_admin_posts_admin_forms_and_only_with_the_sessions_csrf_token() {
    let fx = fixture();
    let storage = fx.state.storage.as_ref();
    let audit_before = storage.audit_log(1000).unwrap().len();
    for login in ["ps", "clinic", "office", "leader"] {
        let mut b = Browser::signed_in(&fx, login);
        for (path, form) in ADMIN_FORMS
            .iter()
            .chain([("/admin/tokens/revoke", &[("id", "k")][..])].iter())
        {
            let a = post_with_token(&mut b, "/records", path, form);
            assert_eq!(a.status, 403, "POST {path} as {login}");
        }
    }
    let mut admin = Browser::signed_in(&fx, "admin");
    let mut forms: Vec<(&str, Vec<(&str, &str)>)> =
        ADMIN_FORMS.iter().map(|(p, f)| (*p, f.to_vec())).collect();
    forms.push(("/admin/tokens/revoke", vec![("id", "k")]));
    forms.push((
        "/tasks",
        vec![
            ("title", "x"),
            ("form", "dibao_check"),
            ("due", "2026-12-20"),
            ("village", "baru"),
        ],
    ));
    forms.push(("/tasks/cancel", vec![("task", "t")]));
    for (path, form) in &forms {
        for token in [None, Some("forged")] {
            let mut f = form.clone();
            if let Some(t) = token {
                f.push(("csrf", t));
            }
            let a = admin.post(path, &f);
            assert_eq!(a.status, 403, "POST {path} with token {token:?}");
            assert!(a.body.contains("表单已过期"), "{path}");
        }
    }
    // Nothing happened: no account, cadre, token or task; amu still in 土匠村.
    assert!(storage.staff("intruder").unwrap().is_none());
    assert!(storage.cadre("intruder").unwrap().is_none());
    assert_eq!(
        storage.cadre("amu").unwrap().unwrap().village.as_deref(),
        Some("tujiang")
    );
    assert!(storage.department_tokens().unwrap().is_empty());
    assert!(storage.task_docs(None, None).unwrap().is_empty());
    let actions: Vec<String> = storage
        .audit_log(1000)
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert!(
        actions.len() > audit_before && actions.iter().all(|a| a.starts_with("sign_")),
        "only sign-ins were logged: {actions:?}"
    );
}

#[test]
fn township_staff_print_the_findings_report_with_the_figures_of_the_core() {
    use yibiao_model::finding::{StepKind, Unit};
    use yibiao_server::findings::{self, NewFinding};
    use yibiao_server::tasks::Issuer;
    let fx = fixture();
    let hub = &fx.state.hub;
    let mut ids = Vec::new();
    for (village, category) in [("tujiang", "epidemic_prevention"), ("baru", "work_style")] {
        let new: NewFinding = serde_json::from_value(serde_json::json!({
            "village": village, "category": category,
            "description": "未落实 / not done", "severity": "medium"
        }))
        .unwrap();
        ids.push(
            findings::record(hub, &Issuer::Township, new, MORNING)
                .unwrap()
                .id,
        );
    }
    // The tujiang finding is handed over with a deadline already past: overdue.
    let hand_over = StepKind::HandOver {
        unit: Unit::Village("tujiang".into()),
        deadline_ms: MORNING - 1_000,
    };
    findings::take_step(hub, &Issuer::Township, ids[0], hand_over, MORNING).unwrap();
    let day = yibiao_server::tasks::today(MORNING);
    let mut office = Browser::signed_in(&fx, "office");
    let page = office.get(&format!("/findings/report?from={day}&to={day}"));
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert!(body.contains("@media print"), "print CSS");
    // found, handed over, resolved, on time, overdue, sent back, held, closed, avg.
    let total = "<td>2</td><td>1</td><td>0</td><td>0</td><td>1</td><td>0</td><td>0</td><td>0</td><td>-</td>";
    assert!(body.contains(total), "the total row: {body}");
    for table in ["by-category", "by-village", "by-unit"] {
        assert!(body.contains(&format!("id=\"{table}\"")), "{table}");
    }
    assert!(
        body.contains("土匠村") && body.contains("疫情防控"),
        "labels, not keys"
    );
    let bad = office.get("/findings/report?from=2027-13-01&to=2027-01-02");
    assert_eq!(bad.status, 200);
    assert!(bad.body.contains("id=\"report-error\""), "{}", bad.body);
    let list = office.get("/findings");
    assert_eq!(list.status, 200);
    assert!(list.body.contains("handed_over") && list.body.contains("found"));
    assert_eq!(
        Browser::signed_in(&fx, "ps").get("/findings/report").status,
        403
    );
}

/// The `data-finding` id of a page.
fn finding_id(body: &str) -> String {
    body.split("data-finding=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned()
}

/// The state a finding page shows (its key).
fn state(body: &str) -> &str {
    let start = body.find("data-state=\"").unwrap() + "data-state=\"".len();
    &body[start..start + body[start..].find('"').unwrap()]
}

/// The text of the element with `id` (up to its first tag inside).
fn cell<'a>(body: &'a str, id: &str) -> &'a str {
    let start = body.find(&format!("id=\"{id}\"")).unwrap();
    let rest = &body[start..];
    let open = rest.find('>').unwrap() + 1;
    let rest = &rest[open..];
    &rest[..rest.find('<').unwrap()]
}

#[test]
fn findings_are_recorded_and_taken_through_their_steps_in_the_console_by_role() {
    let fx = fixture();
    let new = NewStaff {
        login: "disc",
        name: "纪检",
        scope: Scope::Department("discipline_inspection".into()),
        password: PASSWORD,
    };
    staff::add(
        fx.state.storage.as_ref(),
        fx.state.hub.schema(),
        &new,
        MORNING,
    )
    .unwrap();
    let mut office = Browser::signed_in(&fx, "office");
    let record = |b: &mut Browser, category: &str| {
        post_with_token(
            b,
            "/findings",
            "/findings",
            &[
                ("category", category),
                ("village", "tujiang"),
                ("severity", "high"),
                ("description", "上月低保发放未公示"),
            ],
        )
    };
    // A category the schema does not name: the list again, the refusal in Chinese,
    // what was typed kept, nothing recorded.
    let refused = record(&mut office, "dust");
    assert_eq!(refused.status, 200);
    assert!(
        refused.body.contains("问题类别「dust」不在本镇的类别中"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains(">上月低保发放未公示</textarea>"));
    assert!(!refused.body.contains("data-finding="), "nothing recorded");

    let page = record(&mut office, "livelihood_funds");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("民生资金 · 土匠村") && page.body.contains("已登记"));
    let id = finding_id(&page.body);
    let at = format!("/findings/{id}");
    let steps = format!("/findings/{id}/steps");

    // Handed over naming nothing: the category's unit and deadline.
    let handed = post_with_token(
        &mut office,
        &at,
        &steps,
        &[("step", "hand_over"), ("unit", ""), ("deadline", "")],
    );
    assert_eq!(handed.status, 200);
    assert_eq!(state(&handed.body), "handed_over");
    assert_eq!(cell(&handed.body, "state"), "已移交");
    assert_eq!(cell(&handed.body, "unit"), "公共服务办公室(民政)");
    assert!(
        cell(&handed.body, "deadline").starts_with("2026-12-04"),
        "10 days on: {}",
        cell(&handed.body, "deadline")
    );

    // The department it went to sees it and resolves it; another does not see it.
    let mut ps = Browser::signed_in(&fx, "ps");
    assert!(
        ps.get("/findings")
            .body
            .contains(&format!("data-finding=\"{id}\""))
    );
    let mut clinic = Browser::signed_in(&fx, "clinic");
    assert!(!clinic.get("/findings").body.contains("data-finding="));
    assert_eq!(clinic.get(&at).status, 404);
    let resolved = post_with_token(
        &mut ps,
        &at,
        &steps,
        &[("step", "resolve"), ("note", "已补发并公示")],
    );
    assert_eq!(state(&resolved.body), "resolved", "{}", resolved.body);

    // A leader reads only; the office's send-back needs a reason.
    let mut leader = Browser::signed_in(&fx, "leader");
    assert_eq!(leader.get(&at).status, 200);
    let token = Browser::csrf(&leader.get("/findings"));
    assert_eq!(
        leader
            .post(&steps, &[("csrf", &token), ("step", "accept")])
            .status,
        403
    );
    let empty = post_with_token(
        &mut office,
        &at,
        &steps,
        &[("step", "send_back"), ("reason", "")],
    );
    assert!(empty.body.contains("退回返工须写明理由"), "{}", empty.body);
    let back = post_with_token(
        &mut office,
        &at,
        &steps,
        &[("step", "send_back"), ("reason", "公示照片不清")],
    );
    assert_eq!(state(&back.body), "sent_back");

    // Only the discipline office holds to account.
    let hold = [
        ("step", "hold_to_account"),
        ("who", "村委会"),
        ("measure", "提醒谈话"),
    ];
    let by_office = post_with_token(&mut office, &at, &steps, &hold);
    assert!(
        by_office
            .body
            .contains("township 不能执行「追责」：这一步不属于该角色"),
        "{}",
        by_office.body
    );
    let mut disc = Browser::signed_in(&fx, "disc");
    let held = post_with_token(&mut disc, &at, &steps, &hold);
    assert!(held.body.contains("已完成：追责"), "{}", held.body);
    assert!(held.body.contains("村委会: 提醒谈话"));
    assert_eq!(disc.get("/findings/report").status, 200);
    // The API sees the same log, in order.
    let v = yibiao_server::findings::show(
        &fx.state.hub,
        &yibiao_server::tasks::Issuer::Township,
        id.parse().unwrap(),
        MORNING,
    )
    .unwrap();
    let kinds: Vec<&str> = v
        .lifecycle
        .steps
        .iter()
        .map(|s| s.step.kind.name())
        .collect();
    assert_eq!(
        kinds,
        ["hand_over", "resolve", "send_back", "hold_to_account"]
    );

    // A finding that carries a household's photo shows it as a thumbnail; the link
    // opens for the discipline office and township staff, not for the clinic.
    let new: yibiao_server::findings::NewFinding = serde_json::from_value(serde_json::json!({
        "village": "tujiang", "category": "living_environment", "severity": "low",
        "description": "院内杂物", "photos": [format!("sha256:{}", fx.photos[0])]
    }))
    .unwrap();
    let with_photo = yibiao_server::findings::record(
        &fx.state.hub,
        &yibiao_server::tasks::Issuer::Township,
        new,
        MORNING,
    )
    .unwrap();
    let link = format!("/records/{}/attachments/{}", with_photo.id, fx.photos[0]);
    let shown = disc.get(&format!("/findings/{}", with_photo.id));
    assert!(
        shown
            .body
            .contains(&format!("<img src=\"{link}/thumbnail\"")),
        "{}",
        shown.body
    );
    let (status, kind, _) = disc.download(&format!("{link}/thumbnail"));
    assert_eq!((status, kind.as_str()), (200, "image/jpeg"));
    assert_eq!(office.download(&link).0, 200);
    assert_eq!(clinic.download(&link).0, 404);
}

/// The photo of the Tujiang household and of the Baru one, as the record page links them.
fn photo_links(fx: &Fx) -> [String; 2] {
    [
        format!("/records/{}/attachments/{}", fx.conflicted, fx.photos[0]),
        format!("/records/{}/attachments/{}", fx.baru, fx.photos[1]),
    ]
}

#[test]
fn the_record_page_shows_photos_as_thumbnails_that_open_the_photo_in_the_users_scope() {
    let fx = fixture();
    let [tujiang, baru] = photo_links(&fx);
    let mut ps = Browser::signed_in(&fx, "ps");
    let page = ps.get(&format!("/records/{}", fx.conflicted)).body;
    assert!(
        page.contains(&format!(
            "<a class=\"attachment\" href=\"{tujiang}\"><img class=\"thumb\" src=\"{tujiang}/thumbnail\" alt=\"院子.png\""
        )),
        "{page}"
    );
    assert!(
        !page.contains("Bearer") && !page.contains("ybk_"),
        "no token in a page"
    );
    let (status, kind, bytes) = ps.download(&format!("{tujiang}/thumbnail"));
    assert_eq!((status, kind.as_str()), (200, "image/jpeg"));
    let thumb = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (320, 240));
    let (status, kind, bytes) = ps.download(&tujiang);
    assert_eq!((status, kind.as_str()), (200, "image/png"));
    assert_eq!(BlobHash::of(&bytes).to_string(), fx.photos[0]);
    let (status, _, portrait) = ps.download(&format!("{baru}/thumbnail"));
    assert_eq!(status, 200);
    let portrait = image::load_from_memory(&portrait).unwrap();
    assert_eq!((portrait.width(), portrait.height()), (240, 320));
    // A link names the record the photo is on: Baru's photo is not Tujiang's record's.
    let crossed = format!("/records/{}/attachments/{}", fx.conflicted, fx.photos[1]);
    assert_eq!(ps.get(&crossed).status, 404);

    // The clinic reads Tujiang's households but not their photos, and not Baru at all:
    // no thumbnail on its page, and every link answers as a photo that does not exist.
    let mut clinic = Browser::signed_in(&fx, "clinic");
    let page = clinic.get(&format!("/records/{}", fx.conflicted)).body;
    assert!(
        !page.contains("attachments/") && !page.contains("院子"),
        "{page}"
    );
    let unknown = format!("/records/{}/attachments/{}", fx.conflicted, "ab".repeat(32));
    let nothing = clinic.get(&unknown);
    for link in [&tujiang, &baru, &format!("{tujiang}/thumbnail")] {
        let a = clinic.get(link);
        assert_eq!((a.status, &a.body), (404, &nothing.body), "{link}");
    }
    // Township staff read every village's photos.
    let mut office = Browser::signed_in(&fx, "office");
    for link in [&tujiang, &baru] {
        assert_eq!(office.download(&format!("{link}/thumbnail")).0, 200);
    }
}

/// A file of an XLSX workbook, as text.
fn xlsx_part(bytes: &[u8], name: &str) -> String {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut text = String::new();
    zip.by_name(name)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn exports_link_each_photo_to_the_console_which_opens_it_after_sign_in() {
    let fx = fixture();
    let [tujiang, baru] = photo_links(&fx);
    let mut ps = Browser::signed_in(&fx, "ps");
    let (status, _, bytes) = ps.download("/records.xlsx?entity=household");
    assert_eq!(status, 200);
    // The cell shows the file name; the sheet's hyperlinks lead to the console.
    let cells = xlsx_cells(bytes.clone());
    let photo_column = cells[1].iter().position(|k| k == "photo").unwrap();
    let names: Vec<&str> = cells[2..]
        .iter()
        .map(|r| r[photo_column].as_str())
        .collect();
    assert!(
        names.contains(&"院子.png") && names.contains(&"厨房.png"),
        "{names:?}"
    );
    let sheet = xlsx_part(&bytes, "xl/worksheets/sheet1.xml");
    assert_eq!(sheet.matches("<hyperlink ").count(), 2, "{sheet}");
    let rels = xlsx_part(&bytes, "xl/worksheets/_rels/sheet1.xml.rels");
    for link in [&tujiang, &baru] {
        assert!(
            rels.contains(&format!("Target=\"{}{link}\"", fx.base)),
            "{rels}"
        );
    }
    // Clicked in Excel without a session: the sign-in page first; signed in: the photo.
    assert_eq!(Browser::new(&fx).get(&tujiang).location, "/login");
    assert_eq!(ps.download(&tujiang).0, 200);

    // The department API's CSV carries the same link after the name.
    let storage = fx.state.storage.as_ref();
    let (_, token) =
        accounts::issue_department_token(storage, fx.state.hub.schema(), "public_services", "csv")
            .unwrap();
    let csv = ps
        .agent
        .get(format!("{}/v1/records.csv?entity=household", fx.base))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        csv.contains(&format!("院子.png <{}{tujiang}>", fx.base)),
        "{csv}"
    );
    // The clinic's export has no photo column, so no link.
    let mut clinic = Browser::signed_in(&fx, "clinic");
    let (_, _, bytes) = clinic.download("/records.xlsx");
    assert!(!xlsx_part(&bytes, "xl/worksheets/sheet1.xml").contains("<hyperlink "));
}
