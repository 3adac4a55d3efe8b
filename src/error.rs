//! Startup and API errors. Per-connection trouble is never an `Error`: it
//! becomes a close code or an error reply on that connection alone.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while starting, configuring or stopping a broadcaster.
///
/// ```
/// use tickcast::{Broadcaster, Config, Error};
/// let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let c = Config { listen: taken.local_addr().unwrap(), synthetic_rate: 0, ..Config::default() };
/// match Broadcaster::start(c) {
///     Err(Error::Bind { addr, .. }) => assert_eq!(addr, taken.local_addr().unwrap()),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound; pick another address or free
    /// the port.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// A shard's or the acceptor's `mio::Poll` (or its waker) could not be
    /// created, usually because the process is out of file descriptors.
    #[error("cannot create the event loop of {thread}: {source}")]
    CreatePoll {
        /// Which thread.
        thread: String,
        /// The OS error.
        source: io::Error,
    },
    /// A thread could not be spawned.
    #[error("cannot spawn thread {name}: {source}")]
    Spawn {
        /// The thread's name.
        name: String,
        /// The OS error.
        source: io::Error,
    },
    /// A configuration value is out of range; the message names the knob.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A TLS certificate or key file (`Config::tls`) is missing, unreadable
    /// or unusable; the message names the file.
    #[error("TLS file {}: {reason}", file.display())]
    Tls {
        /// The file at fault.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A group name or symbol given to the API is not valid.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// "group name" or "symbol".
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A thread of the broadcaster panicked (a bug: please report it).
    #[error("thread {name} panicked")]
    ThreadPanicked {
        /// The thread's name.
        name: String,
    },
    /// The broadcaster has been shut down.
    #[error("the broadcaster is shut down")]
    Stopped,
}
