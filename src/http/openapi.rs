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
        path: "/api/me/studies",
        summary: "My studies: the ones I lead, the ones I joined, my applications",
        tag: "studies",
        auth: true,
        body: None,
        responses: &[
            (200, "My studies", Some("MyStudies")),
            (401, "unauthenticated", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/me/tasks",
        summary: "My open tasks across the studies I am in, soonest due first (at most 50), each with study_title",
        tag: "tasks",
        auth: true,
        body: None,
        responses: &[
            (200, "{items: Task[]}", None),
            (401, "unauthenticated", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/me/bookmarks",
        summary: "My bookmarked studies (wishlist)",
        tag: "studies",
        auth: true,
        body: None,
        responses: &[
            (200, "Studies", Some("StudyPage")),
            (401, "unauthenticated", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies",
        summary: "Create a study (you become its leader)",
        tag: "studies",
        auth: true,
        body: Some("StudyForm"),
        responses: &[
            (201, "Created", Some("StudyEnvelope")),
            (400, "validation_failed with field", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/studies",
        summary: "Browse: q (title, any case), status, tag (repeatable; all must match), sort=newest|deadline, cursor, limit ≤ 50",
        tag: "studies",
        auth: true,
        body: None,
        responses: &[
            (200, "One page and the next cursor", Some("StudyPage")),
            (400, "validation_failed", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/studies/{study_id}",
        summary: "A study, with my role, bookmark and application",
        tag: "studies",
        auth: true,
        body: None,
        responses: &[
            (200, "The study", Some("StudyEnvelope")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "patch",
        path: "/api/studies/{study_id}",
        summary: "Edit the study (leader); omitted fields stay",
        tag: "studies",
        auth: true,
        body: Some("StudyForm"),
        responses: &[
            (200, "The study", Some("StudyEnvelope")),
            (400, "validation_failed", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/status",
        summary: "Change status (leader): recruiting ↔ in_progress, either → completed (final)",
        tag: "studies",
        auth: true,
        body: Some("StatusBody"),
        responses: &[
            (200, "The study", Some("StudyEnvelope")),
            (409, "invalid_status_transition", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/bookmark",
        summary: "Toggle my bookmark on a study",
        tag: "studies",
        auth: true,
        body: None,
        responses: &[
            (200, "{bookmarked}", None),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/studies/{study_id}/members",
        summary: "Members (members and leader only)",
        tag: "studies",
        auth: true,
        body: None,
        responses: &[
            (200, "{items: Member[]}", None),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/applications",
        summary: "Apply with a message (≤ 1000 characters)",
        tag: "studies",
        auth: true,
        body: Some("ApplyBody"),
        responses: &[
            (201, "{application}", None),
            (403, "banned", Some("Error")),
            (
                409,
                "not_recruiting, study_full, already_member or application_exists",
                Some("Error"),
            ),
        ],
    },
    Op {
        method: "get",
        path: "/api/studies/{study_id}/applications",
        summary: "Applications with each applicant's reviews and completed studies (leader)",
        tag: "studies",
        auth: true,
        body: None,
        responses: &[
            (200, "{items: Application[]}", None),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/applications/{application_id}/withdraw",
        summary: "Withdraw my pending application",
        tag: "studies",
        auth: true,
        body: None,
        responses: &[
            (200, "{application}", None),
            (409, "application_not_pending", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/applications/{application_id}/decision",
        summary: "Accept or reject an application (leader); capacity holds under races",
        tag: "studies",
        auth: true,
        body: Some("DecisionBody"),
        responses: &[
            (200, "{application}", None),
            (409, "study_full or application_not_pending", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/leave",
        summary: "Leave the study (members; the leader transfers first)",
        tag: "studies",
        auth: true,
        body: None,
        responses: &[
            (204, "Left", None),
            (409, "leader_must_transfer", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/transfer",
        summary: "Hand the lead to a member (leader)",
        tag: "studies",
        auth: true,
        body: Some("TransferBody"),
        responses: &[
            (200, "The study", Some("StudyEnvelope")),
            (
                400,
                "validation_failed (user_id not a member)",
                Some("Error"),
            ),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/members/{user_id}/remove",
        summary: "Remove a member, optionally banning them from applying again (leader)",
        tag: "studies",
        auth: true,
        body: Some("RemoveBody"),
        responses: &[
            (
                204,
                "Removed; their live connections to the study are dropped",
                None,
            ),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/reviews",
        summary: "Review another present or past member, once per study",
        tag: "reviews",
        auth: true,
        body: Some("ReviewBody"),
        responses: &[
            (201, "{review}", None),
            (409, "review_exists", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "delete",
        path: "/api/studies/{study_id}",
        summary: "Delete the study with everything in it, files included (leader); watchers get a `deleted` event",
        tag: "studies",
        auth: true,
        body: None,
        responses: &[(204, "Deleted", None), (404, "not_found", Some("Error"))],
    },
    Op {
        method: "get",
        path: "/api/studies/{study_id}/tasks",
        summary: "The task board (members): ?filter=all|open|done|mine, by due date (undated last)",
        tag: "tasks",
        auth: true,
        body: None,
        responses: &[
            (200, "{items: Task[]}", None),
            (400, "validation_failed (filter)", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/tasks",
        summary: "Create a task (members)",
        tag: "tasks",
        auth: true,
        body: Some("TaskForm"),
        responses: &[
            (201, "{task}", None),
            (
                400,
                "validation_failed (title, description, due_on, status, assignee_id)",
                Some("Error"),
            ),
            (409, "task_limit (500 per study)", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/studies/{study_id}/tasks/{task_id}",
        summary: "One task (members)",
        tag: "tasks",
        auth: true,
        body: None,
        responses: &[(200, "{task}", None), (404, "not_found", Some("Error"))],
    },
    Op {
        method: "patch",
        path: "/api/studies/{study_id}/tasks/{task_id}",
        summary: "Edit, complete (status done) or reopen (status open) a task (members); null clears due_on/assignee_id",
        tag: "tasks",
        auth: true,
        body: Some("TaskForm"),
        responses: &[
            (200, "{task}", None),
            (400, "validation_failed", Some("Error")),
            (404, "not_found", Some("Error")),
            (
                409,
                "edit_conflict (version given and stale)",
                Some("Error"),
            ),
        ],
    },
    Op {
        method: "delete",
        path: "/api/studies/{study_id}/tasks/{task_id}",
        summary: "Delete a task with its posts and their files (members)",
        tag: "tasks",
        auth: true,
        body: None,
        responses: &[(204, "Deleted", None), (404, "not_found", Some("Error"))],
    },
    Op {
        method: "get",
        path: "/api/studies/{study_id}/tasks/{task_id}/posts",
        summary: "A task's posts, newest first (members): ?q= title search, ?cursor= from next_cursor, ?limit=1–50",
        tag: "tasks",
        auth: true,
        body: None,
        responses: &[
            (200, "{items: PostSummary[], next_cursor}", None),
            (400, "validation_failed (q, cursor, limit)", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/tasks/{task_id}/posts",
        summary: "Write a post under a task (members); markdown rendered, highlighted and sanitized on the server",
        tag: "tasks",
        auth: true,
        body: Some("PostForm"),
        responses: &[
            (201, "{post}", None),
            (400, "validation_failed (title, body)", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/studies/{study_id}/posts/{post_id}",
        summary: "One post with body_html and attachments (members)",
        tag: "tasks",
        auth: true,
        body: None,
        responses: &[(200, "{post}", None), (404, "not_found", Some("Error"))],
    },
    Op {
        method: "patch",
        path: "/api/studies/{study_id}/posts/{post_id}",
        summary: "Edit a post (its author)",
        tag: "tasks",
        auth: true,
        body: Some("PostForm"),
        responses: &[
            (200, "{post}", None),
            (403, "not_author", Some("Error")),
            (404, "not_found", Some("Error")),
            (
                409,
                "edit_conflict (version given and stale)",
                Some("Error"),
            ),
        ],
    },
    Op {
        method: "delete",
        path: "/api/studies/{study_id}/posts/{post_id}",
        summary: "Delete a post and its files (its author, or the leader)",
        tag: "tasks",
        auth: true,
        body: None,
        responses: &[
            (204, "Deleted", None),
            (403, "not_author", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/posts/{post_id}/attachments",
        summary: "Attach a file to a post (its author): the body is the raw bytes, ?name= the filename; type sniffed from the bytes",
        tag: "files",
        auth: true,
        body: Some("binary"),
        responses: &[
            (201, "{file}", None),
            (
                400,
                "empty_file, invalid_filename or upload_aborted",
                Some("Error"),
            ),
            (403, "not_author", Some("Error")),
            (409, "attachment_limit (10 per post)", Some("Error")),
            (413, "payload_too_large or quota_exceeded", Some("Error")),
            (415, "content_type_mismatch", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/attachments",
        summary: "Attach a file to the recruiting post (leader); as for post attachments",
        tag: "files",
        auth: true,
        body: Some("binary"),
        responses: &[
            (201, "{file}", None),
            (
                400,
                "empty_file, invalid_filename or upload_aborted",
                Some("Error"),
            ),
            (409, "attachment_limit", Some("Error")),
            (413, "payload_too_large or quota_exceeded", Some("Error")),
            (415, "content_type_mismatch", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/studies/{study_id}/files/{file_id}",
        summary: "Download a file (members): Content-Disposition attachment, nosniff, Range and If-Range, ETag",
        tag: "files",
        auth: true,
        body: None,
        responses: &[
            (200, "The bytes", None),
            (206, "A byte range", None),
            (304, "Not modified (If-None-Match)", None),
            (404, "not_found", Some("Error")),
            (
                416,
                "range_not_satisfiable, with Content-Range: bytes */size",
                Some("Error"),
            ),
        ],
    },
    Op {
        method: "head",
        path: "/api/studies/{study_id}/files/{file_id}",
        summary: "A download's headers and length without the bytes (members); ranges as for GET",
        tag: "files",
        auth: true,
        body: None,
        responses: &[
            (200, "Headers of the whole file", None),
            (206, "Headers of a byte range", None),
            (404, "not_found", None),
        ],
    },
    Op {
        method: "delete",
        path: "/api/studies/{study_id}/files/{file_id}",
        summary: "Delete a file (its uploader, or the leader)",
        tag: "files",
        auth: true,
        body: None,
        responses: &[
            (204, "Deleted", None),
            (403, "not_author", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/limits",
        summary: "Limits a client checks before sending: upload_max_bytes, study_quota_bytes, attachments_per_post, tasks_per_study",
        tag: "files",
        auth: true,
        body: None,
        responses: &[
            (200, "{upload_max_bytes, …}", None),
            (401, "unauthenticated", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/highlight.css",
        summary: "Stylesheet for the hl-* classes of server-highlighted code blocks",
        tag: "files",
        auth: false,
        body: None,
        responses: &[(200, "text/css", None)],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/chat_rooms",
        summary: "Open a chat room (members; at most 3 open per study)",
        tag: "chat",
        auth: true,
        body: Some("NewRoom"),
        responses: &[
            (201, "{room}", None),
            (409, "room_limit", Some("Error")),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/studies/{study_id}/chat_rooms",
        summary: "The study's chat rooms with my unread count in each (members)",
        tag: "chat",
        auth: true,
        body: None,
        responses: &[
            (200, "{items: Room[]}", None),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "post",
        path: "/api/studies/{study_id}/chat_rooms/{room_id}/close",
        summary: "Close a room (leader): history stays readable, sends are refused, people in it are told",
        tag: "chat",
        auth: true,
        body: None,
        responses: &[(204, "Closed", None), (404, "not_found", Some("Error"))],
    },
    Op {
        method: "get",
        path: "/api/studies/{study_id}/chat_rooms/{room_id}/messages",
        summary: "History by seq: before=SEQ (newest first page) or after=SEQ, limit ≤ 100, oldest first (members)",
        tag: "chat",
        auth: true,
        body: None,
        responses: &[
            (200, "{items: ChatMessage[]}", None),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "patch",
        path: "/api/reviews/{review_id}",
        summary: "Edit my review",
        tag: "reviews",
        auth: true,
        body: Some("ReviewPatch"),
        responses: &[(200, "{review}", None), (404, "not_found", Some("Error"))],
    },
    Op {
        method: "get",
        path: "/api/users/{user_id}/profile",
        summary: "A user's profile: reviews (average, count, texts) and completed studies",
        tag: "reviews",
        auth: true,
        body: None,
        responses: &[(200, "Profile", None), (404, "not_found", Some("Error"))],
    },
    Op {
        method: "get",
        path: "/api/dms",
        summary: "My direct-message conversations: the other user, the last message, my unread count",
        tag: "chat",
        auth: true,
        body: None,
        responses: &[(200, "{items: Conversation[]}", None)],
    },
    Op {
        method: "get",
        path: "/api/dms/{user_id}/messages",
        summary: "My conversation with a user by seq (before=|after=, limit ≤ 100), and how far they have read",
        tag: "chat",
        auth: true,
        body: None,
        responses: &[
            (200, "{items: DirectMessage[], read_seq}", None),
            (404, "not_found", Some("Error")),
        ],
    },
    Op {
        method: "get",
        path: "/api/notifications",
        summary: "My notifications, newest first (cursor = last id)",
        tag: "notifications",
        auth: true,
        body: None,
        responses: &[(200, "{items, next_cursor}", None)],
    },
    Op {
        method: "get",
        path: "/api/notifications/unread_count",
        summary: "How many notifications I have not read",
        tag: "notifications",
        auth: true,
        body: None,
        responses: &[(200, "{count}", None)],
    },
    Op {
        method: "post",
        path: "/api/notifications/read_all",
        summary: "Mark all my notifications read",
        tag: "notifications",
        auth: true,
        body: None,
        responses: &[(204, "Done", None)],
    },
    Op {
        method: "post",
        path: "/api/notifications/{notification_id}/read",
        summary: "Mark one notification read",
        tag: "notifications",
        auth: true,
        body: None,
        responses: &[(204, "Done", None), (404, "not_found", Some("Error"))],
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
        let params: Vec<Value> = op
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "integer" } }))
            .collect();
        if !params.is_empty() {
            o["parameters"] = Value::Array(params);
        }
        match op.body {
            Some("binary") => {
                o["requestBody"] = json!({ "required": true, "content": { "*/*": { "schema": { "type": "string", "format": "binary" } } } });
                o["parameters"].as_array_mut().expect("upload routes have path params").push(
                    json!({ "name": "name", "in": "query", "required": true, "schema": { "type": "string" }, "description": "the original filename" }),
                );
            }
            Some(b) => {
                o["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema_ref(b) } } });
            }
            None => {}
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
                State-changing requests must carry an Origin header matching the public origin. \
                Any signed-in state-changing request may answer 429 rate_limited with Retry-After \
                (a burst of 120 a user, then 10 a second); so may sign-up, per client address."
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
                "StudyForm": {
                    "type": "object",
                    "description": "All required on create except description and tags; all optional on edit",
                    "properties": {
                        "title": { "type": "string", "minLength": 1, "maxLength": 100 },
                        "description": { "type": "string", "description": "markdown, rendered sanitized" },
                        "tags": { "type": "array", "maxItems": 10, "items": { "type": "string", "minLength": 1, "maxLength": 30 } },
                        "capacity": { "type": "integer", "minimum": 2, "maximum": 100 },
                        "recruit_opens_on": { "type": "string", "format": "date" },
                        "recruit_closes_on": { "type": "string", "format": "date", "description": "before starts_on" },
                        "starts_on": { "type": "string", "format": "date" },
                        "ends_on": { "type": "string", "format": "date", "description": "after starts_on" }
                    }
                },
                "Study": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "integer" }, "title": { "type": "string" },
                        "tags": { "type": "array", "items": { "type": "string" } },
                        "status": { "type": "string", "enum": ["recruiting", "in_progress", "completed"] },
                        "capacity": { "type": "integer" }, "member_count": { "type": "integer" },
                        "recruit_opens_on": { "type": "string" }, "recruit_closes_on": { "type": "string" },
                        "starts_on": { "type": "string" }, "ends_on": { "type": "string" },
                        "leader": schema_ref("User"), "created_at": { "type": "integer" },
                        "description": { "type": "string" }, "description_html": { "type": "string" },
                        "my_role": { "type": "string", "enum": ["none", "applicant", "member", "leader"] },
                        "bookmarked": { "type": "boolean" }
                    }
                },
                "StudyEnvelope": { "type": "object", "properties": { "study": schema_ref("Study") } },
                "StudyPage": {
                    "type": "object",
                    "properties": {
                        "items": { "type": "array", "items": schema_ref("Study") },
                        "next_cursor": { "type": ["string", "null"] }
                    }
                },
                "MyStudies": {
                    "type": "object",
                    "properties": {
                        "leading": { "type": "array", "items": schema_ref("Study") },
                        "joined": { "type": "array", "items": schema_ref("Study") },
                        "applications": { "type": "array", "items": { "type": "object" } }
                    }
                },
                "NewRoom": {
                    "type": "object", "required": ["name", "category"],
                    "properties": {
                        "name": { "type": "string", "minLength": 1, "maxLength": 40 },
                        "category": { "type": "string", "enum": ["general", "qna", "resources", "off_topic"] }
                    }
                },
                "StatusBody": { "type": "object", "required": ["status"], "properties": { "status": { "type": "string" } } },
                "ApplyBody": { "type": "object", "properties": { "message": { "type": "string", "maxLength": 1000 } } },
                "DecisionBody": {
                    "type": "object", "required": ["accept"],
                    "properties": { "accept": { "type": "boolean" }, "reason": { "type": "string", "maxLength": 500 } }
                },
                "TransferBody": { "type": "object", "required": ["user_id"], "properties": { "user_id": { "type": "integer" } } },
                "RemoveBody": { "type": "object", "properties": { "ban": { "type": "boolean" } } },
                "ReviewBody": {
                    "type": "object", "required": ["reviewee_id", "rating"],
                    "properties": {
                        "reviewee_id": { "type": "integer" },
                        "rating": { "type": "integer", "minimum": 1, "maximum": 5 },
                        "body": { "type": "string", "maxLength": 1000 }
                    }
                },
                "ReviewPatch": {
                    "type": "object",
                    "properties": { "rating": { "type": "integer" }, "body": { "type": "string" } }
                },
                "TaskForm": {
                    "type": "object",
                    "description": "title required on create; on edit every field is optional and null clears due_on/assignee_id",
                    "properties": {
                        "title": { "type": "string", "minLength": 1, "maxLength": 200 },
                        "description": { "type": "string", "maxLength": 20000, "description": "markdown" },
                        "due_on": { "type": ["string", "null"], "format": "date" },
                        "assignee_id": { "type": ["integer", "null"], "description": "a current member" },
                        "status": { "type": "string", "enum": ["open", "done"] },
                        "version": { "type": "integer", "description": "edit only: refuse with edit_conflict if the task changed since this version; without it the given fields apply to the current task" }
                    }
                },
                "PostForm": {
                    "type": "object",
                    "description": "title required on create",
                    "properties": {
                        "title": { "type": "string", "minLength": 1, "maxLength": 200 },
                        "body": { "type": "string", "maxLength": 100000, "description": "markdown; fenced code is highlighted" },
                        "version": { "type": "integer", "description": "edit only: as in TaskForm" }
                    }
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
        let mut specs = Vec::new();
        let _app = actix_web::App::new().configure(|cfg| specs = super::super::routes(cfg));
        let mut registered: Vec<_> = specs.iter().map(|s| (s.method, s.path)).collect();
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
