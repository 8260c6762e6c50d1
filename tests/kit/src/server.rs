//! The real server binary as a child process: started on a free loopback port (or a
//! given address), ready once it printed its address, killed with SIGKILL when dropped.
//! Accounts are made through the binary's own command line.
//!
//! The kit does not depend on the server crate: callers pass the binary's path, which
//! cargo gives a test or bench of the package that builds it
//! (`env!("CARGO_BIN_EXE_server_under_test")` in `yibiao-tests`,
//! `env!("CARGO_BIN_EXE_yibiao-server")` in the server's own tests).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::Result;

/// How long a starting server may take to print its address.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// `host:port` to listen on; port 0 takes any free port.
    pub listen: String,
    /// A config file to pass with `--config`.
    pub config: Option<PathBuf>,
    /// Write a config file into the data directory that turns the per-token rate limit
    /// off (`rate_per_minute = 0`), for benches that sync far more often than a phone.
    pub no_rate_limit: bool,
    /// Append the server's log (its stderr, at `RUST_LOG=warn`) to this file instead of
    /// the test's own stderr; [`ServerProcess::log`] reads it back.
    pub log_file: Option<PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            config: None,
            no_rate_limit: false,
            log_file: None,
        }
    }
}

/// A running server process; killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    binary: PathBuf,
    data_dir: PathBuf,
    options: ServerOptions,
}

impl ServerProcess {
    /// Starts `binary serve` on `data_dir` (created when missing) and waits until it
    /// listens.
    pub fn start(binary: &Path, data_dir: &Path, options: ServerOptions) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let mut options = options;
        if options.no_rate_limit && options.config.is_none() {
            let config = data_dir.join("bench-server.toml");
            std::fs::write(&config, "rate_per_minute = 0\n")?;
            options.config = Some(config);
        }
        let mut cmd = Command::new(binary);
        if let Some(config) = &options.config {
            cmd.arg("--config").arg(config);
        }
        let stderr = match &options.log_file {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => Stdio::inherit(),
        };
        let mut child = cmd
            .args(["serve", "--listen", &options.listen])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the server's stdout is not piped".into());
        };
        // From here on the guard owns the child: an early return kills it.
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            binary: binary.to_owned(),
            data_dir: data_dir.to_owned(),
            options,
        };
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if Instant::now() > deadline {
                return Err("the server did not report its address in 30 s".into());
            }
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("listening on http://") {
                        server.addr = rest.trim().parse()?;
                        break;
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => {
                    let status = server.child.wait()?;
                    return Err(format!("the server exited before it listened: {status}").into());
                }
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(server)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What the server logged so far, when started with a `log_file` (else empty).
    pub fn log(&self) -> Result<String> {
        match &self.options.log_file {
            Some(path) => Ok(std::fs::read_to_string(path)?),
            None => Ok(String::new()),
        }
    }

    /// Kills the process with SIGKILL (no clean shutdown) and waits for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks it to stop with SIGTERM (a clean shutdown, as systemd does) and waits up to
    /// 30 s for it to exit; true when it exited successfully.
    pub fn terminate(&mut self) -> Result<bool> {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !sent.success() {
            return Err("kill -TERM failed".into());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            if std::time::Instant::now() > deadline {
                return Err("the server did not stop within 30 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it with SIGKILL and starts it again on the same address and data, retrying
    /// while the port is still held.
    pub fn restart_after_kill9(&mut self) -> Result<()> {
        self.kill9();
        let options = ServerOptions {
            listen: self.addr.to_string(),
            ..self.options.clone()
        };
        let mut last = None;
        for _ in 0..50 {
            match Self::start(&self.binary, &self.data_dir, options.clone()) {
                Ok(next) => {
                    *self = next;
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        Err(last.unwrap_or_else(|| "restart failed".into()))
    }

    /// Registers a device of `cadre` through the CLI: in `village`, or township-wide for
    /// `None`; returns its token.
    pub fn add_device(&self, name: &str, cadre: &str, village: Option<&str>) -> Result<String> {
        add_device(&self.binary, &self.data_dir, name, cadre, village)
    }

    /// Issues a token of `department` through the CLI; returns it.
    pub fn department_token(&self, department: &str, name: &str) -> Result<String> {
        department_token(&self.binary, &self.data_dir, department, name)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs the server's CLI on `data_dir` with `args`; fails on a non-zero exit.
pub fn cli(binary: &Path, data_dir: &Path, args: &[&str]) -> Result<Output> {
    let out = Command::new(binary)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(out)
}

/// The token a CLI command printed (`token (shown once): …`).
fn printed_token(out: &Output, what: &str) -> Result<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("token (shown once): ").map(str::to_owned))
        .ok_or_else(|| format!("`{what}` printed no token").into())
}

/// Registers a device of `cadre` with the CLI on `data_dir` (the server may be stopped or
/// running): in `village`, or township-wide for `None`; returns its token. The server
/// accepts changes on it by `cadre` and the cadres registered in its village.
pub fn add_device(
    binary: &Path,
    data_dir: &Path,
    name: &str,
    cadre: &str,
    village: Option<&str>,
) -> Result<String> {
    let mut args = vec!["device", "add", "--name", name, "--cadre", cadre];
    match village {
        Some(v) => args.extend(["--village", v]),
        None => args.push("--township"),
    }
    printed_token(&cli(binary, data_dir, &args)?, "device add")
}

/// Issues a token of `department` with the CLI on `data_dir`; returns it.
pub fn department_token(
    binary: &Path,
    data_dir: &Path,
    department: &str,
    name: &str,
) -> Result<String> {
    let out = cli(
        binary,
        data_dir,
        &["department", "token", department, "--name", name],
    )?;
    printed_token(&out, "department token")
}
