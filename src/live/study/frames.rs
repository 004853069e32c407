//! What study pages are told. Events about the study itself carry only kinds and ids (any
//! signed-in watcher may get them; clients re-read through role-checked routes); task and
//! post events carry content and go to members only.

use serde::{Deserialize, Serialize};

use crate::ids::{ApplicationId, PostId, RoomId, StudyId, TaskId, UserId};
use crate::studies::StudyStatus;
use crate::tasks::{PostSummary, Task};

/// One change in a study, as its `kind` and fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StudyEvent {
    ApplicationReceived {
        application_id: ApplicationId,
    },
    ApplicationWithdrawn {
        application_id: ApplicationId,
    },
    ApplicationRejected {
        application_id: ApplicationId,
        user_id: UserId,
    },
    MemberJoined {
        application_id: ApplicationId,
        user_id: UserId,
    },
    MemberLeft {
        user_id: UserId,
    },
    MemberRemoved {
        user_id: UserId,
    },
    LeadTransferred {
        user_id: UserId,
    },
    StatusChanged {
        status: StudyStatus,
    },
    Updated,
    RoomOpened {
        room_id: RoomId,
    },
    RoomClosed {
        room_id: RoomId,
    },
    /// The study is gone; the watch ends.
    Deleted,
    TaskCreated {
        task: Task,
    },
    TaskUpdated {
        task: Task,
    },
    TaskDeleted {
        task_id: TaskId,
    },
    PostCreated {
        post: PostSummary,
    },
    PostUpdated {
        post: PostSummary,
    },
    PostDeleted {
        task_id: TaskId,
        post_id: PostId,
    },
    /// Re-read the study: its attachments (listed to members only) changed.
    StudyAttachmentsChanged,
    /// Who is in the study's video call now (empty: it ended), to members only. `version`
    /// grows with every change, also across restarts of the room, so a client keeps the
    /// highest it saw from these events and `video.status` replies.
    CallChanged {
        user_ids: Vec<UserId>,
        version: i64,
    },
}

crate::server_frames! {
    /// Something changed in a study this tab watches; re-read it over HTTP.
    "study.event" => StudyEventFrame<'a> { study_id: StudyId, event: &'a StudyEvent }
    /// You were removed from a study this tab watches; the watch ends.
    "study.removed" => StudyRemoved { study_id: StudyId }
}
