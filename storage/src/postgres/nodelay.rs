//! `TCP_NODELAY` on the writer's connections, so that a `COPY` does not wait on Nagle's
//! algorithm.
//!
//! A `COPY` sends its rows, then its end (`CopyDone`, 5 bytes) as a write of its own. sqlx
//! opens TCP connections without `TCP_NODELAY`, so the kernel holds that small write until
//! the server acknowledges the rows' last segment. The server has nothing to answer before
//! the end, so it delays the acknowledgement: about 40 ms on Linux, on every copy.
//!
//! sqlx does not hand out its sockets. So each new connection asks the server for the two
//! ends it sees (`inet_client_port()`, `inet_server_port()`), and the socket of this
//! process with those ends (found among `/proc/self/fd`) gets the option. Where that
//! fails (another system than Linux, a proxy in between), the writer inserts instead.
//! A Unix socket has no Nagle's algorithm: nothing to set.

#![allow(unsafe_code)]

use sqlx::PgConnection;

/// What a new connection's setup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nagle {
    /// The connection's socket sends small writes at once: `TCP_NODELAY` is set, or it is
    /// a Unix socket.
    Off,
    /// The socket was not found: small writes may wait for an acknowledgement.
    MayDelay,
}

/// Turns Nagle's algorithm off on `connection`'s socket when it is a TCP socket of this
/// process.
pub async fn turn_off(connection: &mut PgConnection) -> Result<Nagle, sqlx::Error> {
    let (client, server): (Option<i32>, Option<i32>) =
        sqlx::query_as("SELECT inet_client_port(), inet_server_port()")
            .fetch_one(connection)
            .await?;
    let (Some(client), Some(server)) = (client, server) else {
        return Ok(Nagle::Off);
    };
    let ports = (u16::try_from(client), u16::try_from(server));
    Ok(match ports {
        (Ok(client), Ok(server)) if set_on_socket(client, server) => Nagle::Off,
        _ => Nagle::MayDelay,
    })
}

/// Sets `TCP_NODELAY` on every socket of this process from local port `client` to remote
/// port `server`; false when there is none (or descriptors cannot be listed).
#[cfg(target_os = "linux")]
fn set_on_socket(client: u16, server: u16) -> bool {
    use std::os::fd::{BorrowedFd, RawFd};
    let Ok(descriptors) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    let mut found = false;
    for entry in descriptors.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        // SAFETY: `fd` was open when listed. Another thread may close it (or a new file
        // may take its number) before the calls below: each is one system call on a
        // number, which then fails with EBADF or ENOTSOCK, or reads the addresses of a
        // socket that is not ours and sets nothing on it, as its ends do not match. Nothing
        // here closes or keeps the descriptor.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let port = |address: std::io::Result<socket2::SockAddr>| {
            address.ok().and_then(|a| a.as_socket()).map(|a| a.port())
        };
        if port(socket.local_addr()) == Some(client)
            && port(socket.peer_addr()) == Some(server)
            && socket.set_tcp_nodelay(true).is_ok()
        {
            found = true;
        }
    }
    found
}

/// Other systems: descriptors are not listed, sockets keep their defaults.
#[cfg(not(target_os = "linux"))]
fn set_on_socket(_client: u16, _server: u16) -> bool {
    false
}
