//! Chat rooms over HTTP: open (at most 3 per study), list with my unread counts, close
//! (leader), and history paging. Live traffic is on the socket (see PROTOCOL.md).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::api_types::*;
use super::auth::Authenticated;
use crate::chat::{self, Category};
use crate::error::ApiError;
use crate::ids::{RoomId, StudyId};
use crate::live::chat::{ChatRoom, ChatRoomMsg};
use crate::live::study::{Study, StudyEvent, StudyMsg, StudyOutcome};
use crate::server::AppState;
use crate::store::chat::Page;
use crate::studies::Role;

/// History page size: at most 100 a page (the bound).
const PAGE_MAX: i64 = 100;
const PAGE_DEFAULT: i64 = 50;

type Res = Result<HttpResponse, ApiError>;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    #[schema(min_length = 1, max_length = 40)]
    name: String,
    #[schema(value_type = Category)]
    category: String,
}

/// `POST /api/studies/{study_id}/chat_rooms` (members)
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/chat_rooms",
    tag = "chat",
    summary = "Open a chat room (members; at most 3 open per study)",
    request_body = NewRoom,
    params(("study_id" = i64, Path)),
    responses((status = 201, description = "{room}", body = RoomEnvelope), (status = 409, description = "room_limit", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
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
    // Through the study's actor, the single writer of its room list (it tells the watchers).
    let msg = StudyMsg::OpenRoom {
        user: auth.user.id,
        name,
        category,
    };
    match state.registry.ask::<Study>(StudyId(*path), msg).await?? {
        StudyOutcome::Room(room) => Ok(HttpResponse::Created().json(RoomEnvelope { room })),
        other => Err(ApiError::Internal(anyhow::anyhow!(
            "opening a room answered {other:?}"
        ))),
    }
}

/// `GET /api/studies/{study_id}/chat_rooms` (members): rooms with my unread counts.
#[utoipa::path(
    get,
    path = "/api/studies/{study_id}/chat_rooms",
    tag = "chat",
    summary = "The study's chat rooms with my unread count in each (members)",
    params(("study_id" = i64, Path)),
    responses((status = 200, description = "{items: Room[]}", body = Items<Room>), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn list(state: web::Data<AppState>, auth: Authenticated, path: web::Path<i64>) -> Res {
    let items = state.store.rooms(StudyId(*path), auth.user.id).await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// `POST /api/studies/{study_id}/chat_rooms/{room_id}/close` (leader)
#[utoipa::path(
    post,
    path = "/api/studies/{study_id}/chat_rooms/{room_id}/close",
    tag = "chat",
    summary = "Close a room (leader): history stays readable, sends are refused, people in it are told",
    params(("study_id" = i64, Path), ("room_id" = i64, Path)),
    responses((status = 204, description = "Closed"), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn close(
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<(i64, i64)>,
) -> Res {
    let (study, room) = (StudyId(path.0), RoomId(path.1));
    // Only the leader, and only a room of this study: checked before the room's actor is
    // started for it, and again in the room's own write.
    if state.store.role_of(study, auth.user.id).await? != Some(Role::Leader)
        || !state.store.room_ids(study).await?.contains(&room)
    {
        return Err(ApiError::NotFound);
    }
    // Through the room's actor, its single writer: it stores the close and tells the people
    // inside in one step.
    let msg = ChatRoomMsg::Close {
        study,
        leader: auth.user.id,
    };
    state.registry.ask::<ChatRoom>(room, msg).await??;
    announce(&state, study, StudyEvent::RoomClosed { room_id: room }).await;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /api/studies/{study_id}/chat_rooms/{room_id}/messages?before=|after=&limit=` (members)
#[utoipa::path(
    get,
    path = "/api/studies/{study_id}/chat_rooms/{room_id}/messages",
    tag = "chat",
    summary = "History by seq: before=SEQ (newest first page) or after=SEQ, limit ≤ 100, oldest first (members)",
    params(("study_id" = i64, Path), ("room_id" = i64, Path), ("before" = Option<i64>, Query, minimum = 0, description = "messages before this seq"), ("after" = Option<i64>, Query, minimum = 0, description = "messages after this seq"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100)),
    responses((status = 200, description = "{items: ChatMessage[]}", body = Items<ChatMessage>), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
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
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// Tells the tabs watching the study (best effort: the change is stored, and tabs re-read
/// the room list when they reconnect).
async fn announce(state: &AppState, study: StudyId, event: StudyEvent) {
    let _ = state
        .registry
        .tell_if_running::<Study>(study, StudyMsg::Announce { event })
        .await;
}

/// `GET /api/dms`: my conversations with the last message and my unread count.
#[utoipa::path(
    get,
    path = "/api/dms",
    tag = "chat",
    summary = "My direct-message conversations: the other user, the last message, my unread count",
    responses((status = 200, description = "{items: Conversation[]}", body = Items<Conversation>)),
    security(("session" = []))
)]
pub async fn conversations(state: web::Data<AppState>, auth: Authenticated) -> Res {
    let items = state.store.conversations(auth.user.id).await?;
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// `GET /api/dms/{user_id}/messages?before=|after=&limit=`: my conversation with a user. Only
/// its two participants can read it (the caller is always one); a stranger with whom I share
/// no study and have no history is not found.
#[utoipa::path(
    get,
    path = "/api/dms/{user_id}/messages",
    tag = "chat",
    summary = "My conversation with a user by seq (before=|after=, limit ≤ 100), and how far they have read",
    params(("user_id" = i64, Path), ("before" = Option<i64>, Query, minimum = 0, description = "messages before this seq"), ("after" = Option<i64>, Query, minimum = 0, description = "messages after this seq"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100)),
    responses((status = 200, description = "{items: DirectMessage[], read_seq}", body = DirectHistory), (status = 404, description = "not_found", body = ErrorBody)),
    security(("session" = []))
)]
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
    Ok(HttpResponse::Ok().json(DirectHistory {
        items,
        read_seq: read_by_other,
    }))
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
