//! Where ticks come from and how they enter the broadcaster: the
//! [`Publisher`] handle feed handlers call, the publisher thread that stamps
//! and serializes each tick once, and the built-in synthetic feed.

pub(crate) mod publisher;
pub(crate) mod synthetic;
