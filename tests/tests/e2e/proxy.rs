//! The fault-injecting proxy ([`yibiao_tests::proxy`]) against a tiny HTTP/1.1 server
//! written here with `std::net`: bytes pass unchanged, latency and bandwidth hold as
//! lower bounds, cuts and duplicates happen as configured, and the link can go down and
//! come back.
//!
//! The server echoes a POST body, or answers `/bytes/N` with N bytes, and counts every
//! request it received in full (before it answers). Each answer carries that count in
//! an `X-Count` header.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use yibiao_tests::proxy::{LinkProfile, Proxy};

/// How long the test client waits for the next byte before giving up.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The in-test HTTP server.
struct Server {
    addr: SocketAddr,
    /// Requests received in full.
    requests: Arc<AtomicU64>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind test server");
        let addr = listener.local_addr().expect("server address");
        let requests = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&requests);
        // The accept thread lives as long as the test process; that is fine for a test.
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let counter = Arc::clone(&counter);
                thread::spawn(move || {
                    let _ = serve_http(stream, &counter);
                });
            }
        });
        Server { addr, requests }
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Serves keep-alive requests on one connection until the client goes away.
fn serve_http(stream: TcpStream, counter: &AtomicU64) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            match line.split_once(':') {
                Some((name, value)) if name.eq_ignore_ascii_case("content-length") => {
                    content_length = value.trim().parse().unwrap_or(0);
                }
                _ => {}
            }
        }
        let mut body = vec![0u8; content_length];
        reader.read_exact(&mut body)?;
        let count = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let answer = match path.strip_prefix("/bytes/") {
            Some(n) => pattern(n.parse().unwrap_or(0)),
            None => body,
        };
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Count: {count}\r\n\r\n",
            answer.len()
        )
        .into_bytes();
        response.extend_from_slice(&answer);
        writer.write_all(&response)?;
    }
}

/// `n` bytes covering every byte value.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A response as the test client saw it.
#[derive(Debug)]
struct Response {
    count: u64,
    body: Vec<u8>,
}

/// A keep-alive HTTP/1.1 client on one connection.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    /// The bytes of a POST request to `path` with `body`.
    fn request_bytes(path: &str, body: &[u8]) -> Vec<u8> {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        request
    }

    fn post(&mut self, path: &str, body: &[u8]) -> io::Result<Response> {
        self.writer.write_all(&Self::request_bytes(path, body))?;
        self.read_response()
    }

    /// Reads one response; a truncated one is an `UnexpectedEof` error.
    fn read_response(&mut self) -> io::Result<Response> {
        let mut status = String::new();
        if self.reader.read_line(&mut status)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if !status.starts_with("HTTP/1.1 200 ") {
            return Err(io::Error::new(io::ErrorKind::InvalidData, status));
        }
        let (mut length, mut count) = (None, 0);
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 || !line.ends_with("\r\n") {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().ok();
                } else if name.eq_ignore_ascii_case("x-count") {
                    count = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let length = length.ok_or_else(|| io::Error::other("no content-length"))?;
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body)?;
        Ok(Response { count, body })
    }
}

/// One request on a fresh connection.
fn post_once(addr: SocketAddr, path: &str, body: &[u8]) -> io::Result<Response> {
    Client::connect(addr)?.post(path, body)
}

fn start(server: &Server, profile: LinkProfile, seed: u64) -> Proxy {
    Proxy::start(server.addr, profile, seed).expect("start proxy")
}

#[test]
fn named_link_profiles_carry_the_briefs_latency_bandwidth_and_cut_rates() {
    let m = LinkProfile::by_name("mountain-2g").expect("mountain-2g");
    assert_eq!(m.latency, Duration::from_millis(500));
    assert_eq!((m.down_bps, m.up_bps), (Some(40_000), Some(20_000)));
    assert_eq!(m.cut_probability, 0.05);
    let e = LinkProfile::by_name("edge").expect("edge");
    assert_eq!(e.latency, Duration::from_millis(250));
    assert_eq!((e.down_bps, e.up_bps), (Some(100_000), Some(50_000)));
    assert_eq!(e.cut_probability, 0.01);
    let f = LinkProfile::by_name("flaky-4g").expect("flaky-4g");
    assert_eq!(f.latency, Duration::from_millis(50));
    assert_eq!((f.down_bps, f.up_bps), (Some(2_000_000), Some(1_000_000)));
    assert_eq!(f.cut_probability, 0.20);
    let l = LinkProfile::by_name("loopback").expect("loopback");
    assert_eq!(l, LinkProfile::loopback());
    assert_eq!(
        (l.latency, l.down_bps, l.up_bps),
        (Duration::ZERO, None, None)
    );
    assert_eq!(l.cut_probability, 0.0);
    for name in LinkProfile::NAMES {
        let p = LinkProfile::by_name(name).expect("named profile");
        assert_eq!(p.name, name);
        assert_eq!(p.duplicate_probability, 0.0);
    }
    assert!(LinkProfile::by_name("5g").is_none());
}

#[test]
fn loopback_passes_bytes_unchanged_with_keep_alive() {
    let server = Server::start();
    let proxy = start(&server, LinkProfile::loopback(), 1);
    assert!(proxy.url().starts_with("http://127.0.0.1:"));
    assert_eq!(proxy.url(), format!("http://{}", proxy.addr()));

    let first = pattern(3_000);
    let second: Vec<u8> = (0..=255u8).rev().cycle().take(70_000).collect();
    let mut client = Client::connect(proxy.addr()).expect("connect");
    let a = client.post("/echo", &first).expect("first request");
    let b = client
        .post("/echo", &second)
        .expect("second request on the same connection");
    assert_eq!(a.body, first);
    assert_eq!(b.body, second);
    assert_eq!((a.count, b.count), (1, 2));
    assert_eq!(server.requests(), 2);

    let stats = proxy.stats();
    assert_eq!(stats.connections, 1);
    assert_eq!((stats.cuts, stats.duplicates, stats.refused), (0, 0, 0));
    let sent = Client::request_bytes("/echo", &first).len()
        + Client::request_bytes("/echo", &second).len();
    assert_eq!(stats.bytes_up, sent as u64);
    assert!(stats.bytes_down > (first.len() + second.len()) as u64);
}

#[test]
fn latency_delays_each_direction_without_adding_up() {
    let server = Server::start();
    let profile = LinkProfile {
        name: "latency-200ms",
        latency: Duration::from_millis(200),
        ..LinkProfile::loopback()
    };
    let proxy = start(&server, profile, 2);
    let mut client = Client::connect(proxy.addr()).expect("connect");

    let started = Instant::now();
    let response = client.post("/echo", b"ping").expect("round trip");
    let elapsed = started.elapsed();
    assert_eq!(response.body, b"ping");
    assert!(
        elapsed >= Duration::from_millis(400),
        "round trip took {elapsed:?}"
    );

    // A request written in 20 pieces 10 ms apart: a delay queue adds 200 ms once per
    // direction; sleeping 200 ms per read would add seconds.
    let request = Client::request_bytes("/echo", &pattern(2_000));
    let started = Instant::now();
    for piece in request.chunks(request.len().div_ceil(20)) {
        client.writer.write_all(piece).expect("write piece");
        thread::sleep(Duration::from_millis(10));
    }
    let response = client.read_response().expect("piecewise round trip");
    let elapsed = started.elapsed();
    assert_eq!(response.body, pattern(2_000));
    assert!(
        elapsed >= Duration::from_millis(400),
        "round trip took {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2_500),
        "latency adds up: {elapsed:?}"
    );
}

#[test]
fn bandwidth_cap_paces_the_download() {
    let server = Server::start();
    let profile = LinkProfile {
        name: "80kbit-down",
        down_bps: Some(80_000),
        ..LinkProfile::loopback()
    };
    let proxy = start(&server, profile, 3);
    let started = Instant::now();
    // 20 KB at 10 KB/s: about 2 s.
    let response = post_once(proxy.addr(), "/bytes/20000", b"").expect("download");
    let elapsed = started.elapsed();
    assert_eq!(response.body, pattern(20_000));
    assert!(
        elapsed >= Duration::from_millis(1_500),
        "20 KB took {elapsed:?}"
    );
}

/// Runs `n` cut exchanges on fresh connections; per exchange, whether the server had
/// received the whole request.
fn cut_exchanges(server: &Server, proxy: &Proxy, n: u64) -> Vec<bool> {
    let body = pattern(3_000);
    (0..n)
        .map(|i| {
            let before = server.requests();
            let outcome = post_once(proxy.addr(), "/echo", &body);
            assert!(outcome.is_err(), "exchange {i} was not cut: {outcome:?}");
            server.requests() > before
        })
        .collect()
}

#[test]
fn cuts_truncate_every_exchange_some_after_the_server_processed_it() {
    const N: u64 = 16;
    let server = Server::start();
    let profile = LinkProfile {
        name: "always-cut",
        cut_probability: 1.0,
        ..LinkProfile::loopback()
    };
    let proxy = start(&server, profile.clone(), 4);
    let processed = cut_exchanges(&server, &proxy, N);

    let stats = proxy.stats();
    assert_eq!(stats.connections, N);
    assert_eq!(stats.cuts, N);
    let mid_response = processed.iter().filter(|p| **p).count() as u64;
    assert_eq!(server.requests(), mid_response);
    assert!(
        mid_response > 0,
        "no cut landed after the server processed the request"
    );
    assert!(mid_response < N, "no cut landed inside a request");

    // The same seed cuts the same connections on the same side.
    let again = start(&server, profile, 4);
    assert_eq!(cut_exchanges(&server, &again, N), processed);
}

#[test]
fn duplicates_reach_the_server_twice_and_the_client_once() {
    let server = Server::start();
    let profile = LinkProfile {
        name: "always-duplicate",
        duplicate_probability: 1.0,
        ..LinkProfile::loopback()
    };
    let proxy = start(&server, profile, 5);

    let mut requests = 0u64;
    let mut client = Client::connect(proxy.addr()).expect("connect");
    for i in 0..3 {
        let body = pattern(500 + i * 1_000);
        let response = client.post("/echo", &body).expect("keep-alive request");
        requests += 1;
        assert_eq!(response.body, body);
        // The first copy was counted (and its answer discarded) before this one.
        assert_eq!(response.count, 2 * requests);
    }
    for _ in 0..2 {
        let response = post_once(proxy.addr(), "/bytes/40000", b"").expect("fresh connection");
        requests += 1;
        assert_eq!(response.body, pattern(40_000));
        assert_eq!(response.count, 2 * requests);
    }
    assert_eq!(server.requests(), 2 * requests);
    let stats = proxy.stats();
    assert_eq!(stats.duplicates, requests);
    assert_eq!(stats.cuts, 0);
}

#[test]
fn link_down_fails_connections_and_up_restores_them() {
    let server = Server::start();
    let proxy = start(&server, LinkProfile::loopback(), 6);

    let mut open = Client::connect(proxy.addr()).expect("connect");
    open.post("/echo", b"before").expect("link is up");

    proxy.set_down(true);
    assert!(
        open.post("/echo", b"cut").is_err(),
        "open connection survived the link going down"
    );
    assert!(
        post_once(proxy.addr(), "/echo", b"down").is_err(),
        "new connection worked while down"
    );
    assert!(proxy.stats().refused >= 1);

    proxy.set_down(false);
    let response = post_once(proxy.addr(), "/echo", b"after").expect("link is back up");
    assert_eq!(response.body, b"after");
    assert_eq!(server.requests(), 2);
}

#[test]
fn set_profile_applies_to_new_connections() {
    let server = Server::start();
    let proxy = start(&server, LinkProfile::loopback(), 7);
    let mut old = Client::connect(proxy.addr()).expect("connect");
    // One exchange first, so the proxy has surely picked this connection's profile.
    old.post("/echo", b"first").expect("loopback");
    proxy.set_profile(LinkProfile {
        cut_probability: 1.0,
        ..LinkProfile::loopback()
    });
    assert_eq!(proxy.profile().cut_probability, 1.0);
    old.post("/echo", b"old connection")
        .expect("old connection keeps its profile");
    assert!(post_once(proxy.addr(), "/echo", &pattern(1_000)).is_err());
}
