//! The HTTP edge: the route table, the CSRF (Origin) check, JSON error mapping and the web UI.
//!
//! Every API route is registered through [`routes`], which also returns the table of what it
//! registered with each route's access policy; the OpenAPI document and the authorization
//! matrix test are both checked against that table.

pub mod api_types;
pub mod auth;
pub mod chat;
pub mod client_ip;
pub mod docs;
pub mod files;
pub mod notifications;
pub mod openapi;
pub mod ops;
pub mod paging;
pub mod studies;
pub mod tasks;

use std::path::{Component, Path};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;
use crate::server::AppState;
use crate::studies::Role;

/// Largest JSON body a route takes unless it says otherwise: most forms are tiny.
pub const JSON_LIMIT: usize = 64 * 1024;
/// Routes carrying a 20k-character markdown description (studies, tasks): 20k characters of
/// up to 4 UTF-8 bytes, JSON escaping, and the other fields.
const DESCRIPTION_JSON_LIMIT: usize = 256 * 1024;
/// Routes carrying a post body of up to 100k characters.
const POST_JSON_LIMIT: usize = 1024 * 1024;

/// Who may call a route. Study routes name the roles (in that study) that may act; every
/// other caller gets the same answer as for a missing study.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No session needed.
    Public,
    /// Any signed-in user.
    User,
    /// Signed in, with one of these roles in the study named by `{study_id}`.
    Study(&'static [Role]),
}

/// Every role a signed-in user can have in a study.
const ANY_ROLE: &[Role] = &[Role::None, Role::Applicant, Role::Member, Role::Leader];
const MEMBERS: &[Role] = &[Role::Member, Role::Leader];
const LEADER: &[Role] = &[Role::Leader];

/// One registered route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

/// Collects routes per path: actix answers 405 from the first resource whose path matches,
/// so all methods of one path must live on one resource.
struct Table {
    specs: Vec<RouteSpec>,
    resources: Vec<(&'static str, actix_web::Resource)>,
}

impl Table {
    fn add(
        &mut self,
        method: &'static str,
        path: &'static str,
        access: Access,
        route: actix_web::Route,
    ) {
        self.specs.push(RouteSpec {
            method,
            path,
            access,
        });
        match self.resources.iter().position(|(p, _)| *p == path) {
            Some(i) => {
                let (p, r) = self.resources.remove(i);
                self.resources.insert(i, (p, r.route(route)));
            }
            None => self
                .resources
                .push((path, web::resource(path).route(route))),
        }
    }
}

impl Table {
    /// A larger JSON body limit for every method of one path.
    fn json_limit(&mut self, path: &str, limit: usize) {
        let i = self
            .resources
            .iter()
            .position(|(p, _)| *p == path)
            .unwrap_or_else(|| panic!("json_limit for an unregistered path {path}"));
        let (p, r) = self.resources.remove(i);
        self.resources
            .insert(i, (p, r.app_data(json_config_with(limit))));
    }
}

/// Registers every route and returns the table of what it registered.
pub fn routes(cfg: &mut web::ServiceConfig) -> Vec<RouteSpec> {
    use Access::{Public, Study, User};
    let mut t = Table {
        specs: Vec::new(),
        resources: Vec::new(),
    };
    t.add(
        "post",
        "/api/auth/signup",
        Public,
        web::post().to(auth::signup),
    );
    t.add(
        "post",
        "/api/auth/login",
        Public,
        web::post().to(auth::login),
    );
    t.add(
        "post",
        "/api/auth/logout",
        User,
        web::post().to(auth::logout),
    );
    t.add("get", "/api/auth/me", User, web::get().to(auth::me));
    t.add("get", "/api/me/prefs", User, web::get().to(auth::prefs));
    t.add(
        "get",
        "/api/me/studies",
        User,
        web::get().to(studies::my_studies),
    );
    t.add("get", "/api/me/tasks", User, web::get().to(tasks::mine));
    t.add(
        "get",
        "/api/me/bookmarks",
        User,
        web::get().to(studies::my_bookmarks),
    );
    t.add(
        "post",
        "/api/studies",
        User,
        web::post().to(studies::create),
    );
    t.add("get", "/api/studies", User, web::get().to(studies::list));
    t.add(
        "get",
        "/api/studies/{study_id}",
        Study(ANY_ROLE),
        web::get().to(studies::get),
    );
    t.add(
        "patch",
        "/api/studies/{study_id}",
        Study(LEADER),
        web::patch().to(studies::edit),
    );
    t.add(
        "delete",
        "/api/studies/{study_id}",
        Study(LEADER),
        web::delete().to(files::delete_study),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/status",
        Study(LEADER),
        web::post().to(studies::set_status),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/bookmark",
        Study(ANY_ROLE),
        web::post().to(studies::bookmark),
    );
    t.add(
        "get",
        "/api/studies/{study_id}/members",
        Study(MEMBERS),
        web::get().to(studies::members),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/applications",
        Study(&[Role::None]),
        web::post().to(studies::apply),
    );
    t.add(
        "get",
        "/api/studies/{study_id}/applications",
        Study(LEADER),
        web::get().to(studies::applications),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/applications/{application_id}/withdraw",
        Study(&[Role::Applicant]),
        web::post().to(studies::withdraw),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/applications/{application_id}/decision",
        Study(LEADER),
        web::post().to(studies::decide),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/leave",
        Study(&[Role::Member]),
        web::post().to(studies::leave),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/transfer",
        Study(LEADER),
        web::post().to(studies::transfer),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/members/{user_id}/remove",
        Study(LEADER),
        web::post().to(studies::remove),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/reviews",
        Study(MEMBERS),
        web::post().to(studies::review),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/chat_rooms",
        Study(MEMBERS),
        web::post().to(chat::create),
    );
    t.add(
        "get",
        "/api/studies/{study_id}/chat_rooms",
        Study(MEMBERS),
        web::get().to(chat::list),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/chat_rooms/{room_id}/close",
        Study(LEADER),
        web::post().to(chat::close),
    );
    t.add(
        "get",
        "/api/studies/{study_id}/chat_rooms/{room_id}/messages",
        Study(MEMBERS),
        web::get().to(chat::history),
    );
    t.add(
        "get",
        "/api/studies/{study_id}/tasks",
        Study(MEMBERS),
        web::get().to(tasks::list),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/tasks",
        Study(MEMBERS),
        web::post().to(tasks::create),
    );
    t.add(
        "get",
        "/api/studies/{study_id}/tasks/{task_id}",
        Study(MEMBERS),
        web::get().to(tasks::get),
    );
    t.add(
        "patch",
        "/api/studies/{study_id}/tasks/{task_id}",
        Study(MEMBERS),
        web::patch().to(tasks::edit),
    );
    // Deleting a task is for its creator and the leader: both are members, so the table
    // says members and the store checks who created it.
    t.add(
        "delete",
        "/api/studies/{study_id}/tasks/{task_id}",
        Study(MEMBERS),
        web::delete().to(tasks::delete),
    );
    t.add(
        "get",
        "/api/studies/{study_id}/tasks/{task_id}/posts",
        Study(MEMBERS),
        web::get().to(tasks::posts),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/tasks/{task_id}/posts",
        Study(MEMBERS),
        web::post().to(tasks::create_post),
    );
    // Editing a post and adding files to it is for its author, deleting also for the leader:
    // both are members, so the table says members and the store checks authorship.
    t.add(
        "get",
        "/api/studies/{study_id}/posts/{post_id}",
        Study(MEMBERS),
        web::get().to(tasks::get_post),
    );
    t.add(
        "patch",
        "/api/studies/{study_id}/posts/{post_id}",
        Study(MEMBERS),
        web::patch().to(tasks::edit_post),
    );
    t.add(
        "delete",
        "/api/studies/{study_id}/posts/{post_id}",
        Study(MEMBERS),
        web::delete().to(tasks::delete_post),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/posts/{post_id}/attachments",
        Study(MEMBERS),
        web::post().to(files::upload_to_post),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/attachments",
        Study(LEADER),
        web::post().to(files::upload_to_study),
    );
    t.add(
        "get",
        "/api/studies/{study_id}/files/{file_id}",
        Study(MEMBERS),
        web::get().to(files::download),
    );
    t.add(
        "head",
        "/api/studies/{study_id}/files/{file_id}",
        Study(MEMBERS),
        web::head().to(files::download),
    );
    t.add(
        "delete",
        "/api/studies/{study_id}/files/{file_id}",
        Study(MEMBERS),
        web::delete().to(files::delete),
    );
    t.add(
        "patch",
        "/api/reviews/{review_id}",
        User,
        web::patch().to(studies::edit_review),
    );
    t.add(
        "get",
        "/api/users/{user_id}/profile",
        User,
        web::get().to(studies::profile),
    );
    t.add("get", "/api/dms", User, web::get().to(chat::conversations));
    t.add(
        "get",
        "/api/dms/{user_id}/messages",
        User,
        web::get().to(chat::direct_history),
    );
    t.add(
        "get",
        "/api/notifications",
        User,
        web::get().to(notifications::list),
    );
    t.add(
        "get",
        "/api/notifications/unread_count",
        User,
        web::get().to(notifications::unread_count),
    );
    t.add(
        "post",
        "/api/notifications/read_all",
        User,
        web::post().to(notifications::mark_all_read),
    );
    t.add(
        "post",
        "/api/notifications/{notification_id}/read",
        User,
        web::post().to(notifications::mark_read),
    );
    t.add("get", "/api/limits", User, web::get().to(tasks::limits));
    t.add(
        "get",
        "/api/highlight.css",
        Public,
        web::get().to(files::highlight_css),
    );
    t.add(
        "get",
        "/api/openapi.json",
        Public,
        web::get().to(openapi::serve),
    );
    t.add("get", "/healthz", Public, web::get().to(ops::healthz));
    t.add("get", "/readyz", Public, web::get().to(ops::readyz));
    t.add(
        "put",
        "/api/studies/{study_id}/posts/{post_id}/lock",
        Study(LEADER),
        web::put().to(docs::lock),
    );
    t.add(
        "get",
        "/api/studies/{study_id}/posts/{post_id}/versions",
        Study(MEMBERS),
        web::get().to(docs::versions),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/posts/{post_id}/versions",
        Study(MEMBERS),
        web::post().to(docs::take_version),
    );
    t.add(
        "get",
        "/api/studies/{study_id}/posts/{post_id}/versions/{version_id}",
        Study(MEMBERS),
        web::get().to(docs::version),
    );
    t.add(
        "post",
        "/api/studies/{study_id}/posts/{post_id}/versions/{version_id}/restore",
        Study(MEMBERS),
        web::post().to(docs::restore),
    );
    t.add("get", "/ws", User, web::get().to(crate::ws::conn::upgrade));
    t.add(
        "get",
        "/ws/doc/{post_id}",
        User,
        web::get().to(crate::live::doc::socket::upgrade),
    );
    for (path, limit) in [
        ("/api/studies", DESCRIPTION_JSON_LIMIT),
        ("/api/studies/{study_id}", DESCRIPTION_JSON_LIMIT),
        ("/api/studies/{study_id}/tasks", DESCRIPTION_JSON_LIMIT),
        (
            "/api/studies/{study_id}/tasks/{task_id}",
            DESCRIPTION_JSON_LIMIT,
        ),
        (
            "/api/studies/{study_id}/tasks/{task_id}/posts",
            POST_JSON_LIMIT,
        ),
        ("/api/studies/{study_id}/posts/{post_id}", POST_JSON_LIMIT),
    ] {
        t.json_limit(path, limit);
    }
    for (_, resource) in t.resources {
        cfg.service(resource.default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::MethodNotAllowed)
        })));
    }
    t.specs
}

/// Path parameters that are not numbers name nothing: 404 in our format.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| ApiError::NotFound.into())
}

/// JSON extractor settings: size limit and errors in our format.
pub fn json_config() -> web::JsonConfig {
    json_config_with(JSON_LIMIT)
}

fn json_config_with(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| {
            use actix_web::error::JsonPayloadError as J;
            let e = match &err {
                J::OverflowKnownLength { .. } | J::Overflow { .. } => ApiError::PayloadTooLarge,
                J::ContentType => ApiError::UnsupportedMediaType,
                J::Deserialize(de) if de.is_data() => {
                    // Wrong type or missing field: name it when serde does.
                    ApiError::MalformedJson(format!(
                        "the JSON does not have the expected shape: {de}"
                    ))
                }
                J::Deserialize(de) => {
                    ApiError::MalformedJson(format!("the body is not valid JSON: {de}"))
                }
                other => ApiError::MalformedJson(other.to_string()),
            };
            e.into()
        })
}

/// Checks `Origin` against the configured public origins.
pub fn check_origin(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let origin = req.headers().get("origin").and_then(|o| o.to_str().ok());
    match origin {
        Some(o) if state.origins.iter().any(|a| a == o) => Ok(()),
        _ => Err(ApiError::BadOrigin),
    }
}

/// The page policy for everything we serve: our own scripts, styles, images and sockets
/// only; no inline script; nobody may frame us. External images in posts are turned into
/// links when they are rendered, so `img-src` needs no other host (and a reader's visit is
/// never reported to a third party).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; \
    media-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// Security headers on every response that did not set its own (downloads keep their
/// sandboxing policy).
fn secure_headers(headers: &mut actix_web::http::header::HeaderMap) {
    use actix_web::http::header::{HeaderName, HeaderValue};
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}

/// Middleware: CSRF check for state-changing methods, security headers, and the response
/// counter.
pub async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let state = req
            .app_data::<web::Data<AppState>>()
            .expect("app state")
            .clone();
        if let Err(e) = check_origin(req.request(), &state) {
            let method = req.method().to_string();
            let mut resp = req.error_response(e);
            secure_headers(resp.headers_mut());
            count(&method, resp.status().as_u16());
            return Ok(resp);
        }
    }
    let method = req.method().to_string();
    let mut resp = next.call(req).await?.map_into_boxed_body();
    secure_headers(resp.headers_mut());
    count(&method, resp.status().as_u16());
    Ok(resp)
}

fn count(method: &str, status: u16) {
    metrics::counter!(crate::metrics::HTTP_RESPONSES, "method" => method.to_string(), "status" => status.to_string())
        .increment(1);
}

/// Paths that belong to the server, never to the web client's router (`/metrics` is served
/// on its own listener; here it is a plain 404, not the web client).
fn is_server_path(path: &str) -> bool {
    path.starts_with("/api/") || path == "/api" || path == "/ws" || path == "/metrics"
}

/// Everything no route matched: static files of the web client, `index.html` for its
/// client-side routes, JSON 404 for unknown server paths.
pub async fn fallback(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let path = req.path();
    if is_server_path(path) || !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(ApiError::NotFound);
    }
    let web_dir = &state.settings.web_dir;
    let rel = Path::new(path.trim_start_matches('/'));
    // Only plain components: no `..`, no absolute paths, no hidden files.
    let plain = rel
        .components()
        .all(|c| matches!(c, Component::Normal(s) if !s.to_string_lossy().starts_with('.')));
    if plain && !rel.as_os_str().is_empty() {
        let file = web_dir.join(rel);
        if file.is_file() {
            let named = actix_files::NamedFile::open_async(&file)
                .await
                .map_err(|_| ApiError::NotFound)?;
            let mut resp = named.into_response(&req);
            let cache = if path.starts_with("/assets/") {
                // Vite puts a content hash in every asset name.
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            resp.headers_mut().insert(
                actix_web::http::header::CACHE_CONTROL,
                actix_web::http::header::HeaderValue::from_static(cache),
            );
            return Ok(resp);
        }
        // A missing asset is a 404, not the app shell.
        if rel.extension().is_some() {
            return Err(ApiError::NotFound);
        }
    }
    let index = web_dir.join("index.html");
    match tokio::fs::read(&index).await {
        Ok(html) => Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-cache"))
            .body(html)),
        Err(_) => Ok(HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body(format!(
            "StudyOn is running, but the web client is not built at {}.\nRun `npm ci && npm run build` in web/.",
            web_dir.display()
        ))),
    }
}
