//! What the `dm.*` family says to clients.

use crate::chat::DirectMessage;
use crate::ids::UserId;
use crate::ws::frame::ReqId;

crate::server_frames! {
    /// A send was committed at `seq`.
    "dm.ack" => DmAck { id: Option<ReqId>, to: UserId, client_id: String, seq: i64 }
    /// A message; `with` is the other party from this receiver's side.
    "dm.message" => DmMessage<'a> { with: UserId, message: &'a DirectMessage }
    /// The reply to `dm.sync`; `read_seq` is how far the other side has read my messages.
    "dm.synced" => DmSynced { id: Option<ReqId>, with: UserId, last_seq: i64, read_seq: i64 }
    /// `with` has read everything up to `seq`: show the check mark.
    "dm.read" => DmRead { with: UserId, seq: i64 }
}
