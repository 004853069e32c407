//! Accounts over HTTP: sign up, log in, log out, who am I; and the session extractor.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::api_types::*;
use super::client_ip;
use crate::auth::{password, rules, token};
use crate::error::ApiError;
use crate::ids::SessionId;
use crate::live::user::{UserSession, UserSessionMsg};
use crate::server::AppState;
use crate::store::{Millis, NewSession, NewUser, User, now_millis};

/// Sessions are touched at most this often: keeps a busy tab from writing on every request
/// while the idle timeout stays accurate to a minute.
const TOUCH_EVERY_MS: Millis = 60_000;

/// The caller's user and login session, from the session cookie.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    pub session: SessionId,
    /// When the session's absolute lifetime ends (live sockets close then).
    pub expires_at: Millis,
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req
            .app_data::<web::Data<AppState>>()
            .expect("app state")
            .clone();
        let token = session_token(req);
        let ip = client_ip::of(req, &state.trusted_proxies);
        let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        Box::pin(async move {
            let token = token.ok_or(ApiError::Unauthenticated)?;
            let hash = token::hash_token(&token);
            let now = Instant::now();
            // A session already over its user's write budget is refused before the database
            // is asked who it is: a script hammering writes costs a hash and a map lookup.
            if writes && let Some(wait) = state.refused_writes.remaining(&hash, now) {
                return Err(rate_limited(wait));
            }
            // So is an address spraying made-up session cookies.
            state
                .token_gate
                .check(ip, &hash, now)
                .map_err(rate_limited)?;
            let auth = match authenticate_hash(&state, &hash).await {
                Ok(a) => {
                    state.token_gate.passed(&hash, now);
                    a
                }
                Err(ApiError::Unauthenticated) => {
                    state.token_gate.failed(ip, now);
                    return Err(ApiError::Unauthenticated);
                }
                Err(e) => return Err(e),
            };
            // Every state-changing request names its user here, so one check bounds them all
            // (before a body such as an upload is read).
            if writes && let Err(wait) = state.take_write(auth.user.id).await {
                state.refused_writes.note(hash, now, wait);
                return Err(rate_limited(wait));
            }
            Ok(auth)
        })
    }
}

/// A refusal by a rate limit, with whole seconds to wait (at least one).
fn rate_limited(wait: std::time::Duration) -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

async fn authenticate(state: &AppState, token: &str) -> Result<Authenticated, ApiError> {
    authenticate_hash(state, &token::hash_token(token)).await
}

async fn authenticate_hash(state: &AppState, hash: &[u8]) -> Result<Authenticated, ApiError> {
    let rec = state
        .store
        .session_by_token_hash(hash)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let now = now_millis();
    let idle_ms = (state.settings.session_idle_secs as i64).saturating_mul(1000);
    if rec.revoked_at.is_some() || now >= rec.expires_at || now - rec.last_seen_at >= idle_ms {
        return Err(ApiError::Unauthenticated);
    }
    if now - rec.last_seen_at >= TOUCH_EVERY_MS {
        state.store.touch_session(rec.id, now).await?;
    }
    Ok(Authenticated {
        user: rec.user,
        session: rec.id,
        expires_at: rec.expires_at,
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SignupRequest {
    /// Stored lower-cased.
    #[schema(pattern = "^[A-Za-z0-9_]{3,32}$")]
    pub login_id: String,
    #[schema(min_length = 1, max_length = 40)]
    pub display_name: String,
    /// 10–256 bytes.
    #[schema(min_length = 10, max_length = 256)]
    pub password: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    #[schema(max_length = 64)]
    pub login_id: String,
    #[schema(max_length = 256)]
    pub password: String,
}

/// `POST /api/auth/signup`: creates the account and logs it in.
#[utoipa::path(
    post,
    path = "/api/auth/signup",
    tag = "auth",
    summary = "Create an account and log in",
    request_body = SignupRequest,
    responses((status = 201, description = "Created; sets the session cookie", body = UserEnvelope), (status = 400, description = "validation_failed (with field) or malformed_json", body = ErrorBody), (status = 403, description = "bad_origin", body = ErrorBody), (status = 409, description = "login_id_taken or display_name_taken", body = ErrorBody), (status = 413, description = "payload_too_large", body = ErrorBody))
)]
pub async fn signup(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<SignupRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let login_id = rules::login_id(&body.login_id)?;
    let display_name = rules::display_name(&body.display_name)?;
    rules::password(&body.password)?;
    // Counted once the input is valid, before the costly hash: a typo does not use up the
    // address's sign-ups, a script creating accounts does.
    if let Some(ip) = client_ip::of(&req, &state.trusted_proxies)
        && let Err(wait) = state.take_signup(ip).await
    {
        return Err(rate_limited(wait));
    }
    let hash = password::hash(body.password).await?;
    let user = state
        .store
        .create_user(&NewUser {
            login_id,
            display_name,
            password_hash: hash,
            now: now_millis(),
        })
        .await?;
    let cookie = open_session(&req, &state, &user).await?;
    Ok(HttpResponse::Created()
        .cookie(cookie)
        .json(UserEnvelope { user }))
}

/// `POST /api/auth/login`: a new session (and token) on every login.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "auth",
    summary = "Log in with login id and password; a new session each time",
    request_body = LoginRequest,
    responses((status = 200, description = "Logged in; sets the session cookie", body = UserEnvelope), (status = 401, description = "invalid_credentials (same for unknown id and wrong password)", body = ErrorBody), (status = 429, description = "rate_limited, with Retry-After", body = ErrorBody))
)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    // The throttle key is the normalized id, capped so junk input cannot grow the map's keys.
    let key: String = body
        .login_id
        .trim()
        .to_ascii_lowercase()
        .chars()
        .take(64)
        .collect();
    let ip = client_ip::of(&req, &state.trusted_proxies);
    let since = now_millis() - (state.settings.session_idle_secs as i64) * 1000;
    let known = match ip {
        Some(ip) => {
            state
                .store
                .logged_in_from(&key, &ip.to_string(), since)
                .await?
        }
        None => false,
    };
    if let Err(wait) = state.check_login(&key, ip, known).await {
        return Err(rate_limited(wait));
    }
    let found = match rules::login_id(&body.login_id) {
        Ok(id) => state.store.user_credentials(&id).await?,
        Err(_) => None,
    };
    // Verify against a decoy when the id is unknown: same answer, same cost.
    let (user, phc) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, password::decoy_hash().to_string()),
    };
    let ok = password::verify(body.password, phc).await?;
    let user = match (ok, user) {
        (true, Some(u)) => u,
        _ => return Err(ApiError::InvalidCredentials),
    };
    // A login replaces the session this browser had (no session fixation).
    if let Some(old) = session_token(&req)
        && let Ok(a) = authenticate(&state, &old).await
    {
        revoke(&state, &a).await?;
    }
    let cookie = open_session(&req, &state, &user).await?;
    Ok(HttpResponse::Ok()
        .cookie(cookie)
        .json(UserEnvelope { user }))
}

/// `POST /api/auth/logout`: revokes the session and closes its sockets.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    summary = "Revoke this session and close its live sockets",
    responses((status = 204, description = "Logged out"), (status = 401, description = "unauthenticated", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    revoke(&state, &auth).await?;
    let mut gone = session_cookie(&req, &state, String::new(), CookieDuration::ZERO);
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

/// `GET /api/auth/me`
#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "auth",
    summary = "Who am I",
    responses((status = 200, description = "The current user", body = UserEnvelope), (status = 401, description = "unauthenticated", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn me(auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(UserEnvelope { user: auth.user })
}

/// `GET /api/me/prefs`
#[utoipa::path(
    get,
    path = "/api/me/prefs",
    tag = "auth",
    summary = "My stored preferences (set them over /ws with prefs.set)",
    responses((status = 200, description = "Preferences", body = PrefsEnvelope), (status = 401, description = "unauthenticated", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn prefs(
    state: web::Data<AppState>,
    auth: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let prefs = state
        .store
        .user_prefs(auth.user.id)
        .await?
        .into_iter()
        .collect();
    Ok(HttpResponse::Ok().json(PrefsEnvelope { prefs }))
}

async fn revoke(state: &AppState, auth: &Authenticated) -> Result<(), ApiError> {
    state
        .store
        .revoke_session(auth.session, now_millis())
        .await?;
    // Close the sockets opened with this session, wherever they are (a user with no tab
    // open has no session actor running, and nothing to close).
    state
        .registry
        .tell_if_running::<UserSession>(
            auth.user.id,
            UserSessionMsg::SessionRevoked {
                session: auth.session,
            },
        )
        .await?;
    Ok(())
}

async fn open_session(
    req: &HttpRequest,
    state: &AppState,
    user: &User,
) -> Result<Cookie<'static>, ApiError> {
    let token = token::random_token();
    let hash = token::hash_token(&token);
    // Its first requests pass even while its address is refused for unknown tokens.
    state.token_gate.passed(&hash, Instant::now());
    let now = now_millis();
    let max_age = state.settings.session_max_age_secs;
    let user_agent = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(256).collect());
    state
        .store
        .create_session(&NewSession {
            user_id: user.id,
            token_hash: hash,
            now,
            expires_at: now + (max_age as i64).saturating_mul(1000),
            user_agent,
            ip: client_ip::of(req, &state.trusted_proxies).map(|a| a.to_string()),
        })
        .await?;
    Ok(session_cookie(
        req,
        state,
        token,
        CookieDuration::seconds(max_age as i64),
    ))
}

/// The session cookie's name over https: `__Host-` makes the browser insist on Secure, no
/// Domain and Path=/.
pub const SECURE_COOKIE: &str = "__Host-studyon_session";
/// Its name over plain http (loopback development, or an http origin).
pub const PLAIN_COOKIE: &str = "studyon_session";

/// The session token a request carries (the secure cookie wins if both are there).
pub fn session_token(req: &HttpRequest) -> Option<String> {
    req.cookie(SECURE_COOKIE)
        .or_else(|| req.cookie(PLAIN_COOKIE))
        .map(|c| c.value().to_string())
}

/// Whether the request came through an https origin: its `Origin` header (checked against
/// the public origins on every state change), else the first public origin.
fn through_https(req: &HttpRequest, state: &AppState) -> bool {
    match req.headers().get("origin").and_then(|o| o.to_str().ok()) {
        Some(o) => o.starts_with("https://"),
        None => state.settings.secure_cookies(),
    }
}

/// The session cookie for this request's origin: with several public origins (an http and
/// an https one), a login through the https one gets `Secure` and the `__Host-` prefix.
fn session_cookie(
    req: &HttpRequest,
    state: &AppState,
    value: String,
    max_age: CookieDuration,
) -> Cookie<'static> {
    let secure = through_https(req, state);
    Cookie::build(if secure { SECURE_COOKIE } else { PLAIN_COOKIE }, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(max_age)
        .finish()
}
