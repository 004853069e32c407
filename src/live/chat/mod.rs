//! The chat feature: one `ChatRoom` actor per room with someone in it (the room's single
//! writer: sequence numbers, commits, delivery, presence, typing) and the `chat.*` socket
//! family that joins rooms.

mod frames;
mod room;
mod socket;

pub use frames::*;
pub use room::{ChatRoom, ChatRoomMsg, RESUME_MAX, SEND_POLICY, drop_user_from_rooms};
pub use socket::{ChatRequest, ChatSocket, MAX_ROOMS_PER_CONN};

/// One line in `live::features`.
pub fn register(f: &mut super::Features) {
    f.families.add::<ChatSocket>("chat");
    f.kinds.register::<ChatRoom>();
}
