//! The chat query family. Routes that act for a user check membership inside the same
//! transaction as the read; the `ChatRoom` actor checks membership when a socket joins.

use async_trait::async_trait;

use super::{Millis, StoreResult};
use crate::chat::{Category, ChatMessage, Conversation, DirectMessage, Room};
use crate::ids::{RoomId, StudyId, UserId};

/// What a `ChatRoom` actor loads.
#[derive(Debug, Clone)]
pub struct RoomState {
    pub study_id: StudyId,
    pub closed: bool,
    pub last_seq: i64,
}

/// One sequenced message log: a room's, or a two-person conversation's (smaller id first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatLog {
    Room(RoomId),
    Direct(UserId, UserId),
}

/// Which slice of a room's history.
#[derive(Debug, Clone, Copy)]
pub enum Page {
    /// The newest `limit` messages before `seq` (or the newest overall), newest last.
    Before(Option<i64>),
    /// The oldest `limit` messages after `seq`, oldest first.
    After(i64),
}

#[async_trait]
pub trait ChatStore: Send + Sync {
    /// Members only; at most 3 open rooms per study (checked in the transaction).
    async fn create_room(
        &self,
        study: StudyId,
        user: UserId,
        name: &str,
        category: Category,
        now: Millis,
    ) -> StoreResult<Room>;
    /// Members only, with my unread count per room.
    async fn rooms(&self, study: StudyId, viewer: UserId) -> StoreResult<Vec<Room>>;
    /// Leader only; the room must belong to the study.
    async fn close_room(
        &self,
        study: StudyId,
        room: RoomId,
        leader: UserId,
        now: Millis,
    ) -> StoreResult<()>;
    async fn room_state(&self, room: RoomId) -> StoreResult<Option<RoomState>>;
    async fn room_ids(&self, study: StudyId) -> StoreResult<Vec<RoomId>>;
    /// Members of the room's study only.
    async fn history(
        &self,
        study: StudyId,
        room: RoomId,
        viewer: UserId,
        page: Page,
        limit: i64,
    ) -> StoreResult<Vec<ChatMessage>>;
    /// No role check: for the room actor, which checked at join.
    async fn messages(&self, room: RoomId, page: Page, limit: i64)
    -> StoreResult<Vec<ChatMessage>>;
    async fn message(&self, room: RoomId, seq: i64) -> StoreResult<Option<ChatMessage>>;
    /// (author, client_id, seq) of a log's newest `limit` messages, newest first, for
    /// deduplicating resends.
    async fn recent_client_ids(
        &self,
        log: ChatLog,
        limit: i64,
    ) -> StoreResult<Vec<(UserId, String, i64)>>;
    /// The stored seq of each (author, client id) in a log, `None` where it is not stored;
    /// one query however many keys.
    async fn client_seqs(
        &self,
        log: ChatLog,
        keys: &[(UserId, String)],
    ) -> StoreResult<Vec<Option<i64>>>;
    async fn read_seq(&self, room: RoomId, user: UserId) -> StoreResult<i64>;
    /// (login id, user) of the current members of the study among these login ids (for
    /// @mentions).
    async fn members_by_login(
        &self,
        study: StudyId,
        logins: &[String],
    ) -> StoreResult<Vec<(String, UserId)>>;

    /// Both are current members of at least one common study (who may write to whom).
    async fn share_study(&self, a: UserId, b: UserId) -> StoreResult<bool>;
    /// Newest seq of a conversation and how far each side has read: (last, read_by_a, read_by_b).
    async fn direct_state(&self, pair: (UserId, UserId)) -> StoreResult<(i64, i64, i64)>;
    async fn direct_messages(
        &self,
        pair: (UserId, UserId),
        page: Page,
        limit: i64,
    ) -> StoreResult<Vec<DirectMessage>>;
    /// My conversations, most recent first.
    async fn conversations(&self, user: UserId) -> StoreResult<Vec<Conversation>>;
}
