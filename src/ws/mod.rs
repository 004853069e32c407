//! Live sockets: `/ws` (one per browser tab) and any other endpoint built from the same
//! shell.
//!
//! - `frame`: typed frames (`Frame`, `ServerFrame`, the `server_frames!` and
//!   `client_requests!` macros) and the core frames every socket speaks.
//! - `router`: `ConnRouter`, the one way from an actor to a socket, and `Control`.
//! - `hub`: this node's open connections with their bounded outbound queues; the local
//!   router.
//! - `family`: message families (one per live feature) and endpoints.
//! - `protocol`: the JSON request envelope (the reference for clients is `PROTOCOL.md`).
//! - `conn`: the socket shell: lifecycle, limits, routing to families.
//! - `transport`: cutting a connection whose peer stopped reading.
//!
//! Why `actix-ws` and not `actix-web-actors`: the latter buffers outbound frames without
//! bound inside its context and gives no way to see the backlog, so a slow client could
//! never be detected and dropped. With `actix-ws` the connection actor owns a bounded queue
//! and a writer task; a full queue closes the socket with code 4008.

pub mod conn;
pub mod family;
pub mod frame;
pub mod hub;
pub mod protocol;
pub mod router;
pub mod transport;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

/// Close codes the server uses (also listed in PROTOCOL.md).
pub mod close_code {
    /// The server is shutting down or restarting: reconnect.
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket protocol (bad frame, bad UTF-8): fix the client.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame on a binary-only endpoint, or a binary frame nothing there takes: its
    /// clients read no JSON, so an error frame would only be garbage to them.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A frame above the hard frame limit.
    pub const TOO_BIG: u16 = 1009;
    /// The session was logged out or expired: do not reconnect, log in again.
    pub const SESSION_ENDED: u16 = 4001;
    /// Nothing heard from the client for twice the heartbeat interval.
    pub const HEARTBEAT_TIMEOUT: u16 = 4002;
    /// The client did not read fast enough; its outbound queue filled: reconnect.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The user has as many sockets open as allowed: close a tab, or reconnect later.
    pub const TOO_MANY_SOCKETS: u16 = 4009;
    /// A binary frame over the user's socket rate: binary protocols (y-sync) have no error
    /// reply, and a silently dropped update would leave the client diverged, so the socket
    /// closes and the client resyncs when it reconnects.
    pub const RATE_LIMITED: u16 = 4029;
}
