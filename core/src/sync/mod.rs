//! Sync for weak links: the protocol, the phone's client and the server's hub.
//!
//! - [`protocol`]: the binary messages of one exchange (versioned, zstd).
//! - [`client`]: `sync()` on the phone: pages until up to date, retries with backoff,
//!   one atomic store commit per page, through a [`client::Transport`].
//! - [`hub`]: the server's engine, sans I/O: validate, merge, commit a page, page the feed;
//!   storage behind [`hub::HubStorage`].
//! - `http` (feature `http`): the built-in HTTP transport.
//!
//! The protocol and its reasons are described in ARCHITECTURE.md.

mod check;
pub mod client;
#[cfg(feature = "http")]
pub mod http;
pub mod hub;
pub mod protocol;

pub use client::{
    RetryPolicy, SyncError, SyncOptions, SyncProgress, SyncReport, Transport, TransportError, sync,
};
pub use hub::{DeviceAuth, DeviceScope, Hub, HubConfig, HubStorage, MemoryHubStorage};
pub use protocol::{PROTOCOL_VERSION, SyncRequest, SyncResponse};
