//! Co-edited post bodies: one `PostDoc` actor per post being edited holds the Yrs document
//! (the body as the `Y.Text` named `body`) and speaks y-sync and awareness to every editor.
//!
//! - `proto.rs`: the y-protocols codec (and hocuspocus' framing and extras).
//! - `awareness.rs`: who is here and where their cursor is (pure core).
//! - `text.rs`: the document core: apply, diff, size, and API edits as minimal updates.
//! - `actor.rs`: `PostDoc`: persist before relay, compaction, body refresh, versions, access.
//! - `socket.rs`: the families on `/ws` (many documents, named frames) and on
//!   `/ws/doc/{post_id}` (one document, plain y-websocket framing).

pub mod actor;
pub mod awareness;
pub mod proto;
pub mod socket;
pub mod text;

pub use actor::{PostDoc, PostDocMsg, PostDocReply, PostDocResult};
pub use socket::{DocSocket, PlainDocSocket};

use crate::ids::{PostId, UserId};
use crate::registry::Registry;
use crate::ws::family::{Endpoint, Families};

/// The name of the plain endpoint in `AppState::endpoints`.
pub const ENDPOINT: &str = "doc";

/// Close codes of the document sockets (in PROTOCOL.md). The stock y-websocket provider
/// stops reconnecting on 4400–4499 (a permanent refusal) and retries on anything else.
pub mod close_code {
    /// Not a member of the post's study (or removed from it).
    pub const FORBIDDEN: u16 = 4403;
    /// The post does not exist (or was deleted).
    pub const DELETED: u16 = 4404;
    /// The client's edit would make the document larger than allowed.
    pub const TOO_LARGE: u16 = 4413;
    /// The document could not keep up or could not store: reconnect later (RFC 6455 "try
    /// again later").
    pub const BUSY: u16 = 1013;
}

/// Metric names of co-editing.
pub mod metric {
    /// Gauge: documents loaded on this node.
    pub const DOCS_LOADED: &str = "studyon_docs_loaded";
    /// Gauge: sockets attached to documents.
    pub const DOC_EDITORS: &str = "studyon_doc_editors";
    /// Counter: updates applied (peers' and the API's).
    pub const DOC_UPDATES_APPLIED: &str = "studyon_doc_updates_applied_total";
    /// Counter: update frames relayed to peers after their commit.
    pub const DOC_FRAMES_RELAYED: &str = "studyon_doc_frames_relayed_total";
    /// Counter: update-log rows written (one per group commit).
    pub const DOC_LOG_ROWS: &str = "studyon_doc_log_rows_total";
    /// Counter: logs folded into a snapshot.
    pub const DOC_COMPACTIONS: &str = "studyon_doc_compactions_total";
    /// Gauge: encoded bytes of the loaded documents.
    pub const DOC_BYTES: &str = "studyon_doc_bytes";
    /// Histogram: seconds per document commit.
    pub const DOC_COMMIT_SECONDS: &str = "studyon_doc_commit_seconds";
    /// Counter, label `reason`: messages refused.
    pub const DOC_REFUSED: &str = "studyon_doc_refused_total";
}

/// One line in `live::features`.
pub fn register(f: &mut super::Features) {
    f.families.add::<DocSocket>("doc");
    f.binary_families.add::<DocSocket>("doc");
    let mut plain = Families::new();
    plain.add::<PlainDocSocket>("doc_plain");
    f.endpoints.push((ENDPOINT, Endpoint::binary(plain)));
    f.kinds.register::<PostDoc>();
}

/// Every loaded document of these posts lets the user go at once.
pub async fn drop_user_from_docs(registry: &Registry, posts: Vec<PostId>, user: UserId) {
    for post in posts {
        let _ = registry
            .tell_if_running::<PostDoc>(post, PostDocMsg::DropUser { user })
            .await;
    }
}
