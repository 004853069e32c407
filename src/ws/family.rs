//! Message families: how a live feature plugs into the socket.
//!
//! A family owns a set of request `type`s (`chat.*`, `dm.*`, …), the server frames it sends,
//! and its per-connection state (the rooms this socket joined, the studies it watches). The
//! socket shell ([`super::conn`]) keeps the lifecycle (register, writer, heartbeat, control,
//! close) and hands each request, binary frame and control message to the family that owns
//! it; the shell itself names no family. A feature registers its family with one line
//! (`families.add::<ChatSocket>("chat")`).

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::frame::{self, ErrorFrame, Frame, Pong, ReqId, Requests, ServerFrame};
use super::router::{ConnRouter, Control};
use crate::chat::Author;
use crate::error::ApiError;
use crate::ids::{ConnId, SessionId};
use crate::registry::Registry;
use crate::server::AppState;
use crate::store::User;

/// The connection as a family's handlers see it: who is on it, and how to answer.
pub struct Conn<'a> {
    pub id: ConnId,
    pub user: &'a User,
    pub session: SessionId,
    pub app: &'a AppState,
    /// The endpoint's path parameters (for example the document a `/ws/doc/{post_id}`
    /// socket is for); empty on `/ws`.
    pub params: &'a [(String, String)],
}

impl Conn<'_> {
    /// Queues a typed frame for this socket; a full queue closes it as a slow consumer.
    pub fn send<F: ServerFrame + ?Sized>(&self, f: &F) {
        self.push(Frame::of(f));
    }

    pub fn push(&self, frame: Frame) {
        if !self.app.hub.push(self.id, frame) {
            tracing::debug!(conn = %self.id, "frame dropped: connection gone or slow");
        }
    }

    pub fn ack(&self, id: Option<ReqId>) {
        self.push(frame::ack(id));
    }

    pub fn error(&self, id: Option<ReqId>, e: &ApiError) {
        self.push(frame::error(id, e));
    }

    pub fn registry(&self) -> &Registry {
        &self.app.registry
    }

    /// The user as message authors are shown.
    pub fn author(&self) -> Author {
        Author {
            id: self.user.id,
            display_name: self.user.display_name.clone(),
        }
    }

    /// A path parameter of the endpoint, by name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One live feature's half of a socket. `open` makes the per-connection state; the hooks
/// are called one at a time from the connection's loop, so they may keep `&mut self` state
/// without locks.
#[async_trait(?Send)]
pub trait Family: Sized + 'static {
    /// The request enum, declared with `client_requests!`.
    type Request: Requests + DeserializeOwned;
    /// The server frame types this family sends (`SERVER_FRAMES` of its `server_frames!`).
    const FRAMES: &'static [&'static str];

    fn open(conn: &Conn<'_>) -> Self;

    /// After the `hello` (attach to actors that push to every tab).
    async fn on_open(&mut self, _conn: &Conn<'_>) {}

    async fn on_request(&mut self, conn: &Conn<'_>, id: Option<ReqId>, req: Self::Request);

    /// A binary frame: handle it and return `None`, or give it back if it is not this
    /// family's.
    async fn on_binary(&mut self, _conn: &Conn<'_>, frame: Bytes) -> Option<Bytes> {
        Some(frame)
    }

    /// `Resync` and `Released` control messages (every family sees each one and acts on the
    /// keys it knows).
    async fn on_control(&mut self, _conn: &Conn<'_>, _c: &Control) {}

    /// The socket closed: let go of every actor this family attached the connection to.
    async fn on_close(&mut self, _conn: &Conn<'_>) {}
}

/// A family behind a pointer, with requests still as JSON (the shell routes by `type`).
#[async_trait(?Send)]
pub trait OpenFamily {
    async fn opened(&mut self, conn: &Conn<'_>);
    async fn request(&mut self, conn: &Conn<'_>, id: Option<ReqId>, body: Value);
    async fn binary(&mut self, conn: &Conn<'_>, frame: Bytes) -> Option<Bytes>;
    async fn control(&mut self, conn: &Conn<'_>, c: &Control);
    async fn closed(&mut self, conn: &Conn<'_>);
}

#[async_trait(?Send)]
impl<F: Family> OpenFamily for F {
    async fn opened(&mut self, conn: &Conn<'_>) {
        Family::on_open(self, conn).await
    }

    async fn request(&mut self, conn: &Conn<'_>, id: Option<ReqId>, body: Value) {
        match serde_json::from_value::<F::Request>(body) {
            Ok(req) => Family::on_request(self, conn, id, req).await,
            Err(e) => conn.send(&ErrorFrame::protocol(id, "bad_request", e.to_string())),
        }
    }

    async fn binary(&mut self, conn: &Conn<'_>, frame: Bytes) -> Option<Bytes> {
        Family::on_binary(self, conn, frame).await
    }

    async fn control(&mut self, conn: &Conn<'_>, c: &Control) {
        Family::on_control(self, conn, c).await
    }

    async fn closed(&mut self, conn: &Conn<'_>) {
        Family::on_close(self, conn).await
    }
}

struct Spec {
    name: &'static str,
    requests: &'static [&'static str],
    frames: &'static [&'static str],
    open: fn(&Conn<'_>) -> Box<dyn OpenFamily>,
}

fn open_family<F: Family>(conn: &Conn<'_>) -> Box<dyn OpenFamily> {
    Box::new(F::open(conn))
}

/// The families one endpoint serves, and which request type goes to which.
#[derive(Default)]
pub struct Families {
    specs: Vec<Spec>,
    by_type: HashMap<&'static str, usize>,
}

impl Families {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a family. Panics if one of its request types is taken (caught by the unit
    /// tests, which build every endpoint).
    pub fn add<F: Family>(&mut self, name: &'static str) -> &mut Self {
        let index = self.specs.len();
        for ty in F::Request::TYPES {
            let old = self.by_type.insert(ty, index);
            assert!(old.is_none(), "request type {ty:?} registered twice");
        }
        self.specs.push(Spec {
            name,
            requests: F::Request::TYPES,
            frames: F::FRAMES,
            open: open_family::<F>,
        });
        self
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.specs.iter().map(|s| s.name)
    }

    /// Every request type a client may send.
    pub fn request_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.specs.iter().flat_map(|s| s.requests.iter().copied())
    }

    /// Every server frame type the families send.
    pub fn frame_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.specs.iter().flat_map(|s| s.frames.iter().copied())
    }

    /// Which family (index into [`Families::open`]'s list) handles a request type.
    pub fn route(&self, ty: &str) -> Option<usize> {
        self.by_type.get(ty).copied()
    }

    /// Per-connection state of every family, in registration order.
    pub fn open(&self, conn: &Conn<'_>) -> Vec<Box<dyn OpenFamily>> {
        self.specs.iter().map(|s| (s.open)(conn)).collect()
    }
}

/// One socket endpoint: its families and its framing.
pub struct Endpoint {
    /// Send the JSON `hello` first (`/ws`); a binary-only endpoint does not.
    pub hello: bool,
    /// Whether text frames are accepted (JSON requests).
    pub text: bool,
    pub families: Families,
}

impl Endpoint {
    /// A JSON endpoint (`hello`, requests by `type`) with the core family (`ping`) first.
    pub fn json(mut families: Families) -> Endpoint {
        let mut all = Families::new();
        all.add::<Core>("core");
        for spec in families.specs.drain(..) {
            let index = all.specs.len();
            for ty in spec.requests {
                let old = all.by_type.insert(ty, index);
                assert!(old.is_none(), "request type {ty:?} registered twice");
            }
            all.specs.push(spec);
        }
        Endpoint {
            hello: true,
            text: true,
            families: all,
        }
    }

    /// A binary-only endpoint with no `hello` (for example plain y-websocket framing).
    pub fn binary(families: Families) -> Endpoint {
        Endpoint {
            hello: false,
            text: false,
            families,
        }
    }
}

crate::client_requests! {
    /// Requests every JSON socket answers.
    pub enum CoreRequest {
        "ping" => Ping {},
    }
}

/// The core family: `ping`. Its frames (`hello`, `pong`, `ack`, `error`, `resync`) are the
/// shell's own.
pub struct Core;

#[async_trait(?Send)]
impl Family for Core {
    type Request = CoreRequest;
    const FRAMES: &'static [&'static str] = frame::SERVER_FRAMES;

    fn open(_conn: &Conn<'_>) -> Self {
        Core
    }

    async fn on_request(&mut self, conn: &Conn<'_>, id: Option<ReqId>, req: CoreRequest) {
        match req {
            CoreRequest::Ping {} => conn.send(&Pong { id }),
        }
    }
}
