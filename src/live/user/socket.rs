//! The user family: no requests of its own. On open it attaches the tab to the user's
//! session actor (notifications fan out from there), re-attaches after that actor restarts,
//! and detaches on close.

use async_trait::async_trait;

use super::session::{UserSession, UserSessionMsg};
use crate::registry::KeyedActor;
use crate::studies::Notification;
use crate::ws::family::{Conn, Family};
use crate::ws::frame::ReqId;
use crate::ws::router::Control;

crate::client_requests! {
    /// The user family takes no requests.
    pub enum UserRequest {}
}

crate::server_frames! {
    /// A live notification for the user (every tab gets it).
    "notification" => NotificationFrame<'a> { notification: &'a Notification }
}

pub struct UserSocket;

impl UserSocket {
    async fn attach(conn: &Conn<'_>) {
        let msg = UserSessionMsg::Attach {
            conn: conn.id,
            session: conn.session,
        };
        if let Err(e) = conn.registry().tell::<UserSession>(conn.user.id, msg).await {
            tracing::warn!(conn = %conn.id, error = %e, "could not attach to user session");
        }
    }
}

#[async_trait(?Send)]
impl Family for UserSocket {
    type Request = UserRequest;
    const FRAMES: &'static [&'static str] = SERVER_FRAMES;

    fn open(_conn: &Conn<'_>) -> Self {
        UserSocket
    }

    async fn on_open(&mut self, conn: &Conn<'_>) {
        Self::attach(conn).await;
    }

    async fn on_request(&mut self, _conn: &Conn<'_>, _id: Option<ReqId>, req: UserRequest) {
        match req {}
    }

    async fn on_control(&mut self, conn: &Conn<'_>, c: &Control) {
        if let Control::Resync { key } = c
            && *key == UserSession::key(conn.user.id)
        {
            Self::attach(conn).await;
        }
    }

    async fn on_close(&mut self, conn: &Conn<'_>) {
        let msg = UserSessionMsg::Detach { conn: conn.id };
        let _ = conn
            .registry()
            .tell_if_running::<UserSession>(conn.user.id, msg)
            .await;
    }
}
