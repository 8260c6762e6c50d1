//! # yibiao sync
//!
//! Sync for weak links, sans I/O: the protocol, the phone's session and the server's hub.
//! Nothing here opens a socket, reads a clock or sleeps; drivers do (the phone's blocking
//! loop in `yibiao-store`, the server's axum handler, the tests' simulated network).
//!
//! - [`protocol`]: the binary messages of one exchange (versioned, zstd).
//! - [`session`]: the phone's side, a state machine: `next_request` / `on_response` /
//!   `on_failure`, over the phone store's [`session::ClientStore`] trait.
//! - [`hub`]: the server's engine: validate, merge, commit a page, page the feed; storage
//!   behind [`hub::HubStorage`] (an in-memory storage and the conformance suite every
//!   storage passes are behind the `testing` feature).
//!
//! Depends on `yibiao-model` only. The protocol and its reasons are in ARCHITECTURE.md.

mod check;
pub mod hub;
mod identity;
pub mod protocol;
pub mod session;

#[cfg(any(test, feature = "testing"))]
pub use hub::MemoryHubStorage;
pub use hub::{DeviceAuth, DeviceScope, Hub, HubConfig, HubStorage, Identity};
pub use protocol::{PROTOCOL_VERSION, SchemaHeld, SchemaOffer, SyncRequest, SyncResponse};
pub use session::{
    ClientStore, Exchange, Merged, Next, Pending, RetryPolicy, SchemaNews, SyncError, SyncOptions,
    SyncProgress, SyncReport, SyncSession, Transport, TransportError,
};
