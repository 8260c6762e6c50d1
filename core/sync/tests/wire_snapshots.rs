//! The wire format, pinned: a change to a message's layout changes these snapshots, and a
//! reviewer then decides whether it needs a new protocol version (phones in the field
//! still speak the old one).

use yibiao_model::messages::Message;
use yibiao_sync::protocol::{
    PROTOCOL_VERSION, PullDoc, PushDoc, Refusal, RefusalCode, SchemaHeld, SchemaOffer, SyncRequest,
    SyncResponse, WireId,
};

fn request() -> SyncRequest {
    SyncRequest {
        device: "dev-81ec36285526".into(),
        cursor: 42,
        push: vec![PushDoc {
            record: WireId([1; 16]),
            heads: vec![[2; 32]],
            bytes: vec![0x85, 0x6f, 0x4a, 0x83],
        }],
        max_response_bytes: 65_536,
        // Appended after the first protocol (see `protocol.rs`): old servers ignore it.
        schema: Some(SchemaHeld {
            revision: 1,
            format: 1,
        }),
    }
}

fn response() -> SyncResponse {
    SyncResponse {
        accepted: vec![WireId([1; 16])],
        refused: vec![Refusal {
            record: WireId([3; 16]),
            code: RefusalCode::OutOfScope,
            message: "记录属于另一个村 / the record belongs to another village".into(),
            reason: Message::new("out_of_scope")
                .with("detail", "the record belongs to another village"),
        }],
        docs: vec![PullDoc {
            record: WireId([4; 16]),
            heads: vec![[5; 32], [6; 32]],
            bytes: vec![0x85, 0x6f, 0x4a, 0x83, 0x00],
        }],
        cursor: 43,
        more: true,
        server_time_ms: 1_795_536_000_000,
        // Appended after the first protocol: old phones never ask, so never get it.
        schema: Some(SchemaOffer {
            revision: 2,
            format: 1,
            text: Some("format = 1\nrevision = 2\n".into()),
        }),
    }
}

/// The body's layout: magic, version byte, then zstd of the postcard bytes (pinned as hex).
fn layout(body: &[u8], inner: &[u8]) -> String {
    format!(
        "magic: {:?}\nversion: {}\npostcard ({} bytes):\n{}",
        String::from_utf8_lossy(&body[..3]),
        body[3],
        inner.len(),
        hex::encode(inner)
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[test]
fn a_sync_request_keeps_its_wire_layout() {
    let msg = request();
    let body = msg.encode();
    assert_eq!(body[3], PROTOCOL_VERSION);
    assert_eq!(SyncRequest::decode(&body).expect("round trip"), msg);
    let inner = postcard::to_stdvec(&msg).expect("postcard");
    insta::assert_snapshot!("request_wire_layout", layout(&body, &inner));
    insta::assert_debug_snapshot!("request_fields", msg);
}

#[test]
fn a_sync_response_keeps_its_wire_layout() {
    let msg = response();
    let body = msg.encode();
    assert_eq!(SyncResponse::decode(&body).expect("round trip"), msg);
    let inner = postcard::to_stdvec(&msg).expect("postcard");
    insta::assert_snapshot!("response_wire_layout", layout(&body, &inner));
    insta::assert_debug_snapshot!("response_fields", msg);
}
