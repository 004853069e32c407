//! The document families. On `/ws` (and `/ws?binary=1`, for clients that take no JSON) each
//! binary frame starts with the document's name (`post/{id}`), the hocuspocus framing, and
//! one socket edits up to [`MAX_DOCS_PER_CONN`] documents. On `/ws/doc/{post_id}` a frame
//! is one plain y-websocket message for that one post.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use async_trait::async_trait;
use bytes::Bytes;

use super::actor::{PostDoc, PostDocMsg, PostDocReply};
use super::close_code;
use super::proto::{self, Framing, MSG_PING, MSG_PONG};
use crate::error::{ApiError, ErrorBody};
use crate::http::auth::Authenticated;
use crate::ids::PostId;
use crate::live::CommandError;
use crate::registry::{KeyedActor, RegistryError, StartError};
use crate::server::AppState;
use crate::store::Rule;
use crate::ws::family::{Conn, Family};
use crate::ws::frame::{Frame, ReqId};
use crate::ws::router::{ConnRouter, Control};

/// Documents one socket may have open: a page shows one post; a few spare for previews.
pub const MAX_DOCS_PER_CONN: usize = 8;
/// The name prefix of post documents on `/ws`.
pub const NAME_PREFIX: &str = "post/";

crate::client_requests! {
    /// The document families take binary frames only.
    pub enum DocRequest {}
}

/// `post/{id}` → the post.
pub fn parse_name(name: &str) -> Option<PostId> {
    let id = name.strip_prefix(NAME_PREFIX)?;
    // Digits only: `post/+1` or `post/01` would name the same post twice on one socket.
    if id.is_empty()
        || id.len() > 18
        || !id.bytes().all(|b| b.is_ascii_digit())
        || id.starts_with('0')
    {
        return None;
    }
    id.parse().ok().map(PostId)
}

/// Attaches a socket to a post's document; the error is what to tell the client.
async fn attach(
    conn: &Conn<'_>,
    post: PostId,
    framing: Framing,
) -> Result<bool, (u16, &'static str)> {
    let msg = PostDocMsg::Attach {
        conn: conn.id,
        user: conn.user.id,
        name: conn.user.display_name.clone(),
        framing,
    };
    // A non-member is refused by the actor (4403); a post that does not exist stops the
    // actor from starting (4404); anything else is worth a retry.
    match conn.registry().ask::<PostDoc>(post, msg).await {
        Ok(Ok(PostDocReply::Attached { writable })) => Ok(writable),
        Ok(Err(CommandError::Rule(Rule::NotFound))) => Err((close_code::FORBIDDEN, "not_found")),
        Err(e) => Err(unreachable_doc(&e)),
        _ => Err((close_code::BUSY, "unavailable")),
    }
}

/// How to close a socket whose document could not be reached: a post deleted meanwhile
/// stops its document from starting again (4404, do not retry); anything else is worth a
/// retry (1013).
fn unreachable_doc(e: &RegistryError) -> (u16, &'static str) {
    match e {
        RegistryError::Start {
            reason: StartError::NotFound,
            ..
        } => (close_code::DELETED, "not_found"),
        _ => (close_code::BUSY, "unavailable"),
    }
}

/// Hands one message to the document. A full mailbox closes the socket (it resyncs on
/// reconnect) rather than dropping an edit silently.
async fn forward(conn: &Conn<'_>, post: PostId, data: &[u8]) {
    let msg = PostDocMsg::Frame {
        conn: conn.id,
        data: data.to_vec(),
    };
    if let Err(e) = conn.registry().tell::<PostDoc>(post, msg).await {
        tracing::debug!(conn = %conn.id, error = %e, "document did not take a frame");
        // A frame that finds the post deleted (its document stopped, and cannot start
        // again) says so, as the document itself would have, rather than "retry".
        let (code, reason) = unreachable_doc(&e);
        conn.app.hub.control(
            conn.id,
            Control::Close {
                code,
                reason: reason.into(),
            },
        );
    }
}

async fn detach(conn: &Conn<'_>, post: PostId) {
    let _ = conn
        .registry()
        .tell_if_running::<PostDoc>(post, PostDocMsg::Detach { conn: conn.id })
        .await;
}

fn push(conn: &Conn<'_>, bytes: Vec<u8>) {
    conn.push(Frame::Binary(Bytes::from(bytes)));
}

/// The multiplexed family (hocuspocus framing).
pub struct DocSocket {
    open: HashMap<PostId, String>,
}

#[async_trait(?Send)]
impl Family for DocSocket {
    type Request = DocRequest;
    const FRAMES: &'static [&'static str] = &[];

    fn open(_conn: &Conn<'_>) -> Self {
        DocSocket {
            open: HashMap::new(),
        }
    }

    async fn on_request(&mut self, _conn: &Conn<'_>, _id: Option<ReqId>, req: DocRequest) {
        match req {}
    }

    async fn on_binary(&mut self, conn: &Conn<'_>, frame: Bytes) -> Option<Bytes> {
        // Hocuspocus' keepalive is a bare byte with no document name.
        match frame.as_ref() {
            [MSG_PING] => {
                push(conn, vec![MSG_PONG]);
                return None;
            }
            [MSG_PONG] => return None,
            _ => {}
        }
        let Ok((name, rest)) = proto::split_name(&frame) else {
            return Some(frame);
        };
        let Some(post) = parse_name(name) else {
            return Some(frame);
        };
        // Leaving a document (hocuspocus' close) is a message like the others, but one that
        // must not open it first.
        let closing = matches!(proto::decode(rest), Ok(proto::Message::Close));
        if !self.open.contains_key(&post) {
            if closing {
                return None;
            }
            let framing = Framing::Named(name.to_owned());
            if self.open.len() >= MAX_DOCS_PER_CONN {
                push(conn, framing.denied("too_many_documents"));
                return None;
            }
            if let Err((_, reason)) = attach(conn, post, framing.clone()).await {
                push(conn, framing.denied(reason));
                return None;
            }
            self.open.insert(post, name.to_owned());
        }
        forward(conn, post, rest).await;
        if closing {
            self.open.remove(&post);
        }
        None
    }

    async fn on_control(&mut self, conn: &Conn<'_>, c: &Control) {
        match c {
            Control::Released { key } => self.open.retain(|post, _| PostDoc::key(*post) != *key),
            Control::Resync { key } => {
                // The document reloaded from the store after a crash: attach again, and the
                // sync that follows brings back anything the client has that it lacks.
                let Some((post, name)) = self
                    .open
                    .iter()
                    .find(|(post, _)| PostDoc::key(**post) == *key)
                    .map(|(p, n)| (*p, n.clone()))
                else {
                    return;
                };
                let framing = Framing::Named(name);
                if let Err((_, reason)) = attach(conn, post, framing.clone()).await {
                    push(conn, framing.denied(reason));
                    self.open.remove(&post);
                }
            }
            _ => {}
        }
    }

    async fn on_close(&mut self, conn: &Conn<'_>) {
        for post in std::mem::take(&mut self.open).into_keys() {
            detach(conn, post).await;
        }
    }
}

/// The plain family of `/ws/doc/{post_id}` (y-websocket framing).
pub struct PlainDocSocket {
    post: Option<PostId>,
}

impl PlainDocSocket {
    async fn attach_or_close(&mut self, conn: &Conn<'_>) {
        let Some(post) = conn
            .param("post_id")
            .and_then(|p| p.parse().ok())
            .map(PostId)
        else {
            return close(conn, close_code::DELETED, "not_found");
        };
        match attach(conn, post, Framing::Plain).await {
            Ok(_) => self.post = Some(post),
            Err((code, reason)) => {
                self.post = None;
                close(conn, code, reason);
            }
        }
    }
}

fn close(conn: &Conn<'_>, code: u16, reason: &str) {
    conn.app.hub.control(
        conn.id,
        Control::Close {
            code,
            reason: reason.into(),
        },
    );
}

#[async_trait(?Send)]
impl Family for PlainDocSocket {
    type Request = DocRequest;
    const FRAMES: &'static [&'static str] = &[];

    fn open(_conn: &Conn<'_>) -> Self {
        PlainDocSocket { post: None }
    }

    async fn on_open(&mut self, conn: &Conn<'_>) {
        self.attach_or_close(conn).await;
    }

    async fn on_request(&mut self, _conn: &Conn<'_>, _id: Option<ReqId>, req: DocRequest) {
        match req {}
    }

    async fn on_binary(&mut self, conn: &Conn<'_>, frame: Bytes) -> Option<Bytes> {
        if let Some(post) = self.post {
            forward(conn, post, &frame).await;
        }
        None
    }

    async fn on_control(&mut self, conn: &Conn<'_>, c: &Control) {
        match c {
            Control::Released { key } if self.post.is_some_and(|p| PostDoc::key(p) == *key) => {
                self.post = None
            }
            Control::Resync { key } if self.post.is_some_and(|p| PostDoc::key(p) == *key) => {
                self.attach_or_close(conn).await;
            }
            _ => {}
        }
    }

    async fn on_close(&mut self, conn: &Conn<'_>) {
        if let Some(post) = self.post.take() {
            detach(conn, post).await;
        }
    }
}

/// Upgrades `/ws/doc/{post_id}` for the stock y-websocket provider.
#[utoipa::path(
    get,
    path = "/ws/doc/{post_id}",
    tag = "live",
    summary = "Upgrade to a plain y-websocket socket for one post's body (members; Origin checked; see PROTOCOL.md)",
    params(("post_id" = i64, Path)),
    responses((status = 101, description = "Switching to the WebSocket protocol; a non-member is closed with 4403"), (status = 400, description = "malformed_json: not a WebSocket upgrade request", body = ErrorBody), (status = 401, description = "unauthenticated", body = ErrorBody), (status = 403, description = "bad_origin", body = ErrorBody)),
    security(("session" = []))
)]
pub async fn upgrade(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    auth: Authenticated,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = state
        .endpoints
        .get(super::ENDPOINT)
        .cloned()
        .ok_or(ApiError::NotFound)?;
    let params = vec![("post_id".to_owned(), path.into_inner().to_string())];
    crate::ws::conn::serve(&req, payload, state, auth, endpoint, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_post_closes_for_good_and_anything_else_asks_for_a_retry() {
        let key = PostDoc::key(PostId(7));
        let gone = RegistryError::Start {
            key,
            reason: StartError::NotFound,
        };
        assert_eq!(unreachable_doc(&gone), (close_code::DELETED, "not_found"));
        let busy = RegistryError::Busy { key };
        assert_eq!(unreachable_doc(&busy), (close_code::BUSY, "unavailable"));
    }

    #[test]
    fn names_are_canonical_post_ids() {
        assert_eq!(parse_name("post/42"), Some(PostId(42)));
        for bad in [
            "post/",
            "post/01",
            "post/+1",
            "post/-1",
            "post/1x",
            "posts/1",
            "post/99999999999999999999",
        ] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }
}
