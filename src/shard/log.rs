//! The connection log: one `tracing` event at info level when a WebSocket
//! opens and one when it ends, with structured fields (target
//! `tickcast::conn`): `conn` (`c-N`, as in `welcome`), `shard`, `peer`,
//! `user`, `client` (the `?client=` name), and when it ends `reason` (a
//! [`Disconnect`] label), `duration_s` and `frames` sent. Without a
//! subscriber (a library user who installs none) each is a check of a
//! static flag.

use std::time::Instant;

use crate::metrics::Disconnect;

use super::connection::Connection;

/// An info event on `tickcast::conn` with the fields every connection
/// event has, then `$rest` (more fields and the message).
macro_rules! conn_event {
    ($shard:expr, $conn:expr, $conn_id:expr, $($rest:tt)+) => {
        tracing::info!(
            target: "tickcast::conn",
            conn = %format_args!("c-{}", $conn_id),
            shard = $shard,
            peer = %$conn.peer,
            user = $conn.session.user().map(|u| &**u),
            client = $conn.session.client(),
            $($rest)+
        )
    };
}

/// The connection `c-{conn_id}` on `shard` was upgraded.
pub(super) fn opened(shard: usize, conn: &Connection, conn_id: u64) {
    conn_event!(shard, conn, conn_id, "connection opened");
}

/// The connection `c-{conn_id}` stopped being open, for `why`: how long it
/// was open and how many frames it was sent.
pub(super) fn closed(shard: usize, conn: &Connection, conn_id: u64, why: Disconnect, now: Instant) {
    let duration = conn
        .opened_at
        .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
    conn_event!(
        shard,
        conn,
        conn_id,
        reason = why.label(),
        duration_s = (duration * 1000.0).round() / 1000.0,
        frames = conn.frames_sent,
        "connection closed"
    );
}
