//! The Redis feed's read path on arbitrary bytes, as a Redis (or anything
//! listening where the node was told Redis is) might send them:
//! `feed::redis_stream::resp` parsing an `XREAD` + `GET` reply pair, then
//! `entry::parse` on every entry it yields.
//!
//! Checks, beyond "never panics":
//! - parsing the bytes in one go and in pieces (the first byte picks the
//!   piece size; each parse goes on from where the last piece ended, as
//!   the node does while a reply arrives) gives the same entries, epoch or
//!   refusal;
//! - every entry's fields come in name/value pairs as the reply held them,
//!   and an entry that becomes a tick has a seq of at least 1 and a symbol
//!   of 1 to 32 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickcast::fuzzing::{stream_entry, stream_reply};

fuzz_target!(|data: &[u8]| {
    let Some((&step, reply)) = data.split_first() else {
        return;
    };
    let [whole, pieces] = stream_reply(reply, usize::from(step) + 1);
    assert_eq!(
        whole,
        pieces,
        "parsed whole and in pieces of {}",
        usize::from(step) + 1
    );
    let Ok((entries, _epoch)) = whole else {
        return;
    };
    for (_id, fields) in &entries {
        let fields: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        if let Ok((symbol, seq, _ts)) = stream_entry(&fields) {
            assert!(seq >= 1, "seq {seq}");
            assert!((1..=32).contains(&symbol.len()), "symbol {symbol:?}");
            assert!(fields.len().is_multiple_of(2));
        }
    }
});
