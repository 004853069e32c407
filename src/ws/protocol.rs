//! Frame types of the `/ws` protocol, version [`PROTOCOL_VERSION`]. The human reference is
//! `PROTOCOL.md` beside this file; the browser client and the load harness follow it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::ids::{RoomId, StudyId, UserId};
use crate::store::User;

pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request id a client may send: ids are echoed back, so they are bounded.
pub const MAX_ID_LEN: usize = 64;

/// Every request type a client may send; anything else gets `unknown_type`.
pub const CLIENT_TYPES: &[&str] = &[
    "ping",
    "prefs.set",
    "prefs.get",
    "study.watch",
    "study.unwatch",
    "chat.join",
    "chat.leave",
    "chat.send",
    "chat.edit",
    "chat.delete",
    "chat.react",
    "chat.typing",
    "chat.read",
    "dm.send",
    "dm.sync",
    "dm.read",
];

/// A request from the client, after the envelope (`type`, `id`) was checked.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientMsg {
    #[serde(rename = "ping")]
    Ping {
        #[serde(default)]
        id: Option<Value>,
    },
    /// Durably store one preference; acknowledged after commit.
    #[serde(rename = "prefs.set")]
    PrefsSet {
        #[serde(default)]
        id: Option<Value>,
        key: String,
        value: String,
    },
    #[serde(rename = "prefs.get")]
    PrefsGet {
        #[serde(default)]
        id: Option<Value>,
    },
    /// Receive `study.event` frames for this study while its page is open.
    #[serde(rename = "study.watch")]
    StudyWatch {
        #[serde(default)]
        id: Option<Value>,
        study_id: StudyId,
    },
    #[serde(rename = "study.unwatch")]
    StudyUnwatch {
        #[serde(default)]
        id: Option<Value>,
        study_id: StudyId,
    },
    #[serde(rename = "chat.join")]
    ChatJoin {
        #[serde(default)]
        id: Option<Value>,
        room_id: RoomId,
        #[serde(default)]
        last_seq: Option<i64>,
    },
    #[serde(rename = "chat.leave")]
    ChatLeave {
        #[serde(default)]
        id: Option<Value>,
        room_id: RoomId,
    },
    #[serde(rename = "chat.send")]
    ChatSend {
        #[serde(default)]
        id: Option<Value>,
        room_id: RoomId,
        client_id: String,
        body: String,
    },
    #[serde(rename = "chat.edit")]
    ChatEdit {
        #[serde(default)]
        id: Option<Value>,
        room_id: RoomId,
        seq: i64,
        body: String,
    },
    #[serde(rename = "chat.delete")]
    ChatDelete {
        #[serde(default)]
        id: Option<Value>,
        room_id: RoomId,
        seq: i64,
    },
    #[serde(rename = "chat.react")]
    ChatReact {
        #[serde(default)]
        id: Option<Value>,
        room_id: RoomId,
        seq: i64,
        emoji: String,
        on: bool,
    },
    #[serde(rename = "chat.typing")]
    ChatTyping {
        #[serde(default)]
        id: Option<Value>,
        room_id: RoomId,
        typing: bool,
    },
    #[serde(rename = "chat.read")]
    ChatRead {
        #[serde(default)]
        id: Option<Value>,
        room_id: RoomId,
        seq: i64,
    },
    #[serde(rename = "dm.send")]
    DmSend {
        #[serde(default)]
        id: Option<Value>,
        to: UserId,
        client_id: String,
        body: String,
    },
    #[serde(rename = "dm.sync")]
    DmSync {
        #[serde(default)]
        id: Option<Value>,
        with: UserId,
        last_seq: i64,
    },
    #[serde(rename = "dm.read")]
    DmRead {
        #[serde(default)]
        id: Option<Value>,
        with: UserId,
        seq: i64,
    },
}

/// A frame from the server.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum ServerMsg<'a> {
    #[serde(rename = "hello")]
    Hello {
        v: u32,
        conn_id: String,
        user: &'a User,
        heartbeat_ms: u64,
        max_message_bytes: usize,
    },
    #[serde(rename = "pong")]
    Pong { id: Option<Value> },
    /// A request succeeded; `id` is the client's request id.
    #[serde(rename = "ack")]
    Ack { id: Option<Value> },
    #[serde(rename = "prefs")]
    Prefs {
        id: Option<Value>,
        prefs: BTreeMap<String, String>,
    },
    #[serde(rename = "error")]
    Error {
        id: Option<Value>,
        error: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// An actor this tab relies on restarted: re-fetch what is shown for `scope`.
    #[serde(rename = "resync")]
    Resync {
        scope: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        study_id: Option<StudyId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        room_id: Option<RoomId>,
    },
    /// A live notification for the user (every tab gets it).
    #[serde(rename = "notification")]
    Notification { notification: &'a Value },
}

impl ServerMsg<'_> {
    pub fn to_text(&self) -> bytestring::ByteString {
        serde_json::to_string(self)
            .expect("server frames serialize")
            .into()
    }
}

/// The error frame for an API error: its stable code and message, plus `field` (validation)
/// and `retry_after_ms` (rate limits) when they apply. Every socket error goes through here.
pub fn error_frame(id: Option<Value>, e: &ApiError) -> bytestring::ByteString {
    let b = e.body();
    let mut v =
        serde_json::json!({ "type": "error", "id": id, "error": b.error, "message": b.message });
    if let Some(f) = b.field {
        v["field"] = Value::from(f);
    }
    if let ApiError::RateLimited { retry_after_secs } = e {
        v["retry_after_ms"] = Value::from(retry_after_secs * 1000);
    }
    v.to_string().into()
}

/// Why a text frame could not be turned into a [`ClientMsg`]: each maps to an error code.
#[derive(Debug, PartialEq)]
pub enum ParseError {
    /// Not JSON, or not a JSON object.
    BadJson(String),
    /// No string `type`, or an `id` that is not a short string or a number.
    BadEnvelope(Option<Value>, String),
    /// A `type` the server does not know.
    UnknownType(Option<Value>, String),
    /// Known type, wrong fields.
    BadRequest(Option<Value>, String),
}

impl ParseError {
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::BadJson(_) => "malformed_json",
            ParseError::BadEnvelope(..) | ParseError::BadRequest(..) => "bad_request",
            ParseError::UnknownType(..) => "unknown_type",
        }
    }

    pub fn id(&self) -> Option<Value> {
        match self {
            ParseError::BadJson(_) => None,
            ParseError::BadEnvelope(id, _)
            | ParseError::UnknownType(id, _)
            | ParseError::BadRequest(id, _) => id.clone(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            ParseError::BadJson(m)
            | ParseError::BadEnvelope(_, m)
            | ParseError::BadRequest(_, m) => m.clone(),
            ParseError::UnknownType(_, t) => format!("unknown message type {t:?}"),
        }
    }
}

/// Parses one text frame: JSON object → envelope check → typed request.
pub fn parse(text: &str) -> Result<ClientMsg, ParseError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| ParseError::BadJson(e.to_string()))?;
    let Value::Object(obj) = &value else {
        return Err(ParseError::BadJson("a frame must be a JSON object".into()));
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= MAX_ID_LEN => Some(Value::String(s.clone())),
        Some(Value::Number(n)) => Some(Value::Number(n.clone())),
        Some(_) => {
            return Err(ParseError::BadEnvelope(
                None,
                format!("id must be a string of at most {MAX_ID_LEN} bytes or a number"),
            ));
        }
    };
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.clone(),
        _ => {
            return Err(ParseError::BadEnvelope(
                id,
                "missing string field `type`".into(),
            ));
        }
    };
    if !CLIENT_TYPES.contains(&ty.as_str()) {
        return Err(ParseError::UnknownType(id, ty));
    }
    serde_json::from_value(value).map_err(|e| ParseError::BadRequest(id, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_known_requests() {
        assert_eq!(
            parse(r#"{"type":"ping","id":"a1"}"#).unwrap(),
            ClientMsg::Ping {
                id: Some(json!("a1"))
            }
        );
        assert_eq!(
            parse(r#"{"type":"ping"}"#).unwrap(),
            ClientMsg::Ping { id: None }
        );
        assert_eq!(
            parse(r#"{"type":"prefs.set","id":7,"key":"lang","value":"ko"}"#).unwrap(),
            ClientMsg::PrefsSet {
                id: Some(json!(7)),
                key: "lang".into(),
                value: "ko".into()
            }
        );
    }

    #[test]
    fn classifies_bad_frames() {
        assert_eq!(parse("not json").unwrap_err().code(), "malformed_json");
        assert_eq!(parse("[1,2]").unwrap_err().code(), "malformed_json");
        assert_eq!(parse(r#"{"id":"x"}"#).unwrap_err().code(), "bad_request");
        let e = parse(r#"{"type":"launch","id":"x"}"#).unwrap_err();
        assert_eq!(e.code(), "unknown_type");
        assert_eq!(e.id(), Some(json!("x")));
        let e = parse(r#"{"type":"prefs.set","id":"y","key":1,"value":"v"}"#).unwrap_err();
        assert_eq!(e.code(), "bad_request");
        assert_eq!(e.id(), Some(json!("y")));
        assert_eq!(
            parse(r#"{"type":"prefs.set","key":"k"}"#)
                .unwrap_err()
                .code(),
            "bad_request"
        );
        assert_eq!(
            parse(r#"{"type":"ping","id":{"a":1}}"#).unwrap_err().code(),
            "bad_request"
        );
        let long = format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(65));
        assert_eq!(parse(&long).unwrap_err().code(), "bad_request");
        assert_eq!(
            parse(r#"{"type":"ping","extra":1}"#).unwrap_err().code(),
            "bad_request"
        );
    }
}
