//! Group video: one [`VideoRoom`] per study with a live session (who is in, their state,
//! the leader's moderation), an SFU on str0m whose media loops run on their own runtime
//! ([`sfu`]), one UDP socket per node ([`net`]), the `video.*` socket family and TURN
//! credentials ([`turn`]).

pub mod client;
pub mod error;
pub mod frames;
pub mod locks;
pub mod net;
mod room;
pub mod sfu;
mod socket;
pub mod turn;

use std::sync::{Arc, OnceLock};

pub use error::VideoError;
pub use room::{Moderation, VideoMsg, VideoReply, VideoRoom};
pub use socket::{VideoRequest, VideoSocket};

use crate::config::Settings;

/// One line in `live::features`.
pub fn register(f: &mut super::Features) {
    f.families.add::<VideoSocket>("video");
    f.kinds.register::<VideoRoom>();
    f.resources.push(VideoNode::start);
}

/// This node's video resources: the UDP socket, the media runtime, and the settings rooms
/// need.
pub struct VideoNode {
    pub net: Arc<net::VideoNet>,
    pub runtime: tokio::runtime::Handle,
    pub turn: turn::TurnConfig,
    pub max_participants: usize,
    receiver: tokio::task::AbortHandle,
}

impl Drop for VideoNode {
    fn drop(&mut self) {
        // Closes the socket with the server (tests start many in one process).
        self.receiver.abort();
    }
}

/// str0m's DTLS takes its crypto from the process default: installs ours, once per process
/// (the server and the test client both need it).
pub fn install_crypto() {
    static CRYPTO: OnceLock<()> = OnceLock::new();
    CRYPTO.get_or_init(|| str0m::crypto::from_feature_flags().install_process_default());
}

/// The media loops' runtime: its own threads, so forwarding never waits behind HTTP
/// handlers or actors, and one per process (servers started by tests share it).
fn media_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores)
            .thread_name("studyon-media")
            .enable_all()
            .build()
            .expect("the media runtime starts")
    })
}

impl VideoNode {
    /// Binds the media socket and starts its reader.
    pub fn start(settings: &Settings) -> anyhow::Result<Arc<dyn std::any::Any + Send + Sync>> {
        install_crypto();
        let rt = media_runtime();
        let net = {
            let _enter = rt.enter();
            net::VideoNet::bind(settings.video_udp_listen, settings.video_public_addr)?
        };
        let receiver = rt.spawn(net.clone().run_receiver()).abort_handle();
        tracing::info!(udp = %net.local, advertised = %net.advertised, "video SFU listening");
        Ok(Arc::new(VideoNode {
            net,
            runtime: rt.handle().clone(),
            turn: turn::TurnConfig {
                urls: settings.turn_urls.clone(),
                secret: settings.turn_secret.clone(),
                ttl_secs: settings.turn_ttl_secs,
            },
            max_participants: settings.video_max_participants,
            receiver,
        }))
    }
}
