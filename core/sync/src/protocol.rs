//! The wire format of one sync exchange: one request, one response, both binary.
//!
//! ```text
//! body = "YBS" | version: u8 | zstd( postcard( SyncRequest | SyncResponse ) )
//! ```
//!
//! Why: a village link carries a few kilobits per second, so every byte counts. Automerge
//! changes are already compact columnar data; postcard adds almost nothing around them
//! (varints, no field names) and zstd squeezes the ids, heads and repeated strings. The
//! version byte sits *before* the compressed part, so any server can tell an old client
//! to update without understanding the rest. Decompression is bounded (a zstd bomb is
//! refused, not inflated).
//!
//! **How the messages grow without a new version.** postcard writes a struct's fields in
//! order with no names, and a reader stops at the end of the fields it knows (bytes after
//! them are ignored). So a new field is only ever *appended*, as an `Option` read with
//! [`trailing`]: an older reader never sees it, and a newer reader of an older message
//! finds the body ended and takes `None`. The schema fields ([`SyncRequest::schema`],
//! [`SyncResponse::schema`]) came this way; phones of the first protocol keep working.
//! So did refusal reasons: a [`Refusal`] is an element of a list, and an element cannot
//! grow without breaking the readers of the list, so on the wire a refusal stays
//! `{record, code, message}` and the reasons travel as one appended list in the same
//! order (`SyncResponse`'s hand-written serde below); in Rust they are one struct.

use serde::{Deserialize, Serialize};

use yibiao_model::ids::RecordId;
use yibiao_model::messages::Message;

/// The protocol version this build speaks. Still the first: everything added since
/// (the schema fields, refusal reasons) was appended (module docs), so phones in the
/// field keep syncing with new servers and new phones with old servers.
pub const PROTOCOL_VERSION: u8 = 1;
const MAGIC: &[u8; 3] = b"YBS";
/// Largest decompressed message accepted (guards against zstd bombs).
pub const MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;
/// zstd level: cheap on phones, most of the gain of higher levels on this data.
const ZSTD_LEVEL: i32 = 9;

/// A record id on the wire: 16 raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WireId(pub [u8; 16]);

impl From<RecordId> for WireId {
    fn from(id: RecordId) -> Self {
        Self(*id.as_bytes())
    }
}

impl From<WireId> for RecordId {
    fn from(id: WireId) -> Self {
        RecordId::from_bytes(id.0)
    }
}

/// A change hash on the wire.
pub type WireHash = [u8; 32];

/// Converts heads to their wire form.
pub fn heads_to_wire(heads: &[automerge::ChangeHash]) -> Vec<WireHash> {
    heads.iter().map(|h| h.0).collect()
}

/// Converts heads from their wire form.
pub fn heads_from_wire(heads: &[WireHash]) -> Vec<automerge::ChangeHash> {
    heads.iter().map(|h| automerge::ChangeHash(*h)).collect()
}

/// What a device sends: its unacknowledged changes and where its pull stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The device's own id (from its store); bound to the token on first use.
    pub device: String,
    /// Position in the server's change feed up to which this device holds everything.
    pub cursor: u64,
    /// Documents with changes the server has not acknowledged.
    pub push: Vec<PushDoc>,
    /// The response should stay below this many bytes (before compression).
    pub max_response_bytes: u32,
    /// The schema the phone holds (appended field: `None` from phones that predate
    /// schema distribution, which are never sent one).
    #[serde(default, deserialize_with = "trailing")]
    pub schema: Option<SchemaHeld>,
}

/// The schema a phone validates with, and the newest schema file format its app reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaHeld {
    /// The revision it holds.
    pub revision: u32,
    /// The newest schema format its app understands (`yibiao_model::SCHEMA_FORMAT`).
    pub format: u32,
}

/// A newer schema than the phone holds, sent in the response of the exchange that
/// revealed it (never when the revisions match).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaOffer {
    /// The server's revision.
    pub revision: u32,
    /// Its file format.
    pub format: u32,
    /// The schema file's text (TOML); `None` when the phone's app cannot read `format`,
    /// so an app too old for it learns "update the app" without downloading it.
    pub text: Option<String>,
}

/// Reads an appended field: absent (the message ended before it) or unreadable is `None`.
fn trailing<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d).unwrap_or(None))
}

/// One document's changes sent up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushDoc {
    /// The record.
    pub record: WireId,
    /// The device's heads of this document after these changes.
    pub heads: Vec<WireHash>,
    /// A compacted document (first push) or the changes after the server's known heads.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// What the server answers. On the wire it is [`ResponseWire`] (the refusal reasons
/// appended as their own list, module docs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResponse {
    /// Pushed documents merged and stored durably.
    pub accepted: Vec<WireId>,
    /// Pushed documents refused, each with its reason. The rest of the batch stands.
    pub refused: Vec<Refusal>,
    /// Documents in the device's scope that changed since its cursor.
    pub docs: Vec<PullDoc>,
    /// The device's new cursor once it has stored `docs`.
    pub cursor: u64,
    /// True when more documents wait beyond this page.
    pub more: bool,
    /// The server's clock, ms since the epoch (lets a phone show a sane "last sync").
    pub server_time_ms: i64,
    /// The server's schema when it is newer than the one the request said the phone
    /// holds (appended field; see the module docs).
    pub schema: Option<SchemaOffer>,
}

/// One document sent down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullDoc {
    /// The record.
    pub record: WireId,
    /// The server's heads of this document.
    pub heads: Vec<WireHash>,
    /// The whole compacted document, or only the changes after the device's known heads.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// Why a pushed document was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalCode {
    /// The bytes are not valid automerge data.
    Malformed,
    /// The changes build on history the server does not hold; send the whole document.
    MissingHistory,
    /// The document is not a yibiao record, or a change touches what it may not.
    NotARecord,
    /// A value breaks the schema.
    InvalidValue,
    /// The record lies outside the device's scope.
    OutOfScope,
}

impl RefusalCode {
    /// The code as a stable snake-case word (`invalid_value`), as messages name it.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::Malformed => "malformed",
            RefusalCode::MissingHistory => "missing_history",
            RefusalCode::NotARecord => "not_a_record",
            RefusalCode::InvalidValue => "invalid_value",
            RefusalCode::OutOfScope => "out_of_scope",
        }
    }
}

/// A refused document. On the wire, `reason` travels apart ([`SyncResponse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The record.
    pub record: WireId,
    /// Machine-readable reason.
    pub code: RefusalCode,
    /// What a person should be told, in English (logs, operators).
    pub message: String,
    /// The reason as a stable code with parameters, for the phone to word in its
    /// cadre's language (`yibiao_model::messages`): a value's reason (`not_an_option`,
    /// `bad_id_number`, ...) or the refusal code (`out_of_scope`, ...) with `detail`.
    pub reason: Message,
}

/// A refusal as the first protocol wrote it (its reason travels in
/// [`ResponseWire::reasons`]).
#[derive(Serialize, Deserialize)]
struct RefusalWire<'a> {
    record: WireId,
    code: RefusalCode,
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
}

/// [`SyncResponse`] as it is on the wire: the first protocol's fields, then the appended
/// ones in the order they came.
#[derive(Serialize, Deserialize)]
struct ResponseWire<'a> {
    accepted: std::borrow::Cow<'a, [WireId]>,
    #[serde(borrow)]
    refused: Vec<RefusalWire<'a>>,
    docs: std::borrow::Cow<'a, [PullDoc]>,
    cursor: u64,
    more: bool,
    server_time_ms: i64,
    #[serde(default, deserialize_with = "trailing")]
    schema: Option<std::borrow::Cow<'a, SchemaOffer>>,
    /// One per refusal, in the same order (appended after `schema`).
    #[serde(default, deserialize_with = "trailing")]
    reasons: Option<Vec<std::borrow::Cow<'a, Message>>>,
}

impl Serialize for SyncResponse {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use std::borrow::Cow::Borrowed;
        ResponseWire {
            accepted: Borrowed(&self.accepted),
            refused: self
                .refused
                .iter()
                .map(|r| RefusalWire {
                    record: r.record,
                    code: r.code,
                    message: Borrowed(&r.message),
                })
                .collect(),
            docs: Borrowed(&self.docs),
            cursor: self.cursor,
            more: self.more,
            server_time_ms: self.server_time_ms,
            schema: self.schema.as_ref().map(Borrowed),
            reasons: Some(self.refused.iter().map(|r| Borrowed(&r.reason)).collect()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SyncResponse {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = ResponseWire::deserialize(d)?;
        let mut reasons = wire.reasons.unwrap_or_default().into_iter();
        let refused = wire
            .refused
            .into_iter()
            .map(|r| {
                let message = r.message.into_owned();
                // A server of the first protocol sends no reasons: its message, as is.
                let reason = reasons.next().map_or_else(
                    || Message::new(r.code.as_str()).with("detail", message.clone()),
                    std::borrow::Cow::into_owned,
                );
                Refusal {
                    record: r.record,
                    code: r.code,
                    message,
                    reason,
                }
            })
            .collect();
        Ok(SyncResponse {
            accepted: wire.accepted.into_owned(),
            refused,
            docs: wire.docs.into_owned(),
            cursor: wire.cursor,
            more: wire.more,
            server_time_ms: wire.server_time_ms,
            schema: wire.schema.map(std::borrow::Cow::into_owned),
        })
    }
}

/// A sync body that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not a yibiao sync body at all.
    #[error("not a yibiao sync message")]
    BadMagic,
    /// Another protocol version.
    #[error(
        "sync protocol version {got} is not supported (this side speaks {supported}); update the app"
    )]
    Version {
        /// The version received.
        got: u8,
        /// The version spoken here.
        supported: u8,
    },
    /// Compressed data is damaged or too large.
    #[error("sync message is damaged or too large: {0}")]
    Damaged(String),
    /// The structure inside does not decode.
    #[error("sync message does not decode: {0}")]
    Decode(String),
}

fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // postcard into a Vec cannot fail for these types; an empty body would be refused later.
    let raw = postcard::to_stdvec(msg).unwrap_or_default();
    // One compression context per thread: creating one per message showed up in profiles.
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let packed = COMPRESSOR
        .with(|c| {
            let mut c = c.borrow_mut();
            if c.is_none() {
                *c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
            }
            c.as_mut().and_then(|c| c.compress(&raw).ok())
        })
        .unwrap_or_default();
    let mut out = Vec::with_capacity(packed.len() + 4);
    out.extend_from_slice(MAGIC);
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&packed);
    out
}

/// Decompresses at most [`MAX_DECODED_BYTES`], growing the buffer only as data arrives
/// (a fixed 64 MiB buffer per request would cost more than the request).
fn decompress_bounded(packed: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    use std::io::Read;
    let damaged = |e: std::io::Error| ProtocolError::Damaged(e.to_string());
    let mut decoder = zstd::stream::read::Decoder::with_buffer(packed).map_err(damaged)?;
    let mut out = Vec::with_capacity(packed.len().saturating_mul(4).min(MAX_DECODED_BYTES));
    (&mut decoder)
        .take(MAX_DECODED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(damaged)?;
    if out.len() > MAX_DECODED_BYTES {
        return Err(ProtocolError::Damaged(format!(
            "more than {MAX_DECODED_BYTES} bytes once decompressed"
        )));
    }
    Ok(out)
}

/// Reads only the version byte, so a server can answer an old client without decoding.
pub fn peek_version(body: &[u8]) -> Result<u8, ProtocolError> {
    if body.len() < 4 || &body[..3] != MAGIC {
        return Err(ProtocolError::BadMagic);
    }
    Ok(body[3])
}

fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ProtocolError> {
    let version = peek_version(body)?;
    if version != PROTOCOL_VERSION {
        return Err(ProtocolError::Version {
            got: version,
            supported: PROTOCOL_VERSION,
        });
    }
    let raw = decompress_bounded(&body[4..])?;
    postcard::from_bytes(&raw).map_err(|e| ProtocolError::Decode(e.to_string()))
}

impl SyncRequest {
    /// The request as a wire body.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    /// Reads a request body.
    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        decode(body)
    }
}

impl SyncResponse {
    /// The response as a wire body.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    /// Reads a response body.
    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        decode(body)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn sample() -> SyncRequest {
        SyncRequest {
            device: "dev-1".into(),
            cursor: 42,
            push: vec![PushDoc {
                record: WireId([7; 16]),
                heads: vec![[1; 32]],
                bytes: vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3],
            }],
            max_response_bytes: 65536,
            schema: None,
        }
    }

    #[test]
    fn messages_round_trip() {
        let req = sample();
        assert_eq!(SyncRequest::decode(&req.encode()).unwrap(), req);
        let resp = SyncResponse {
            accepted: vec![WireId([7; 16])],
            refused: vec![Refusal {
                record: WireId([8; 16]),
                code: RefusalCode::InvalidValue,
                message: "field `household_size` must be at most 30, got 31".into(),
                reason: Message::new("above_max")
                    .with("field", "household_size")
                    .with("max", "30")
                    .with("got", "31"),
            }],
            docs: vec![],
            cursor: 9,
            more: true,
            server_time_ms: 1,
            schema: Some(SchemaOffer {
                revision: 2,
                format: 1,
                text: Some("format = 1".into()),
            }),
        };
        assert_eq!(SyncResponse::decode(&resp.encode()).unwrap(), resp);
    }

    #[test]
    fn wire_format_is_pinned() {
        // A change here breaks every phone in the field: bump PROTOCOL_VERSION instead.
        let body = sample().encode();
        assert_eq!(&body[..4], b"YBS\x01");
        let raw = zstd::bulk::decompress(&body[4..], 1 << 20).unwrap();
        let mut want = vec![5, b'd', b'e', b'v', b'-', b'1', 42, 1];
        want.extend([7; 16]);
        want.push(1);
        want.extend([1; 32]);
        want.extend([7, 0x85, 0x6f, 0x4a, 0x83, 1, 2, 3]);
        want.extend([0x80, 0x80, 0x04]);
        want.push(0); // schema: None (appended field)
        assert_eq!(raw, want);
    }

    #[test]
    fn bad_bodies_are_named() {
        assert_eq!(
            SyncRequest::decode(b"{\"json\":1}"),
            Err(ProtocolError::BadMagic)
        );
        let mut old = sample().encode();
        old[3] = 0;
        assert_eq!(
            SyncRequest::decode(&old).unwrap_err().to_string(),
            "sync protocol version 0 is not supported (this side speaks 1); update the app"
        );
        let body = sample().encode();
        assert!(matches!(
            SyncRequest::decode(&body[..body.len() / 2]),
            Err(ProtocolError::Damaged(_))
        ));
        let garbage = [
            b'Y',
            b'B',
            b'S',
            PROTOCOL_VERSION,
            0x28,
            0xb5,
            0x2f,
            0xfd,
            0,
            0,
            1,
            2,
        ];
        assert!(SyncRequest::decode(&garbage).is_err());
        // A valid zstd frame around bytes that are not a request.
        let mut junk = b"YBS\x01".to_vec();
        junk.extend(zstd::bulk::compress(&[0xff; 10], 1).unwrap());
        assert!(matches!(
            SyncRequest::decode(&junk),
            Err(ProtocolError::Decode(_))
        ));
    }

    /// The messages as the first protocol wrote them, before the schema fields.
    mod v1 {
        use super::super::{PullDoc, PushDoc, RefusalCode, WireId};
        use serde::{Deserialize, Serialize};
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        pub(super) struct SyncRequest {
            pub device: String,
            pub cursor: u64,
            pub push: Vec<PushDoc>,
            pub max_response_bytes: u32,
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        pub(super) struct SyncResponse {
            pub accepted: Vec<WireId>,
            pub refused: Vec<Refusal>,
            pub docs: Vec<PullDoc>,
            pub cursor: u64,
            pub more: bool,
            pub server_time_ms: i64,
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        pub(super) struct Refusal {
            pub record: WireId,
            pub code: RefusalCode,
            pub message: String,
        }
    }

    #[test]
    fn phones_of_the_first_protocol_and_new_servers_understand_each_other() {
        // An old phone's request reads as one holding no schema (so it is sent none).
        let old = v1::SyncRequest {
            device: "dev-1".into(),
            cursor: 3,
            push: vec![],
            max_response_bytes: 100,
        };
        let read = SyncRequest::decode(&encode(&old)).unwrap();
        assert_eq!((read.device.as_str(), read.cursor), ("dev-1", 3));
        assert_eq!(read.schema, None);
        // A new response, schema and all, reads on the old phone as before.
        let refusal = |n: u8, reason: Message| Refusal {
            record: WireId([n; 16]),
            code: RefusalCode::InvalidValue,
            message: format!("english {n}"),
            reason,
        };
        let new = SyncResponse {
            refused: vec![
                refusal(1, Message::new("not_an_option").with("got", "x")),
                refusal(2, Message::new("above_max").with("max", "30")),
            ],
            cursor: 9,
            more: true,
            server_time_ms: 5,
            schema: Some(SchemaOffer {
                revision: 2,
                format: 1,
                text: Some("format = 1".into()),
            }),
            ..SyncResponse::default()
        };
        let old_read: v1::SyncResponse = decode(&new.encode()).unwrap();
        assert_eq!(
            (old_read.cursor, old_read.more, old_read.server_time_ms),
            (9, true, 5)
        );
        let old_refusals: Vec<_> = old_read
            .refused
            .iter()
            .map(|r| (r.record, r.message.as_str()))
            .collect();
        assert_eq!(
            old_refusals,
            [
                (WireId([1; 16]), "english 1"),
                (WireId([2; 16]), "english 2")
            ]
        );
        // The new phone reads each refusal with its own reason.
        assert_eq!(SyncResponse::decode(&new.encode()).unwrap(), new);
        // A response of an old server (no reasons) reads with the message as the detail.
        let from_old = v1::SyncResponse {
            accepted: vec![],
            refused: vec![v1::Refusal {
                record: WireId([3; 16]),
                code: RefusalCode::OutOfScope,
                message: "elsewhere".into(),
            }],
            docs: vec![],
            cursor: 1,
            more: false,
            server_time_ms: 0,
        };
        let read = SyncResponse::decode(&encode(&from_old)).unwrap();
        assert_eq!(
            read.refused[0].reason,
            Message::new("out_of_scope").with("detail", "elsewhere")
        );
        // And a new request reads on an old server.
        let mut req = sample();
        req.schema = Some(SchemaHeld {
            revision: 1,
            format: 1,
        });
        let old_server: v1::SyncRequest = decode(&req.encode()).unwrap();
        assert_eq!(old_server.push, req.push);
        assert_eq!(SyncRequest::decode(&req.encode()).unwrap(), req);
    }

    #[test]
    fn a_zstd_bomb_is_refused_not_inflated() {
        let mut bomb = b"YBS\x01".to_vec();
        bomb.extend(zstd::bulk::compress(&vec![0u8; MAX_DECODED_BYTES + 1024], 1).unwrap());
        assert!(
            bomb.len() < 64 * 1024,
            "the bomb is small on the wire: {}",
            bomb.len()
        );
        assert_eq!(
            SyncRequest::decode(&bomb),
            Err(ProtocolError::Damaged(format!(
                "more than {MAX_DECODED_BYTES} bytes once decompressed"
            )))
        );
    }
}
