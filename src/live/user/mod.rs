//! The user feature: one `UserSession` actor per user with a tab open. Every tab attaches to
//! it, so notifications and direct messages reach all of a user's tabs, and logging out
//! closes the sockets opened with that login.

mod session;
mod socket;

pub use session::{UserSession, UserSessionMsg, UserSessionReply, push_notifications};
pub use socket::{NotificationFrame, UserSocket};

/// One line in `live::features`.
pub fn register(f: &mut super::Features) {
    f.families.add::<UserSocket>("user");
    f.kinds.register::<UserSession>();
}
