//! `wire::http::route` on arbitrary bytes: the HTTP upgrade parser and
//! router a session runs on every request head.
//!
//! Checks, beyond "never panics":
//! - `None` (read more) only while the buffer is under `MAX_HEAD`;
//! - an upgrade took at most the buffer, has a well-formed key and a
//!   `client` of at most 64 bytes, is decided by its head alone (the bytes
//!   after it, early WebSocket frames, change nothing) and no strict prefix
//!   of the head is decided (a session routes after every read);
//! - a response is a complete, parseable HTTP/1.1 response with the same
//!   status, `Connection: close` and a `Content-Length` equal to its body
//!   (sent unless `HEAD`); a plain-text refusal is one short line, so a
//!   hostile head is never echoed at length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickcast::fuzzing::{MAX_CLIENT_NAME, MAX_HEAD, Response, Route, route};

fuzz_target!(|data: &[u8]| {
    match route(data) {
        None => assert!(data.len() < MAX_HEAD, "a full buffer is decided"),
        Some(Route::Upgrade(up)) => check_upgrade(data, &up),
        Some(Route::Respond(resp)) => check_response(&resp),
        Some(Route::Report { .. }) => {
            let head = String::from_utf8_lossy(data);
            // The routes answered from the server's state (`/healthz`
            // depends on the feeds since the Redis feed).
            assert!(
                [" /metrics", " /stats", " /healthz"]
                    .iter()
                    .any(|p| head.contains(p)),
                "{head}"
            );
        }
    }
});

fn check_upgrade(data: &[u8], up: &tickcast::fuzzing::Upgrade) {
    let n = up.consumed();
    assert!(n > 0 && n <= data.len(), "consumed {n} of {}", data.len());
    let key = up.key().as_bytes();
    assert!(
        key.len() == 24
            && key.ends_with(b"==")
            && key[..22]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/'),
        "malformed key accepted: {:?}",
        up.key()
    );
    assert!(up.client().is_none_or(|c| c.len() <= MAX_CLIENT_NAME));
    // The head alone decides; what follows it is WebSocket input.
    let head = &data[..n];
    assert_eq!(
        route(head),
        Some(Route::Upgrade(up.clone())),
        "the bytes after the head changed the decision"
    );
    let mut more = head.to_vec();
    more.extend_from_slice(b"\x81\x85\x01\x02\x03\x04garbage\r\n\r\n");
    assert_eq!(route(&more), Some(Route::Upgrade(up.clone())));
    // A strict prefix of a head is never decided (one under MAX_HEAD).
    for k in [n - 1, n / 2, n.saturating_sub(4)] {
        if k < MAX_HEAD {
            let r = route(&head[..k]);
            assert!(r.is_none(), "prefix of {k} bytes decided as {r:?}");
        }
    }
}

fn check_response(resp: &Response) {
    let status = resp.status();
    assert!(
        [200, 400, 404, 405, 426].contains(&status),
        "unexpected status {status}"
    );
    let bytes = resp.to_bytes();
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    let n = match parsed.parse(&bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!(
            "unparseable response {other:?}: {:?}",
            String::from_utf8_lossy(&bytes)
        ),
    };
    assert_eq!(parsed.code, Some(status));
    assert_eq!(parsed.version, Some(1));
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| std::str::from_utf8(h.value).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(header("Connection"), ["close"]);
    assert_eq!(header("Content-Length"), [resp.body().len().to_string()]);
    assert_eq!(header("Content-Type"), [resp.content_type()]);
    if status == 405 {
        assert_eq!(header("Allow"), ["GET, HEAD"]);
    }
    if resp.head_only() {
        assert_eq!(n, bytes.len(), "HEAD: no body");
    } else {
        assert_eq!(&bytes[n..], resp.body());
    }
    if resp.content_type().starts_with("text/plain") {
        let body = resp.body();
        assert!(body.len() <= 512, "a {}-byte refusal", body.len());
        assert!(
            body.ends_with(b"\n") && !body[..body.len() - 1].contains(&b'\n'),
            "a refusal is one line: {:?}",
            String::from_utf8_lossy(body)
        );
        assert!(std::str::from_utf8(body).is_ok());
    }
}
