//! # yibiao mobile bindings
//!
//! The phone core (`yibiao-store` over `yibiao-model` and `yibiao-sync`) for Android and iOS, through [uniffi]: one `cdylib` for
//! Android (loaded by JNA from Kotlin), one `staticlib` for iOS (an XCFramework), and
//! generated Kotlin, Swift and Python.
//!
//! Thin glue only. An app sees:
//! - [`YibiaoStore`] (`store`): open a store, enrol, records (create, set fields, delete,
//!   get, query, what a form still needs), conflicts, history, tasks (list, open, mark
//!   done), sync, status; attachments (`attachments`: attach, upload with progress,
//!   the queue, fetch on demand);
//! - the traits it may implement (`callbacks`): [`SyncProgressListener`],
//!   [`ChangeObserver`], [`AppTransport`];
//! - plain records and enums (`types`), field values as JSON text;
//! - one error, [`YibiaoError`] (`error`), with a sentence to show in every variant.
//!
//! Every rule (validation, merging, conflicts, paging, sync) is the core's; each method
//! here forwards in a line or two plus conversions. See `docs/mobile.md`.
//!
//! [uniffi]: https://mozilla.github.io/uniffi-rs/

// No `unsafe` here, and no `allow(unsafe_code)`: uniffi's scaffolding (`extern "C"`
// functions with `#[unsafe(no_mangle)]`, pointer handling) is expanded from uniffi's
// proc macros, and rustc does not report `unsafe_code` inside an external macro's
// expansion, so the workspace's deny stays in force for every hand-written line.
mod attachments;
mod callbacks;
mod error;
mod findings;
mod store;
mod types;

pub use attachments::{
    AttachmentInfo, AttachmentProgress, AttachmentProgressListener, AttachmentRefusal,
    AttachmentUploadReport, PendingAttachment,
};
pub use callbacks::{AppTransport, ChangeObserver, SyncProgressListener};
pub use error::{TransportFailure, YibiaoError};
pub use findings::{
    FindingCategoryItem, FindingInput, FindingItem, FindingSeverity, FindingState, FindingStepItem,
};
pub use store::{YibiaoStore, default_sync_settings};
pub use types::*;

uniffi::setup_scaffolding!("yibiao");
