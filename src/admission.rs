//! [`Admission`]: who may hold a socket and who may open a WebSocket, and
//! the counts those decisions rest on (sockets held, connections open, per
//! client address), shared by the acceptor and every shard.
//!
//! Invariants: `sockets` is the number of sockets the shards hold or are
//! about to adopt, and each shard's load counter is its share of it (both
//! move together, only here); `open` counts the [`Admitted`] tickets not
//! yet released, `per_ip[ip]` those of `ip` (when the per-IP limit is
//! on) and `per_user[user]` those of `user` (when the per-user limit is
//! on). A ticket is released exactly once, because release takes it by
//! value.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
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
    /// `max_connections_per_user` connections are open for this user.
    PerUser,
    /// `max_connections` connections are open.
    Full,
}

impl Refusal {
    /// The HTTP status and one-line reason of `PROTOCOL.md`.
    pub(crate) fn response(self) -> (u16, &'static str) {
        match self {
            Refusal::PerIp => (429, "too many connections from this address"),
            Refusal::PerUser => (429, "too many connections for this user"),
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
    /// The user counted in the per-user table, if the limit is on.
    user: Option<Arc<str>>,
}

/// The admission counts and limits of one broadcaster.
#[derive(Debug)]
pub(crate) struct Admission {
    max_connections: usize,
    /// 0: no per-IP limit (and no per-IP table).
    max_per_ip: usize,
    /// 0: no per-user limit (and no per-user table).
    max_per_user: usize,
    max_sockets: usize,
    sockets: AtomicUsize,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    per_user: Mutex<HashMap<Arc<str>, usize>>,
    next_conn_id: AtomicU64,
    refused_full: AtomicU64,
}

impl Admission {
    pub(crate) fn new(config: &Config) -> Admission {
        Admission {
            max_connections: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            max_per_user: config.max_connections_per_user,
            max_sockets: config.max_connections.saturating_add(HANDSHAKE_SLACK),
            sockets: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            per_user: Mutex::new(HashMap::new()),
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

    /// Decides whether a connection from `ip` for `user` (the token's
    /// `sub`, when auth is on) may open: the per-IP limit first (429), then
    /// the per-user limit (429), then the connection limit (503).
    pub(crate) fn admit(&self, ip: IpAddr, user: Option<&Arc<str>>) -> Result<Admitted, Refusal> {
        let counted_ip = if self.max_per_ip > 0 {
            if !take(&self.per_ip, ip, self.max_per_ip) {
                return Err(Refusal::PerIp);
            }
            Some(ip)
        } else {
            None
        };
        let counted_user = match user {
            Some(u) if self.max_per_user > 0 => {
                if !take(&self.per_user, u.clone(), self.max_per_user) {
                    forget(&self.per_ip, counted_ip);
                    return Err(Refusal::PerUser);
                }
                Some(u.clone())
            }
            _ => None,
        };
        if self.open.fetch_add(1, Relaxed) >= self.max_connections {
            self.open.fetch_sub(1, Relaxed);
            forget(&self.per_ip, counted_ip);
            forget(&self.per_user, counted_user);
            self.refused_full.fetch_add(1, Relaxed);
            return Err(Refusal::Full);
        }
        Ok(Admitted {
            conn_id: self.next_conn_id.fetch_add(1, Relaxed) + 1,
            ip: counted_ip,
            user: counted_user,
        })
    }

    /// The connection of `ticket` is no longer open.
    pub(crate) fn release(&self, ticket: Admitted) {
        self.open.fetch_sub(1, Relaxed);
        forget(&self.per_ip, ticket.ip);
        forget(&self.per_user, ticket.user);
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

/// Counts one more for `k` unless it has `max` already.
fn take<K: std::hash::Hash + Eq>(table: &Mutex<HashMap<K, usize>>, k: K, max: usize) -> bool {
    let mut table = table.lock();
    let n = table.entry(k).or_insert(0);
    if *n >= max {
        return false;
    }
    *n += 1;
    true
}

/// Counts one less for `k`; an entry at zero is removed, so the table
/// holds only keys with open connections.
fn forget<K: std::hash::Hash + Eq>(table: &Mutex<HashMap<K, usize>>, k: Option<K>) {
    let Some(k) = k else { return };
    let mut table = table.lock();
    if let Some(n) = table.get_mut(&k) {
        *n -= 1;
        if *n == 0 {
            table.remove(&k);
        }
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
        let t1 = a.admit(ip, None).unwrap();
        let t2 = a.admit(ip, None).unwrap();
        assert_eq!(a.admit(ip, None), Err(Refusal::PerIp));
        let t3 = a.admit(other, None).unwrap();
        assert_eq!(a.admit(other, None), Err(Refusal::Full));
        assert_eq!((a.open(), a.refused_full()), (3, 1));
        assert!(t1.conn_id < t2.conn_id && t2.conn_id < t3.conn_id);
        a.release(t1);
        a.release(t3);
        assert_eq!(a.open(), 1);
        assert!(
            a.admit(other, None).is_ok(),
            "the refusal left no count behind"
        );
        a.release(t2);
        assert!(a.admit(ip, None).is_ok());
        assert_eq!(a.per_ip.lock().get(&ip), Some(&1));
    }

    #[test]
    fn without_a_per_ip_limit_no_table_is_kept() {
        let a = admission(10, 0);
        let t = a.admit([127, 0, 0, 1].into(), None).unwrap();
        assert!(a.per_ip.lock().is_empty());
        a.release(t);
        assert_eq!(a.open(), 0);
    }

    #[test]
    fn the_per_user_limit_counts_users_across_addresses_and_recovers() {
        let a = Admission::new(&Config {
            max_connections: 10,
            max_connections_per_ip: 3,
            max_connections_per_user: 2,
            ..Config::default()
        });
        let ann: Arc<str> = "ann".into();
        let bob: Arc<str> = "bob".into();
        let (ip1, ip2): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let t1 = a.admit(ip1, Some(&ann)).unwrap();
        let t2 = a.admit(ip2, Some(&ann)).unwrap();
        assert_eq!(a.admit(ip1, Some(&ann)), Err(Refusal::PerUser));
        assert_eq!(
            a.per_ip.lock().get(&ip1),
            Some(&1),
            "the refusal took no IP count"
        );
        let t3 = a.admit(ip1, Some(&bob)).unwrap();
        assert_eq!(a.open(), 3);
        a.release(t1);
        let t4 = a
            .admit(ip1, Some(&ann))
            .expect("a released slot is usable again");
        for t in [t2, t3, t4] {
            a.release(t);
        }
        assert!(a.per_user.lock().is_empty() && a.per_ip.lock().is_empty());
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
