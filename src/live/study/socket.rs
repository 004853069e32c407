//! The `study.*` family: a tab watches the study pages it shows (at most
//! [`MAX_WATCHED_PER_CONN`]), watches again after the study's actor restarted, and stops
//! watching on close.

use std::collections::HashSet;

use async_trait::async_trait;

use super::actor::{MAX_WATCHED_PER_CONN, Study, StudyMsg};
use crate::error::ApiError;
use crate::ids::StudyId;
use crate::ws::family::{Conn, Family};
use crate::ws::frame::ReqId;
use crate::ws::router::Control;

crate::client_requests! {
    pub enum StudyRequest {
        /// Receive `study.event` frames for this study while its page is open.
        "study.watch" => Watch { study_id: StudyId },
        "study.unwatch" => Unwatch { study_id: StudyId },
    }
}

pub struct StudySocket {
    /// Studies this socket watches (to unwatch on close and re-watch after a resync).
    watching: HashSet<StudyId>,
}

impl StudySocket {
    /// Starts watching a study: checked by the study's own actor (a missing study is
    /// `not_found`), bounded per socket.
    async fn watch(&mut self, conn: &Conn<'_>, study: StudyId) -> Result<(), ApiError> {
        if !self.watching.contains(&study) && self.watching.len() >= MAX_WATCHED_PER_CONN {
            return Err(ApiError::validation(
                "study_id",
                format!("at most {MAX_WATCHED_PER_CONN} studies at once"),
            ));
        }
        let msg = StudyMsg::Watch {
            conn: conn.id,
            user: conn.user.id,
        };
        conn.registry()
            .ask::<Study>(study, msg)
            .await?
            .map_err(ApiError::from)?;
        self.watching.insert(study);
        Ok(())
    }
}

#[async_trait(?Send)]
impl Family for StudySocket {
    type Request = StudyRequest;
    const FRAMES: &'static [&'static str] = super::frames::SERVER_FRAMES;

    fn open(_conn: &Conn<'_>) -> Self {
        StudySocket {
            watching: HashSet::new(),
        }
    }

    async fn on_request(&mut self, conn: &Conn<'_>, id: Option<ReqId>, req: StudyRequest) {
        match req {
            StudyRequest::Watch { study_id } => match self.watch(conn, study_id).await {
                Ok(()) => conn.ack(id),
                Err(e) => conn.error(id, &e),
            },
            StudyRequest::Unwatch { study_id } => {
                if self.watching.remove(&study_id) {
                    let msg = StudyMsg::Unwatch { conn: conn.id };
                    let _ = conn
                        .registry()
                        .tell_if_running::<Study>(study_id, msg)
                        .await;
                }
                conn.ack(id);
            }
        }
    }

    async fn on_control(&mut self, conn: &Conn<'_>, c: &Control) {
        match c {
            Control::Resync { key } => {
                if let Some(study) = key.id_of::<Study>() {
                    // Watch again (which restarts the study actor); the client re-reads.
                    if let Err(e) = self.watch(conn, study).await {
                        tracing::debug!(%study, error = %e, "re-watch after resync failed");
                    }
                }
            }
            Control::Released { key } => {
                if let Some(study) = key.id_of::<Study>() {
                    self.watching.remove(&study);
                }
            }
            _ => {}
        }
    }

    async fn on_close(&mut self, conn: &Conn<'_>) {
        for study in std::mem::take(&mut self.watching) {
            let msg = StudyMsg::Unwatch { conn: conn.id };
            let _ = conn.registry().tell_if_running::<Study>(study, msg).await;
        }
    }
}
