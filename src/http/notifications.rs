//! The notification inbox: paged list, unread count, mark read. New notifications are
//! stored with the event that caused them and pushed live to every open tab.

use actix_web::{HttpRequest, HttpResponse, web};

use super::api_types::*;
use super::auth::Authenticated;
use super::paging::{self, PAGE_DEFAULT, PAGE_MAX};
use crate::error::ApiError;
use crate::ids::NotificationId;
use crate::server::AppState;
use crate::store::now_millis;

type Res = Result<HttpResponse, ApiError>;

/// `GET /api/notifications?cursor=&limit=` newest first; the cursor is the last id seen.
#[utoipa::path(
    get,
    path = "/api/notifications",
    tag = "notifications",
    summary = "My notifications, newest first (cursor = last id)",
    params(("cursor" = Option<i64>, Query, description = "next_cursor of the previous page"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 50)),
    responses((status = 200, description = "{items, next_cursor}", body = Page<Notification>)),
    security(("session" = []))
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>, auth: Authenticated) -> Res {
    let mut before = None;
    let mut limit = PAGE_DEFAULT;
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "cursor" if !v.is_empty() => {
                before =
                    Some(NotificationId(v.parse().map_err(|_| {
                        ApiError::validation("cursor", "invalid cursor")
                    })?));
            }
            "limit" => limit = paging::limit(&v, PAGE_MAX)?,
            _ => {}
        }
    }
    let mut items = state
        .store
        .notifications(auth.user.id, before, limit + 1)
        .await?;
    let next_cursor = paging::finish(&mut items, limit, |n| n.id.0.to_string());
    Ok(HttpResponse::Ok().json(Page { items, next_cursor }))
}

/// `GET /api/notifications/unread_count`
#[utoipa::path(
    get,
    path = "/api/notifications/unread_count",
    tag = "notifications",
    summary = "How many notifications I have not read",
    responses((status = 200, description = "{count}", body = UnreadCount)),
    security(("session" = []))
)]
pub async fn unread_count(state: web::Data<AppState>, auth: Authenticated) -> Res {
    let count = state.store.unread_count(auth.user.id).await?;
    Ok(HttpResponse::Ok().json(UnreadCount { count }))
}

/// `POST /api/notifications/{notification_id}/read`
#[utoipa::path(
    post,
    path = "/api/notifications/{notification_id}/read",
    tag = "notifications",
    summary = "Mark one notification read",
    params(("notification_id" = i64, Path)),
    responses((status = 204, description = "Done"), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn mark_read(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
) -> Res {
    if !state
        .store
        .mark_read(auth.user.id, NotificationId(*path), now_millis())
        .await?
    {
        return Err(ApiError::NotFound);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /api/notifications/read_all`
#[utoipa::path(
    post,
    path = "/api/notifications/read_all",
    tag = "notifications",
    summary = "Mark all my notifications read",
    responses((status = 204, description = "Done")),
    security(("session" = []))
)]
pub async fn mark_all_read(state: web::Data<AppState>, auth: Authenticated) -> Res {
    state
        .store
        .mark_all_read(auth.user.id, now_millis())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
