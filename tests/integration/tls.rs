//! TLS: `wss://` and `https://` on the one port, with a CA and
//! certificates each test makes for itself; plaintext and garbage clients
//! dropped without disturbing the streams; a certificate reload that new
//! connections see and open ones do not notice; a stalled `wss://` client
//! evicted like a `ws://` one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use tickcast::{Broadcaster, Config, Error, TlsFiles};

use crate::util::{
    Client, Got, SeqCheck, TestServer, WAIT, feed_every, heavy, raw_exchange, read_in_background,
    small_window, spawn_binary, status_of,
};

/// A client's TLS stream over TCP.
type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A test's own CA, and a directory for the server's `cert.pem` and
/// `key.pem` (unique per test, removed on drop: tests run in parallel).
struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tickcast-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tickcast test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap().der().clone();
        Pki {
            dir,
            ca,
            issuer: Issuer::new(params, key),
        }
    }

    fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.dir.join("cert.pem"),
            key: self.dir.join("key.pem"),
        }
    }

    /// Issues a new certificate for `localhost`, writes it and its key as
    /// the server's files, and returns it.
    fn issue(&self) -> CertificateDer<'static> {
        let (cert, key) = self.make_leaf();
        let files = self.files();
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        cert.der().clone()
    }

    fn make_leaf(&self) -> (rcgen::Certificate, KeyPair) {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().unwrap();
        (params.signed_by(&key, &self.issuer).unwrap(), key)
    }

    /// A client configuration that trusts this CA only.
    fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TLS server with the certificate `pki` issues, and that certificate.
fn tls_server(pki: &Pki, f: impl FnOnce(&mut Config)) -> (TestServer, CertificateDer<'static>) {
    let cert = pki.issue();
    let srv = TestServer::start(|c| {
        c.tls = Some(pki.files());
        f(c);
    });
    (srv, cert)
}

/// A TLS connection to `addr` as `localhost`, handshake done.
fn tls_connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Tls {
    tls_over(TcpStream::connect(addr).expect("tcp connect"), config)
}

fn tls_over(tcp: TcpStream, config: &Arc<ClientConfig>) -> Tls {
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    tls
}

fn wss(addr: SocketAddr, config: &Arc<ClientConfig>) -> Client<Tls> {
    Client::handshake("wss://localhost/ws", tls_connect(addr, config))
}

/// The certificate the server presented to `tls`.
fn peer_cert(tls: &Tls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().expect("a server certificate")[0].clone()
}

/// Everything the server answers to `request` over TLS, until it closes.
fn https_exchange(addr: SocketAddr, config: &Arc<ClientConfig>, request: &str) -> Vec<u8> {
    let mut tls = tls_connect(addr, config);
    tls.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Ends at close_notify (Ok(0)) or at a bare FIN or timeout (an error).
    while let Ok(n @ 1..) = tls.read(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// A subscribed client read in the background (`read_in_background`
/// panics on a gap or a lost stream) while its symbol is published.
struct Streaming {
    stop: Arc<AtomicBool>,
    published: JoinHandle<u64>,
    reading: JoinHandle<u64>,
}

impl Streaming {
    fn start(srv: &TestServer, c: Client<Tls>, sym: &'static str, every: Duration) -> Streaming {
        let stop = Arc::new(AtomicBool::new(false));
        let reading = read_in_background(c, stop.clone());
        let published = feed_every(srv, sym, every, stop.clone());
        Streaming {
            stop,
            published,
            reading,
        }
    }

    /// Lets 50 more frames out after whatever the test did, stops, and
    /// checks that the client kept its stream.
    fn finish(self, srv: &TestServer, what: &str) {
        let before = srv.stats().frames_sent;
        srv.wait_stats("ticks after the test's doing", |s| {
            s.frames_sent > before + 50
        });
        self.stop.store(true, SeqCst);
        let sent = self.published.join().unwrap();
        let got = self.reading.join().unwrap();
        assert!(got > 50 && got * 2 > sent, "{what}: {got} of {sent} ticks");
    }
}

#[test]
fn a_wss_client_streams_and_https_serves_the_same_port() {
    let pki = Pki::new();
    let (srv, cert) = tls_server(&pki, |_| {});
    let client = pki.client();
    let mut c = wss(srv.addr, &client);
    assert_eq!(peer_cert(c.ws.get_ref()), cert);
    assert_eq!(c.welcome["protocol"], 1, "{}", c.welcome);
    c.subscribe(&["AAPL"], &[], 1);
    srv.publish(crate::util::tick("AAPL", 1));
    let got = c.json();
    assert_eq!(
        (got["type"].as_str(), got["seq"].as_u64()),
        (Some("tick"), Some(1)),
        "{got}"
    );
    let resp = https_exchange(
        srv.addr,
        &client,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(status_of(&resp), 200, "{}", String::from_utf8_lossy(&resp));
    let board = https_exchange(
        srv.addr,
        &client,
        "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(status_of(&board), 200);
    assert!(
        String::from_utf8_lossy(&board).contains("<html"),
        "the board over https"
    );
    assert_eq!(srv.stats().handshakes_failed, 0);
}

#[test]
fn plaintext_and_garbage_are_dropped_while_a_wss_client_streams() {
    let pki = Pki::new();
    // A long handshake timeout: every drop below is the TLS error's doing.
    let (srv, _) = tls_server(&pki, |c| c.handshake_timeout = Duration::from_secs(60));
    let client = pki.client();
    let mut streaming = wss(srv.addr, &client);
    streaming.subscribe(&["S"], &[], 1);
    let stream = Streaming::start(&srv, streaming, "S", Duration::from_millis(1));

    let upgrade = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let mut garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    // A TLS handshake record header in front, so the junk is read as one.
    garbage.splice(0..0, [0x16, 0x03, 0x01, 0x10, 0x00]);
    let cases: [(&str, &[u8]); 4] = [
        ("plain HTTP", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("a plain ws:// upgrade", upgrade.as_bytes()),
        ("a garbage handshake record", &garbage),
        ("random bytes", &garbage[5..]),
    ];
    for (what, bytes) in cases {
        let t = Instant::now();
        let answer = raw_exchange(srv.addr, bytes);
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{what}: dropped after {:?}",
            t.elapsed()
        );
        assert!(
            !answer.starts_with(b"HTTP/"),
            "{what} was answered in plaintext"
        );
    }
    // Garbage after a good handshake: a record that does not decrypt.
    let mut tls = tls_connect(srv.addr, &client);
    let t = Instant::now();
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    record.extend_from_slice(&garbage[..0x40]);
    tls.sock.write_all(&record).unwrap();
    let mut rest = Vec::new();
    let _ = tls.sock.read_to_end(&mut rest);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "a bad record dropped after {:?}",
        t.elapsed()
    );

    let s = srv.wait_stats("five handshake failures", |s| s.handshakes_failed == 5);
    let m = srv.b().metrics();
    assert_eq!(
        m.handshake_failures_for(tickcast::HandshakeFailure::Tls),
        5,
        "each counted as not TLS"
    );
    assert_eq!(
        (s.connections, s.sockets),
        (1, 1),
        "only the streaming client is left: {s:?}"
    );
    stream.finish(&srv, "the stream beside the dropped clients");
}

#[test]
fn a_garbage_record_on_an_open_wss_connection_drops_it_alone() {
    let pki = Pki::new();
    let (srv, _) = tls_server(&pki, |_| {});
    let client = pki.client();
    let mut good = wss(srv.addr, &client);
    good.subscribe(&["G"], &[], 1);
    let mut bad = wss(srv.addr, &client);
    bad.subscribe(&["G"], &[], 1);
    let record = [0x17, 0x03, 0x03, 0x00, 0x20]
        .iter()
        .copied()
        .chain([0xAB; 0x20]);
    bad.ws
        .get_mut()
        .sock
        .write_all(&record.collect::<Vec<u8>>())
        .unwrap();
    match bad.recv() {
        Got::End(_) => {}
        other => panic!("the bad connection should end, got {other:?}"),
    }
    srv.wait_stats("the bad socket gone", |s| {
        s.sockets == 1 && s.connections == 1
    });
    srv.publish(crate::util::tick("G", 1));
    assert_eq!(good.json()["seq"], 1);
}

#[test]
fn silent_tls_clients_meet_the_handshake_timeout() {
    let pki = Pki::new();
    let (srv, _) = tls_server(&pki, |c| c.handshake_timeout = Duration::from_millis(300));
    let client = pki.client();
    // One says nothing; one completes TLS but sends no HTTP request.
    let mut silent = TcpStream::connect(srv.addr).unwrap();
    silent.set_read_timeout(Some(WAIT)).unwrap();
    let mut quiet = tls_connect(srv.addr, &client);
    let t = Instant::now();
    let mut sink = Vec::new();
    let _ = silent.read_to_end(&mut sink);
    assert!(
        sink.is_empty(),
        "nothing is sent to a client that sent nothing"
    );
    let _ = quiet.sock.read_to_end(&mut sink);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "dropped after {:?}",
        t.elapsed()
    );
    srv.wait_stats("two handshake failures", |s| {
        s.handshakes_failed == 2 && s.sockets == 0
    });
}

#[test]
fn a_reload_serves_new_connections_the_new_certificate_without_dropping_any() {
    let pki = Pki::new();
    let (srv, first) = tls_server(&pki, |_| {});
    let client = pki.client();
    let mut old = wss(srv.addr, &client);
    assert_eq!(peer_cert(old.ws.get_ref()), first);
    old.subscribe(&["R"], &[], 1);
    let stream = Streaming::start(&srv, old, "R", Duration::from_millis(2));

    let second = pki.issue();
    assert_ne!(first, second);
    srv.b().reload_tls().expect("reload");
    let fresh = wss(srv.addr, &client);
    assert_eq!(
        peer_cert(fresh.ws.get_ref()),
        second,
        "a new connection gets the new one"
    );

    // A broken key file: the reload fails naming it, the certificate in
    // force stays.
    let files = pki.files();
    std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\nnot base64!\n").unwrap();
    match srv.b().reload_tls() {
        Err(Error::Tls { file, .. }) => assert_eq!(file, files.key),
        other => panic!("a broken key must fail the reload: {other:?}"),
    }
    let after = tls_connect(srv.addr, &client);
    assert_eq!(
        peer_cert(&after),
        second,
        "the failed reload kept the certificate"
    );

    stream.finish(&srv, "the connection open across the reloads");
    drop(fresh);
    assert_eq!(srv.stats().handshakes_failed, 0);
}

/// Reads `c` until `n` ticks arrived, each the next `seq` of its symbol.
fn ticks_without_gap<S: Read + Write>(c: &mut Client<S>, n: u64, what: &str) {
    let mut check = SeqCheck::default();
    while check.ticks < n {
        match c.recv() {
            Got::Json(v) => check.feed(&v),
            other => panic!("{what}: {other:?} after {} ticks", check.ticks),
        }
    }
}

#[test]
fn sighup_reloads_the_binarys_certificate_without_dropping_connections() {
    let pki = Pki::new();
    let first = pki.issue();
    let files = pki.files();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"));
    cmd.args(["--listen", "127.0.0.1:0", "--io-threads", "1", "--no-pin"])
        .args(["--synthetic-symbols", "20", "--synthetic-rate", "500"])
        .arg("--tls-cert")
        .arg(&files.cert)
        .arg("--tls-key")
        .arg(&files.key);
    // The log (stderr) tells when a refused reload has been handled.
    let log = pki.dir.join("stderr.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let (mut child, addr) = spawn_binary(cmd, stderr.into());
    let client = pki.client();
    let mut old = wss(addr, &client);
    assert_eq!(peer_cert(old.ws.get_ref()), first);
    old.subscribe(&[], &["*"], 1);
    ticks_without_gap(&mut old, 20, "before the reload");
    let hup = || {
        let kill = std::process::Command::new("kill")
            .args(["-HUP", &child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
    };
    let second = pki.issue();
    hup();
    // The signal is handled on the binary's main thread: new connections
    // get the new certificate soon after, not at once.
    let deadline = Instant::now() + WAIT;
    while peer_cert(&tls_connect(addr, &client)) != second {
        assert!(Instant::now() < deadline, "no new certificate after SIGHUP");
        std::thread::sleep(Duration::from_millis(20));
    }
    ticks_without_gap(&mut old, 50, "the connection open across the reload");
    // A broken key: the binary keeps running and serving the second one.
    std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\nnot base64!\n").unwrap();
    hup();
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("no reload")
    {
        assert!(
            Instant::now() < deadline,
            "the refused reload was not logged"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(peer_cert(&tls_connect(addr, &client)), second);
    ticks_without_gap(&mut old, 20, "after a refused reload");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the binary is still up"
    );
    child.term();
    assert!(child.exit_status().success());
}

#[test]
fn start_names_the_tls_file_it_cannot_use() {
    let pki = Pki::new();
    pki.issue();
    let files = pki.files();
    let start = |tls: TlsFiles| {
        Broadcaster::start(Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            synthetic_rate: 0,
            pin_threads: false,
            io_threads: 1,
            tls: Some(tls),
            ..Config::default()
        })
    };
    let missing = pki.dir.join("missing.pem");
    let (other_cert, _) = pki.make_leaf();
    let wrong_key = pki.dir.join("wrong-key.pem");
    std::fs::write(&wrong_key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let cert_as_key = pki.dir.join("cert-as-key.pem");
    std::fs::write(&cert_as_key, other_cert.pem()).unwrap();
    let cases = [
        (
            "a missing certificate",
            missing.clone(),
            files.key.clone(),
            missing.clone(),
        ),
        (
            "a missing key",
            files.cert.clone(),
            missing.clone(),
            missing.clone(),
        ),
        (
            "a key as certificate",
            files.key.clone(),
            files.key.clone(),
            files.key.clone(),
        ),
        (
            "a certificate as key",
            files.cert.clone(),
            cert_as_key.clone(),
            cert_as_key,
        ),
        (
            "a key of another certificate",
            files.cert.clone(),
            wrong_key.clone(),
            wrong_key,
        ),
    ];
    for (what, cert, key, blamed) in cases {
        match start(TlsFiles { cert, key }) {
            Err(e @ Error::Tls { .. }) => {
                let Error::Tls { file, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(file, &blamed, "{what}: {e}");
                assert!(
                    e.to_string().contains(&*blamed.to_string_lossy()),
                    "{what}: {e}"
                );
            }
            other => panic!("{what}: expected a TLS error, got {other:?}"),
        }
    }
    start(files)
        .expect("the good pair starts")
        .shutdown()
        .unwrap();
}

#[test]
fn a_stalled_wss_client_is_evicted_for_lag_like_a_ws_one() {
    let _heavy = heavy();
    let pki = Pki::new();
    let max_lag = Duration::from_millis(500);
    let (srv, _) = tls_server(&pki, |c| {
        // So large that only the lag bound can evict at this rate.
        c.queue_capacity = 1 << 20;
        c.max_lag = max_lag;
        c.close_linger = Duration::from_millis(300);
        c.io_threads = 1;
    });
    let client = pki.client();
    let mut healthy = wss(srv.addr, &client);
    healthy.subscribe(&["S"], &[], 1);
    let mut stalled = Client::handshake(
        "wss://localhost/ws",
        tls_over(small_window(srv.addr, 4096), &client),
    );
    stalled.subscribe(&["S"], &[], 1);
    let stream = Streaming::start(&srv, healthy, "S", Duration::from_micros(500));
    let stalled_at = Instant::now();
    let s = srv.wait_stats("a lag eviction", |s| s.evicted_lag == 1);
    let found_after = stalled_at.elapsed();
    assert_eq!(s.evicted_slow, 0, "{s:?}");
    srv.wait_stats("the stalled socket to be gone", |s| {
        s.sockets == 1 && s.connections == 1
    });
    let gone_after = stalled_at.elapsed();
    stream.finish(&srv, "the healthy client beside the stalled one");
    assert!(found_after < max_lag * 8, "found after {found_after:?}");
    assert!(
        gone_after < found_after + Duration::from_secs(3),
        "gone after {gone_after:?}"
    );
    stalled.expect_eviction();
}
