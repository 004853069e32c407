//! What the `video.*` family says to clients.

use serde::{Deserialize, Serialize};

use super::sfu::quality::Quality;
use super::sfu::route::Source;
use super::turn::IceServer;
use crate::ids::{StudyId, UserId};
use crate::ws::frame::ReqId;

/// One participant as every other one sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub user_id: UserId,
    pub display_name: String,
    pub leader: bool,
    pub mic: bool,
    pub camera: bool,
    pub screen: bool,
    pub hand: bool,
    /// When the hand went up (server time, ms), so everyone lists raised hands in the
    /// order they were raised; `None` while it is down.
    pub hand_at: Option<crate::store::Millis>,
    /// Muted by the leader, or held by the microphone lock: the SFU drops this
    /// participant's microphone.
    pub muted: bool,
    /// The camera and screen the leader's locks keep this participant from turning on
    /// (the microphone's lock shows as `muted`).
    pub locked: Vec<Source>,
    /// Media is flowing (ICE and DTLS are up).
    pub connected: bool,
    /// How their link to the server does (`None` until first measured, a few seconds
    /// after media starts).
    pub quality: Option<Quality>,
}

/// One remote track a connection receives, by the mid of its m-line there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub mid: String,
    pub user_id: UserId,
    pub source: Source,
}

/// A reaction a participant shows the room for a moment (the client draws the emoji):
/// a fixed set, so a client cannot put arbitrary text over everyone's tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reaction {
    ThumbsUp,
    Clap,
    Laugh,
    Surprised,
    Heart,
    Party,
}

/// Why a participant is out of the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftReason {
    Removed,
    Ended,
    NotMember,
    Replaced,
    ConnectionLost,
    Server,
}

crate::server_frames! {
    /// The reply to `video.join`.
    "video.joined" => VideoJoined<'a> {
        id: Option<ReqId>,
        study_id: StudyId,
        you: UserId,
        ice_servers: Vec<IceServer>,
        participants: &'a [Participant],
        /// The sources the leader locked for the room.
        locks: &'a [Source],
        max_participants: usize,
    }
    /// The answer to my `video.offer`.
    "video.answer" => VideoAnswer { id: Option<ReqId>, study_id: StudyId, sdp: String }
    /// The server renegotiates: answer with a `video.answer` request.
    "video.offer" => VideoOffer { study_id: StudyId, sdp: String, tracks: Vec<TrackInfo> }
    "video.participants" => VideoParticipants<'a> { study_id: StudyId, participants: &'a [Participant], locks: &'a [Source] }
    "video.speaker" => VideoSpeaker { study_id: StudyId, user_id: Option<UserId> }
    /// The leader muted me, or let me unmute.
    "video.muted" => VideoMuted { study_id: StudyId, muted: bool }
    /// I am out of the room.
    "video.left" => VideoLeft { study_id: StudyId, reason: LeftReason }
    /// Someone in the room reacted (me too: my own tile shows it the same way).
    "video.reaction" => VideoReaction { study_id: StudyId, user_id: UserId, reaction: Reaction }
    /// The leader stopped my camera or screen share, or locked it (I may turn it on again
    /// unless my `participants` entry lists it as `locked`).
    "video.stopped" => VideoStopped { study_id: StudyId, source: Source }
    /// The reply to `video.status`: who is in the study's call (empty: no call), stamped
    /// like the `call_changed` study event.
    "video.status" => VideoStatus { id: Option<ReqId>, study_id: StudyId, user_ids: Vec<UserId>, version: i64 }
}
