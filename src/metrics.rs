//! Prometheus metrics: the recorder (installed once per process) and every metric name.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Gauge, label `kind`: keyed actors alive.
pub const ACTORS_LIVE: &str = "studyon_actors_live";
/// Gauge, label `kind`: messages queued across that kind's mailboxes.
pub const ACTOR_MAILBOX_DEPTH: &str = "studyon_actor_mailbox_depth";
/// Counter, label `kind`: restarts after a crash.
pub const ACTOR_RESTARTS: &str = "studyon_actor_restarts_total";
/// Counter, label `kind`: sends refused because the mailbox was full.
pub const ACTOR_BUSY: &str = "studyon_actor_busy_total";
/// Gauge: open WebSocket connections on this node.
pub const WS_CONNECTIONS: &str = "studyon_ws_connections";
/// Counter, label `reason`: sockets the server closed.
pub const WS_CLOSED: &str = "studyon_ws_closed_total";
/// Gauge: writes waiting in the persistence actor's mailbox.
pub const PERSIST_QUEUE_DEPTH: &str = "studyon_persist_queue_depth";
/// Histogram: writes per group commit.
pub const PERSIST_BATCH_SIZE: &str = "studyon_persist_batch_size";
/// Histogram: seconds per group commit.
pub const PERSIST_COMMIT_SECONDS: &str = "studyon_persist_commit_seconds";
/// Counter, labels `method`, `status`: HTTP responses.
pub const HTTP_RESPONSES: &str = "studyon_http_responses_total";
/// Counter, label `result` (`stored` or the error code): uploads by outcome.
pub const UPLOADS: &str = "studyon_uploads_total";
/// Counter: bytes of files stored.
pub const UPLOAD_BYTES: &str = "studyon_upload_bytes_total";
/// Video rooms with a media loop on this node.
pub const VIDEO_ROOMS: &str = "studyon_video_rooms";
/// Participants with a WebRTC session on this node.
pub const VIDEO_PARTICIPANTS: &str = "studyon_video_participants";
/// RTP packets written to subscribers (their payload bytes in `_bytes_total`).
pub const VIDEO_FORWARDED_PACKETS: &str = "studyon_video_forwarded_packets_total";
pub const VIDEO_FORWARDED_BYTES: &str = "studyon_video_forwarded_bytes_total";
/// Datagrams dropped: a room's inbox was full, or the socket's send buffer.
pub const VIDEO_DROPPED_DATAGRAMS: &str = "studyon_video_dropped_datagrams_total";
/// Round-trip time per participant, from RTCP (one sample per stats interval).
pub const VIDEO_RTT_SECONDS: &str = "studyon_video_rtt_seconds";
/// Fraction of a participant's packets lost on the way in (one sample per interval).
pub const VIDEO_LOSS_RATIO: &str = "studyon_video_loss_ratio";
/// Gauge, label `kind`: keys this node owns (live actors), refreshed with lease renewal.
pub const CLUSTER_OWNED_KEYS: &str = "studyon_cluster_owned_keys";
/// Counter, label `kind`: actors stopped because their lease lapsed or moved.
pub const LEASES_LOST: &str = "studyon_cluster_leases_lost_total";
/// Counter, label `what` (`deliver`, `frames`, `control`): messages sent to other nodes.
pub const CLUSTER_FORWARDED: &str = "studyon_cluster_forwarded_total";
/// Counter: client frames carried to other nodes (one batch carries many).
pub const CLUSTER_FORWARDED_FRAMES: &str = "studyon_cluster_forwarded_frames_total";
/// Counter, label `reason`: node-to-node messages dropped (link queue full, peer unreachable).
pub const CLUSTER_DROPPED: &str = "studyon_cluster_dropped_total";
/// Histogram: node-to-node round trip of a forwarded delivery, reply included.
pub const CLUSTER_RTT_SECONDS: &str = "studyon_cluster_rtt_seconds";

/// Installs the global recorder on first call; later calls (tests start many servers in one
/// process) share it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed by an embedding program; we still
            // render our own handle then.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
