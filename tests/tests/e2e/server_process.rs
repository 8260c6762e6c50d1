//! A real `yibiao-server` process for end-to-end tests: started on a loopback port,
//! devices registered through its own CLI, killed with SIGKILL and restarted at will.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of the server binary built for this test run.
pub(crate) fn server_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_server_under_test"))
}

/// A running server.
pub(crate) struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    data_dir: PathBuf,
}

impl ServerProcess {
    /// Starts a server on `data_dir`, on `listen` (use port 0 for any free port).
    pub(crate) fn start(data_dir: &Path, listen: &str) -> std::io::Result<Self> {
        let mut child = Command::new(server_binary())
            .args(["serve", "--listen", listen])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(std::io::Error::other(
                    "server did not report its address in 30 s",
                ));
            }
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("listening on http://") {
                        break rest.trim().parse().map_err(std::io::Error::other)?;
                    }
                }
                Some(Err(e)) => return Err(e),
                None => {
                    let status = child.wait()?;
                    return Err(std::io::Error::other(format!(
                        "server exited before listening: {status}"
                    )));
                }
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            child,
            addr,
            data_dir: data_dir.to_owned(),
        })
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills the process with SIGKILL (no clean shutdown) and waits for it.
    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills it with SIGKILL and starts it again on the same address and data.
    pub(crate) fn restart_after_kill9(&mut self) -> std::io::Result<()> {
        self.kill9();
        let mut last = None;
        for _ in 0..50 {
            match Self::start(&self.data_dir, &self.addr.to_string()) {
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
        Err(last.unwrap_or_else(|| std::io::Error::other("restart failed")))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registers a device through the server's CLI; returns its token.
pub(crate) fn add_device(
    data_dir: &Path,
    name: &str,
    village: Option<&str>,
) -> std::io::Result<String> {
    let mut cmd = Command::new(server_binary());
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(["device", "add", "--name", name]);
    match village {
        Some(v) => cmd.args(["--village", v]),
        None => cmd.arg("--township"),
    };
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("token (shown once): ").map(str::to_owned))
        .ok_or_else(|| std::io::Error::other("no token printed"))
}
