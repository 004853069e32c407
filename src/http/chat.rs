//! Chat rooms over HTTP: open (at most 3 per study), list with my unread counts, close
//! (leader), and history paging. Live traffic is on the socket (see PROTOCOL.md).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::auth::Authenticated;
use crate::actors::chat_room::{ChatRoom, ChatRoomMsg};
use crate::actors::study::{Study, StudyMsg};
use crate::chat::{self, Category};
use crate::error::ApiError;
use crate::ids::{RoomId, StudyId};
use crate::server::AppState;
use crate::store::chat::Page;
use crate::store::now_millis;

/// History page size: at most 100 a page (the bound).
const PAGE_MAX: i64 = 100;
const PAGE_DEFAULT: i64 = 50;

type Res = Result<HttpResponse, ApiError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    name: String,
    category: String,
}

/// `POST /api/studies/{study_id}/chat_rooms` (members)
pub async fn create(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
    body: web::Json<NewRoom>,
) -> Res {
    let name = chat::room_name(&body.name)?;
    let category = Category::parse(&body.category).ok_or_else(|| {
        ApiError::validation(
            "category",
            "category is general, qna, resources or off_topic",
        )
    })?;
    let study = StudyId(*path);
    let room = state
        .store
        .create_room(study, auth.user.id, &name, category, now_millis())
        .await?;
    announce(
        &state,
        study,
        json!({ "kind": "room_opened", "room_id": room.id }),
    )
    .await;
    Ok(HttpResponse::Created().json(json!({ "room": room })))
}

/// `GET /api/studies/{study_id}/chat_rooms` (members): rooms with my unread counts.
pub async fn list(state: web::Data<AppState>, auth: Authenticated, path: web::Path<i64>) -> Res {
    let items = state.store.rooms(StudyId(*path), auth.user.id).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// `POST /api/studies/{study_id}/chat_rooms/{room_id}/close` (leader)
pub async fn close(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Res {
    let (study, room) = path.into_inner();
    state
        .store
        .close_room(StudyId(study), RoomId(room), auth.user.id, now_millis())
        .await?;
    // People in the room are told at once; a room with nobody in it learns at its next load.
    state
        .registry
        .tell_live::<ChatRoom>(RoomId(room), ChatRoomMsg::Closed)
        .await?;
    announce(
        &state,
        StudyId(study),
        json!({ "kind": "room_closed", "room_id": room }),
    )
    .await;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/studies/{study_id}/chat_rooms/{room_id}/messages?before=|after=&limit=` (members)
pub async fn history(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Res {
    let (study, room) = path.into_inner();
    let (page, limit) = history_page(&req)?;
    let items = state
        .store
        .history(StudyId(study), RoomId(room), auth.user.id, page, limit)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

/// Tells the tabs watching the study (best effort: the change is stored, and tabs re-read
/// the room list when they reconnect).
async fn announce(state: &AppState, study: StudyId, event: serde_json::Value) {
    let _ = state
        .registry
        .tell_live::<Study>(study, StudyMsg::Announce { event })
        .await;
}

/// `GET /api/dms`: my conversations with the last message and my unread count.
pub async fn conversations(state: web::Data<AppState>, auth: Authenticated) -> Res {
    Ok(HttpResponse::Ok().json(json!({ "items": state.store.conversations(auth.user.id).await? })))
}

/// `GET /api/dms/{user_id}/messages?before=|after=&limit=`: my conversation with a user. Only
/// its two participants can read it (the caller is always one); a stranger with whom I share
/// no study and have no history is not found.
pub async fn direct_history(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
) -> Res {
    let other = crate::ids::UserId(*path);
    if other == auth.user.id || state.store.user(other).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let (page, limit) = history_page(&req)?;
    let pair = crate::chat::pair(auth.user.id, other);
    let items = state.store.direct_messages(pair, page, limit).await?;
    if items.is_empty() && !state.store.share_study(auth.user.id, other).await? {
        return Err(ApiError::NotFound);
    }
    let (_, read_a, read_b) = state.store.direct_state(pair).await?;
    let read_by_other = if pair.0 == other { read_a } else { read_b };
    Ok(HttpResponse::Ok().json(json!({ "items": items, "read_seq": read_by_other })))
}

/// `before=SEQ` (a page ending just before it; the newest page without it), or `after=SEQ`,
/// and `limit` ≤ 100.
fn history_page(req: &HttpRequest) -> Result<(Page, i64), ApiError> {
    let mut page = Page::Before(None);
    let mut limit = PAGE_DEFAULT;
    let seq = |v: &str, field: &'static str| {
        v.parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| ApiError::validation(field, "a seq is a number"))
    };
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        match k.as_ref() {
            "before" if !v.is_empty() => page = Page::Before(Some(seq(&v, "before")?)),
            "after" if !v.is_empty() => page = Page::After(seq(&v, "after")?),
            "limit" => limit = super::paging::limit(&v, PAGE_MAX)?,
            _ => {}
        }
    }
    Ok((page, limit))
}
