//! The connection log: one `tracing` event when a connection opens and one
//! when it ends, with its peer, user, client name, reason, duration and
//! frames, caught by a subscriber of the test's own.
//!
//! A subscriber for the shard threads has to be the global default, which
//! a process sets once: it is installed by the first test that needs it,
//! keeps only `tickcast::conn` events, and each test picks out its own
//! connections by their `client` name.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use tickcast::{Identity, StaticTokens};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use crate::util::{Client, TestServer, WAIT};

/// One event's fields, as text (strings without quotes), and `message`.
type Fields = HashMap<String, String>;

#[derive(Default)]
struct Capture(Mutex<Vec<Fields>>);

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "tickcast::conn"
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut Collect(&mut fields));
        let mut events = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        events.push(fields);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// The process's capturing subscriber, installed on first use.
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Arc<Capture>> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c = Arc::new(Capture::default());
        tracing::subscriber::set_global_default(c.clone())
            .expect("no other global subscriber in the test binary");
        c
    })
}

/// Waits for the events of the connections named `client`, until `done`.
fn events_of(client: &str, done: impl Fn(&[Fields]) -> bool) -> Vec<Fields> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mine: Vec<Fields> = capture()
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|f| f.get("client").map(String::as_str) == Some(client))
            .cloned()
            .collect();
        if done(&mine) {
            return mine;
        }
        assert!(Instant::now() < deadline, "events for {client}: {mine:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_connection_logs_one_line_when_it_opens_and_one_when_it_ends() {
    capture();
    let srv = TestServer::start(|c| {
        let tokens = StaticTokens::default().with("t0k", Identity::new("ann"));
        c.auth = Some(Arc::new(tokens));
    });
    let mut c = Client::connect_path(srv.addr, "/ws?token=t0k&client=log%20test");
    let peer = c.ws.get_ref().local_addr().unwrap().to_string();
    let conn = c.welcome["conn_id"].as_str().expect("conn_id").to_string();
    c.subscribe(&["LOG"], &[], 1);
    c.ws.close(None).expect("close");
    while c.ws.read().is_ok() {}

    let events = events_of("log test", |e| e.len() >= 2);
    assert_eq!(events.len(), 2, "{events:?}");
    let (opened, closed) = (&events[0], &events[1]);
    for e in [opened, closed] {
        assert_eq!(e["conn"], conn, "{e:?}");
        assert_eq!(e["peer"], peer, "{e:?}");
        assert_eq!(e["user"], "ann", "{e:?}");
        assert!(e.contains_key("shard"), "{e:?}");
    }
    assert_eq!(opened["message"], "connection opened");
    assert_eq!(closed["message"], "connection closed");
    assert_eq!(closed["reason"], "normal", "the client closed: {closed:?}");
    let frames: u64 = closed["frames"].parse().unwrap();
    assert!(frames >= 3, "the 101, the welcome, the reply: {closed:?}");
    let secs: f64 = closed["duration_s"].parse().unwrap();
    assert!((0.0..10.0).contains(&secs), "{closed:?}");
}
