//! A deterministic simulated network: phones (real stores) and one hub exchange real
//! protocol bodies through links that cut requests, cut responses after the hub
//! committed, and replay requests, every fault drawn from one seed.
//!
//! Phones run the very sans-I/O session they run in the field ([`SyncSession`]), driven
//! here with virtual time: a backoff advances a clock instead of sleeping, and the jitter
//! is seeded, so a run of many phones is fast and the same on every machine;
//! [`SimNet::run_until_quiescent`] syncs every phone round after round until a round moves
//! nothing.

use std::cell::RefCell;
use std::sync::Mutex;
use std::time::Duration;

use yibiao_store::Store;
use yibiao_sync::session::{Next, RetryPolicy, SyncOptions, SyncReport, SyncSession};
use yibiao_sync::{DeviceScope, Hub, HubStorage, Identity, Transport, TransportError};

use crate::Result;
use crate::rng::Rng;
use crate::transport::{InProcess, identity_of};

/// How often a link fails, each a probability per exchange.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Faults {
    /// The request is lost before the hub reads it.
    pub cut_request: f64,
    /// The response is lost after the hub committed the request.
    pub cut_response: f64,
    /// The request reaches the hub twice; the phone gets the second answer.
    pub replay: f64,
}

impl Faults {
    /// A perfect link.
    pub const NONE: Self = Self {
        cut_request: 0.0,
        cut_response: 0.0,
        replay: 0.0,
    };

    /// A link with the three fault probabilities.
    pub const fn new(cut_request: f64, cut_response: f64, replay: f64) -> Self {
        Self {
            cut_request,
            cut_response,
            replay,
        }
    }
}

/// Sync options for simulated links: small pages (4 KiB, so a few records already make
/// several pages) and many quick retries.
pub fn sim_options() -> SyncOptions {
    SyncOptions {
        page_bytes: 4 * 1024,
        max_response_bytes: 4 * 1024,
        retry: RetryPolicy {
            attempts: 50,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        },
        ..SyncOptions::default()
    }
}

/// One device's faulty link to the hub: the kit's [`InProcess`] transport behind seeded
/// faults. It also counts exchanges and remembers the size of every request body.
#[derive(Debug)]
pub struct SimLink<H> {
    inner: InProcess<H>,
    faults: Faults,
    rng: Mutex<Rng>,
    requests: Mutex<Vec<usize>>,
}

impl<H> SimLink<H> {
    /// The device `key` with `scope`, reaching `hub` through a link failing as `faults`
    /// says, its faults drawn from `seed`.
    pub fn new(
        hub: H,
        key: impl Into<String>,
        scope: DeviceScope,
        identity: Identity,
        seed: u64,
        faults: Faults,
    ) -> Self {
        Self {
            inner: InProcess::new(hub, key, scope, identity),
            faults,
            rng: Mutex::new(Rng::new(seed)),
            requests: Mutex::new(Vec::new()),
        }
    }

    /// Exchanges tried through this link (failed ones included).
    pub fn exchanges(&self) -> usize {
        self.request_sizes().len()
    }

    /// The size of every request body sent through this link, in order.
    pub fn request_sizes(&self) -> Vec<usize> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn roll(&self, p: f64) -> bool {
        self.rng.lock().is_ok_and(|mut r| r.happens(p))
    }
}

impl<H, S> Transport for SimLink<H>
where
    H: std::ops::Deref<Target = Hub<S>> + Send + Sync,
    S: HubStorage,
{
    fn exchange(&self, body: &[u8]) -> std::result::Result<Vec<u8>, TransportError> {
        if let Ok(mut r) = self.requests.lock() {
            r.push(body.len());
        }
        if self.roll(self.faults.cut_request) {
            return Err(TransportError::Network(
                "cut before the server read the body".into(),
            ));
        }
        let (req, response) = self.inner.handle(body)?;
        if self.roll(self.faults.replay) {
            // A duplicated request: the hub sees it twice; the phone gets the second answer.
            return self.inner.handle_decoded(&req);
        }
        if self.roll(self.faults.cut_response) {
            return Err(TransportError::Network(
                "cut while the response was on the wire".into(),
            ));
        }
        Ok(response)
    }
}

/// A phone of the simulated network.
#[derive(Debug)]
pub struct SimPhone {
    /// Its store.
    pub store: Store,
    /// The hub's key for the device.
    pub key: String,
    /// What the device may see and write.
    pub scope: DeviceScope,
    /// How its link fails.
    pub faults: Faults,
}

/// What one phone's syncs moved, summed over runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Client runs.
    pub runs: u32,
    /// Documents the hub accepted.
    pub pushed: u32,
    /// Documents received.
    pub pulled: u32,
}

impl Moved {
    fn add(&mut self, r: &SyncReport) {
        self.runs += 1;
        self.pushed += r.progress.pushed;
        self.pulled += r.progress.pulled;
    }
}

/// Client runs one sync may take before the network calls it stuck.
const RUNS_PER_SYNC: usize = 20;
/// Rounds [`SimNet::run_until_quiescent`] may take.
const MAX_ROUNDS: usize = 20;

/// Many phones and one hub on simulated links.
pub struct SimNet<'h, S> {
    hub: &'h Hub<S>,
    rng: RefCell<Rng>,
    faults: Faults,
    options: SyncOptions,
    phones: Vec<SimPhone>,
}

impl<'h, S: HubStorage> SimNet<'h, S> {
    /// A network around `hub` whose phones' links fail as `faults` says, every fault
    /// drawn from `seed`; syncs use [`sim_options`].
    pub fn new(hub: &'h Hub<S>, seed: u64, faults: Faults) -> Self {
        Self {
            hub,
            rng: RefCell::new(Rng::new(seed)),
            faults,
            options: sim_options(),
            phones: Vec::new(),
        }
    }

    /// The hub.
    pub fn hub(&self) -> &'h Hub<S> {
        self.hub
    }

    /// Adds a phone on a link with the network's faults; returns its index.
    pub fn add_phone(&mut self, store: Store, key: impl Into<String>, scope: DeviceScope) -> usize {
        let faults = self.faults;
        self.add_phone_with(store, key, scope, faults)
    }

    /// Adds a phone on a link with its own `faults`; returns its index.
    pub fn add_phone_with(
        &mut self,
        store: Store,
        key: impl Into<String>,
        scope: DeviceScope,
        faults: Faults,
    ) -> usize {
        self.phones.push(SimPhone {
            store,
            key: key.into(),
            scope,
            faults,
        });
        self.phones.len() - 1
    }

    /// Phone `i`.
    ///
    /// # Panics
    /// When there is no phone `i`.
    pub fn phone(&self, i: usize) -> &SimPhone {
        &self.phones[i]
    }

    /// Every phone, in the order they were added.
    pub fn phones(&self) -> &[SimPhone] {
        &self.phones
    }

    /// A fresh link for phone `i`, its faults drawn from the next seed of the network.
    pub fn link(&self, i: usize) -> SimLink<&'h Hub<S>> {
        let p = &self.phones[i];
        let seed = self.rng.borrow_mut().next_u64();
        SimLink::new(
            self.hub,
            p.key.clone(),
            p.scope.clone(),
            identity_of(&p.store),
            seed,
            p.faults,
        )
    }

    /// Syncs phone `i` until a run reports it complete both ways.
    pub fn sync(&self, i: usize) -> Result<Moved> {
        let link = self.link(i);
        let store = &self.phones[i].store;
        let mut moved = Moved::default();
        for run in 0..RUNS_PER_SYNC {
            let seed = (i as u64) << 32 | run as u64;
            let report = drive(store, &link, &self.options, seed)?;
            moved.add(&report);
            if report.complete {
                return Ok(moved);
            }
        }
        Err(format!("{} never completed a sync", self.phones[i].key).into())
    }

    /// Syncs every phone in turn, round after round, until a round in which no phone
    /// pushed or pulled anything; returns the rounds taken (the quiet one included).
    pub fn run_until_quiescent(&self) -> Result<usize> {
        for round in 1..=MAX_ROUNDS {
            let mut quiet = true;
            for i in 0..self.phones.len() {
                let moved = self.sync(i)?;
                quiet &= moved.pushed == 0 && moved.pulled == 0;
            }
            if quiet {
                return Ok(round);
            }
        }
        Err(format!("the network still moved documents after {MAX_ROUNDS} rounds").into())
    }
}

/// One sync run of `store` over `link`: the session decides, this loop only moves bytes
/// and lets virtual time pass where a phone would sleep.
fn drive(
    store: &Store,
    link: &dyn Transport,
    options: &SyncOptions,
    seed: u64,
) -> Result<SyncReport> {
    let mut now = Duration::ZERO;
    let mut session = SyncSession::new(options.clone(), now).with_seed(seed);
    loop {
        let body = match session.next_request(store)? {
            Next::Done(report) => return Ok(report),
            Next::Send(body) => body,
        };
        match link.exchange(&body) {
            Ok(response) => session.on_response(store, &response, now)?,
            Err(e) => now += session.on_failure::<yibiao_store::Error>(e)?,
        }
    }
}
