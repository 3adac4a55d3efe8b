//! [`Admission`]: who may hold a socket and who may open a WebSocket, and
//! the counts those decisions rest on (sockets held, connections open, per
//! client address), shared by the acceptor and every shard.
//!
//! Invariants: `sockets` is the number of sockets the shards hold or are
//! about to adopt, and each shard's load counter is its share of it (both
//! move together, only here); `open` counts the [`Admitted`] tickets not
//! yet released, and `per_ip[ip]` those of `ip` (when the per-IP limit is
//! on). A ticket is released exactly once, because release takes it by
//! value.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use parking_lot::Mutex;

use crate::Config;

/// Sockets that may be mid-handshake (or being refused with an HTTP
/// status) on top of `max_connections`; past that the acceptor closes new
/// sockets at once instead of answering them.
const HANDSHAKE_SLACK: usize = 1024;

/// Why an upgrade was refused by admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_connections_per_ip` connections are open from this address.
    PerIp,
    /// `max_connections` connections are open.
    Full,
}

impl Refusal {
    /// The HTTP status and one-line reason of `PROTOCOL.md`.
    pub(crate) fn response(self) -> (u16, &'static str) {
        match self {
            Refusal::PerIp => (429, "too many connections from this address"),
            Refusal::Full => (503, "connection limit reached"),
        }
    }
}

/// An open connection's place in the counts; give it back with
/// [`Admission::release`] when the connection stops being open.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Admitted {
    /// The connection's id (`c-N` in `welcome`), unique per broadcaster.
    pub(crate) conn_id: u64,
    /// The address counted in the per-IP table, if the limit is on.
    ip: Option<IpAddr>,
}

/// The admission counts and limits of one broadcaster.
#[derive(Debug)]
pub(crate) struct Admission {
    max_connections: usize,
    /// 0: no per-IP limit (and no per-IP table).
    max_per_ip: usize,
    max_sockets: usize,
    sockets: AtomicUsize,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    next_conn_id: AtomicU64,
    refused_full: AtomicU64,
}

impl Admission {
    pub(crate) fn new(config: &Config) -> Admission {
        Admission {
            max_connections: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            max_sockets: config.max_connections.saturating_add(HANDSHAKE_SLACK),
            sockets: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            next_conn_id: AtomicU64::new(0),
            refused_full: AtomicU64::new(0),
        }
    }

    /// Acceptor: counts a new socket for the shard whose load is
    /// `shard_load`. Returns false (and counts a refusal) when the process
    /// holds too many sockets already: the caller closes it at once.
    pub(crate) fn take_socket(&self, shard_load: &AtomicUsize) -> bool {
        if self.sockets.load(Relaxed) >= self.max_sockets {
            self.refused_full.fetch_add(1, Relaxed);
            return false;
        }
        self.sockets.fetch_add(1, Relaxed);
        shard_load.fetch_add(1, Relaxed);
        true
    }

    /// A socket counted by [`Admission::take_socket`] is gone.
    pub(crate) fn drop_socket(&self, shard_load: &AtomicUsize) {
        self.sockets.fetch_sub(1, Relaxed);
        shard_load.fetch_sub(1, Relaxed);
    }

    /// Decides whether a connection from `ip` may open: the per-IP limit
    /// first (429), then the connection limit (503).
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Admitted, Refusal> {
        let counted_ip = if self.max_per_ip > 0 {
            let mut per_ip = self.per_ip.lock();
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                return Err(Refusal::PerIp);
            }
            *n += 1;
            Some(ip)
        } else {
            None
        };
        if self.open.fetch_add(1, Relaxed) >= self.max_connections {
            self.open.fetch_sub(1, Relaxed);
            self.forget_ip(counted_ip);
            self.refused_full.fetch_add(1, Relaxed);
            return Err(Refusal::Full);
        }
        Ok(Admitted {
            conn_id: self.next_conn_id.fetch_add(1, Relaxed) + 1,
            ip: counted_ip,
        })
    }

    /// The connection of `ticket` is no longer open.
    pub(crate) fn release(&self, ticket: Admitted) {
        self.open.fetch_sub(1, Relaxed);
        self.forget_ip(ticket.ip);
    }

    fn forget_ip(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let mut per_ip = self.per_ip.lock();
        if let Some(n) = per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
    }

    /// Open WebSocket connections.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Relaxed)
    }

    /// Sockets held by the shards.
    pub(crate) fn sockets(&self) -> usize {
        self.sockets.load(Relaxed)
    }

    /// Sockets and upgrades refused for the connection limit.
    pub(crate) fn refused_full(&self) -> u64 {
        self.refused_full.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max: usize, per_ip: usize) -> Admission {
        Admission::new(&Config {
            max_connections: max,
            max_connections_per_ip: per_ip,
            ..Config::default()
        })
    }

    #[test]
    fn the_per_ip_limit_is_checked_before_the_total() {
        let a = admission(3, 2);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let t1 = a.admit(ip).unwrap();
        let t2 = a.admit(ip).unwrap();
        assert_eq!(a.admit(ip), Err(Refusal::PerIp));
        let t3 = a.admit(other).unwrap();
        assert_eq!(a.admit(other), Err(Refusal::Full));
        assert_eq!((a.open(), a.refused_full()), (3, 1));
        assert!(t1.conn_id < t2.conn_id && t2.conn_id < t3.conn_id);
        a.release(t1);
        a.release(t3);
        assert_eq!(a.open(), 1);
        assert!(a.admit(other).is_ok(), "the refusal left no count behind");
        a.release(t2);
        assert!(a.admit(ip).is_ok());
        assert_eq!(a.per_ip.lock().get(&ip), Some(&1));
    }

    #[test]
    fn without_a_per_ip_limit_no_table_is_kept() {
        let a = admission(10, 0);
        let t = a.admit([127, 0, 0, 1].into()).unwrap();
        assert!(a.per_ip.lock().is_empty());
        a.release(t);
        assert_eq!(a.open(), 0);
    }

    #[test]
    fn sockets_move_with_the_shard_load() {
        let a = admission(1, 0);
        let load = AtomicUsize::new(0);
        for _ in 0..HANDSHAKE_SLACK + 1 {
            assert!(a.take_socket(&load));
        }
        assert!(!a.take_socket(&load), "max_connections + slack sockets");
        assert_eq!(
            (a.sockets(), load.load(Relaxed)),
            (HANDSHAKE_SLACK + 1, HANDSHAKE_SLACK + 1)
        );
        a.drop_socket(&load);
        assert!(a.take_socket(&load));
        assert_eq!(a.refused_full(), 1);
    }
}
