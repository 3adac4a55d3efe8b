//! `wss://` end to end: an in-process tickcast serving TLS with a
//! certificate made here, clients trusting it through `--ca`, through
//! `--insecure`, and clients trusting another CA (which must fail).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use loadtest::inprocess::{self, StopFn};
use loadtest::options::Trust;
use loadtest::{Options, Target, run};

/// A directory of its own (removed on drop), holding a self-signed
/// `localhost` certificate and its key.
struct Certs(PathBuf);

impl Certs {
    fn new(tag: &str) -> Certs {
        let dir = std::env::temp_dir().join(format!("loadtest-wss-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        Certs(dir)
    }

    fn cert(&self) -> PathBuf {
        self.0.join("cert.pem")
    }

    fn files(&self) -> tickcast::TlsFiles {
        tickcast::TlsFiles {
            cert: self.cert(),
            key: self.0.join("key.pem"),
        }
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tls_server(certs: &Certs) -> (SocketAddr, StopFn) {
    inprocess::start_with(tickcast::Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        synthetic_symbols: 20,
        synthetic_rate: 2000,
        io_threads: 1,
        pin_threads: false,
        tls: Some(certs.files()),
        ..tickcast::Config::default()
    })
    .expect("in-process TLS tickcast starts")
}

fn wss_options(addr: SocketAddr, trust: Trust) -> Options {
    let url = format!("wss://localhost:{}/ws", addr.port());
    let mut o = Options::fanout(loadtest::options::parse_url(&url).unwrap(), 6);
    o.trust = Some(trust);
    o.threads = 2;
    o.warmup = Duration::from_millis(200);
    o.duration = Duration::from_millis(1000);
    o.connect_timeout = Duration::from_secs(5);
    o.progress = false;
    o
}

fn assert_streams(o: &Options) {
    let r = run(o).expect("run");
    let t = r.table();
    assert_eq!((r.clients.connected, r.clients.failed), (6, 0), "{t}");
    assert!(r.sequence_ok(), "{t}");
    assert!(r.per_client_ticks.min > 100, "every client streamed: {t}");
    assert_eq!(r.invalid_messages, 0, "{t}");
}

#[test]
fn wss_clients_trusting_the_ca_stream_every_tick_in_order() {
    let certs = Certs::new("ca");
    let (addr, stop) = tls_server(&certs);
    assert_streams(&wss_options(addr, Trust::Ca(certs.cert())));
    stop();
}

#[test]
fn insecure_wss_clients_stream_too() {
    let certs = Certs::new("insecure");
    let (addr, stop) = tls_server(&certs);
    assert_streams(&wss_options(addr, Trust::Insecure));
    stop();
}

#[test]
fn a_server_signed_by_another_ca_is_refused() {
    let certs = Certs::new("served");
    let other = Certs::new("other");
    let (addr, stop) = tls_server(&certs);
    let mut o = wss_options(addr, Trust::Ca(other.cert()));
    o.duration = Duration::from_millis(100);
    let r = run(&o).expect("run");
    stop();
    assert_eq!(
        (r.clients.connected, r.clients.failed),
        (0, 6),
        "{}",
        r.table()
    );
}

#[test]
fn wss_urls_need_a_trust_choice() {
    use clap::Parser;
    let parse = |args: &[&str]| loadtest::Cli::try_parse_from(args).unwrap().into_options();
    let url = "wss://localhost:1/ws";
    assert!(
        parse(&["lt", "--url", url]).is_err(),
        "no --ca nor --insecure"
    );
    assert!(parse(&["lt", "--url", "ws://127.0.0.1:1/ws", "--insecure"]).is_err());
    let o = parse(&["lt", "--url", url, "--insecure"]).unwrap();
    assert_eq!(o.trust, Some(Trust::Insecure));
    let o = parse(&["lt", "--url", url, "--ca", "ca.pem"]).unwrap();
    assert_eq!(o.trust, Some(Trust::Ca(Path::new("ca.pem").to_path_buf())));
    let t: &Target = o.targets.first().unwrap();
    assert_eq!(
        (t.tls, t.server_name(), t.url().as_str()),
        (true, "localhost", url)
    );
}
