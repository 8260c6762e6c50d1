//! The in-process transport: a phone's sync requests go straight into a [`Hub`], as the
//! server's sync route hands them over, with no socket in between.

use std::ops::Deref;

use yibiao_store::Store;
use yibiao_sync::protocol::SyncRequest;
use yibiao_sync::{DeviceAuth, DeviceScope, Hub, HubStorage, Identity, Transport, TransportError};

/// The identity the server vouches for behind a phone's token when its one cadre uses it:
/// the store's device id and cadre (the server adds the cadres of the device's village).
pub fn identity_of(store: &Store) -> Identity {
    Identity::new(store.device_id().clone(), [store.cadre_id()])
}

/// A [`Transport`] into a hub, as one device. `H` is anything that reaches the hub: a
/// `&Hub<S>` in a test that owns the hub, an `Arc<Hub<S>>` beside a running server.
#[derive(Debug, Clone)]
pub struct InProcess<H> {
    hub: H,
    auth: DeviceAuth,
}

impl<H> InProcess<H> {
    /// The device `key` with `scope`, bound to the phone and cadres of `identity`,
    /// talking to `hub`.
    pub fn new(hub: H, key: impl Into<String>, scope: DeviceScope, identity: Identity) -> Self {
        Self::with_auth(
            hub,
            DeviceAuth {
                key: key.into(),
                scope,
                identity,
            },
        )
    }

    /// The device `key` with `scope`, as the phone `store` with its cadre.
    pub fn for_store(hub: H, key: impl Into<String>, scope: DeviceScope, store: &Store) -> Self {
        Self::new(hub, key, scope, identity_of(store))
    }

    /// A device already authenticated as `auth`.
    pub fn with_auth(hub: H, auth: DeviceAuth) -> Self {
        Self { hub, auth }
    }

    /// Who this transport speaks as.
    pub fn auth(&self) -> &DeviceAuth {
        &self.auth
    }
}

impl<H, S> InProcess<H>
where
    H: Deref<Target = Hub<S>>,
    S: HubStorage,
{
    /// The hub this transport reaches.
    pub fn hub(&self) -> &Hub<S> {
        &self.hub
    }

    /// Decodes `request` and lets the hub handle it (committing what it accepts);
    /// returns the request and the encoded response. Errors map as the server maps them:
    /// an undecodable body is a 400, a storage failure a 500.
    pub fn handle(&self, request: &[u8]) -> Result<(SyncRequest, Vec<u8>), TransportError> {
        let req = SyncRequest::decode(request).map_err(|e| TransportError::Status {
            status: 400,
            message: e.to_string(),
        })?;
        let response = self.handle_decoded(&req)?;
        Ok((req, response))
    }

    /// Lets the hub handle an already decoded request; returns the encoded response.
    pub fn handle_decoded(&self, req: &SyncRequest) -> Result<Vec<u8>, TransportError> {
        let (resp, _) = self
            .hub
            .handle(&self.auth, req)
            .map_err(|e| TransportError::Status {
                status: 500,
                message: e.to_string(),
            })?;
        Ok(resp.encode())
    }
}

impl<H, S> Transport for InProcess<H>
where
    H: Deref<Target = Hub<S>> + Send + Sync,
    S: HubStorage,
{
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.handle(request).map(|(_, response)| response)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use std::sync::Arc;

    use yibiao_model::clock::ManualClock;
    use yibiao_model::{CadreId, Schema};
    use yibiao_store::Store;
    use yibiao_sync::session::SyncOptions;
    use yibiao_sync::{DeviceScope, Hub, HubConfig, HubStorage, MemoryHubStorage};

    use super::InProcess;

    #[test]
    fn a_phone_syncs_into_a_shared_hub_through_the_in_process_transport() {
        let schema = Arc::new(Schema::baru_example());
        let clock = Arc::new(ManualClock::new(1_764_000_000_000));
        // Beside a running server the hub is shared: the transport holds an Arc.
        let hub = Arc::new(Hub::new(
            schema.clone(),
            MemoryHubStorage::default(),
            clock.clone(),
            HubConfig::default(),
        ));
        let phone = Store::open_in_memory(schema, CadreId::new("amu").unwrap(), clock).unwrap();
        let id = phone.create("household", Some("tujiang"), &[]).unwrap();
        let transport = InProcess::for_store(
            hub.clone(),
            "dev",
            DeviceScope::Village("tujiang".into()),
            &phone,
        );
        let report =
            yibiao_store::sync(&phone, &transport, &SyncOptions::default(), &mut |_| {}).unwrap();
        assert!(report.complete);
        assert!(hub.record(id).unwrap().is_some());
        assert_eq!(
            transport
                .hub()
                .storage()
                .feed_after(&DeviceScope::Township, 0, 10)
                .unwrap()
                .len(),
            1
        );
    }
}
