//! A fault-injecting TCP proxy for tests and benchmarks, standing in for `netem` (which
//! this kernel lacks).
//!
//! [`Proxy::start`] listens on `127.0.0.1:0` and forwards every accepted connection to
//! one upstream address, shaping it after a [`LinkProfile`] (the weak-link profiles of
//! the product brief: `mountain-2g`, `edge`, `flaky-4g`, `loopback`):
//!
//! - **Latency**: every chunk read from one side is written to the other side no earlier
//!   than `latency` after it was read (a delay queue per direction, so latency does not
//!   add up over several reads).
//! - **Bandwidth**: each direction of each connection is paced to its cap.
//! - **Cuts**: a share of connections is cut at a random point inside the first request
//!   (the server never receives all of it) or inside the first response (the server has
//!   received and processed the request, the client sees a truncated response). Both
//!   sockets are then shut down in both directions.
//! - **Duplicates**: a share of HTTP/1.1 requests is first sent on an extra upstream
//!   connection (whose response is read and discarded), then forwarded normally, so the
//!   server processes it twice and the client sees the second answer.
//!
//! Random choices come from the test kit's generator, one stream per connection from the
//! proxy's seed and the connection's number, so a sequence of sequential connections
//! meets the same faults on every run.
//!
//! The proxy understands just enough HTTP/1.1 for the cuts and duplicates (heads ending
//! in `\r\n\r\n`, `Content-Length` bodies; chunked responses are recognised). Anything
//! it cannot frame is passed through as plain bytes.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use yibiao_testkit::rng::Rng;

/// How long the proxy waits for the upstream to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Read and write timeout on the extra upstream connection of a duplicated request.
const DUPLICATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest HTTP head the proxy tries to parse; bigger ones are passed through unframed.
const MAX_HEAD: usize = 64 * 1024;

/// Size of one read from a socket.
const READ_CHUNK: usize = 16 * 1024;

/// Chunks that may wait in one direction's delay queue before the reader blocks.
const QUEUE_CHUNKS: usize = 64;

/// Salt separating a connection's duplicate decisions from its cut decision.
const DUPLICATE_SALT: u64 = 0xD0B1_E5A1_7000_0001;

/// The shape of a simulated link between a phone and the server.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkProfile {
    /// Name used in tests and benchmarks so figures stay comparable.
    pub name: &'static str,
    /// One-way latency, applied in each direction.
    pub latency: Duration,
    /// Bits per second from the server to the client; `None` is unlimited.
    pub down_bps: Option<u64>,
    /// Bits per second from the client to the server; `None` is unlimited.
    pub up_bps: Option<u64>,
    /// Share of connections (0.0..=1.0) cut in the middle of the first request or response.
    pub cut_probability: f64,
    /// Share of HTTP requests (0.0..=1.0) sent to the upstream twice.
    pub duplicate_probability: f64,
}

impl LinkProfile {
    /// Names of the profiles of the product brief, as [`LinkProfile::by_name`] knows them.
    pub const NAMES: [&'static str; 4] = ["mountain-2g", "edge", "flaky-4g", "loopback"];

    /// A phone in a mountain village: 500 ms, 40 / 20 kbit/s, 5% of connections cut.
    pub fn mountain_2g() -> Self {
        Self {
            name: "mountain-2g",
            latency: Duration::from_millis(500),
            down_bps: Some(40_000),
            up_bps: Some(20_000),
            cut_probability: 0.05,
            duplicate_probability: 0.0,
        }
    }

    /// EDGE coverage: 250 ms, 100 / 50 kbit/s, 1% of connections cut.
    pub fn edge() -> Self {
        Self {
            name: "edge",
            latency: Duration::from_millis(250),
            down_bps: Some(100_000),
            up_bps: Some(50_000),
            cut_probability: 0.01,
            duplicate_probability: 0.0,
        }
    }

    /// A 4G link that keeps dropping: 50 ms, 2,000 / 1,000 kbit/s, 20% of connections cut.
    pub fn flaky_4g() -> Self {
        Self {
            name: "flaky-4g",
            latency: Duration::from_millis(50),
            down_bps: Some(2_000_000),
            up_bps: Some(1_000_000),
            cut_probability: 0.20,
            duplicate_probability: 0.0,
        }
    }

    /// No shaping at all: no latency, unlimited bandwidth, no faults.
    pub fn loopback() -> Self {
        Self {
            name: "loopback",
            latency: Duration::ZERO,
            down_bps: None,
            up_bps: None,
            cut_probability: 0.0,
            duplicate_probability: 0.0,
        }
    }

    /// The profile of the product brief with this name (see [`LinkProfile::NAMES`]).
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "mountain-2g" => Some(Self::mountain_2g()),
            "edge" => Some(Self::edge()),
            "flaky-4g" => Some(Self::flaky_4g()),
            "loopback" => Some(Self::loopback()),
            _ => None,
        }
    }
}

impl Default for LinkProfile {
    fn default() -> Self {
        Self::loopback()
    }
}

/// Counters of a [`Proxy`] since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted and forwarded to the upstream.
    pub connections: u64,
    /// Connections accepted and closed at once because the link was down.
    pub refused: u64,
    /// Connections cut on purpose in the middle of a request or response.
    pub cuts: u64,
    /// HTTP requests sent to the upstream twice.
    pub duplicates: u64,
    /// Bytes the proxy read from clients.
    pub bytes_up: u64,
    /// Bytes the proxy delivered to clients.
    pub bytes_down: u64,
}

/// A running fault-injecting proxy; dropping it stops the listener and cuts every open
/// connection.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` and forwards connections to `upstream` through `profile`;
    /// `seed` fixes every random choice.
    pub fn start(upstream: SocketAddr, profile: LinkProfile, seed: u64) -> io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            seed,
            profile: Mutex::new(profile),
            down: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            counters: Counters::default(),
            live: Mutex::new(HashMap::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("proxy-accept-{}", addr.port()))
                .spawn(move || accept_loop(&listener, &shared))?
        };
        Ok(Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL clients use, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Counters since the proxy started.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            connections: c.connections.load(Ordering::SeqCst),
            refused: c.refused.load(Ordering::SeqCst),
            cuts: c.cuts.load(Ordering::SeqCst),
            duplicates: c.duplicates.load(Ordering::SeqCst),
            bytes_up: c.bytes_up.load(Ordering::SeqCst),
            bytes_down: c.bytes_down.load(Ordering::SeqCst),
        }
    }

    /// The profile new connections get.
    pub fn profile(&self) -> LinkProfile {
        self.shared.profile().clone()
    }

    /// Replaces the profile; applies to connections accepted from now on.
    pub fn set_profile(&self, profile: LinkProfile) {
        *self.shared.profile() = profile;
    }

    /// Takes the link down (`true`: new connections are accepted and closed at once, open
    /// ones are cut) or brings it back up (`false`).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
        if down {
            self.shared.abort_all();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.abort_all();
        // Unblock `accept`; join only if that worked, so a failure cannot hang the drop.
        let woke = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT).is_ok();
        match self.acceptor.take() {
            Some(acceptor) if woke => {
                let _ = acceptor.join();
            }
            _ => {}
        }
    }
}

/// State shared by the proxy handle, the acceptor and the connection threads.
#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    seed: u64,
    profile: Mutex<LinkProfile>,
    down: AtomicBool,
    stop: AtomicBool,
    next_id: AtomicU64,
    counters: Counters,
    /// Open connections by number, so they can be cut from outside.
    live: Mutex<HashMap<u64, Arc<Link>>>,
}

impl Shared {
    fn profile(&self) -> MutexGuard<'_, LinkProfile> {
        self.profile.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn live(&self) -> MutexGuard<'_, HashMap<u64, Arc<Link>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn abort_all(&self) {
        for link in self.live().values() {
            link.abort();
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    refused: AtomicU64,
    cuts: AtomicU64,
    duplicates: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

/// Both sockets of one proxied connection, kept to cut it.
#[derive(Debug)]
struct Link {
    client: TcpStream,
    upstream: TcpStream,
}

impl Link {
    /// Shuts both sockets down in both directions; blocked reads and later writes fail.
    fn abort(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let client = match stream {
            Ok(client) => client,
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if shared.down.load(Ordering::SeqCst) {
            shared.counters.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        shared.counters.connections.fetch_add(1, Ordering::SeqCst);
        let conn_shared = Arc::clone(shared);
        // If the spawn fails the closure, and with it the client socket, is dropped.
        let _ = thread::Builder::new()
            .name(format!("proxy-conn-{id}"))
            .spawn(move || serve(&conn_shared, client, id));
    }
}

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Client to server.
    Up,
    /// Server to client.
    Down,
}

/// Where, if anywhere, a connection is cut: the direction and the relative position
/// (0.0..1.0) inside the first message of that direction.
#[derive(Debug, Clone, Copy)]
enum CutPlan {
    None,
    Up(f64),
    Down(f64),
}

/// Runs one proxied connection until both directions are done.
fn serve(shared: &Arc<Shared>, client: TcpStream, id: u64) {
    let profile = shared.profile().clone();
    let Ok(upstream) = TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let clones = (|| {
        Ok::<_, io::Error>((
            client.try_clone()?,
            client.try_clone()?,
            upstream.try_clone()?,
            upstream.try_clone()?,
        ))
    })();
    let Ok((client_read, client_write, upstream_read, upstream_write)) = clones else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        return;
    };
    let link = Arc::new(Link { client, upstream });
    shared.live().insert(id, Arc::clone(&link));
    if shared.down.load(Ordering::SeqCst) || shared.stop.load(Ordering::SeqCst) {
        link.abort();
    }

    let mut rng = Rng::stream(shared.seed, id);
    let plan = if rng.happens(profile.cut_probability) {
        if rng.happens(0.5) {
            CutPlan::Up(rng.unit())
        } else {
            CutPlan::Down(rng.unit())
        }
    } else {
        CutPlan::None
    };
    let (up_cut, down_cut) = match plan {
        CutPlan::None => (CutState::None, CutState::None),
        CutPlan::Up(f) => (CutState::Pending(f), CutState::None),
        CutPlan::Down(f) => (CutState::None, CutState::Pending(f)),
    };

    let (up_tx, up_rx) = mpsc::sync_channel(QUEUE_CHUNKS);
    let (down_tx, down_rx) = mpsc::sync_channel(QUEUE_CHUNKS);
    let mut handles = Vec::with_capacity(3);
    let mut spawned_all = true;
    {
        let (shared, link) = (Arc::clone(shared), Arc::clone(&link));
        let bps = profile.up_bps;
        match thread::Builder::new()
            .name(format!("proxy-{id}-up-w"))
            .spawn(move || run_writer(&up_rx, upstream_write, bps, &link, &shared, Dir::Up))
        {
            Ok(h) => handles.push(h),
            Err(_) => spawned_all = false,
        }
    }
    {
        let (shared, link) = (Arc::clone(shared), Arc::clone(&link));
        let bps = profile.down_bps;
        match thread::Builder::new()
            .name(format!("proxy-{id}-down-w"))
            .spawn(move || run_writer(&down_rx, client_write, bps, &link, &shared, Dir::Down))
        {
            Ok(h) => handles.push(h),
            Err(_) => spawned_all = false,
        }
    }
    {
        let emitter = Emitter::new(down_tx, profile.latency, down_cut);
        match thread::Builder::new()
            .name(format!("proxy-{id}-down-r"))
            .spawn(move || run_down_reader(upstream_read, emitter))
        {
            Ok(h) => handles.push(h),
            Err(_) => spawned_all = false,
        }
    }
    if !spawned_all {
        link.abort();
    }

    let duplicates = Duplicates {
        upstream: shared.upstream,
        probability: profile.duplicate_probability,
        rng: Rng::stream(shared.seed ^ DUPLICATE_SALT, id),
    };
    let emitter = Emitter::new(up_tx, profile.latency, up_cut);
    run_up_reader(client_read, emitter, duplicates, shared);

    for handle in handles {
        let _ = handle.join();
    }
    shared.live().remove(&id);
}

/// One entry of a delay queue.
#[derive(Debug)]
enum Item {
    /// Bytes to deliver.
    Data(Vec<u8>),
    /// The source closed cleanly: half-close the destination.
    Eof,
    /// The source failed: cut the connection (not counted as a cut).
    Abort,
    /// The planned cut point: cut the connection and count it.
    Cut,
}

/// Cut point of one direction, as an absolute offset in that direction's byte stream.
#[derive(Debug, Clone, Copy)]
enum CutState {
    None,
    /// Not placed yet: the relative position inside the first message.
    Pending(f64),
    /// Deliver this many bytes, then cut.
    At(u64),
    /// Already cut.
    Done,
}

/// The reading end of a direction: stamps chunks with their delivery time and applies
/// the cut point.
struct Emitter {
    tx: SyncSender<(Instant, Item)>,
    latency: Duration,
    sent: u64,
    cut: CutState,
}

impl Emitter {
    fn new(tx: SyncSender<(Instant, Item)>, latency: Duration, cut: CutState) -> Self {
        Self {
            tx,
            latency,
            sent: 0,
            cut,
        }
    }

    fn push(&self, item: Item) -> bool {
        self.tx.send((Instant::now() + self.latency, item)).is_ok()
    }

    /// Queues `data`, truncated at the cut point; false once this direction is finished.
    fn emit(&mut self, data: &[u8]) -> bool {
        if data.is_empty() {
            return true;
        }
        let len = data.len() as u64;
        match self.cut {
            CutState::At(at) if self.sent + len >= at => {
                let keep = usize::try_from(at.saturating_sub(self.sent)).unwrap_or(data.len());
                if keep > 0 && !self.push(Item::Data(data[..keep].to_vec())) {
                    return false;
                }
                self.sent = at;
                self.cut = CutState::Done;
                let _ = self.push(Item::Cut);
                return false;
            }
            _ => {}
        }
        self.sent += len;
        self.push(Item::Data(data.to_vec()))
    }

    fn pending_cut(&self) -> Option<f64> {
        match self.cut {
            CutState::Pending(f) => Some(f),
            _ => None,
        }
    }

    /// Places a pending cut at `at` bytes from the start of this direction's stream.
    fn place_cut(&mut self, at: u64) {
        self.cut = CutState::At(at.max(self.sent));
    }
}

/// Picks a point in `lo..=hi` at relative position `f` (0.0..1.0).
fn pick(f: f64, lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        return lo;
    }
    let span = (hi - lo + 1) as f64;
    (lo + (f * span) as u64).min(hi)
}

/// Per-request duplicate decisions of one connection.
struct Duplicates {
    upstream: SocketAddr,
    probability: f64,
    rng: Rng,
}

/// Reads the client side: counts bytes, places an up cut inside the first request and,
/// when duplicates are on, frames requests so each can be sent twice.
fn run_up_reader(
    mut client: TcpStream,
    mut emitter: Emitter,
    mut duplicates: Duplicates,
    shared: &Shared,
) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut pending: Vec<u8> = Vec::new();
    // Whole requests are buffered only while duplicates are on and framing works.
    let mut framing = duplicates.probability > 0.0;
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) => {
                if emitter.emit(&pending) {
                    let _ = emitter.push(Item::Eof);
                }
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                let _ = emitter.push(Item::Abort);
                return;
            }
        };
        shared
            .counters
            .bytes_up
            .fetch_add(n as u64, Ordering::SeqCst);
        pending.extend_from_slice(&buf[..n]);

        if let Some(f) = emitter.pending_cut() {
            // The first request starts at offset 0 of the stream; nothing was sent yet.
            match parse_head(&pending) {
                Parsed::Complete(head) => {
                    let total = head.len as u64 + head.content_length.unwrap_or(0);
                    emitter.place_cut(pick(f, 1, total.saturating_sub(1)));
                }
                Parsed::Invalid => {
                    emitter.place_cut(pick(f, 1, (pending.len() as u64).saturating_sub(1)));
                }
                Parsed::Incomplete => {}
            }
        }

        while framing {
            match parse_head(&pending) {
                Parsed::Complete(head) if !head.chunked && !head.expect_continue => {
                    let body = usize::try_from(head.content_length.unwrap_or(0)).ok();
                    let Some(total) = body.and_then(|b| b.checked_add(head.len)) else {
                        framing = false;
                        break;
                    };
                    if pending.len() < total {
                        break;
                    }
                    let request: Vec<u8> = pending.drain(..total).collect();
                    if duplicates.rng.happens(duplicates.probability) {
                        shared.counters.duplicates.fetch_add(1, Ordering::SeqCst);
                        let _ = send_duplicate(duplicates.upstream, &request, head.head_method);
                    }
                    if !emitter.emit(&request) {
                        return;
                    }
                }
                Parsed::Incomplete => break,
                // Not a request the proxy can frame: pass the rest through as bytes.
                Parsed::Complete(_) | Parsed::Invalid => framing = false,
            }
        }
        if !framing && emitter.pending_cut().is_none() {
            if !emitter.emit(&pending) {
                return;
            }
            pending.clear();
        }
    }
}

/// Reads the upstream side, placing a down cut inside the first response.
fn run_down_reader(mut upstream: TcpStream, mut emitter: Emitter) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match upstream.read(&mut buf) {
            Ok(0) => {
                if emitter.emit(&pending) {
                    let _ = emitter.push(Item::Eof);
                }
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                let _ = emitter.push(Item::Abort);
                return;
            }
        };
        pending.extend_from_slice(&buf[..n]);
        if let Some(f) = emitter.pending_cut() {
            match place_down_cut(f, &pending) {
                Some(at) => emitter.place_cut(at),
                None => continue,
            }
        }
        if !emitter.emit(&pending) {
            return;
        }
        pending.clear();
    }
}

/// The cut offset inside the first (non-interim) response in `buf`, or `None` while its
/// head is incomplete.
fn place_down_cut(f: f64, buf: &[u8]) -> Option<u64> {
    let mut start = 0usize;
    loop {
        match parse_head(&buf[start..]) {
            Parsed::Incomplete => return None,
            Parsed::Invalid => return Some(pick(f, 1, (buf.len() as u64).saturating_sub(1))),
            Parsed::Complete(head) => {
                let head_end = (start + head.len) as u64;
                match head.status {
                    // Interim response (100 Continue, ...): cut in the final one.
                    Some(s) if (100..200).contains(&s) && s != 101 => {
                        start += head.len;
                        continue;
                    }
                    Some(204 | 304) => return Some(pick(f, 1, head_end - 1)),
                    _ => {}
                }
                let at = match head.content_length {
                    Some(0) => pick(f, 1, head_end - 1),
                    Some(1) => head_end,
                    Some(n) => pick(f, head_end + 1, head_end + n - 1),
                    None => {
                        // Length unknown (chunked, until close): cut inside what arrived.
                        let avail = buf.len() as u64 - head_end;
                        if avail > 1 {
                            pick(f, head_end + 1, head_end + avail - 1)
                        } else {
                            head_end
                        }
                    }
                };
                return Some(at);
            }
        }
    }
}

/// Delivers one direction's delay queue to `dst`, paced to `bps`.
fn run_writer(
    rx: &Receiver<(Instant, Item)>,
    mut dst: TcpStream,
    bps: Option<u64>,
    link: &Link,
    shared: &Shared,
    dir: Dir,
) {
    let mut pacer = Pacer::new(bps);
    let delivered = (dir == Dir::Down).then_some(&shared.counters.bytes_down);
    while let Ok((ready, item)) = rx.recv() {
        sleep_until(ready);
        match item {
            Item::Data(bytes) => {
                if pacer.write(&mut dst, &bytes, delivered).is_err() {
                    link.abort();
                    return;
                }
            }
            Item::Eof => {
                let _ = dst.shutdown(Shutdown::Write);
                return;
            }
            Item::Abort => {
                link.abort();
                return;
            }
            Item::Cut => {
                shared.counters.cuts.fetch_add(1, Ordering::SeqCst);
                link.abort();
                return;
            }
        }
    }
}

fn sleep_until(when: Instant) {
    let now = Instant::now();
    if when > now {
        thread::sleep(when - now);
    }
}

/// Paces writes to a bit rate, without letting idle time build up a burst.
struct Pacer {
    bps: Option<u64>,
    next: Instant,
}

impl Pacer {
    fn new(bps: Option<u64>) -> Self {
        Self {
            bps: bps.map(|b| b.max(1)),
            next: Instant::now(),
        }
    }

    fn write(
        &mut self,
        dst: &mut TcpStream,
        data: &[u8],
        delivered: Option<&AtomicU64>,
    ) -> io::Result<()> {
        let Some(bps) = self.bps else {
            return write_counted(dst, data, delivered);
        };
        // Slices worth about 20 ms of the link, so pacing stays smooth.
        let slice = usize::try_from(bps / 8 / 50).unwrap_or(usize::MAX).max(1);
        for piece in data.chunks(slice) {
            let now = Instant::now();
            if self.next > now {
                thread::sleep(self.next - now);
            } else {
                self.next = now;
            }
            write_counted(dst, piece, delivered)?;
            self.next += Duration::from_secs_f64(piece.len() as f64 * 8.0 / bps as f64);
        }
        Ok(())
    }
}

/// Writes `data`, counting it first so a reader that already got the bytes never sees a
/// smaller count; a failed write takes its count back.
fn write_counted(dst: &mut TcpStream, data: &[u8], counter: Option<&AtomicU64>) -> io::Result<()> {
    let len = data.len() as u64;
    if let Some(counter) = counter {
        counter.fetch_add(len, Ordering::SeqCst);
    }
    let result = dst.write_all(data);
    if let (Err(_), Some(counter)) = (&result, counter) {
        counter.fetch_sub(len, Ordering::SeqCst);
    }
    result
}

/// Sends `request` on a fresh upstream connection and reads and discards the response.
fn send_duplicate(upstream: SocketAddr, request: &[u8], head_request: bool) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&upstream, CONNECT_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(DUPLICATE_TIMEOUT))?;
    stream.set_write_timeout(Some(DUPLICATE_TIMEOUT))?;
    stream.write_all(request)?;
    let result = discard_response(&mut BufReader::new(&stream), head_request);
    let _ = stream.shutdown(Shutdown::Both);
    result
}

/// Reads one whole HTTP/1.1 response (after any interim ones) and throws it away.
fn discard_response(reader: &mut impl BufRead, head_request: bool) -> io::Result<()> {
    let head = loop {
        let mut raw = Vec::new();
        loop {
            let before = raw.len();
            if reader.read_until(b'\n', &mut raw)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if raw[before..] == *b"\r\n" || raw.len() > MAX_HEAD {
                break;
            }
        }
        let head = match parse_head(&raw) {
            Parsed::Complete(head) => head,
            Parsed::Incomplete | Parsed::Invalid => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad response head",
                ));
            }
        };
        match head.status {
            Some(s) if (100..200).contains(&s) && s != 101 => continue,
            _ => break head,
        }
    };
    if head_request || matches!(head.status, Some(204 | 304)) {
        return Ok(());
    }
    if head.chunked {
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let size = line.trim().split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                        return Ok(());
                    }
                }
            }
            skip_exact(reader, size + 2)?;
        }
    }
    match head.content_length {
        Some(n) => skip_exact(reader, n),
        None => io::copy(reader, &mut io::sink()).map(|_| ()),
    }
}

fn skip_exact(reader: &mut impl Read, n: u64) -> io::Result<()> {
    let copied = io::copy(&mut reader.take(n), &mut io::sink())?;
    if copied < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// What the proxy needs to know of an HTTP/1.1 head.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    /// Bytes up to and including the empty line.
    len: usize,
    /// Status code, for a response.
    status: Option<u16>,
    /// Whether this is a `HEAD` request.
    head_method: bool,
    content_length: Option<u64>,
    chunked: bool,
    expect_continue: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    Incomplete,
    Complete(Head),
    Invalid,
}

/// Parses the request or response head at the start of `buf`.
fn parse_head(buf: &[u8]) -> Parsed {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Parsed::Invalid
        } else {
            Parsed::Incomplete
        };
    };
    if end > MAX_HEAD {
        return Parsed::Invalid;
    }
    let Ok(text) = std::str::from_utf8(&buf[..end]) else {
        return Parsed::Invalid;
    };
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut head = Head {
        len: end + 4,
        status: None,
        head_method: false,
        content_length: None,
        chunked: false,
        expect_continue: false,
    };
    if first.starts_with("HTTP/") {
        match first.split(' ').nth(1).map(str::parse::<u16>) {
            Some(Ok(status)) => head.status = Some(status),
            _ => return Parsed::Invalid,
        }
    } else {
        let parts: Vec<&str> = first.split(' ').collect();
        if parts.len() != 3 || !parts[2].starts_with("HTTP/1.") {
            return Parsed::Invalid;
        }
        head.head_method = parts[0] == "HEAD";
    }
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Parsed::Invalid;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            match value.parse() {
                Ok(n) => head.content_length = Some(n),
                Err(_) => return Parsed::Invalid,
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
    }
    Parsed::Complete(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_and_response_heads() {
        let req = b"POST /v1/sync HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\n\r\nhello";
        let Parsed::Complete(head) = parse_head(req) else {
            panic!("request head not parsed");
        };
        assert_eq!(head.len, req.len() - 5);
        assert_eq!(head.content_length, Some(5));
        assert_eq!(head.status, None);

        let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let Parsed::Complete(head) = parse_head(resp) else {
            panic!("response head not parsed");
        };
        assert_eq!(head.status, Some(200));
        assert!(head.chunked);

        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n"), Parsed::Incomplete);
        assert_eq!(parse_head(b"garbage\r\n\r\n"), Parsed::Invalid);
    }

    #[test]
    fn down_cut_lands_inside_the_body() {
        let resp = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        let head_end = resp.len() as u64;
        for f in [0.0, 0.3, 0.999_999] {
            let at = place_down_cut(f, resp).expect("head is complete");
            assert!(at > head_end && at < head_end + 10, "{at}");
        }
    }

    #[test]
    fn discards_a_chunked_response() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nNEXT";
        let mut reader = BufReader::new(&raw[..]);
        discard_response(&mut reader, false).expect("chunked response");
        let mut rest = String::new();
        reader.read_to_string(&mut rest).expect("rest");
        assert_eq!(rest, "NEXT");
    }
}
