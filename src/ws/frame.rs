//! What travels over a live socket, as types.
//!
//! - [`Frame`]: one WebSocket message on its way to a client, text or binary, in shared
//!   bytes (serialized once, however many sockets get it).
//! - [`ServerFrame`]: a typed server→client frame. Each message family declares its frames
//!   with [`server_frames!`], which also lists their `type` names in `SERVER_FRAMES`.
//! - [`Requests`]: a family's client→server request enum, declared with [`client_requests!`],
//!   which lists the request `type` names the socket routes to that family.
//! - The core frames every socket speaks: `hello`, `pong`, `ack`, `error`, `resync`.
//!
//! The protocol reference (`PROTOCOL.md`) is checked against these lists by a test.

use bytes::Bytes;
use bytestring::ByteString;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::registry::ResyncScope;
use crate::store::User;

/// Protocol version in `hello.v`.
pub const PROTOCOL_VERSION: u32 = 1;

/// One WebSocket message for a client. Cloning shares the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    Text(ByteString),
    Binary(Bytes),
}

impl Frame {
    /// Serializes a typed server frame (JSON text).
    pub fn of<F: ServerFrame + ?Sized>(f: &F) -> Frame {
        Frame::Text(
            serde_json::to_string(f)
                .expect("server frames serialize")
                .into(),
        )
    }

    pub fn len(&self) -> usize {
        match self {
            Frame::Text(t) => t.len(),
            Frame::Binary(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A typed server→client frame: serialized as one JSON object whose `type` is [`Self::TYPE`].
pub trait ServerFrame: Serialize {
    const TYPE: &'static str;

    fn to_frame(&self) -> Frame {
        Frame::of(self)
    }
}

/// A family's request enum: the `type` names it accepts.
pub trait Requests {
    const TYPES: &'static [&'static str];
}

/// Declares server→client frames: each becomes a struct serialized as a JSON object with
/// its `type` first, and `SERVER_FRAMES` lists every type declared in the invocation.
#[macro_export]
macro_rules! server_frames {
    ($(
        $(#[$meta:meta])*
        $ty:literal => $name:ident $(<$lt:lifetime>)? {
            $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)?
        }
    )*) => {
        $(
            $(#[$meta])*
            #[derive(Debug, Clone, serde::Serialize)]
            #[serde(tag = "type", rename = $ty)]
            pub struct $name $(<$lt>)? { $( $(#[$fmeta])* pub $field : $fty ),* }

            impl $(<$lt>)? $crate::ws::frame::ServerFrame for $name $(<$lt>)? {
                const TYPE: &'static str = $ty;
            }
        )*
        /// Every server frame type declared here (the protocol reference test reads it).
        pub const SERVER_FRAMES: &[&str] = &[$($ty),*];
    };
}

/// Declares a family's client→server requests as one enum tagged by `type`; unknown or
/// missing fields are refused. The envelope (`type`, `id`) is checked by the socket before
/// the family sees the request, and `id` is taken out of it.
#[macro_export]
macro_rules! client_requests {
    (
        $(#[$emeta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$meta:meta])*
                $ty:literal => $var:ident { $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),* $(,)? }
            ),* $(,)?
        }
    ) => {
        $(#[$emeta])*
        #[derive(Debug, Clone, PartialEq, serde::Deserialize)]
        #[serde(tag = "type", deny_unknown_fields)]
        $vis enum $name {
            $(
                $(#[$meta])*
                #[serde(rename = $ty)]
                $var { $( $(#[$fmeta])* $field : $fty ),* }
            ),*
        }

        impl $crate::ws::frame::Requests for $name {
            const TYPES: &'static [&'static str] = &[$($ty),*];
        }
    };
}

/// A request id the client chose (a string of at most [`MAX_ID_LEN`] bytes, or a number);
/// replies and errors echo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReqId {
    Num(serde_json::Number),
    Str(String),
}

/// Longest request id a client may send: ids are echoed back, so they are bounded.
pub const MAX_ID_LEN: usize = 64;

/// The `resync` frame's body: `scope` plus the id field that names the thing, if any.
#[derive(Debug, Clone, Copy)]
pub struct Scope(pub ResyncScope);

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

server_frames! {
    /// The first frame after the upgrade.
    "hello" => Hello<'a> {
        v: u32,
        conn_id: String,
        user: &'a User,
        heartbeat_ms: u64,
        max_message_bytes: usize,
    }
    /// The reply to `ping`.
    "pong" => Pong { id: Option<ReqId> }
    /// A request succeeded (for writes: after the commit).
    "ack" => Ack { id: Option<ReqId> }
    /// A request failed; the socket stays open.
    "error" => ErrorFrame {
        id: Option<ReqId>,
        error: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    }
    /// An actor this tab relies on restarted: re-fetch what is shown for `scope`.
    "resync" => Resync {
        #[serde(flatten)]
        scope: Scope,
    }
}

impl ErrorFrame {
    /// The error frame for an API error: its stable code and message, plus `field`
    /// (validation) and `retry_after_ms` (rate limits) when they apply. Every socket error
    /// goes through here.
    pub fn of(id: Option<ReqId>, e: &ApiError) -> ErrorFrame {
        let b = e.body();
        ErrorFrame {
            id,
            error: b.error,
            message: b.message,
            field: b.field,
            retry_after_ms: match e {
                ApiError::RateLimited { retry_after_secs } => Some(retry_after_secs * 1000),
                _ => None,
            },
        }
    }

    /// An error that has no `ApiError` (a protocol-level refusal on the socket).
    pub fn protocol(id: Option<ReqId>, error: &'static str, message: String) -> ErrorFrame {
        ErrorFrame {
            id,
            error,
            message,
            field: None,
            retry_after_ms: None,
        }
    }
}

/// Shorthand for the error frame of an API error.
pub fn error(id: Option<ReqId>, e: &ApiError) -> Frame {
    ErrorFrame::of(id, e).to_frame()
}

/// Shorthand for an `ack`.
pub fn ack(id: Option<ReqId>) -> Frame {
    Ack { id }.to_frame()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_frames_serialize_with_their_type_first() {
        let f = Ack {
            id: Some(ReqId::Str("a".into())),
        }
        .to_frame();
        assert_eq!(f, Frame::Text(r#"{"type":"ack","id":"a"}"#.into()));
        let e = ErrorFrame::of(
            None,
            &ApiError::RateLimited {
                retry_after_secs: 2,
            },
        );
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["id"], serde_json::Value::Null);
        assert_eq!(v["error"], "rate_limited");
        assert_eq!(v["retry_after_ms"], 2000);
        assert!(v.get("field").is_none());
        let v = serde_json::to_value(ErrorFrame::of(None, &ApiError::validation("key", "bad")))
            .unwrap();
        assert_eq!(v["field"], "key");
        assert!(v.get("retry_after_ms").is_none());
        let r = Resync {
            scope: Scope(ResyncScope::with("study", "study_id", 7)),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"type":"resync","scope":"study","study_id":7}"#
        );
        assert_eq!(SERVER_FRAMES, ["hello", "pong", "ack", "error", "resync"]);
    }
}
