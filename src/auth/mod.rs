//! Accounts and sessions: input rules, Argon2id passwords, session tokens, login throttling.

pub mod password;
pub mod rules;
pub mod throttle;
pub mod token;

pub use throttle::LoginThrottle;
