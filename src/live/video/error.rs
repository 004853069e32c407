//! Why a video request was refused, in a form that crosses nodes, and its one mapping to
//! the API's stable codes.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum VideoError {
    #[error("no such study, or you are not a member")]
    NotFound,
    #[error("join the room first")]
    NotInRoom,
    #[error("the room is full ({0} participants)")]
    Full(usize),
    #[error("bad SDP: {0}")]
    BadSdp(String),
    #[error("at most 3 sources (mic, camera, screen), each named once")]
    TooManyTracks,
    #[error("answer the server's offer first")]
    Negotiating,
    #[error("no offer from the server is waiting for an answer")]
    NoPendingOffer,
    #[error("the leader muted you")]
    MutedByLeader,
    #[error("the leader locked the {} for the room; raise your hand to be allowed", .0.as_str())]
    Locked(super::sfu::route::Source),
    #[error("only the study's leader may do that")]
    NotLeader,
    #[error("too many offers and answers; wait a moment")]
    RateLimited,
    #[error("the media server is unavailable")]
    Unavailable,
}

impl From<VideoError> for ApiError {
    fn from(e: VideoError) -> ApiError {
        let message = e.to_string();
        match e {
            VideoError::NotFound => ApiError::NotFound,
            VideoError::NotInRoom => ApiError::Conflict {
                code: "not_in_room",
                message,
            },
            VideoError::Full(_) => ApiError::Conflict {
                code: "video_full",
                message,
            },
            VideoError::BadSdp(_) => ApiError::BadRequest {
                code: "bad_sdp",
                message,
            },
            VideoError::TooManyTracks => ApiError::BadRequest {
                code: "too_many_tracks",
                message,
            },
            VideoError::Negotiating => ApiError::Conflict {
                code: "negotiating",
                message,
            },
            VideoError::NoPendingOffer => ApiError::Conflict {
                code: "no_pending_offer",
                message,
            },
            VideoError::MutedByLeader => ApiError::Forbidden {
                code: "muted_by_leader",
                message,
            },
            VideoError::Locked(_) => ApiError::Forbidden {
                code: "source_locked",
                message,
            },
            VideoError::NotLeader => ApiError::Forbidden {
                code: "not_leader",
                message,
            },
            VideoError::RateLimited => ApiError::RateLimited {
                retry_after_secs: 1,
            },
            VideoError::Unavailable => ApiError::Unavailable,
        }
    }
}
