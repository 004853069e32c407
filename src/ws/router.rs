//! The one way from an actor to a client socket.
//!
//! Actors never hold a connection or this node's hub: they push [`Frame`]s and [`Control`]s
//! to a [`ConnId`] through a [`ConnRouter`]. The local implementation is the hub
//! ([`super::hub::ConnHub`]); the cluster adds one that forwards by `ConnId.node`, so an
//! actor's code does not care which node a socket is on.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::frame::{Frame, ServerFrame};
use crate::ids::ConnId;
use crate::registry::ActorKey;

/// Control messages for a connection's own loop (not frames for the client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// Close the socket with this code and reason.
    Close { code: u16, reason: String },
    /// An actor this connection relies on crashed and restarted: its families re-attach and
    /// the client is told to re-fetch.
    Resync { key: ActorKey },
    /// An actor let this connection go (the user was removed, the thing was deleted); the
    /// client was told by a frame. The family frees its slot for it.
    Released { key: ActorKey },
    /// The outbound queue overflowed.
    SlowConsumer,
}

/// Delivers frames and control messages to connections by id.
pub trait ConnRouter: Send + Sync + 'static {
    /// Queues a frame for one connection. False if the connection is gone or was just marked
    /// as a slow consumer.
    fn push(&self, conn: ConnId, frame: Frame) -> bool;
    /// Queues the same frame (the same bytes) for many connections.
    fn push_many(&self, conns: &mut dyn Iterator<Item = ConnId>, frame: &Frame);
    /// Hands a control message to a connection's loop.
    fn control(&self, conn: ConnId, c: Control) -> bool;
    /// An actor of this node started (`on`) or stopped watching `conn`. In a cluster the
    /// connection's node keeps this, so it can send the connection to re-attach when the
    /// actor's node dies. A single node has nothing to do.
    fn watched(&self, _conn: ConnId, _key: ActorKey, _on: bool) {}
}

/// A cheap handle to the router with typed helpers: a frame is serialized once, then shared.
#[derive(Clone)]
pub struct Sockets(Arc<dyn ConnRouter>);

impl Sockets {
    pub fn new(router: Arc<dyn ConnRouter>) -> Sockets {
        Sockets(router)
    }

    /// Sends a typed frame to one connection.
    pub fn send<F: ServerFrame + ?Sized>(&self, conn: ConnId, f: &F) -> bool {
        self.0.push(conn, Frame::of(f))
    }

    /// Sends a typed frame to many connections, serialized once.
    pub fn send_many<'a, F: ServerFrame + ?Sized>(
        &self,
        conns: impl IntoIterator<Item = &'a ConnId>,
        f: &F,
    ) {
        self.push_many(conns, &Frame::of(f));
    }

    pub fn push(&self, conn: ConnId, frame: Frame) -> bool {
        self.0.push(conn, frame)
    }

    pub fn push_many<'a>(&self, conns: impl IntoIterator<Item = &'a ConnId>, frame: &Frame) {
        self.0.push_many(&mut conns.into_iter().copied(), frame);
    }

    pub fn control(&self, conn: ConnId, c: Control) -> bool {
        self.0.control(conn, c)
    }

    pub fn watched(&self, conn: ConnId, key: ActorKey, on: bool) {
        self.0.watched(conn, key, on)
    }
}
