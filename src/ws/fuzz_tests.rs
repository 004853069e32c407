//! The socket protocol's decoders under arbitrary input: nothing a client sends may panic
//! the connection (a bounded number of cases per run; proptest shrinks any failure).

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::family::Endpoint;
use super::protocol;
use crate::live::chat::ChatRequest;
use crate::live::dm::DmRequest;
use crate::live::prefs::PrefsRequest;
use crate::live::study::StudyRequest;

/// Any JSON value, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Every request type the `/ws` endpoint routes.
fn request_types() -> Vec<&'static str> {
    Endpoint::json(crate::live::features().families)
        .families
        .request_types()
        .collect()
}

/// Parses a request body the way the owning family does; only errors, never a panic.
fn decode(body: Value) {
    let _ = serde_json::from_value::<ChatRequest>(body.clone());
    let _ = serde_json::from_value::<DmRequest>(body.clone());
    let _ = serde_json::from_value::<StudyRequest>(body.clone());
    let _ = serde_json::from_value::<PrefsRequest>(body);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_the_envelope(text in ".{0,200}") {
        let known = request_types();
        if let Ok(e) = protocol::parse(&text, |t| known.contains(&t)) {
            decode(e.body);
        }
    }

    #[test]
    fn known_types_with_arbitrary_fields_decode_or_refuse(
        ty in prop::sample::select(request_types()),
        fields in prop::collection::btree_map(
            prop_oneof![
                Just("room_id".to_string()), Just("last_seq".to_string()), Just("seq".to_string()),
                Just("with".to_string()), Just("to".to_string()), Just("body".to_string()),
                Just("client_id".to_string()), Just("study_id".to_string()), Just("key".to_string()),
                Just("value".to_string()), Just("emoji".to_string()), Just("on".to_string()),
                Just("typing".to_string()), Just("id".to_string()), "[a-z]{1,8}",
            ],
            json(),
            0..6,
        ),
    ) {
        let mut obj: Map<String, Value> = fields.into_iter().collect();
        obj.insert("type".into(), Value::String(ty.to_string()));
        let text = Value::Object(obj).to_string();
        let known = request_types();
        let e = protocol::parse(&text, |t| known.contains(&t));
        if let Ok(e) = e {
            prop_assert_eq!(e.ty.as_str(), ty);
            decode(e.body);
        }
    }
}
