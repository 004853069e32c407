//! The video query family: a study call's moderation state, kept so that the leader's
//! mutes and locks outlive a restart of the room or the server. The room owns its form
//! (JSON); the store keeps one row per study.

use async_trait::async_trait;

use super::{Millis, StoreResult};
use crate::ids::StudyId;

#[async_trait]
pub trait VideoStore: Send + Sync {
    /// The call's moderation state as the room last wrote it, and when (`None`: nothing
    /// held).
    async fn video_moderation(&self, study: StudyId) -> StoreResult<Option<(String, Millis)>>;
    /// Replaces it, stamped `now` (`None` deletes it: the call is over).
    async fn set_video_moderation(
        &self,
        study: StudyId,
        state: Option<&str>,
        now: Millis,
    ) -> StoreResult<()>;
}
