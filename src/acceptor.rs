//! The acceptor thread: accepts TCP connections and hands each to the
//! least-loaded shard.
//!
//! It accepts until `WouldBlock`, as mio's edge-triggered readiness
//! requires. An accept error such as EMFILE (out of file descriptors) makes
//! it back off for [`ACCEPT_BACKOFF`] instead of spinning on a listener
//! that stays readable. Past the socket limit of
//! [`Admission`](crate::admission::Admission) it closes new connections at
//! once; below that the shard answers the upgrade itself (with 503 once
//! `max_connections` are open).

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::admission::Admission;
use crate::inbox::{ShardLink, ShardMsg};
use crate::metrics::count;
use crate::runtime::Runtime;
use crate::{Error, Result};

const LISTENER: Token = Token(0);
const STOP: Token = Token(1);
/// Pause after an accept error, long enough for descriptors to be freed,
/// short enough not to be noticed by a reconnecting client.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Sockets accepted per wake-up before the stop flag is looked at again;
/// the listener is retried at once if this cuts a connect storm.
const ACCEPTS_PER_TURN: usize = 4096;
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

/// Spawns the acceptor; returns its waker (wake it after
/// `Runtime::begin_stopping` to stop it) and its handle.
pub(crate) fn spawn(
    listener: std::net::TcpListener,
    links: Vec<ShardLink>,
    runtime: Arc<Runtime>,
    admission: Arc<Admission>,
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
        .spawn(move || run(poll, listener, &links, &runtime, &admission))
        .map_err(|source| Error::Spawn { name, source })?;
    Ok((waker, handle))
}

fn run(
    mut poll: Poll,
    listener: TcpListener,
    links: &[ShardLink],
    runtime: &Runtime,
    admission: &Admission,
) {
    let mut events = Events::with_capacity(64);
    let mut backoff = false;
    let mut more = false;
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
        if runtime.is_stopping() {
            break;
        }
        backoff = false;
        more = true;
        for _ in 0..ACCEPTS_PER_TURN {
            match listener.accept() {
                Ok((stream, peer)) => {
                    count(&runtime.counters.accepted);
                    if !hand_over(stream, peer, links, runtime, admission) {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    more = false;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    count(&runtime.counters.accept_errors);
                    backoff = true;
                    more = false;
                    break;
                }
            }
        }
    }
}

/// Sets up a new socket and hands it to the least-loaded shard, or closes
/// it when admission says the process holds too many. Returns false if
/// there is no shard to hand it to.
fn hand_over(
    stream: mio::net::TcpStream,
    peer: std::net::SocketAddr,
    links: &[ShardLink],
    runtime: &Runtime,
    admission: &Admission,
) -> bool {
    let Some(link) = links.iter().min_by_key(|l| l.load()) else {
        return false;
    };
    if !admission.take_socket(link.load_counter()) {
        return true; // dropped: closed at once
    }
    let _ = stream.set_nodelay(true);
    if runtime.config.send_buffer > 0 {
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(runtime.config.send_buffer);
    }
    let give_up = || runtime.is_stopping();
    if link
        .send(ShardMsg::Accept { stream, peer }, &give_up)
        .is_err()
    {
        admission.drop_socket(link.load_counter());
    }
    link.wake();
    true
}
