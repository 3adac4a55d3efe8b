//! tickcast: a multi-threaded WebSocket broadcaster for market data.
//!
//! Feed handlers publish ticks in-process; tickcast stamps each with a
//! per-symbol `seq` and a `ts`, serializes it **once** into a complete
//! WebSocket frame, and fans that one frame out to every subscribed
//! connection over pinned `mio` I/O shards. The wire protocol is in
//! `docs/protocol.md` (JSON text frames on `ws://HOST:PORT/ws`); the
//! threads, the data flow and the invariants are in `docs/architecture.md`.
//!
//! ```text
//!  feed threads ─publish()─► publisher ─encode once─► Frame(Arc<[u8]>)
//!                              │ one bounded crossbeam send per shard (+ wake if asleep)
//!                              ├──────────────► shard 0 ─► classes ─► Outbox ─writev─► Transport
//!                              └──────────────► shard 1 ─► ...
//!  acceptor ── Accept(socket) ─┘ (least-loaded shard)    one pinned thread + one mio::Poll each
//! ```
//!
//! # Guarantees
//! 1. Each tick is serialized exactly once ([`encode::TickEncoder`]);
//!    connections share its bytes ([`Frame`]); per client it costs an `Arc`
//!    clone and part of a vectored write.
//! 2. Per connection and symbol, a `snapshot` with `seq = n` is followed by
//!    exactly `n+1, n+2, …`: no gap, no duplicate, no reordering, and a
//!    connection gets each tick at most once however many of its
//!    subscriptions cover the symbol.
//! 3. A connection that cannot keep up is evicted with close code 4001 when
//!    its bounded [`outbox::Outbox`] overflows; it never silently misses a
//!    tick, and it never delays the others.
//! 4. A shard never sleeps while its inbox is non-empty, and a busy shard
//!    costs the publisher no syscall per tick (see [`wake`]).
//!
//! # Reading order and dependencies
//! The modules are listed below in data-flow order. Dependencies point one
//! way: [`Broadcaster`] (the composition root) → the threads (`feed`,
//! `acceptor`, `shard`) → what they share (`inbox`, `wake`, `runtime`,
//! `groups`, `admission`) → the sans-I/O core (`session`,
//! `subscriptions`, [`outbox`], `wire`) → leaves (`config`, `tick`,
//! `price`, `symbols`, `metrics`, `auth`, `error`). No module imports one above it.
#![deny(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unsafe_op_in_unsafe_fn
)]
#![warn(unreachable_pub)]

// The composition root.
mod broadcaster;
// The threads, in data-flow order.
mod acceptor;
mod feed;
mod shard;
// What the threads share.
mod admission;
mod groups;
mod history;
mod inbox;
mod recycle;
mod runtime;
pub mod wake;
// The sans-I/O core.
pub mod outbox;
mod session;
mod subscriptions;
mod transport;
mod wire;
// Leaves.
mod auth;
mod config;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod metrics;
mod price;
mod symbols;
#[cfg(test)]
mod test_alloc;
mod tick;

pub use auth::{Authenticator, Entitlements, Identity, JwtAuthenticator, StaticTokens};
pub use broadcaster::Broadcaster;
pub use config::{
    Config, JwtConfig, JwtKey, MAX_HISTORY_DEPTH, MIN_QUEUE_CAPACITY, RedisFeed, TlsFiles,
};
pub use error::{Error, Result};
pub use feed::publisher::{BatchError, MAX_BATCH, PublishError, Publisher};
pub use feed::redis_stream;
pub use groups::GroupSpec;
pub use metrics::{Disconnect, HandshakeFailure, LatencySummary, Metrics, ShardMetrics, Stats};
pub use price::{Decimal, DecimalError, MAX_DECIMAL_DIGITS, Price};
pub use tick::{Symbol, Tick};
pub use wire::encode;
pub use wire::frame::Frame;
