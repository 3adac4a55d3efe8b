//! Where ticks come from and how they enter the broadcaster: the
//! [`Publisher`] handle feed handlers call, the publisher thread that stamps
//! and serializes each tick once, the built-in synthetic feed and the
//! shared feed on Redis Streams.

pub(crate) mod publisher;
pub mod redis_stream;
pub(crate) mod synthetic;
