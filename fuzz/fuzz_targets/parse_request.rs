//! `wire::protocol::parse_request` on arbitrary text (the input's bytes,
//! lossily decoded: the session only hands it UTF-8).
//!
//! Checks, beyond "never panics":
//! - a request has a known op, an integer id equal to the input's `id`,
//!   and (for a subscription) `symbols`/`groups` that are the input's
//!   strings, deduplicated in order, and the input's `all`;
//! - a refusal is `bad_request` (parsing knows no other code), keeps the
//!   id when the input had a valid one, and its `error` reply is
//!   well-formed JSON whose message is short: the reply never echoes the
//!   input at length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tickcast::fuzzing::parse_request;
use tickcast_fuzz::check_error_reply;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parse_request(&text);
    let value: Option<Value> = serde_json::from_str(&text).ok();
    let valid_id = value
        .as_ref()
        .and_then(|v| v.get("id"))
        .and_then(|id| id.as_number())
        .filter(|n| n.is_i64() || n.is_u64())
        .cloned();
    match parsed {
        Ok(req) => {
            let v = value.expect("a request is JSON");
            assert!(
                ["subscribe", "unsubscribe", "list_groups", "ping", "refresh"].contains(&req.op()),
                "{req:?}"
            );
            assert_eq!(v["op"], req.op());
            assert_eq!(req.id(), valid_id.as_ref(), "the id is the input's");
            assert_eq!(req.id().is_some(), v.get("id").is_some());
            let names = matches!(req.op(), "subscribe" | "unsubscribe");
            for (key, got) in [("symbols", req.symbols()), ("groups", req.groups())] {
                let want = if names { dedup(v.get(key)) } else { Vec::new() };
                assert_eq!(got, &want[..], "{key} of {text:?}");
            }
            let all = req.op() == "unsubscribe" && v["all"] == Value::Bool(true);
            assert_eq!(req.all(), all);
        }
        Err(e) => {
            assert_eq!(e.code(), "bad_request");
            if e.id().is_some() {
                assert_eq!(e.id(), valid_id.as_ref(), "an echoed id is the input's");
            }
            let reply = e.to_json();
            assert_eq!(check_error_reply(&reply), "bad_request");
            assert_eq!(reply["message"], e.message());
            assert!(
                e.message().len() <= 256,
                "a {}-byte error message",
                e.message().len()
            );
            let wire = serde_json::to_string(&reply).unwrap();
            assert_eq!(serde_json::from_str::<Value>(&wire).unwrap(), reply);
        }
    }
});

/// The strings of an array, first occurrences only.
fn dedup(v: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in v.and_then(Value::as_array).into_iter().flatten() {
        let s = s.as_str().expect("a list of strings").to_string();
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}
