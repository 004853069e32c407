//! Live features. Each is one folder: its socket family (request and frame types, the
//! handler, cleanup on close), its keyed actor (the single writer of its live state) and
//! what they share. Wiring a feature in is its one line in [`features`].
//!
//! | feature | family (requests) | actor kind |
//! |---|---|---|
//! | [`user`] | `user` (none: notifications and the tab list) | `user_session` |
//! | [`prefs`] | `prefs.*` | none (group-committed writes) |
//! | [`study`] | `study.*` | `study` |
//! | [`chat`] | `chat.*` | `chat_room` |
//! | [`dm`] | `dm.*` | `direct_chat` |
//! | [`doc`] | binary y-sync frames (`/ws`, `/ws?binary=1`, `/ws/doc/{post_id}`) | `post_doc` |
//! | [`video`] | `video.*` (signaling; media over the node's UDP socket) | `video_room` |

pub mod chat;
pub mod dm;
pub mod doc;
pub mod prefs;
pub mod sequenced;
pub mod study;
pub mod user;
pub mod video;

use serde::{Deserialize, Serialize};

use crate::registry::ActorKinds;
use crate::store::{Rule, StoreError};
use crate::ws::family::{Endpoint, Families};

/// Why an actor's command failed, in a form that can cross nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Rule(Rule),
    #[error("store unavailable")]
    Unavailable,
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rule(r) => CommandError::Rule(r),
            StoreError::Unavailable(_) => CommandError::Unavailable,
            other => CommandError::Internal(other.to_string()),
        }
    }
}

impl From<CommandError> for crate::error::ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Rule(r) => r.into(),
            CommandError::Unavailable => crate::error::ApiError::Unavailable,
            CommandError::Internal(m) => crate::error::ApiError::Internal(anyhow::anyhow!(m)),
        }
    }
}

/// What the live features add to the server: the `/ws` families and the actor kinds.
#[derive(Default)]
pub struct Features {
    /// The families of the `/ws` endpoint.
    pub families: Families,
    /// The families of `/ws?binary=1`: the same socket for clients that take no JSON (no
    /// `hello`, no text frames), such as the stock `@hocuspocus/provider`.
    pub binary_families: Families,
    /// Endpoints of their own (a feature's path routes to them by name).
    pub endpoints: Vec<(&'static str, Endpoint)>,
    pub kinds: ActorKinds,
    /// Node resources to set up at start (sockets, runtimes), found by actors in
    /// `Deps::ext` by type.
    pub resources: Vec<NodeResource>,
}

/// Builds one node resource from the settings.
pub type NodeResource =
    fn(&crate::config::Settings) -> anyhow::Result<std::sync::Arc<dyn std::any::Any + Send + Sync>>;

/// Every live feature of this build, registered.
pub fn features() -> Features {
    let mut f = Features::default();
    user::register(&mut f);
    prefs::register(&mut f);
    study::register(&mut f);
    chat::register(&mut f);
    dm::register(&mut f);
    doc::register(&mut f);
    video::register(&mut f);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_errors_map_to_api_codes() {
        let e: crate::error::ApiError = CommandError::Rule(Rule::StudyFull).into();
        assert_eq!((e.status().as_u16(), e.code()), (409, "study_full"));
        let e: crate::error::ApiError = CommandError::Rule(Rule::NotFound).into();
        assert_eq!((e.status().as_u16(), e.code()), (404, "not_found"));
        let e: crate::error::ApiError = CommandError::Rule(Rule::Banned).into();
        assert_eq!((e.status().as_u16(), e.code()), (403, "banned"));
    }
}

/// Every registry message and reply of every live feature through the wire encoding the
/// cluster uses. A new variant fails to compile in `covered_*` until it gets a sample here.
#[cfg(test)]
mod wire_tests {
    use std::fmt::Debug;

    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::CommandError;
    use super::chat::ChatRoomMsg;
    use super::dm::DirectMsg;
    use super::study::{Study, StudyEvent, StudyMsg, StudyOutcome, StudyReply};
    use super::user::{UserSessionMsg, UserSessionReply};
    use crate::chat::{Author, Category, Room};
    use crate::ids::*;
    use crate::registry::{ActorKey, KeyedActor, RegistryError, StartError, wire};
    use crate::store::Rule;
    use crate::studies::rules::StudyFields;
    use crate::studies::{Application, ApplicationStatus, Notification, StudyStatus};
    use crate::tasks::order::{Item, Step};
    use crate::tasks::{PostSummary, Task, TaskStatus};
    use crate::ws::frame::{Frame, ReqId};
    use crate::ws::router::Control;

    fn round_trip<T: Serialize + DeserializeOwned + Debug>(v: &T) {
        let bytes = wire::encode(v).unwrap_or_else(|e| panic!("{v:?} does not encode: {e}"));
        let back: T = wire::decode(&bytes).unwrap_or_else(|e| panic!("{v:?} does not decode: {e}"));
        assert_eq!(format!("{v:?}"), format!("{back:?}"), "changed on the wire");
    }

    fn conn() -> ConnId {
        ConnId {
            node: u64::MAX - 3,
            seq: 42,
        }
    }

    fn author() -> Author {
        Author {
            id: UserId(7),
            display_name: "김민수 🙂".into(),
        }
    }

    fn reqs() -> [Option<ReqId>; 4] {
        [
            None,
            Some(ReqId::Str("r-1".into())),
            Some(ReqId::Num((-5).into())),
            Some(ReqId::Num(serde_json::Number::from_f64(1.5).unwrap())),
        ]
    }

    fn task() -> Task {
        Task {
            id: TaskId(3),
            study_id: StudyId(2),
            title: "읽기".into(),
            description: "d".into(),
            description_html: "<p>d</p>".into(),
            due_on: Some("2026-12-01".into()),
            assignee: Some(author()),
            status: TaskStatus::Open,
            created_by: author(),
            created_at: 1,
            updated_at: 2,
            completed_at: None,
            post_count: 4,
            version: 9,
        }
    }

    fn events() -> Vec<StudyEvent> {
        let (application_id, user_id) = (ApplicationId(5), UserId(6));
        let post = PostSummary {
            id: PostId(8),
            task_id: TaskId(3),
            title: "t".into(),
            author: author(),
            created_at: 1,
            updated_at: 2,
            attachment_count: 1,
            locked: true,
            version: 3,
        };
        let all = vec![
            StudyEvent::ApplicationReceived { application_id },
            StudyEvent::ApplicationWithdrawn { application_id },
            StudyEvent::ApplicationRejected {
                application_id,
                user_id,
            },
            StudyEvent::MemberJoined {
                application_id,
                user_id,
            },
            StudyEvent::MemberLeft { user_id },
            StudyEvent::MemberRemoved { user_id },
            StudyEvent::LeadTransferred { user_id },
            StudyEvent::StatusChanged {
                status: StudyStatus::InProgress,
            },
            StudyEvent::Updated,
            StudyEvent::RoomOpened { room_id: RoomId(1) },
            StudyEvent::RoomClosed { room_id: RoomId(1) },
            StudyEvent::Deleted,
            StudyEvent::TaskCreated { task: task() },
            StudyEvent::TaskUpdated { task: task() },
            StudyEvent::TaskDeleted { task_id: TaskId(3) },
            StudyEvent::PostCreated { post: post.clone() },
            StudyEvent::PostUpdated { post },
            StudyEvent::PostDeleted {
                task_id: TaskId(3),
                post_id: PostId(8),
            },
            StudyEvent::StudyAttachmentsChanged,
            StudyEvent::CallChanged {
                user_ids: vec![user_id],
                version: 9,
            },
        ];
        for e in &all {
            covered_event(e);
        }
        all
    }

    fn covered_event(e: &StudyEvent) {
        match e {
            StudyEvent::ApplicationReceived { .. }
            | StudyEvent::ApplicationWithdrawn { .. }
            | StudyEvent::ApplicationRejected { .. }
            | StudyEvent::MemberJoined { .. }
            | StudyEvent::MemberLeft { .. }
            | StudyEvent::MemberRemoved { .. }
            | StudyEvent::LeadTransferred { .. }
            | StudyEvent::StatusChanged { .. }
            | StudyEvent::Updated
            | StudyEvent::RoomOpened { .. }
            | StudyEvent::RoomClosed { .. }
            | StudyEvent::Deleted
            | StudyEvent::TaskCreated { .. }
            | StudyEvent::TaskUpdated { .. }
            | StudyEvent::TaskDeleted { .. }
            | StudyEvent::PostCreated { .. }
            | StudyEvent::PostUpdated { .. }
            | StudyEvent::PostDeleted { .. }
            | StudyEvent::StudyAttachmentsChanged
            | StudyEvent::CallChanged { .. } => {}
        }
    }

    #[test]
    fn user_session_messages_and_replies() {
        let notification = Notification {
            id: NotificationId(1),
            kind: "chat_mention".into(),
            payload: json!({
                "study_id": 2, "nested": {"list": [1, -2, 3.25, null, true]},
                "big": u64::MAX, "text": "한국어 \u{202e}",
            }),
            created_at: 1_700_000_000_000,
            read: false,
            user_id: UserId(9),
        };
        let msgs = vec![
            UserSessionMsg::Attach {
                conn: conn(),
                session: SessionId(3),
            },
            UserSessionMsg::Detach { conn: conn() },
            UserSessionMsg::Notify { notification },
            UserSessionMsg::Push {
                frame: Frame::Text(r#"{"type":"dm.read"}"#.into()),
            },
            UserSessionMsg::Push {
                frame: Frame::Binary(vec![0, 1, 255].into()),
            },
            UserSessionMsg::SessionRevoked {
                session: SessionId(3),
            },
            UserSessionMsg::Connections,
        ];
        for m in &msgs {
            match m {
                UserSessionMsg::Attach { .. }
                | UserSessionMsg::Detach { .. }
                | UserSessionMsg::Notify { .. }
                | UserSessionMsg::Push { .. }
                | UserSessionMsg::SessionRevoked { .. }
                | UserSessionMsg::Connections => round_trip(m),
            }
        }
        for r in [
            UserSessionReply::Done,
            UserSessionReply::Reached(3),
            UserSessionReply::Connections(vec![conn()]),
        ] {
            round_trip(&r);
        }
    }

    #[test]
    fn study_messages_and_replies() {
        let fields = StudyFields {
            title: "알고리즘".into(),
            description: "**d**".into(),
            tags: vec!["rust".into(), "한글".into()],
            capacity: 10,
            recruit_opens_on: "2026-11-01".into(),
            recruit_closes_on: "2026-11-30".into(),
            starts_on: "2026-12-01".into(),
            ends_on: "2027-01-31".into(),
        };
        let mut msgs = vec![
            StudyMsg::Watch {
                conn: conn(),
                user: UserId(1),
            },
            StudyMsg::Unwatch { conn: conn() },
            StudyMsg::Apply {
                user: UserId(1),
                message: "hi".into(),
            },
            StudyMsg::Withdraw {
                user: UserId(1),
                application: ApplicationId(2),
            },
            StudyMsg::Decide {
                leader: UserId(1),
                application: ApplicationId(2),
                accept: false,
                reason: Some("full".into()),
            },
            StudyMsg::Decide {
                leader: UserId(1),
                application: ApplicationId(2),
                accept: true,
                reason: None,
            },
            StudyMsg::Leave { user: UserId(1) },
            StudyMsg::Transfer {
                leader: UserId(1),
                to: UserId(2),
            },
            StudyMsg::Remove {
                leader: UserId(1),
                user: UserId(2),
                ban: true,
            },
            StudyMsg::SetStatus {
                leader: UserId(1),
                status: StudyStatus::Completed,
            },
            StudyMsg::Edit {
                leader: UserId(1),
                fields,
            },
            StudyMsg::OpenRoom {
                user: UserId(1),
                name: "qna".into(),
                category: Category::Qna,
            },
            StudyMsg::Delete { leader: UserId(1) },
        ];
        for event in events() {
            msgs.push(StudyMsg::Announce {
                event: event.clone(),
            });
            msgs.push(StudyMsg::AnnounceToMembers {
                event,
                order: Some((Item::Post(PostId(8)), Step::At(3))),
            });
        }
        msgs.push(StudyMsg::AnnounceToMembers {
            event: StudyEvent::TaskDeleted { task_id: TaskId(3) },
            order: Some((Item::Task(TaskId(3)), Step::Deleted)),
        });
        for m in &msgs {
            match m {
                StudyMsg::Watch { .. }
                | StudyMsg::Unwatch { .. }
                | StudyMsg::Apply { .. }
                | StudyMsg::Withdraw { .. }
                | StudyMsg::Decide { .. }
                | StudyMsg::Leave { .. }
                | StudyMsg::Transfer { .. }
                | StudyMsg::Remove { .. }
                | StudyMsg::SetStatus { .. }
                | StudyMsg::Edit { .. }
                | StudyMsg::OpenRoom { .. }
                | StudyMsg::Announce { .. }
                | StudyMsg::AnnounceToMembers { .. }
                | StudyMsg::Delete { .. } => round_trip(m),
            }
        }
        let application = Application {
            id: ApplicationId(2),
            study_id: StudyId(3),
            status: ApplicationStatus::Accepted,
            message: "m".into(),
            reason: None,
            created_at: 1,
            decided_at: Some(2),
            user_id: UserId(4),
        };
        let room = Room {
            id: RoomId(1),
            study_id: StudyId(3),
            name: "n".into(),
            category: Category::OffTopic,
            closed: false,
            last_seq: 0,
            unread: 0,
        };
        let replies: Vec<StudyReply> = vec![
            Ok(StudyOutcome::Done),
            Ok(StudyOutcome::Application(application)),
            Ok(StudyOutcome::Room(room)),
            Ok(StudyOutcome::Deleted(vec!["ab/cd".into()])),
            Err(CommandError::Rule(Rule::StudyFull)),
            Err(CommandError::Unavailable),
            Err(CommandError::Internal("boom".into())),
        ];
        for r in &replies {
            if let Ok(o) = r {
                match o {
                    StudyOutcome::Done
                    | StudyOutcome::Application(_)
                    | StudyOutcome::Room(_)
                    | StudyOutcome::Deleted(_) => {}
                }
            }
            round_trip(r);
        }
    }

    #[test]
    fn chat_and_dm_messages_and_replies() {
        let mut msgs = Vec::new();
        for req in reqs() {
            msgs.extend([
                ChatRoomMsg::Join {
                    conn: conn(),
                    user: author(),
                    last_seq: Some(i64::MAX),
                    req: req.clone(),
                },
                ChatRoomMsg::Join {
                    conn: conn(),
                    user: author(),
                    last_seq: None,
                    req: req.clone(),
                },
                ChatRoomMsg::Send {
                    conn: conn(),
                    user: author(),
                    client_id: "c1".into(),
                    body: "안녕 @bob".into(),
                    req: req.clone(),
                },
                ChatRoomMsg::Edit {
                    conn: conn(),
                    user: UserId(1),
                    seq: 3,
                    body: "b".into(),
                    req: req.clone(),
                },
                ChatRoomMsg::Delete {
                    conn: conn(),
                    user: UserId(1),
                    seq: 3,
                    req: req.clone(),
                },
                ChatRoomMsg::React {
                    conn: conn(),
                    user: UserId(1),
                    seq: 3,
                    emoji: "👍".into(),
                    on: true,
                    req: req.clone(),
                },
                ChatRoomMsg::Read {
                    conn: conn(),
                    user: UserId(1),
                    seq: i64::MIN,
                    req: req.clone(),
                },
            ]);
        }
        msgs.extend([
            ChatRoomMsg::Leave { conn: conn() },
            ChatRoomMsg::Typing {
                conn: conn(),
                user: author(),
                typing: true,
            },
            ChatRoomMsg::DropUser { user: UserId(2) },
            ChatRoomMsg::Close {
                study: StudyId(1),
                leader: UserId(2),
            },
            ChatRoomMsg::Closed,
        ]);
        for m in &msgs {
            match m {
                ChatRoomMsg::Join { .. }
                | ChatRoomMsg::Leave { .. }
                | ChatRoomMsg::Send { .. }
                | ChatRoomMsg::Edit { .. }
                | ChatRoomMsg::Delete { .. }
                | ChatRoomMsg::React { .. }
                | ChatRoomMsg::Typing { .. }
                | ChatRoomMsg::Read { .. }
                | ChatRoomMsg::DropUser { .. }
                | ChatRoomMsg::Close { .. }
                | ChatRoomMsg::Closed => round_trip(m),
            }
        }
        round_trip(&Ok::<(), CommandError>(()));
        round_trip(&Err::<(), CommandError>(CommandError::Rule(Rule::NotFound)));
        for req in reqs() {
            for m in [
                DirectMsg::Send {
                    conn: conn(),
                    sender: author(),
                    client_id: "c".into(),
                    body: "b".into(),
                    req: req.clone(),
                },
                DirectMsg::Sync {
                    conn: conn(),
                    user: UserId(1),
                    last_seq: i64::MAX,
                    req: req.clone(),
                },
                DirectMsg::Read {
                    conn: conn(),
                    reader: UserId(1),
                    seq: 0,
                    req,
                },
            ] {
                match &m {
                    DirectMsg::Send { .. } | DirectMsg::Sync { .. } | DirectMsg::Read { .. } => {
                        round_trip(&m)
                    }
                }
            }
        }
        round_trip(&());
    }

    #[test]
    fn video_messages_and_replies() {
        use super::video::frames::Participant;
        use super::video::sfu::route::{Layer, Source};
        use super::video::turn::IceServer;
        use super::video::{Moderation, VideoError, VideoMsg, VideoReply};
        let msgs = [
            VideoMsg::Join {
                conn: conn(),
                user: Author {
                    id: UserId(1),
                    display_name: "지민".into(),
                },
                rejoin: true,
            },
            VideoMsg::Leave { conn: conn() },
            VideoMsg::Offer {
                conn: conn(),
                req: Some(crate::ws::frame::ReqId::Str("r4".into())),
                sdp: "v=0\r\n".into(),
                sources: [
                    ("0".to_string(), Source::Mic),
                    ("1".to_string(), Source::Camera),
                ]
                .into_iter()
                .collect(),
            },
            VideoMsg::Answer {
                conn: conn(),
                sdp: "v=0\r\n".into(),
            },
            VideoMsg::Media {
                conn: conn(),
                mic: true,
                camera: false,
                screen: true,
            },
            VideoMsg::Hand {
                conn: conn(),
                raised: true,
            },
            VideoMsg::React {
                conn: conn(),
                reaction: super::video::frames::Reaction::Clap,
            },
            VideoMsg::Layer {
                conn: conn(),
                publisher: UserId(2),
                layer: Layer::Low,
            },
            VideoMsg::Moderate {
                conn: conn(),
                action: Moderation::Mute(UserId(2)),
            },
            VideoMsg::Moderate {
                conn: conn(),
                action: Moderation::End,
            },
            VideoMsg::Moderate {
                conn: conn(),
                action: Moderation::LowerHand(UserId(2)),
            },
            VideoMsg::Moderate {
                conn: conn(),
                action: Moderation::LowerHands,
            },
            VideoMsg::Moderate {
                conn: conn(),
                action: Moderation::Stop(UserId(2), Source::Screen),
            },
            VideoMsg::Moderate {
                conn: conn(),
                action: Moderation::Lock(Source::Camera, true),
            },
            VideoMsg::Moderate {
                conn: conn(),
                action: Moderation::Allow(UserId(2), Source::Mic),
            },
            VideoMsg::MemberGone { user: UserId(2) },
            VideoMsg::StudyGone,
            VideoMsg::LeaderChanged { leader: UserId(2) },
            VideoMsg::Status,
        ];
        for m in &msgs {
            match m {
                VideoMsg::Join { .. }
                | VideoMsg::Leave { .. }
                | VideoMsg::Offer { .. }
                | VideoMsg::Answer { .. }
                | VideoMsg::Media { .. }
                | VideoMsg::Hand { .. }
                | VideoMsg::React { .. }
                | VideoMsg::Layer { .. }
                | VideoMsg::Moderate { .. }
                | VideoMsg::MemberGone { .. }
                | VideoMsg::StudyGone
                | VideoMsg::LeaderChanged { .. }
                | VideoMsg::Status => round_trip(m),
            }
        }
        let replies: Vec<Result<VideoReply, VideoError>> = vec![
            Ok(VideoReply::Joined {
                participants: vec![Participant {
                    user_id: UserId(1),
                    display_name: "a".into(),
                    leader: true,
                    mic: true,
                    camera: true,
                    screen: false,
                    hand: true,
                    hand_at: Some(12),
                    muted: false,
                    locked: vec![super::video::sfu::route::Source::Screen],
                    connected: true,
                    quality: Some(super::video::sfu::quality::Quality::Fair),
                }],
                locks: vec![Source::Mic, Source::Screen],
                ice_servers: vec![IceServer {
                    urls: vec!["turn:127.0.0.1:3478".into()],
                    username: Some("1:1".into()),
                    credential: Some("x".into()),
                }],
                max_participants: 25,
            }),
            Ok(VideoReply::Status {
                user_ids: vec![UserId(1)],
                version: 7,
            }),
            Ok(VideoReply::Done),
            Err(VideoError::Full(25)),
            Err(VideoError::BadSdp("nope".into())),
            Err(VideoError::Locked(Source::Camera)),
        ];
        for r in &replies {
            round_trip(r);
        }
    }

    #[test]
    fn document_messages_and_replies() {
        use super::doc::proto::Framing;
        use super::doc::{PostDocMsg, PostDocReply, PostDocResult};
        let msgs = [
            PostDocMsg::Attach {
                conn: conn(),
                user: UserId(1),
                name: "Ann".into(),
                framing: Framing::Named("post/9".into()),
            },
            PostDocMsg::Attach {
                conn: conn(),
                user: UserId(1),
                name: "Ann".into(),
                framing: Framing::Plain,
            },
            PostDocMsg::Frame {
                conn: conn(),
                data: vec![0, 2, 1, 255],
            },
            PostDocMsg::Detach { conn: conn() },
            PostDocMsg::ReplaceText {
                user: UserId(3),
                text: "새 본문 ✍️".into(),
                leader: true,
            },
            PostDocMsg::SetLock { locked: true },
            PostDocMsg::TakeVersion {
                user: UserId(3),
                name: "draft 1".into(),
            },
            PostDocMsg::DropUser { user: UserId(2) },
            PostDocMsg::Deleted,
        ];
        for m in &msgs {
            match m {
                PostDocMsg::Attach { .. }
                | PostDocMsg::Frame { .. }
                | PostDocMsg::Detach { .. }
                | PostDocMsg::ReplaceText { .. }
                | PostDocMsg::SetLock { .. }
                | PostDocMsg::TakeVersion { .. }
                | PostDocMsg::DropUser { .. }
                | PostDocMsg::Deleted => round_trip(m),
            }
        }
        let version = crate::store::docs::DocVersion {
            id: 1,
            name: None,
            created_at: 5,
            created_by: Some(author()),
            authors: vec![author()],
            chars: 10,
        };
        let replies: [PostDocResult; 4] = [
            Ok(PostDocReply::Attached { writable: false }),
            Ok(PostDocReply::Done),
            Ok(PostDocReply::Version(version)),
            Err(CommandError::Rule(Rule::PostLocked)),
        ];
        for r in &replies {
            match r {
                Ok(
                    PostDocReply::Attached { .. } | PostDocReply::Done | PostDocReply::Version(_),
                )
                | Err(_) => round_trip(r),
            }
        }
    }

    #[test]
    fn registry_errors_and_controls() {
        super::features(); // registers the kinds, so keys decode
        let key: ActorKey = Study::key(StudyId(4));
        let errors = [
            RegistryError::Busy { key },
            RegistryError::Stopped { key },
            RegistryError::Timeout { key },
            RegistryError::Start {
                key,
                reason: StartError::NotFound,
            },
            RegistryError::Start {
                key,
                reason: StartError::Failed("disk".into()),
            },
            RegistryError::ShuttingDown,
            RegistryError::OwnedElsewhere {
                key,
                node: 0xfeed_beef_0000_0001,
            },
            RegistryError::Unreachable { node: 7 },
            RegistryError::Wire("bad".into()),
            RegistryError::AtCapacity { key },
        ];
        for e in &errors {
            match e {
                RegistryError::Busy { .. }
                | RegistryError::Stopped { .. }
                | RegistryError::Timeout { .. }
                | RegistryError::Start { .. }
                | RegistryError::ShuttingDown
                | RegistryError::OwnedElsewhere { .. }
                | RegistryError::Unreachable { .. }
                | RegistryError::Wire(_)
                | RegistryError::AtCapacity { .. } => round_trip(e),
            }
        }
        for c in [
            Control::Close {
                code: 4001,
                reason: "logged_out".into(),
            },
            Control::Resync { key },
            Control::Released {
                key: super::dm::DirectChat::key((UserId(1), UserId(2))),
            },
            Control::SlowConsumer,
        ] {
            round_trip(&c);
        }
    }
}
