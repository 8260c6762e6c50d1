//! The traits an app implements in Kotlin, Swift or Python, and their adapters to the
//! core's Rust traits.
//!
//! Callbacks run on the thread that called `sync`/`create`/... (call those off the UI
//! thread). A listener or observer that throws never fails the call it reports on: the
//! failure is logged and the call goes on.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use yibiao_sync::TransportError;
use yibiao_sync::session::Transport;

use crate::error::{TransportFailure, panic_text};
use crate::types::{SyncHttpRequest, SyncProgress};

/// Told after every committed page of a sync, for a progress bar.
#[uniffi::export(foreign)]
pub trait SyncProgressListener: Send + Sync {
    /// One more page was committed on the phone.
    fn on_progress(&self, progress: SyncProgress);
}

/// Told which records changed, so the UI can refresh them.
#[uniffi::export(foreign)]
pub trait ChangeObserver: Send + Sync {
    /// `ids` changed: by a local write, or by what a sync brought. An empty list means
    /// "something may have changed; reload what is on screen" (a sync that failed after
    /// committing some pages). Ids may also be tasks' (`TaskItem.id`: a task that
    /// arrived or changed, `open_task`, `mark_task_done`); refresh the task list for those.
    fn on_records_changed(&self, ids: Vec<String>);
}

/// Moves one sync request to the server and back, for apps that bring their own HTTP
/// stack (OkHttp, URLSession with their proxy and pinning). POST `request.url` with
/// `request.headers` and `request.body`; return the body of a 200. Throw
/// `TransportFailure.Network`/`Timeout` for a link problem (the sync retries with
/// backoff) and `TransportFailure.Status` for any other HTTP status.
#[uniffi::export(foreign)]
pub trait AppTransport: Send + Sync {
    /// Delivers `request`, returns the response body.
    fn exchange(&self, request: SyncHttpRequest) -> Result<Vec<u8>, TransportFailure>;
}

/// Adapts an [`AppTransport`] to the core's [`Transport`].
pub(crate) struct AppTransportAdapter {
    pub(crate) app: Arc<dyn AppTransport>,
    pub(crate) url: String,
    pub(crate) headers: HashMap<String, String>,
}

impl Transport for AppTransportAdapter {
    fn exchange(&self, body: &[u8]) -> Result<Vec<u8>, TransportError> {
        let request = SyncHttpRequest {
            url: self.url.clone(),
            headers: self.headers.clone(),
            body: body.to_vec(),
        };
        match catch_unwind(AssertUnwindSafe(|| self.app.exchange(request))) {
            Ok(result) => result.map_err(Into::into),
            Err(payload) => Err(TransportError::Network(format!(
                "the app's transport failed: {}",
                panic_text(payload.as_ref())
            ))),
        }
    }
}

/// Runs a UI callback; its failure is logged, never propagated.
pub(crate) fn notify(what: &str, call: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(call)) {
        tracing::warn!(callback = what, error = %panic_text(payload.as_ref()), "app callback failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Panicking;
    impl AppTransport for Panicking {
        fn exchange(&self, _: SyncHttpRequest) -> Result<Vec<u8>, TransportFailure> {
            panic!("the app's HTTP client blew up")
        }
    }

    struct Refusing;
    impl AppTransport for Refusing {
        fn exchange(&self, _: SyncHttpRequest) -> Result<Vec<u8>, TransportFailure> {
            Err(TransportFailure::Status {
                status: 401,
                detail: "unknown device token".into(),
            })
        }
    }

    fn adapter(app: Arc<dyn AppTransport>) -> AppTransportAdapter {
        AppTransportAdapter {
            app,
            url: "http://127.0.0.1:1/v1/sync".into(),
            headers: HashMap::new(),
        }
    }

    #[test]
    fn a_panicking_app_transport_is_a_network_failure_not_an_unwind() {
        let r = adapter(Arc::new(Panicking)).exchange(b"body");
        assert!(matches!(r, Err(TransportError::Network(m)) if m.contains("blew up")));
    }

    #[test]
    fn an_app_transport_status_keeps_its_status() {
        let r = adapter(Arc::new(Refusing)).exchange(b"body");
        assert_eq!(
            r,
            Err(TransportError::Status {
                status: 401,
                message: "unknown device token".into()
            })
        );
    }
}
