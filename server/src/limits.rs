//! The server's bounds. Per-token rate limits: a token bucket per key, refilled
//! continuously. A phone on a flaky link retries; a buggy app retries in a loop. The
//! bucket lets the first through and answers the loop with `429` and `Retry-After`, so one
//! device can never starve the 199 others of a small server.
//!
//! Beside them ([`Guards`]): requests in flight, open department streams per token and
//! overall, enrolment attempts per client address and per code; and the listener
//! ([`GuardedListener`]): a cap on connections and a deadline on writes that make no
//! progress, so a client that stops reading is dropped instead of holding buffers.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;

/// Token buckets keyed by token key.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_minute` requests per key per minute, with bursts up to `burst`. 0 disables.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            per_minute: f64::from(per_minute),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request for `key`; `Err(seconds)` to wait when the bucket is empty.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        if self.per_minute <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs() < 600);
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        let refill = now.duration_since(*at).as_secs_f64() * self.per_minute / 60.0;
        *tokens = (*tokens + refill).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) * 60.0 / self.per_minute).ceil() as u64)
        }
    }
}

/// The bounds a request meets before and beside the per-token buckets: requests in
/// flight, department streams (per token and overall) and enrolment attempts per client
/// address and per code. Built once from the configuration.
#[derive(Debug)]
pub struct Guards {
    /// Requests being handled at once, all routes together; past it: `503`.
    pub in_flight: Arc<Semaphore>,
    /// Open NDJSON/CSV streams.
    pub streams: Arc<StreamSlots>,
    /// Enrolment attempts per client address.
    pub enrol_per_address: RateLimiter,
    /// Enrolment attempts per (normalised) code.
    pub enrol_per_code: RateLimiter,
}

impl Guards {
    /// The guards of `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            streams: Arc::new(StreamSlots::new(
                config.max_streams_per_token,
                config.max_streams,
            )),
            enrol_per_address: RateLimiter::new(10, 10),
            enrol_per_code: RateLimiter::new(10, 5),
        }
    }
}

/// Open department streams, counted per token key and overall.
#[derive(Debug)]
pub struct StreamSlots {
    per_token: usize,
    total: usize,
    open: Mutex<(usize, HashMap<String, usize>)>,
}

/// Why no stream slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSlot {
    /// This token already has its streams open (`429`).
    Token(usize),
    /// The server has all its streams open (`503`).
    Server(usize),
}

impl StreamSlots {
    /// At most `per_token` streams per token and `total` in all (each at least 1).
    pub fn new(per_token: usize, total: usize) -> Self {
        Self {
            per_token: per_token.max(1),
            total: total.max(1),
            open: Mutex::new((0, HashMap::new())),
        }
    }

    /// A slot for one stream of `key`, given back when the permit drops.
    pub fn acquire(self: &Arc<Self>, key: &str) -> Result<StreamPermit, NoSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = open.1.get(key).copied().unwrap_or(0);
        if mine >= self.per_token {
            return Err(NoSlot::Token(self.per_token));
        }
        if open.0 >= self.total {
            return Err(NoSlot::Server(self.total));
        }
        open.0 += 1;
        *open.1.entry(key.to_owned()).or_default() += 1;
        Ok(StreamPermit {
            slots: self.clone(),
            key: key.to_owned(),
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).0
    }
}

/// One open stream; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamPermit {
    slots: Arc<StreamSlots>,
    key: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.1.remove(&self.key);
            }
        }
    }
}

/// The listener `serve` runs on: at most `max_connections` connections at once (accept
/// waits for one to close), each dropped when a write to the client makes no progress
/// for `write_timeout` (a client that stopped reading, e.g. a stalled stream).
#[derive(Debug)]
pub struct GuardedListener {
    inner: TcpListener,
    connections: Arc<Semaphore>,
    write_timeout: Duration,
}

impl GuardedListener {
    /// Guards `inner`.
    pub fn new(inner: TcpListener, max_connections: usize, write_timeout: Duration) -> Self {
        Self {
            inner,
            connections: Arc::new(Semaphore::new(max_connections.max(1))),
            write_timeout,
        }
    }
}

/// The client address of a connection accepted by [`GuardedListener`], for
/// `into_make_service_with_connect_info::<ClientAddr>()`.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, GuardedListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, GuardedListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl axum::serve::Listener for GuardedListener {
    type Io = StallGuard<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so this always holds a permit.
        let permit = self.connections.clone().acquire_owned().await.ok();
        loop {
            match self.inner.accept().await {
                Ok((io, addr)) => {
                    let _ = io.set_nodelay(true);
                    return (StallGuard::new(io, self.write_timeout, permit), addr);
                }
                Err(e) => {
                    // As axum does: out of file descriptors and the like pass; wait a little.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An I/O stream whose writes fail with `TimedOut` once they made no progress for a
/// while, so the connection closes and everything behind it (a stream's producer, its
/// buffers) is dropped.
#[derive(Debug)]
pub struct StallGuard<T> {
    inner: T,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Fires when nothing was read or written for `idle`: a connection cap must not be
    /// a lever for clients that open connections and say nothing.
    idle: Pin<Box<tokio::time::Sleep>>,
    idle_for: Duration,
    _permit: Option<OwnedSemaphorePermit>,
}

/// A connection that neither read nor wrote a byte this long is closed: twice the write
/// deadline, at least 120 s (a handler busy that long without a byte is cut too, and the
/// phone's retry is a replay the hub answers again).
fn idle_limit(write_timeout: Duration) -> Duration {
    (write_timeout * 2).max(Duration::from_secs(120))
}

impl<T> StallGuard<T> {
    fn new(inner: T, timeout: Duration, permit: Option<OwnedSemaphorePermit>) -> Self {
        let idle_for = idle_limit(timeout);
        Self {
            inner,
            timeout,
            stalled: None,
            idle: Box::pin(tokio::time::sleep(idle_for)),
            idle_for,
            _permit: permit,
        }
    }

    /// Something was read or written: the idle deadline starts again.
    fn progressed(&mut self) {
        let at = tokio::time::Instant::now() + self.idle_for;
        self.idle.as_mut().reset(at);
    }

    /// After a write returned `poll`: clears the stall on progress, else starts or
    /// checks the deadline.
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() {
            self.stalled = None;
            self.progressed();
            return poll;
        }
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client has read nothing for too long",
            )));
        }
        Poll::Pending
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if self.idle.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the connection was idle for too long",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_key_waits_while_others_pass() {
        let l = RateLimiter::new(60, 3);
        assert!(l.check("a").is_ok() && l.check("a").is_ok() && l.check("a").is_ok());
        assert_eq!(l.check("a"), Err(1));
        assert!(l.check("b").is_ok());
        assert!(RateLimiter::new(0, 1).check("a").is_ok());
    }

    #[test]
    fn stream_slots_are_capped_per_token_and_overall_and_freed_on_drop() {
        let slots = Arc::new(StreamSlots::new(1, 2));
        let a = slots.acquire("a").expect("a's first");
        assert_eq!(slots.acquire("a").err(), Some(NoSlot::Token(1)));
        let b = slots.acquire("b").expect("b's first");
        assert_eq!(slots.acquire("c").err(), Some(NoSlot::Server(2)));
        drop(a);
        assert!(slots.acquire("c").is_ok());
        drop(b);
        assert_eq!(slots.open(), 0);
    }
}
