//! The OpenAPI 3.1 document served at `/api/openapi.json`. A test compares its operations with
//! the route table from [`super::routes`], so a route cannot ship undocumented.

use actix_web::HttpResponse;
use serde_json::{Value, json};

/// One documented operation.
struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    tag: &'static str,
    /// Needs the session cookie.
    auth: bool,
    /// Component schema name of the JSON body.
    body: Option<&'static str>,
    /// (status, description, component schema name of the JSON body).
    responses: &'static [(u16, &'static str, Option<&'static str>)],
}

const OPS: &[Op] = &[
    Op {
        method: "post",
        path: "/api/auth/signup",
        summary: "Create an account and log in",
        tag: "auth",
        auth: false,
        body: Some("SignupRequest"),
        responses: &[
            (
                201,
                "Created; sets the session cookie",
                Some("UserEnvelope"),
            ),
            (
                400,
                "validation_failed (with field) or malformed_json",
                Some("Error"),
            ),
            (403, "bad_origin", Some("Error")),
            (409, "login_id_taken or display_name_taken", Some("Error")),
            (413, "payload_too_large", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/auth/login",
        summary: "Log in with login id and password; a new session each time",
        tag: "auth",
        auth: false,
        body: Some("LoginRequest"),
        responses: &[
            (
                200,
                "Logged in; sets the session cookie",
                Some("UserEnvelope"),
            ),
            (
                401,
                "invalid_credentials (same for unknown id and wrong password)",
                Some("Error"),
            ),
            (429, "rate_limited, with Retry-After", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/auth/logout",
        summary: "Revoke this session and close its live sockets",
        tag: "auth",
        auth: true,
        body: None,
        responses: &[
            (204, "Logged out", None),
            (401, "unauthenticated", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/auth/me",
        summary: "Who am I",
        tag: "auth",
        auth: true,
        body: None,
        responses: &[
            (200, "The current user", Some("UserEnvelope")),
            (401, "unauthenticated", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/me/prefs",
        summary: "My stored preferences (set them over /ws with prefs.set)",
        tag: "auth",
        auth: true,
        body: None,
        responses: &[
            (200, "Preferences", Some("Prefs")),
            (401, "unauthenticated", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/openapi.json",
        summary: "This document",
        tag: "meta",
        auth: false,
        body: None,
        responses: &[(200, "OpenAPI 3.1 document", None)],
    },
    Op {
        method: "get",
        path: "/healthz",
        summary: "Liveness",
        tag: "ops",
        auth: false,
        body: None,
        responses: &[(200, "Alive", None)],
    },
    Op {
        method: "get",
        path: "/readyz",
        summary: "Readiness: the store answers and the node is not draining",
        tag: "ops",
        auth: false,
        body: None,
        responses: &[(200, "Ready", None), (503, "unavailable", Some("Error"))],
    },
    Op {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics (text format)",
        tag: "ops",
        auth: false,
        body: None,
        responses: &[(200, "Metrics", None)],
    },
    Op {
        method: "get",
        path: "/ws",
        summary: "Upgrade to the live WebSocket (protocol: src/ws/PROTOCOL.md); Origin checked",
        tag: "live",
        auth: true,
        body: None,
        responses: &[
            (101, "Switching protocols", None),
            (401, "unauthenticated", Some("Error")),
            (403, "bad_origin", Some("Error")),
        ],
    },
];

/// (method, path) of every documented operation.
pub fn documented() -> Vec<(&'static str, &'static str)> {
    OPS.iter().map(|o| (o.method, o.path)).collect()
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for op in OPS {
        let mut responses = serde_json::Map::new();
        for (status, desc, schema) in op.responses {
            let mut r = json!({ "description": desc });
            if let Some(s) = schema {
                r["content"] = json!({ "application/json": { "schema": schema_ref(s) } });
            }
            responses.insert(status.to_string(), r);
        }
        let mut o = json!({
            "summary": op.summary,
            "tags": [op.tag],
            "operationId": format!("{}_{}", op.method, op.path.trim_start_matches('/').replace(['/', '.'], "_")),
            "responses": responses,
        });
        if op.auth {
            o["security"] = json!([{ "session": [] }]);
        }
        if let Some(b) = op.body {
            o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema_ref(b) } } });
        }
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method] = o;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "StudyOn API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Errors are JSON {\"error\": code, \"message\": text} with a stable snake_case code. \
                State-changing requests must carry an Origin header matching the public origin."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": "studyon_session" }
            },
            "schemas": {
                "User": {
                    "type": "object",
                    "required": ["id", "login_id", "display_name"],
                    "properties": {
                        "id": { "type": "integer" },
                        "login_id": { "type": "string" },
                        "display_name": { "type": "string" }
                    }
                },
                "UserEnvelope": {
                    "type": "object",
                    "required": ["user"],
                    "properties": { "user": schema_ref("User") }
                },
                "SignupRequest": {
                    "type": "object",
                    "required": ["login_id", "display_name", "password"],
                    "properties": {
                        "login_id": { "type": "string", "pattern": "^[A-Za-z0-9_]{3,32}$", "description": "stored lower-cased" },
                        "display_name": { "type": "string", "minLength": 1, "maxLength": 40 },
                        "password": { "type": "string", "description": "10–256 bytes" }
                    }
                },
                "LoginRequest": {
                    "type": "object",
                    "required": ["login_id", "password"],
                    "properties": {
                        "login_id": { "type": "string" },
                        "password": { "type": "string" }
                    }
                },
                "Prefs": {
                    "type": "object",
                    "required": ["prefs"],
                    "properties": { "prefs": { "type": "object", "additionalProperties": { "type": "string" } } }
                },
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": { "type": "string", "description": "stable snake_case code" },
                        "message": { "type": "string" },
                        "field": { "type": "string", "description": "the offending field, for validation_failed" }
                    }
                }
            }
        }
    })
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails when a route is registered but not documented, or documented but not registered.
    #[test]
    fn every_registered_route_is_documented() {
        let mut registered = Vec::new();
        let _app = actix_web::App::new().configure(|cfg| registered = super::super::routes(cfg));
        let mut registered: Vec<_> = registered;
        registered.sort();
        let mut documented = documented();
        documented.sort();
        assert_eq!(registered, documented);
        assert!(!registered.is_empty());
    }

    #[test]
    fn document_references_resolve() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "dangling $ref {name}");
        }
        assert_eq!(
            doc["paths"]["/api/auth/login"]["post"]["requestBody"]["content"]["application/json"]["schema"]
                ["$ref"],
            "#/components/schemas/LoginRequest"
        );
    }
}
