//! The notification inbox: paged list, unread count, mark read. New notifications are
//! stored with the event that caused them and pushed live to every open tab.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::auth::Authenticated;
use super::paging::{self, PAGE_DEFAULT, PAGE_MAX};
use crate::error::ApiError;
use crate::ids::NotificationId;
use crate::server::AppState;
use crate::store::now_millis;

type Res = Result<HttpResponse, ApiError>;

/// `GET /api/notifications?cursor=&limit=` newest first; the cursor is the last id seen.
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
    Ok(HttpResponse::Ok().json(json!({ "items": items, "next_cursor": next_cursor })))
}

/// `GET /api/notifications/unread_count`
pub async fn unread_count(state: web::Data<AppState>, auth: Authenticated) -> Res {
    Ok(HttpResponse::Ok().json(json!({ "count": state.store.unread_count(auth.user.id).await? })))
}

/// `POST /api/notifications/{notification_id}/read`
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
pub async fn mark_all_read(state: web::Data<AppState>, auth: Authenticated) -> Res {
    state
        .store
        .mark_all_read(auth.user.id, now_millis())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
