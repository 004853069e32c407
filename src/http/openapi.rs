//! The OpenAPI 3.1 document served at `/api/openapi.json`, derived by `utoipa` from the
//! request and response types the handlers use (their `#[utoipa::path]` declarations sit on
//! the handlers). What every route of a kind may answer (401 without a session, 404 for a
//! study the caller may not see, 403/429/400/413 on writes) is added from the route table's
//! access policy, the one place that decides it. A test compares the document's operations
//! with the route table, so a route cannot ship undocumented.

use actix_web::HttpResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{RefOr, Response, ResponseBuilder};

use super::{Access, RouteSpec};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "StudyOn API",
        description = "Errors are JSON {\"error\": code, \"message\": text} with a stable snake_case \
            code (plus `field` for validation_failed). State-changing requests must carry an Origin \
            header matching a public origin. Any signed-in state-changing request may answer 429 \
            rate_limited with Retry-After (a burst of 120 a user, then 10 a second); so may \
            sign-up, per client address, and any signed-in request from an address that sent \
            too many unknown session cookies (a burst of 20, then one a second)."
    ),
    paths(
        super::auth::signup,
        super::auth::login,
        super::auth::logout,
        super::auth::me,
        super::auth::prefs,
        super::studies::my_studies,
        super::tasks::mine,
        super::studies::my_bookmarks,
        super::studies::create,
        super::studies::list,
        super::studies::get,
        super::studies::edit,
        super::files::delete_study,
        super::studies::set_status,
        super::studies::bookmark,
        super::studies::members,
        super::studies::apply,
        super::studies::applications,
        super::studies::withdraw,
        super::studies::decide,
        super::studies::leave,
        super::studies::transfer,
        super::studies::remove,
        super::studies::review,
        super::chat::create,
        super::chat::list,
        super::chat::close,
        super::chat::history,
        super::tasks::list,
        super::tasks::create,
        super::tasks::get,
        super::tasks::edit,
        super::tasks::delete,
        super::tasks::posts,
        super::tasks::create_post,
        super::tasks::get_post,
        super::tasks::edit_post,
        super::tasks::delete_post,
        super::files::upload_to_post,
        super::files::upload_to_study,
        super::files::download,
        super::files::delete,
        super::studies::edit_review,
        super::studies::profile,
        super::chat::conversations,
        super::chat::direct_history,
        super::notifications::list,
        super::notifications::unread_count,
        super::notifications::mark_all_read,
        super::notifications::mark_read,
        super::tasks::limits,
        super::files::highlight_css,
        super::openapi::serve,
        super::ops::healthz,
        super::ops::readyz,
        crate::ws::conn::upgrade,
        crate::live::doc::socket::upgrade,
        super::docs::lock,
        super::docs::versions,
        super::docs::take_version,
        super::docs::version,
        super::docs::restore
    ),
    modifiers(&SessionCookie)
)]
struct ApiDoc;

/// The session cookie as the security scheme of signed-in routes.
struct SessionCookie;

impl utoipa::Modify for SessionCookie {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "studyon_session",
                "The session cookie (`__Host-studyon_session` over https) set by sign-up and login",
            ))),
        );
    }
}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            )
            .build(),
    )
}

/// The answers every route of its kind may give, whatever the handler does.
fn common_responses(spec: &RouteSpec) -> Vec<(&'static str, &'static str)> {
    let write = !matches!(spec.method, "get" | "head");
    let mut out = Vec::new();
    if spec.access != Access::Public {
        out.push(("401", "unauthenticated: no valid session"));
    }
    // Writes spend the user's budget; any signed-in request passes the unknown-cookie gate.
    if write || spec.access != Access::Public {
        out.push(("429", "rate_limited, with Retry-After"));
    }
    if matches!(spec.access, Access::Study(_)) || spec.path.contains('{') {
        out.push((
            "404",
            "not_found: no such thing, or one the caller may not see",
        ));
    }
    if write {
        out.push((
            "403",
            "bad_origin: the Origin header is missing or not a public origin",
        ));
        out.push(("400", "validation_failed (with field) or malformed_json"));
        out.push(("413", "payload_too_large"));
        out.push((
            "415",
            "unsupported_media_type: the body must be application/json",
        ));
    }
    if spec.path != "/healthz" {
        out.push(("503", "busy or unavailable: retry after Retry-After"));
    }
    out
}

/// The document: derived from the handlers' types, plus each route's common answers.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let mut specs = Vec::new();
    let _app = actix_web::App::new().configure(|cfg| specs = super::routes(cfg));
    for spec in &specs {
        let Some(item) = doc.paths.paths.get_mut(spec.path) else {
            continue;
        };
        let op = match spec.method {
            "get" => item.get.as_mut(),
            "post" => item.post.as_mut(),
            "patch" => item.patch.as_mut(),
            "put" => item.put.as_mut(),
            "delete" => item.delete.as_mut(),
            "head" => item.head.as_mut(),
            _ => None,
        };
        let Some(op) = op else { continue };
        // One id per method and path (handler names repeat across modules; one handler may
        // serve two methods).
        op.operation_id = Some(format!(
            "{}_{}",
            spec.method,
            spec.path
                .trim_start_matches('/')
                .replace(['/', '.'], "_")
                .replace(['{', '}'], "")
        ));
        let mut common = common_responses(spec);
        // A query parameter out of its range (a limit, a seq, a cursor) is a validation error.
        let has_query = op
            .parameters
            .iter()
            .flatten()
            .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query));
        if has_query {
            common.push((
                "400",
                "validation_failed (with field): a query parameter is out of range",
            ));
        }
        for (status, description) in common {
            op.responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| error_response(description));
        }
    }
    doc
}

/// Every (method, path) the document describes.
pub fn documented() -> Vec<(String, String)> {
    let doc = document();
    let mut out = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            ("get", &item.get),
            ("post", &item.post),
            ("patch", &item.patch),
            ("delete", &item.delete),
            ("head", &item.head),
            ("put", &item.put),
        ] {
            if op.is_some() {
                out.push((method.to_string(), path.clone()));
            }
        }
    }
    out
}

#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    summary = "This document",
    responses((status = 200, description = "This document", body = Object))
)]
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
        let mut registered: Vec<(String, String)> = specs
            .iter()
            .map(|s| (s.method.to_string(), s.path.to_string()))
            .collect();
        registered.sort();
        let mut documented = documented();
        documented.sort();
        assert_eq!(registered, documented);
        assert!(!registered.is_empty());
    }

    #[test]
    fn document_references_resolve_and_bodies_come_from_the_types() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            assert!(schemas.contains_key(&name), "dangling $ref {name}");
        }
        let login = &doc["paths"]["/api/auth/login"]["post"];
        assert_eq!(
            login["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/LoginRequest"
        );
        // The task schema is the Rust type's: every field the handler serializes is there.
        let task = &schemas["Task"]["properties"];
        for field in ["id", "title", "status", "assignee", "version", "post_count"] {
            assert!(task.get(field).is_some(), "Task.{field}: {task}");
        }
        // Common answers come from the route table: a member route may be not_found, a
        // write may be rate limited.
        let delete = &doc["paths"]["/api/studies/{study_id}/tasks/{task_id}"]["delete"];
        for status in ["401", "403", "404", "429"] {
            assert!(
                delete["responses"].get(status).is_some(),
                "{status}: {delete}"
            );
        }
        // A signed-in read passes the unknown-cookie gate, which may refuse it.
        let me = &doc["paths"]["/api/auth/me"]["get"];
        assert!(me["responses"].get("429").is_some(), "{me}");
    }
}
