//! The acceptor thread: accepts TCP connections and hands each to the
//! least-loaded shard.
//!
//! It accepts until `WouldBlock`, as mio's edge-triggered readiness
//! requires. An accept error such as EMFILE (out of file descriptors) makes
//! it back off for [`ACCEPT_BACKOFF`] instead of spinning on a listener
//! that stays readable. Past `max_connections + HANDSHAKE_SLACK` sockets it
//! closes new connections at once; below that the shard answers the upgrade
//! itself (with 503 once `max_connections` are open).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::broadcaster::Shared;
use crate::fanout::{ShardLink, ShardMsg};
use crate::{Error, Result};

const LISTENER: Token = Token(0);
const STOP: Token = Token(1);
/// Pause after an accept error, long enough for descriptors to be freed,
/// short enough not to be noticed by a reconnecting client.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Sockets that may be mid-handshake (or being refused with an HTTP
/// status) on top of `max_connections`.
const HANDSHAKE_SLACK: usize = 1024;
/// Listen backlog asked of the kernel (capped by `net.core.somaxconn`):
/// a connect storm of thousands must not see SYNs dropped.
pub(crate) const BACKLOG: i32 = 4096;

/// Binds `addr` with a deep backlog.
pub(crate) fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(BACKLOG)?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    };
    bind().map_err(|source| Error::Bind { addr, source })
}

/// Spawns the acceptor; returns its waker (wake it after setting
/// `shared.stopping` to stop it) and its handle.
pub(crate) fn spawn(
    listener: std::net::TcpListener,
    links: Vec<ShardLink>,
    shared: Arc<Shared>,
) -> Result<(Arc<Waker>, JoinHandle<()>)> {
    let poll_err = |source| Error::CreatePoll {
        thread: "acceptor".into(),
        source,
    };
    let poll = Poll::new().map_err(poll_err)?;
    let waker = Arc::new(Waker::new(poll.registry(), STOP).map_err(poll_err)?);
    let mut listener = TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(poll_err)?;
    let name = "tickcast-acceptor".to_string();
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || run(poll, listener, &links, &shared))
        .map_err(|source| Error::Spawn { name, source })?;
    Ok((waker, handle))
}

fn run(mut poll: Poll, listener: TcpListener, links: &[ShardLink], shared: &Shared) {
    let mut events = Events::with_capacity(64);
    let mut backoff = false;
    let mut more = false;
    let limit = shared
        .config
        .max_connections
        .saturating_add(HANDSHAKE_SLACK);
    loop {
        let timeout = if more {
            Some(Duration::ZERO)
        } else {
            backoff.then_some(ACCEPT_BACKOFF)
        };
        if let Err(e) = poll.poll(&mut events, timeout)
            && e.kind() != std::io::ErrorKind::Interrupted
        {
            break;
        }
        if shared.stopping.load(Relaxed) {
            break;
        }
        backoff = false;
        more = true;
        // Bounded so that a connect storm cannot keep this loop from seeing
        // the stop flag; the listener is retried right away if it is cut.
        for _ in 0..4096 {
            match listener.accept() {
                Ok((stream, peer)) => {
                    shared.counters.accepted.fetch_add(1, Relaxed);
                    if shared.counters.sockets.load(Relaxed) >= limit {
                        shared.counters.refused_full.fetch_add(1, Relaxed);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    if shared.config.send_buffer > 0 {
                        let _ = socket2::SockRef::from(&stream)
                            .set_send_buffer_size(shared.config.send_buffer);
                    }
                    let Some(link) = links.iter().min_by_key(|l| l.sockets.load(Relaxed)) else {
                        return;
                    };
                    shared.counters.sockets.fetch_add(1, Relaxed);
                    link.sockets.fetch_add(1, Relaxed);
                    let give_up = || shared.stopping.load(Relaxed);
                    if link
                        .send(ShardMsg::Accept { stream, peer }, &give_up)
                        .is_err()
                    {
                        shared.counters.sockets.fetch_sub(1, Relaxed);
                        link.sockets.fetch_sub(1, Relaxed);
                    }
                    link.wake();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    shared.counters.accept_errors.fetch_add(1, Relaxed);
                    backoff = true;
                    more = false;
                    break;
                }
            }
        }
    }
}
