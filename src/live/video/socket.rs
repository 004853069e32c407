//! The `video.*` family: a socket sits in at most one video room; every request is checked
//! against the caller's membership (join) or seat and role (everything else, by the room).

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::error::VideoError;
use super::frames::{LeftReason, Reaction, VideoJoined, VideoLeft, VideoStatus};
use super::room::{Moderation, VideoMsg, VideoReply, VideoRoom};
use super::sfu::route::{Layer, Source};
use crate::error::ApiError;
use crate::ids::{StudyId, UserId};
use crate::ws::family::{Conn, Family};
use crate::ws::frame::ReqId;
use crate::ws::router::Control;

/// Largest SDP taken: a 25-person room's offer is well under 100 KB.
pub const MAX_SDP_BYTES: usize = 256 * 1024;

crate::client_requests! {
    pub enum VideoRequest {
        "video.join" => Join { study_id: StudyId, #[serde(default)] rejoin: bool },
        "video.offer" => Offer { study_id: StudyId, sdp: String, sources: BTreeMap<String, Source> },
        "video.answer" => Answer { study_id: StudyId, sdp: String },
        "video.leave" => Leave { study_id: StudyId },
        "video.media" => Media { study_id: StudyId, mic: bool, camera: bool, screen: bool },
        "video.hand" => Hand { study_id: StudyId, raised: bool },
        "video.react" => React { study_id: StudyId, reaction: Reaction },
        "video.layer" => SetLayer { study_id: StudyId, user_id: UserId, layer: Layer },
        "video.mute" => Mute { study_id: StudyId, user_id: UserId },
        "video.mute_all" => MuteAll { study_id: StudyId },
        "video.allow_unmute" => AllowUnmute { study_id: StudyId, user_id: UserId },
        "video.remove" => Remove { study_id: StudyId, user_id: UserId },
        "video.lower_hand" => LowerHand { study_id: StudyId, user_id: UserId },
        "video.lower_hands" => LowerHands { study_id: StudyId },
        "video.stop" => Stop { study_id: StudyId, user_id: UserId, source: Source },
        "video.lock" => Lock { study_id: StudyId, source: Source, locked: bool },
        "video.allow" => Allow { study_id: StudyId, user_id: UserId, source: Source },
        "video.end" => End { study_id: StudyId },
        "video.status" => Status { study_id: StudyId },
    }
}

pub struct VideoSocket {
    /// The room this socket sits in.
    room: Option<StudyId>,
}

impl VideoSocket {
    async fn ask(conn: &Conn<'_>, study: StudyId, msg: VideoMsg) -> Result<VideoReply, ApiError> {
        conn.registry()
            .ask::<VideoRoom>(study, msg)
            .await?
            .map_err(ApiError::from)
    }

    async fn join(
        &mut self,
        conn: &Conn<'_>,
        id: Option<ReqId>,
        study: StudyId,
        rejoin: bool,
    ) -> Result<(), ApiError> {
        if let Some(other) = self.room
            && other != study
        {
            return Err(ApiError::validation(
                "study_id",
                format!("this socket is in the video room of study {other}; leave it first"),
            ));
        }
        let role = conn.app.store.role_of(study, conn.user.id).await?;
        if !role.is_some_and(crate::studies::Role::is_member) {
            return Err(VideoError::NotFound.into());
        }
        let msg = VideoMsg::Join {
            conn: conn.id,
            user: conn.author(),
            rejoin,
        };
        let VideoReply::Joined {
            participants,
            locks,
            ice_servers,
            max_participants,
        } = Self::ask(conn, study, msg).await?
        else {
            return Err(ApiError::Internal(anyhow::anyhow!("unexpected join reply")));
        };
        self.room = Some(study);
        conn.send(&VideoJoined {
            id,
            study_id: study,
            you: conn.user.id,
            ice_servers,
            participants: &participants,
            locks: &locks,
            max_participants,
        });
        Ok(())
    }

    /// Who is in the study's call, for a member deciding whether to join it. A room that
    /// is not running is not started to say it is empty.
    async fn status(conn: &Conn<'_>, id: Option<ReqId>, study: StudyId) -> Result<(), ApiError> {
        let role = conn.app.store.role_of(study, conn.user.id).await?;
        if !role.is_some_and(crate::studies::Role::is_member) {
            return Err(VideoError::NotFound.into());
        }
        let reply = conn
            .registry()
            .ask_if_running::<VideoRoom>(study, VideoMsg::Status)
            .await?
            .transpose()
            .map_err(ApiError::from)?;
        let (user_ids, version) = match reply {
            Some(VideoReply::Status { user_ids, version }) => (user_ids, version),
            Some(_) => {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "unexpected status reply"
                )));
            }
            None => (Vec::new(), 0),
        };
        conn.send(&VideoStatus {
            id,
            study_id: study,
            user_ids,
            version,
        });
        Ok(())
    }

    /// A leader's action in the room this socket sits in (the room checks the leader).
    async fn moderate(
        &self,
        conn: &Conn<'_>,
        study: StudyId,
        action: Moderation,
    ) -> Result<(), ApiError> {
        let msg = VideoMsg::Moderate {
            conn: conn.id,
            action,
        };
        self.in_room(conn, study, msg).await
    }

    /// A request for the room this socket sits in.
    async fn in_room(
        &self,
        conn: &Conn<'_>,
        study: StudyId,
        msg: VideoMsg,
    ) -> Result<(), ApiError> {
        if self.room != Some(study) {
            return Err(VideoError::NotInRoom.into());
        }
        Self::ask(conn, study, msg).await.map(|_| ())
    }
}

fn sdp_size(sdp: &str) -> Result<(), ApiError> {
    if sdp.len() > MAX_SDP_BYTES {
        return Err(VideoError::BadSdp(format!("longer than {MAX_SDP_BYTES} bytes")).into());
    }
    Ok(())
}

#[async_trait(?Send)]
impl Family for VideoSocket {
    type Request = VideoRequest;
    const FRAMES: &'static [&'static str] = super::frames::SERVER_FRAMES;

    fn open(_conn: &Conn<'_>) -> Self {
        VideoSocket { room: None }
    }

    async fn on_request(&mut self, conn: &Conn<'_>, id: Option<ReqId>, req: VideoRequest) {
        let c = conn.id;
        let result = match req {
            VideoRequest::Join { study_id, rejoin } => {
                match self.join(conn, id.clone(), study_id, rejoin).await {
                    // `video.joined` is the reply.
                    Ok(()) => return,
                    Err(e) => Err(e),
                }
            }
            VideoRequest::Status { study_id } => {
                match Self::status(conn, id.clone(), study_id).await {
                    // `video.status` is the reply.
                    Ok(()) => return,
                    Err(e) => Err(e),
                }
            }
            VideoRequest::Offer {
                study_id,
                sdp,
                sources,
            } => {
                if let Err(e) = sdp_size(&sdp) {
                    Err(e)
                } else {
                    let msg = VideoMsg::Offer {
                        conn: c,
                        req: id.clone(),
                        sdp,
                        sources,
                    };
                    match self.in_room(conn, study_id, msg).await {
                        // The media loop sends `video.answer` itself, ahead of its offers.
                        Ok(()) => return,
                        Err(e) => Err(e),
                    }
                }
            }
            VideoRequest::Answer { study_id, sdp } => match sdp_size(&sdp) {
                Ok(()) => {
                    self.in_room(conn, study_id, VideoMsg::Answer { conn: c, sdp })
                        .await
                }
                Err(e) => Err(e),
            },
            VideoRequest::Leave { study_id } => {
                if self.room == Some(study_id) {
                    self.room = None;
                    let _ = conn
                        .registry()
                        .tell_if_running::<VideoRoom>(study_id, VideoMsg::Leave { conn: c })
                        .await;
                }
                Ok(())
            }
            VideoRequest::Media {
                study_id,
                mic,
                camera,
                screen,
            } => {
                let msg = VideoMsg::Media {
                    conn: c,
                    mic,
                    camera,
                    screen,
                };
                self.in_room(conn, study_id, msg).await
            }
            VideoRequest::Hand { study_id, raised } => {
                self.in_room(conn, study_id, VideoMsg::Hand { conn: c, raised })
                    .await
            }
            VideoRequest::React { study_id, reaction } => {
                self.in_room(conn, study_id, VideoMsg::React { conn: c, reaction })
                    .await
            }
            VideoRequest::SetLayer {
                study_id,
                user_id,
                layer,
            } => {
                let msg = VideoMsg::Layer {
                    conn: c,
                    publisher: user_id,
                    layer,
                };
                self.in_room(conn, study_id, msg).await
            }
            VideoRequest::Mute { study_id, user_id } => {
                self.moderate(conn, study_id, Moderation::Mute(user_id))
                    .await
            }
            VideoRequest::MuteAll { study_id } => {
                self.moderate(conn, study_id, Moderation::MuteAll).await
            }
            VideoRequest::AllowUnmute { study_id, user_id } => {
                self.moderate(conn, study_id, Moderation::AllowUnmute(user_id))
                    .await
            }
            VideoRequest::Remove { study_id, user_id } => {
                self.moderate(conn, study_id, Moderation::Remove(user_id))
                    .await
            }
            VideoRequest::LowerHand { study_id, user_id } => {
                self.moderate(conn, study_id, Moderation::LowerHand(user_id))
                    .await
            }
            VideoRequest::Stop {
                study_id,
                user_id,
                source,
            } => {
                if source == Source::Mic {
                    Err(ApiError::validation(
                        "source",
                        "the leader mutes a microphone with video.mute",
                    ))
                } else {
                    self.moderate(conn, study_id, Moderation::Stop(user_id, source))
                        .await
                }
            }
            VideoRequest::Lock {
                study_id,
                source,
                locked,
            } => {
                self.moderate(conn, study_id, Moderation::Lock(source, locked))
                    .await
            }
            VideoRequest::Allow {
                study_id,
                user_id,
                source,
            } => {
                self.moderate(conn, study_id, Moderation::Allow(user_id, source))
                    .await
            }
            VideoRequest::LowerHands { study_id } => {
                self.moderate(conn, study_id, Moderation::LowerHands).await
            }
            VideoRequest::End { study_id } => self.moderate(conn, study_id, Moderation::End).await,
        };
        match result {
            Ok(()) => conn.ack(id),
            Err(e) => conn.error(id, &e),
        }
    }

    async fn on_control(&mut self, conn: &Conn<'_>, c: &Control) {
        match c {
            Control::Resync { key } => {
                if let Some(study) = key.id_of::<VideoRoom>()
                    && self.room == Some(study)
                {
                    // The room restarted empty: media state cannot be resumed, so the
                    // client joins again.
                    self.room = None;
                    conn.send(&VideoLeft {
                        study_id: study,
                        reason: LeftReason::Server,
                    });
                }
            }
            Control::Released { key }
                if key
                    .id_of::<VideoRoom>()
                    .is_some_and(|s| self.room == Some(s)) =>
            {
                self.room = None;
            }
            _ => {}
        }
    }

    async fn on_close(&mut self, conn: &Conn<'_>) {
        if let Some(study) = self.room.take() {
            let msg = VideoMsg::Leave { conn: conn.id };
            let _ = conn
                .registry()
                .tell_if_running::<VideoRoom>(study, msg)
                .await;
        }
    }
}
