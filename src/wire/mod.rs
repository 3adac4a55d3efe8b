//! Bytes on the wire, with no I/O: the frames the server sends, the JSON of
//! the protocol, and the HTTP side of the upgrade. Everything here is a pure
//! function of its input, so every hostile input can be unit-tested.
//!
//! - [`frame`]: `Frame`, shared ready-to-write server frames;
//! - [`ws`]: the WebSocket frame-header codec;
//! - [`encode`]: ticks, replies and control frames serialized into frames;
//! - [`protocol`]: client requests parsed, server replies built;
//! - [`http`]: the upgrade request routed, HTTP responses built;
//! - [`static_files`]: the board's files embedded in the binary.

pub(crate) mod digits;
pub mod encode;
pub(crate) mod frame;
pub(crate) mod http;
pub(crate) mod protocol;
pub(crate) mod static_files;
pub(crate) mod ws;
