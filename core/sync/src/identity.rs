//! Who the server vouches for behind a device token: the hub's input to the author and
//! actor checks (`check.rs`), built by the server from its accounts (ADR 0007).

use yibiao_model::ids::{CadreId, DeviceId};

/// Who the server vouches for behind a token: the phone it is bound to and the cadres
/// who may write on that phone. Every change a device pushes must name this device and
/// one of these cadres as its author, and every receipt one of these cadres.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The phone's own device id, bound to the token at enrolment (or its first sync).
    pub device: DeviceId,
    /// Cadres who may author changes on this phone (a shared phone has several).
    pub cadres: Vec<CadreId>,
}

impl Identity {
    /// The phone `device` used by `cadres`.
    pub fn new(device: DeviceId, cadres: impl IntoIterator<Item = CadreId>) -> Self {
        Self {
            device,
            cadres: cadres.into_iter().collect(),
        }
    }

    /// True when `cadre` may author changes on this phone.
    pub fn allows_cadre(&self, cadre: &str) -> bool {
        self.cadres.iter().any(|c| c.as_str() == cadre)
    }
}
