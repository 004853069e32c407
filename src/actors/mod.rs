//! Keyed actors that live in the registry. Each owns the live state of one thing and is its
//! single writer; everything else sends it messages by key.

pub mod chat_room;
pub mod direct_chat;
pub mod sequenced;
pub mod study;
pub mod user_session;

pub use chat_room::ChatRoom;
pub use direct_chat::DirectChat;
pub use study::Study;
pub use user_session::UserSession;
