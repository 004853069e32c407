//! The study feature: one `Study` actor per study someone watches or acts on, the single
//! writer for membership, status and chat-room openings; the `study.*` socket family that
//! watches a study page; and the events those pages receive.

mod actor;
mod frames;
mod socket;

pub use actor::{MAX_WATCHED_PER_CONN, Study, StudyMsg, StudyOutcome, StudyReply};
pub use frames::{StudyEvent, StudyEventFrame, StudyRemoved};
pub use socket::{StudyRequest, StudySocket};

/// One line in `live::features`.
pub fn register(f: &mut super::Features) {
    f.families.add::<StudySocket>("study");
    f.kinds.register::<Study>();
}
