//! PostgreSQL benchmark: the same fleet on SQLite (one process) and on PostgreSQL with 1
//! and 3 `yibiao-server` processes (each phone request to a random process), real HTTP on
//! loopback. Prints figures as ratios to SQLite in the same run; never asserts timings.
//!
//! Run: `scripts/with-postgres.sh cargo bench -p yibiao-tests --bench postgres`
//! (`YIBIAO_TEST_PG`; without it the bench says so and stops). `YIBIAO_BENCH_DEVICES`
//! phones (default 30), `YIBIAO_BENCH_QUICK=1` for a smoke run (6 phones).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use yibiao_model::{CadreId, FieldEdit, Schema, Value};
use yibiao_store::Store;
use yibiao_store::http::HttpTransport;
use yibiao_sync::session::{SyncOptions, Transport, TransportError};
use yibiao_testkit::bench::{BenchEnv, env_count, ratio_text};
use yibiao_testkit::pg::fresh_schema;
use yibiao_testkit::server::{ServerOptions, ServerProcess};

type Res<T> = yibiao_testkit::Result<T>;

struct AnyOf(Vec<HttpTransport>, std::sync::Mutex<fastrand::Rng>);

impl Transport for AnyOf {
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        let i = self
            .1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .usize(..self.0.len());
        self.0[i].exchange(request)
    }
}

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_server_under_test"))
}

/// What one configuration did.
struct Figures {
    /// The fleet's first push and pull, ms.
    push_ms: u128,
    /// No-change syncs per second, the whole fleet at once.
    syncs_per_s: f64,
    /// A department paging its whole feed (1,000 a page, each page from a random
    /// process), records per second.
    pull_per_s: f64,
}

/// A department's whole feed, each page from a random server; records read.
fn pull_feed(bases: &[String], token: &str, rng: &mut fastrand::Rng) -> Res<usize> {
    let (mut cursor, mut n) = (0u64, 0usize);
    loop {
        let url = format!(
            "{}/v1/feed?cursor={cursor}&limit=1000",
            bases[rng.usize(..bases.len())]
        );
        let body: serde_json::Value = serde_json::from_str(
            &ureq::get(&url)
                .header("Authorization", &format!("Bearer {token}"))
                .call()?
                .body_mut()
                .read_to_string()?,
        )?;
        n += body["changes"].as_array().map_or(0, Vec::len);
        cursor = body["next_cursor"]
            .as_u64()
            .ok_or("feed without next_cursor")?;
        if body["more"] != serde_json::Value::Bool(true) {
            return Ok(n);
        }
    }
}

/// The figures of `processes` servers on `database` (SQLite in the data dir for None).
fn run(database: Option<&str>, processes: usize, phones: usize) -> Res<Figures> {
    let dir = tempfile::tempdir()?;
    let mut servers = Vec::new();
    for i in 0..processes {
        let data = dir.path().join(format!("s{i}"));
        std::fs::create_dir_all(&data)?;
        let config = data.join("bench.toml");
        let db = database
            .map(|d| format!("database = \"{d}\"\n"))
            .unwrap_or_default();
        std::fs::write(&config, format!("rate_per_minute = 0\n{db}"))?;
        let options = ServerOptions {
            config: Some(config),
            ..ServerOptions::default()
        };
        servers.push(ServerProcess::start(binary(), &data, options)?);
    }
    let schema = Arc::new(Schema::baru_example());
    let mut fleet = Vec::new();
    for i in 0..phones {
        let mut cmd = std::process::Command::new(binary());
        cmd.arg("--config").arg(dir.path().join("s0/bench.toml"));
        cmd.arg("--data-dir").arg(dir.path().join("s0"));
        let cadre = format!("c{i}");
        cmd.args([
            "device",
            "add",
            "--name",
            "p",
            "--cadre",
            &cadre,
            "--village",
            "tujiang",
        ]);
        let out = cmd.output()?;
        let token = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("token (shown once): ").map(str::to_owned))
            .ok_or("device add printed no token")?;
        let store = Store::open(
            dir.path().join(format!("p{i}.db")),
            schema.clone(),
            CadreId::new(cadre)?,
        )?;
        for n in 0..10 {
            let v = Value::Text(format!("户主{i}-{n}"));
            store.create(
                "household",
                Some("tujiang"),
                &[FieldEdit::Set("household_head".into(), v)],
            )?;
        }
        let links = servers
            .iter()
            .map(|s| HttpTransport::new(&s.url(), &token, Duration::from_secs(60)))
            .collect();
        fleet.push((
            store,
            AnyOf(
                links,
                std::sync::Mutex::new(fastrand::Rng::with_seed(i as u64)),
            ),
        ));
    }
    let sync_all = |fleet: &[(Store, AnyOf)]| -> usize {
        std::thread::scope(|s| {
            let handles: Vec<_> = fleet
                .iter()
                .map(|(st, link)| {
                    s.spawn(move || {
                        yibiao_store::sync(st, link, &SyncOptions::default(), &mut |_| {}).is_ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok())
                .filter(|ok| *ok)
                .count()
        })
    };
    let t = Instant::now();
    sync_all(&fleet);
    sync_all(&fleet);
    let push_ms = t.elapsed().as_millis();
    let (t, mut syncs) = (Instant::now(), 0);
    while t.elapsed() < Duration::from_secs(2) {
        syncs += sync_all(&fleet);
    }
    let syncs_per_s = syncs as f64 / t.elapsed().as_secs_f64();
    let out = std::process::Command::new(binary())
        .arg("--config")
        .arg(dir.path().join("s0/bench.toml"))
        .arg("--data-dir")
        .arg(dir.path().join("s0"))
        .args(["department", "token", "public_services", "--name", "bench"])
        .output()?;
    let dept = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("token (shown once): ").map(str::to_owned))
        .ok_or("department token printed no token")?;
    let bases: Vec<String> = servers.iter().map(ServerProcess::url).collect();
    let mut rng = fastrand::Rng::with_seed(7);
    let (t, mut records) = (Instant::now(), 0usize);
    for _ in 0..3 {
        let n = pull_feed(&bases, &dept, &mut rng)?;
        if n != phones * 10 {
            return Err(format!(
                "the department read {n} records, the fleet wrote {}",
                phones * 10
            )
            .into());
        }
        records += n;
    }
    Ok(Figures {
        push_ms,
        syncs_per_s,
        pull_per_s: records as f64 / t.elapsed().as_secs_f64(),
    })
}

fn main() -> Res<()> {
    let Ok(url) = std::env::var("YIBIAO_TEST_PG") else {
        println!(
            "postgres bench skipped: YIBIAO_TEST_PG is not set (run under scripts/with-postgres.sh)"
        );
        return Ok(());
    };
    let env = BenchEnv::from_env()?;
    let phones = env_count("YIBIAO_BENCH_DEVICES", env.pick(6, 30))?;
    let base = run(None, 1, phones)?;
    println!(
        "{phones} phones × 10 households, real HTTP on loopback, each request to a random process"
    );
    println!(
        "{:<22} {:>12} {:>10} {:>18} {:>10} {:>16} {:>10}",
        "backend",
        "fleet push",
        "vs SQLite",
        "no-change syncs/s",
        "vs SQLite",
        "dept pull rec/s",
        "vs SQLite"
    );
    let line = |name: String, f: &Figures| {
        println!(
            "{:<22} {:>10}ms {:>10} {:>18.0} {:>10} {:>16.0} {:>10}",
            name,
            f.push_ms,
            ratio_text(f.push_ms as u64, base.push_ms as u64),
            f.syncs_per_s,
            ratio_text(f.syncs_per_s as u64, base.syncs_per_s as u64),
            f.pull_per_s,
            ratio_text(f.pull_per_s as u64, base.pull_per_s as u64)
        );
    };
    line("SQLite, 1 process".into(), &base);
    for processes in [1, 2, 3] {
        let db = fresh_schema(&url, &format!("bench{}_{processes}", std::process::id()))?;
        let f = run(Some(&db), processes, phones)?;
        line(format!("PostgreSQL, {processes} proc"), &f);
    }
    Ok(())
}
