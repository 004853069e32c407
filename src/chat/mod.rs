//! The chat domain: rooms, messages, the fixed reaction set, input rules and @mentions.
//! No IO here; the store and the `ChatRoom` actor use these.

use std::collections::BTreeMap;

pub mod sequencer;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::ids::{RoomId, StudyId, UserId};
use crate::store::Millis;

/// Open rooms per study: the original app's limit, which keeps a study's talk in few places.
pub const MAX_OPEN_ROOMS: i64 = 3;
/// Longest message body, in characters.
pub const MAX_BODY_CHARS: usize = 4000;
/// Longest client-chosen message id.
pub const MAX_CLIENT_ID: usize = 64;
pub const ROOM_NAME_CHARS: std::ops::RangeInclusive<usize> = 1..=40;
/// A fixed set, so reactions stay a small vocabulary every client can render.
pub const EMOJIS: &[&str] = &["👍", "❤️", "😂", "🎉", "😮", "🙏"];

/// Room categories. A fixed set (rather than free labels) so clients can give each an icon
/// and a translated name; a leader's own label goes in the room name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    General,
    Qna,
    Resources,
    OffTopic,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::General => "general",
            Category::Qna => "qna",
            Category::Resources => "resources",
            Category::OffTopic => "off_topic",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "general" => Some(Category::General),
            "qna" => Some(Category::Qna),
            "resources" => Some(Category::Resources),
            "off_topic" => Some(Category::OffTopic),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Room {
    pub id: RoomId,
    pub study_id: StudyId,
    pub name: String,
    pub category: Category,
    pub closed: bool,
    pub last_seq: i64,
    /// Messages after my read marker that others wrote and are not deleted.
    pub unread: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Author {
    pub id: UserId,
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ChatMessage {
    pub seq: i64,
    pub client_id: String,
    pub author: Author,
    pub body: String,
    pub created_at: Millis,
    #[schema(required = true)]
    pub edited_at: Option<Millis>,
    pub deleted: bool,
    pub reactions: BTreeMap<String, Vec<UserId>>,
    pub mentions: Vec<UserId>,
}

/// A message about to be committed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewChatMessage {
    pub seq: i64,
    pub client_id: String,
    pub author_id: UserId,
    pub body: String,
    pub mentions: Vec<UserId>,
    pub at: Millis,
}

/// The payload of a `chat_mention` notification.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MentionPayload {
    pub study_id: crate::ids::StudyId,
    pub room_id: crate::ids::RoomId,
    pub seq: i64,
    pub author: Author,
    /// The first 100 characters of the message.
    pub excerpt: String,
}

/// A direct message, as both sides see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct DirectMessage {
    pub seq: i64,
    pub client_id: String,
    pub sender: Author,
    pub body: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewDirectMessage {
    pub seq: i64,
    pub client_id: String,
    pub sender_id: UserId,
    pub body: String,
    pub at: Millis,
}

/// One line of the inbox.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Conversation {
    pub user: crate::store::User,
    #[schema(required = true)]
    pub last_message: Option<DirectMessage>,
    pub last_seq: i64,
    pub unread: i64,
}

/// The conversation key: the two users, smaller id first.
pub fn pair(x: UserId, y: UserId) -> (UserId, UserId) {
    if x <= y { (x, y) } else { (y, x) }
}

/// Checks a message about to be sent: its client id and body. An over-long body has its own
/// code (`message_too_long`) so a client can tell it from an empty one.
pub fn outgoing(client_id_raw: &str, body_raw: &str) -> Result<String, ApiError> {
    client_id(client_id_raw)?;
    if body_raw.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::Conflict {
            code: "message_too_long",
            message: format!("messages are limited to {MAX_BODY_CHARS} characters"),
        });
    }
    body(body_raw)
}

/// The client ids a conversation remembers, oldest forgotten first: a resend inside the
/// window is answered from memory; an older one meets the store's unique index.
pub struct Dedupe {
    seen: std::collections::HashMap<(UserId, String), i64>,
    order: std::collections::VecDeque<(UserId, String)>,
    cap: usize,
}

impl Dedupe {
    pub fn new(cap: usize) -> Self {
        Dedupe {
            seen: Default::default(),
            order: Default::default(),
            cap,
        }
    }

    /// The seq a message from `author` with this client id was stored at.
    pub fn get(&self, author: UserId, client_id: &str) -> Option<i64> {
        self.seen.get(&(author, client_id.to_string())).copied()
    }

    pub fn remember(&mut self, author: UserId, client_id: String, seq: i64) {
        if self.order.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.order.push_back((author, client_id.clone()));
        self.seen.insert((author, client_id), seq);
    }
}

pub fn body(raw: &str) -> Result<String, ApiError> {
    let b = raw.trim_end();
    if b.trim().is_empty() {
        return Err(ApiError::validation("body", "a message cannot be empty"));
    }
    if b.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::Validation {
            field: "body",
            message: format!("messages are limited to {MAX_BODY_CHARS} characters"),
        });
    }
    Ok(b.to_string())
}

pub fn client_id(raw: &str) -> Result<(), ApiError> {
    if raw.is_empty() || raw.len() > MAX_CLIENT_ID || raw.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "client_id",
            "client_id must be 1–64 characters",
        ));
    }
    Ok(())
}

pub fn room_name(raw: &str) -> Result<String, ApiError> {
    let n = raw.trim();
    if !ROOM_NAME_CHARS.contains(&n.chars().count()) || n.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "name",
            "a room name is 1–40 characters",
        ));
    }
    Ok(n.to_string())
}

/// Login ids mentioned as `@login_id` (lower-cased, de-duplicated, at most 20).
pub fn mentioned_logins(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in body.split(|c: char| c.is_whitespace()) {
        if let Some(rest) = word.strip_prefix('@') {
            let id: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
                .to_ascii_lowercase();
            if (3..=32).contains(&id.len()) && !out.contains(&id) && out.len() < 20 {
                out.push(id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_ids() {
        assert!(body("   ").is_err());
        assert_eq!(body("안녕하세요  ").unwrap(), "안녕하세요");
        assert!(body(&"가".repeat(4000)).is_ok());
        assert!(body(&"가".repeat(4001)).is_err());
        assert!(client_id("").is_err());
        assert!(client_id(&"x".repeat(65)).is_err());
        assert!(client_id("c-1").is_ok());
        assert!(room_name("").is_err());
        assert_eq!(room_name(" Q&A ").unwrap(), "Q&A");
    }

    #[test]
    fn outgoing_messages_and_dedupe() {
        assert_eq!(outgoing("", "x").unwrap_err().code(), "validation_failed");
        assert_eq!(
            outgoing("c", &"x".repeat(4001)).unwrap_err().code(),
            "message_too_long"
        );
        assert_eq!(outgoing("c", " ").unwrap_err().code(), "validation_failed");
        let mut d = Dedupe::new(2);
        d.remember(UserId(1), "a".into(), 1);
        d.remember(UserId(1), "b".into(), 2);
        assert_eq!(d.get(UserId(1), "a"), Some(1));
        assert_eq!(d.get(UserId(2), "a"), None, "client ids are per author");
        d.remember(UserId(1), "c".into(), 3);
        assert_eq!(
            d.get(UserId(1), "a"),
            None,
            "the oldest is forgotten past the window"
        );
        assert_eq!(d.get(UserId(1), "c"), Some(3));
    }

    #[test]
    fn mentions() {
        assert_eq!(
            mentioned_logins("hi @Alice_1, and @bob! @al @alice_1"),
            vec!["alice_1", "bob"]
        );
        assert!(mentioned_logins("mail me at a@b.example").is_empty());
    }
}
