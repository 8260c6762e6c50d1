//! The sync decoder: what `POST /v1/sync` does with the body's bytes before the hub.
//!
//! Input: one mode byte, then the payload. Mode even: the payload is a whole wire body
//! (`"YBS"`, version, zstd frame). Mode odd: the payload is the postcard message, wrapped
//! here into a valid wire body first, so the fuzzer reaches the message decoder without
//! having to forge zstd checksums. Either way the body goes through the real
//! `SyncRequest::decode` (and `SyncResponse::decode`, the phone's side).
//!
//! Must hold: no panic; a decoded message re-encodes to a body that decodes to the same
//! message; the device id check the route makes next never panics.

use yibiao_model::DeviceId;
use yibiao_sync::protocol::{PROTOCOL_VERSION, SyncRequest, SyncResponse, peek_version};

/// Wraps a postcard payload into a wire body of this protocol version.
pub fn wire_body(postcard: &[u8]) -> Vec<u8> {
    let mut body = b"YBS".to_vec();
    body.push(PROTOCOL_VERSION);
    body.extend(zstd::bulk::compress(postcard, 1).unwrap_or_default());
    body
}

/// One input.
pub fn run(data: &[u8]) {
    let Some((&mode, payload)) = data.split_first() else {
        return;
    };
    let wrapped;
    let body = if mode % 2 == 1 {
        wrapped = wire_body(payload);
        &wrapped[..]
    } else {
        payload
    };
    let _ = peek_version(body);
    if let Ok(request) = SyncRequest::decode(body) {
        let again = SyncRequest::decode(&request.encode());
        assert_eq!(
            again.as_ref(),
            Ok(&request),
            "a request must survive re-encoding"
        );
        let _ = DeviceId::new(request.device.as_str());
    }
    if let Ok(response) = SyncResponse::decode(body) {
        let again = SyncResponse::decode(&response.encode());
        assert_eq!(
            again.as_ref(),
            Ok(&response),
            "a response must survive re-encoding"
        );
    }
}
