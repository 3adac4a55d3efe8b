//! tickcast: a multi-threaded WebSocket broadcaster for market data.
//!
//! Feed handlers publish ticks in-process; tickcast stamps each with a
//! per-symbol `seq` and a `ts`, serializes it **once** into a complete
//! WebSocket frame, and fans that one frame out to every subscribed
//! connection over pinned `mio` I/O shards. The wire protocol is
//! `PROTOCOL.md` v1 (JSON text frames on `ws://HOST:PORT/ws`).
//!
//! ```text
//!  feed threads ─publish()─► publisher ─encode once─► Frame(Arc<[u8]>)
//!                              │ one bounded crossbeam send per shard (+ wake if asleep)
//!                              ├──────────────► shard 0 ─► index ─► Outbox ─writev─► sockets
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
//!    costs the publisher no syscall per tick (see `fanout`).
//!
//! # Reading order
//! `broadcaster` → `publisher` → [`encode`] → `fanout` → `listener` →
//! `shard` → `connection` → [`outbox`]; then `protocol`, `subscriptions`,
//! `http` as needed.
#![deny(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unsafe_op_in_unsafe_fn
)]
#![warn(unreachable_pub)]

mod auth;
mod broadcaster;
mod config;
mod connection;
pub mod encode;
mod error;
mod fanout;
mod frame;
mod http;
mod listener;
mod metrics;
pub mod outbox;
mod protocol;
mod publisher;
mod shard;
mod static_files;
mod subscriptions;
mod symbols;
mod synthetic;
mod tick;

pub use auth::{Authenticator, Entitlements, Identity, StaticTokens};
pub use broadcaster::Broadcaster;
pub use config::Config;
pub use error::{Error, Result};
pub use frame::Frame;
pub use metrics::Stats;
pub use publisher::{PublishError, Publisher};
pub use tick::Tick;
