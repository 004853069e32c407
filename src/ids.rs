//! Id newtypes. One macro makes them all so a `UserId` can never be passed where a
//! `SessionId` is expected.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = i64)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type!(
    /// A user account.
    UserId,
    /// A server-side login session (one per login, shared by that browser's tabs).
    SessionId,
    /// A study group.
    StudyId,
    /// An application to join a study.
    ApplicationId,
    /// A review of one member by another.
    ReviewId,
    /// An entry in a user's notification inbox.
    NotificationId,
    /// A chat room of a study.
    RoomId,
    /// A task on a study's board.
    TaskId,
    /// A post under a task.
    PostId,
    /// A stored file (an attachment of a post or of the recruiting post).
    FileId,
);

/// One live WebSocket connection (one browser tab). Unique within a node's lifetime; the node
/// id makes it unique across a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnId {
    pub node: u64,
    pub seq: u64,
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}-{}", self.node, self.seq)
    }
}
