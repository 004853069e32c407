//! What the `chat.*` family says to clients.

use crate::chat::{Author, ChatMessage};
use crate::ids::RoomId;
use crate::ws::frame::ReqId;

crate::server_frames! {
    /// The reply to `chat.join`; replayed messages and live frames follow.
    "chat.joined" => ChatJoined<'a> {
        id: Option<ReqId>,
        room_id: RoomId,
        /// The room's newest seq.
        last_seq: i64,
        /// My read marker.
        read_seq: i64,
        closed: bool,
        /// Who has the room open, each user once.
        presence: Vec<&'a Author>,
    }
    "chat.message" => ChatMessageFrame<'a> { room_id: RoomId, message: &'a ChatMessage }
    /// A send was committed at `seq`.
    "chat.ack" => ChatAck { id: Option<ReqId>, room_id: RoomId, client_id: String, seq: i64 }
    "chat.updated" => ChatUpdated<'a> { room_id: RoomId, message: &'a ChatMessage }
    "chat.typing" => ChatTyping<'a> { room_id: RoomId, user: &'a Author, typing: bool }
    "chat.presence" => ChatPresence<'a> { room_id: RoomId, users: Vec<&'a Author> }
    /// The leader closed the room: history stays readable, sends are refused.
    "chat.closed" => ChatClosed { room_id: RoomId }
    /// You no longer belong to the study.
    "chat.removed" => ChatRemoved { room_id: RoomId }
}
