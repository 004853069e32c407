//! The HTTP edge: the route table, the CSRF (Origin) check, JSON error mapping and the web UI.
//!
//! Every API route is registered through [`routes`], which also returns the table of
//! (method, path) it registered; the OpenAPI document is checked against that table.

pub mod auth;
pub mod openapi;
pub mod ops;

use std::path::{Component, Path};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;
use crate::server::AppState;

/// Largest JSON body any route takes: account forms are tiny; later issues with bigger bodies
/// (study descriptions) set their own limits per route.
pub const JSON_LIMIT: usize = 64 * 1024;

/// (method, path) of a registered route.
pub type RouteEntry = (&'static str, &'static str);

/// Registers every route and returns the table of what it registered.
pub fn routes(cfg: &mut web::ServiceConfig) -> Vec<RouteEntry> {
    let mut table = Vec::new();
    let mut add = |method: &'static str, path: &'static str, route: actix_web::Route| {
        table.push((method, path));
        cfg.service(
            web::resource(path)
                .route(route)
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(ApiError::MethodNotAllowed)
                })),
        );
    };
    add("post", "/api/auth/signup", web::post().to(auth::signup));
    add("post", "/api/auth/login", web::post().to(auth::login));
    add("post", "/api/auth/logout", web::post().to(auth::logout));
    add("get", "/api/auth/me", web::get().to(auth::me));
    add("get", "/api/me/prefs", web::get().to(auth::prefs));
    add("get", "/api/openapi.json", web::get().to(openapi::serve));
    add("get", "/healthz", web::get().to(ops::healthz));
    add("get", "/readyz", web::get().to(ops::readyz));
    add("get", "/metrics", web::get().to(ops::metrics));
    add("get", "/ws", web::get().to(crate::ws::conn::upgrade));
    table
}

/// JSON extractor settings: size limit and errors in our format.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(JSON_LIMIT)
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

/// Middleware: CSRF check for state-changing methods, and the response counter.
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
            let resp = req.error_response(e);
            count(&method, resp.status().as_u16());
            return Ok(resp);
        }
    }
    let method = req.method().to_string();
    let resp = next.call(req).await?.map_into_boxed_body();
    count(&method, resp.status().as_u16());
    Ok(resp)
}

fn count(method: &str, status: u16) {
    metrics::counter!(crate::metrics::HTTP_RESPONSES, "method" => method.to_string(), "status" => status.to_string())
        .increment(1);
}

/// Paths that belong to the server, never to the web client's router.
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
