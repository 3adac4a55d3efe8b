//! The integration tests: one test binary, one module per area, and
//! `util` with the helpers they share.
//!
//! One binary rather than one per file (as ripgrep and mio do): with a
//! binary per file, each compiled its own copy of `util` and used only
//! part of it, so `util` needed `#![allow(dead_code)]`, which also hid
//! helpers that no test used. Here a helper no test uses is a warning
//! (and an error under clippy `-D warnings`). It is also one link instead
//! of six.
//!
//! The cost: tests of different areas now run at the same time (two at a
//! time on a 2-core machine). The few that load the machine hard, or need
//! the CPU to keep up, hold `util::heavy()`, so no two of them overlap.
//!
//! Run one area with `cargo test --test integration lifecycle::`.

mod board;
mod broadcast;
mod browser;
mod conn_log;
mod faults;
mod handshake;
mod jwt;
mod large_subscriptions;
mod lifecycle;
mod metrics;
mod prefix_groups;
mod redis_feed;
mod redis_fleet;
mod redis_function;
mod redis_publish;
mod redis_server;
mod requests;
mod resume;
mod settings;
mod slow_client;
mod stalled;
mod status_page;
mod tls;
mod util;
