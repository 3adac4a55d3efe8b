//! The client frame and message reader as the server uses it: a `Session`
//! opened like the unit tests' `opened()`, then fed the input's byte
//! stream in chunks through `receive`, `receive_eof` and `read_messages`,
//! as the shard does (see `FramesInput` for the two settings bytes).
//!
//! Checks, beyond "never panics":
//! - every `read_messages` call keeps its promises (`check_read`: at most
//!   `max` parsed, the ending event last, input used up when fewer);
//! - every frame the session hands out is whole, unmasked server frames:
//!   pongs, `error` replies, a close reply (`check_event`); the `101` and
//!   `welcome` are right;
//! - after the event that ends the WebSocket, the shard's reaction
//!   (`start_closing`) leaves nothing more to parse: no further event;
//! - the result does not depend on how TCP cut the stream: fed in chunks
//!   with a small `max`, or whole with no limit, the session makes the same
//!   decisions and queues the same bytes.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use tickcast::fuzzing::{Event, Session, State};
use tickcast_fuzz::{FramesInput, check_event, check_opened, check_read, opened};

fuzz_target!(|data: &[u8]| {
    let input = FramesInput::decode(data);
    let config = input.config();
    let now = Instant::now();

    // Run A: chunks, `per_call` messages at a time, as the shard reads.
    let early = if input.with_head {
        &input.stream[..input.chunk.min(input.stream.len())]
    } else {
        &[][..]
    };
    let (mut s, o, taken) = opened(&config, now, early);
    check_opened(&o, tickcast_fuzz::KEY, 7);
    let mut a = Outcome::default();
    let mut ended = drain(&mut s, now, input.per_call, &mut a);
    let mut rest = &input.stream[taken..];
    while !ended && !rest.is_empty() {
        let (chunk, tail) = rest.split_at(input.chunk.min(rest.len()));
        rest = tail;
        s.receive(chunk, now);
        ended = drain(&mut s, now, input.per_call, &mut a);
    }
    if !ended && input.eof {
        s.receive_eof();
        ended = drain(&mut s, now, input.per_call, &mut a);
        assert!(ended, "EOF ends the WebSocket");
    }
    if ended {
        after_end(&mut s, now);
    }

    // Run B: the whole stream at once, no limit.
    let (mut s, _, _) = opened(&config, now, &[]);
    let mut b = Outcome::default();
    s.receive(input.stream, now);
    if input.eof {
        s.receive_eof();
    }
    drain(&mut s, now, usize::MAX, &mut b);

    assert_eq!(a.decisions, b.decisions, "chunking changed the decisions");
    assert_eq!(a.bytes, b.bytes, "chunking changed the bytes queued");
});

/// What a run produced: the decisions in order (requests, refusals, the
/// end) and every byte the server would queue.
#[derive(Debug, Default)]
struct Outcome {
    decisions: Vec<String>,
    bytes: Vec<u8>,
}

/// Reads messages until the input is used up or the WebSocket ended, as
/// the shard does over turns; returns true if it ended.
fn drain(s: &mut Session, now: Instant, max: usize, out: &mut Outcome) -> bool {
    loop {
        let mut events = Vec::new();
        let parsed = s.read_messages(now, max, &mut events);
        check_read(s, max, parsed, &events);
        let mut ended = false;
        for e in &events {
            check_event(e);
            match e {
                Event::Send(f) => out.bytes.extend_from_slice(f.as_bytes()),
                Event::PeerClose(f) => {
                    out.bytes.extend_from_slice(f.as_bytes());
                    out.decisions.push("peer close".into());
                }
                Event::Request(r) => out.decisions.push(format!("{r:?}")),
                Event::Close(r) => out.decisions.push(format!("{r:?}")),
                Event::Drop => out.decisions.push("drop".into()),
            }
            ended |= e.ends();
        }
        if ended {
            return true;
        }
        if parsed < max {
            return false;
        }
    }
}

/// The shard closes after the end: nothing more is parsed or due but the
/// linger.
fn after_end(s: &mut Session, now: Instant) {
    s.start_closing(now);
    assert_eq!(s.state(), State::Closing);
    s.receive(b"\x81\x85\x01\x02\x03\x04more", now);
    s.receive_eof();
    let mut events = Vec::new();
    assert_eq!(s.read_messages(now, usize::MAX, &mut events), 0);
    assert!(events.is_empty(), "events after the end: {events:?}");
}
