//! The operator page at `/status`, in headless Chromium (see `browser`):
//! it polls `/stats` every second and its charts redraw with what the
//! server does, without a console error. Its screenshot always goes to
//! `target/tmp/status.png`, and also to `$TICKCAST_STATUS_SCREENSHOT` when
//! set.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use serde_json::Value;

use crate::browser::{Chromium, chromium_for};
use crate::util::{Client, TestServer, heavy, raw_exchange, read_in_background, status_of};

/// The page's state: `#status`'s data attributes, a hash of each chart's
/// pixels, the rows of the per-shard table and the headline figures.
const STATE_JS: &str = r#"(() => {
  const root = document.getElementById('status');
  if (!root) return null;
  const hash = (id) => {
    const d = document.getElementById(id).toDataURL();
    let h = 0;
    for (let i = 0; i < d.length; i++) h = (h * 31 + d.charCodeAt(i)) | 0;
    return h;
  };
  const text = (id) => document.getElementById(id).textContent;
  return {
    ...root.dataset,
    charts: ['c-conn', 'c-rate', 'c-lat', 'c-close'].map(hash),
    rows: document.querySelectorAll('#t-body tr').length,
    pill: text('pill'), rate: text('k-rate'), p99: text('k-p99'), conn: text('k-conn'),
  };
})()"#;

fn num(s: &Value, key: &str) -> u64 {
    s[key].as_str().and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[test]
fn the_status_page_is_served_whole() {
    let srv = TestServer::start(|_| {});
    let resp = raw_exchange(srv.addr, b"GET /status HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&resp), 200);
    let text = String::from_utf8(resp).unwrap();
    assert!(text.contains("Content-Type: text/html; charset=utf-8\r\n"));
    assert!(text.contains("<canvas id=\"c-lat\">"));
    for external in [
        "<script src",
        "stylesheet",
        "http://",
        "https://",
        "import ",
    ] {
        assert!(
            !text.contains(external),
            "the page loads nothing: {external}"
        );
    }
}

#[test]
fn the_status_page_charts_redraw_in_chromium() {
    let Some(bin) = chromium_for("the_status_page_charts_redraw_in_chromium") else {
        return;
    };
    let _heavy = heavy();
    let srv = TestServer::start(|c| {
        c.io_threads = 2;
        c.synthetic_rate = 200;
        c.synthetic_symbols = 50;
    });
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|i| {
            let mut c = Client::connect_path(srv.addr, "/ws?client=status-test");
            c.subscribe(&[], &["*"], i);
            read_in_background(c, stop.clone())
        })
        .collect();

    let mut chromium = Chromium::launch(&bin);
    let mut page = chromium.new_page(STATE_JS);
    page.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    );
    page.navigate(&format!("http://{}/status", srv.addr));
    let first = page.wait_until("the page to show both shards live", |s| {
        s["pill"] == "live" && s["rows"] == 2 && s["shards"] == "2" && num(s, "polls") >= 2
    });
    let later = page.wait_until("three more polls, with rates and latencies", |s| {
        num(s, "redraws") >= num(&first, "redraws") + 3
            && s["rate"] != "–"
            && s["rate"] != "0"
            && s["p99"] != "–"
            && s["connections"] == "2"
    });
    let changed: Vec<bool> = (0..4)
        .map(|i| first["charts"][i] != later["charts"][i])
        .collect();
    assert_eq!(
        &changed[..3],
        [true, true, true],
        "connections, messages/s and latency charts redrew: {first} then {later}"
    );
    assert_eq!(later["errors"], "0", "every /stats poll answered");
    page.screenshot(
        "status.png",
        std::env::var_os("TICKCAST_STATUS_SCREENSHOT").map(PathBuf::from),
    );
    assert_eq!(page.problems(), Vec::<String>::new(), "console errors");
    stop.store(true, SeqCst);
    for r in readers {
        assert!(r.join().expect("reader") > 0, "the readers got ticks");
    }
}
