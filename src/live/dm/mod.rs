//! The direct-message feature: one `DirectChat` actor per conversation (its single writer,
//! with the same sequencing as chat rooms) and the `dm.*` socket family.

mod conversation;
mod frames;
mod socket;

pub use conversation::{DirectChat, DirectMsg, SYNC_MAX};
pub use frames::*;
pub use socket::{DmRequest, DmSocket};

/// One line in `live::features`.
pub fn register(f: &mut super::Features) {
    f.families.add::<DmSocket>("dm");
    f.kinds.register::<DirectChat>();
}
