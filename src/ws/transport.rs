//! A way to cut a connection the HTTP layer is stuck writing to.
//!
//! When a client stops reading, everything the server sent sits in kernel and HTTP buffers
//! and a close frame queued behind it never arrives: the connection would stay established
//! as long as the peer likes. So each accepted TCP connection keeps a duplicate of its
//! socket descriptor (taken in `HttpServer::on_connect`), and the shell aborts the
//! connection through it when a close does not complete in bounded time: unsent data is
//! dropped and the peer gets a reset.

use std::any::Any;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// A connection's socket, held for [`ConnSocket::abort`].
#[derive(Debug)]
pub struct ConnSocket(OwnedFd);

impl ConnSocket {
    /// Takes a duplicate descriptor of a plain TCP connection (`on_connect`'s `conn`).
    pub fn capture(conn: &dyn Any) -> Option<ConnSocket> {
        let tcp = conn.downcast_ref::<actix_web::rt::net::TcpStream>()?;
        tcp.as_fd().try_clone_to_owned().ok().map(ConnSocket)
    }

    /// Resets the connection: no linger, so closing it drops what is unsent, and shut down
    /// both ways, so the HTTP layer's pending read and write fail and it lets go.
    pub fn abort(&self) {
        let fd = self.0.as_raw_fd();
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: `fd` is a socket we own a duplicate of; both calls only change its state.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }
}
