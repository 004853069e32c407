//! The envelope of a JSON request: one object with a string `type` and an optional `id`.
//! The envelope is checked here; the family that owns the `type` parses the rest. The human
//! reference is `PROTOCOL.md` beside this file; the browser client and the load harness
//! follow it.

use serde_json::Value;

use super::frame::{MAX_ID_LEN, ReqId};

/// A request whose envelope is sound: its type, its id, and the object (with `type`, without
/// `id`) for the owning family to parse.
#[derive(Debug, PartialEq)]
pub struct Envelope {
    pub ty: String,
    pub id: Option<ReqId>,
    pub body: Value,
}

/// Why a text frame could not be taken: each maps to an error code.
#[derive(Debug, PartialEq)]
pub enum ParseError {
    /// Not JSON, or not a JSON object.
    BadJson(String),
    /// No string `type`, or an `id` that is not a short string or a number.
    BadEnvelope(Option<ReqId>, String),
    /// A `type` the server does not know.
    UnknownType(Option<ReqId>, String),
}

impl ParseError {
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::BadJson(_) => "malformed_json",
            ParseError::BadEnvelope(..) => "bad_request",
            ParseError::UnknownType(..) => "unknown_type",
        }
    }

    pub fn id(&self) -> Option<ReqId> {
        match self {
            ParseError::BadJson(_) => None,
            ParseError::BadEnvelope(id, _) | ParseError::UnknownType(id, _) => id.clone(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            ParseError::BadJson(m) | ParseError::BadEnvelope(_, m) => m.clone(),
            ParseError::UnknownType(_, t) => format!("unknown message type {t:?}"),
        }
    }
}

/// Parses one text frame: JSON object → envelope check. `known` says whether a type has a
/// family; unknown ones are refused here.
pub fn parse(text: &str, known: impl Fn(&str) -> bool) -> Result<Envelope, ParseError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| ParseError::BadJson(e.to_string()))?;
    let Value::Object(mut obj) = value else {
        return Err(ParseError::BadJson("a frame must be a JSON object".into()));
    };
    let id = match obj.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= MAX_ID_LEN => Some(ReqId::Str(s)),
        Some(Value::Number(n)) => Some(ReqId::Num(n)),
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
    if !known(&ty) {
        return Err(ParseError::UnknownType(id, ty));
    }
    Ok(Envelope {
        ty,
        id,
        body: Value::Object(obj),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn known(t: &str) -> bool {
        matches!(t, "ping" | "prefs.set")
    }

    #[test]
    fn takes_sound_envelopes() {
        let e = parse(r#"{"type":"ping","id":"a1"}"#, known).unwrap();
        assert_eq!(e.ty, "ping");
        assert_eq!(e.id, Some(ReqId::Str("a1".into())));
        assert_eq!(e.body, json!({"type": "ping"}), "the id is taken out");
        let e = parse(r#"{"type":"ping"}"#, known).unwrap();
        assert_eq!(e.id, None);
        let e = parse(
            r#"{"type":"prefs.set","id":7,"key":"lang","value":"ko"}"#,
            known,
        )
        .unwrap();
        assert_eq!(e.id, Some(ReqId::Num(7.into())));
        assert_eq!(e.body["key"], "lang");
    }

    #[test]
    fn classifies_bad_frames() {
        assert_eq!(
            parse("not json", known).unwrap_err().code(),
            "malformed_json"
        );
        assert_eq!(parse("[1,2]", known).unwrap_err().code(), "malformed_json");
        assert_eq!(
            parse(r#"{"id":"x"}"#, known).unwrap_err().code(),
            "bad_request"
        );
        let e = parse(r#"{"type":"launch","id":"x"}"#, known).unwrap_err();
        assert_eq!(e.code(), "unknown_type");
        assert_eq!(e.id(), Some(ReqId::Str("x".into())));
        assert_eq!(
            parse(r#"{"type":"ping","id":{"a":1}}"#, known)
                .unwrap_err()
                .code(),
            "bad_request"
        );
        let long = format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(65));
        assert_eq!(parse(&long, known).unwrap_err().code(), "bad_request");
    }
}
