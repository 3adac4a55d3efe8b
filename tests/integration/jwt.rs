//! JWT access tokens over real sockets: verified at the upgrade (401 with
//! a reason), the algorithm bound to the key, entitlements from the
//! `tickcast` claim, expiry mid-connection (1008) and `refresh`, and the
//! per-user connection limit.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tickcast::{Broadcaster, Config, JwtConfig, JwtKey};

use crate::util::{Client, TempDir, TestServer, raw_exchange, raw_exchange_first, status_of, tick};

const SECRET: &[u8] = b"an HS256 secret of at least thirty-two bytes";
const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/integration/keys");

fn key_file(name: &str) -> PathBuf {
    PathBuf::from(KEYS).join(name)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET), claims)
}

/// Claims for `sub` valid for an hour, plus `extra`.
fn claims(sub: &str, extra: Value) -> Value {
    let mut c = json!({"sub": sub, "exp": now() + 3600});
    if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
        c.extend(e);
    }
    c
}

/// A server verifying HS256 tokens with `SECRET`, then `f`'s changes.
fn hs256_server(dir: &TempDir, f: impl FnOnce(&mut Config)) -> TestServer {
    let secret = dir.file("secret", &[SECRET, b"\n"].concat());
    TestServer::start(|c| {
        c.jwt = Some(JwtConfig {
            key: JwtKey::SecretFile(secret),
            audience: None,
            issuer: None,
        });
        f(c);
    })
}

fn upgrade(token: &str) -> String {
    format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
}

/// The status and body of an upgrade with `token`.
fn try_token(srv: &TestServer, token: &str) -> (u16, String) {
    let resp = raw_exchange_first(srv.addr, upgrade(token).as_bytes());
    let text = String::from_utf8_lossy(&resp).to_string();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    (status_of(&resp), body)
}

fn connect(srv: &TestServer, token: &str) -> Client {
    Client::connect_path(srv.addr, &format!("/ws?token={token}"))
}

#[test]
fn tokens_are_verified_at_the_upgrade_with_a_reason() {
    let dir = TempDir::new("hs");
    let srv = hs256_server(&dir, |_| {});
    let t = now();
    let other = EncodingKey::from_secret(b"another secret of thirty-two bytes or more");
    // alg "none": a header and claims with an empty signature.
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg":"none","typ":"JWT"})),
        b64(&claims("ann", json!({})))
    );
    for (token, status, reason) in [
        (hs256(&claims("ann", json!({}))), 101, ""),
        (String::new(), 401, "malformed token"),
        ("garbage".into(), 401, "malformed token"),
        (none, 401, "malformed token"),
        (
            sign(Algorithm::HS256, &other, &claims("ann", json!({}))),
            401,
            "bad token signature",
        ),
        (
            hs256(&json!({"sub":"ann","exp": t - 5})),
            401,
            "token expired",
        ),
        (
            hs256(&claims("ann", json!({"nbf": t + 600}))),
            401,
            "token not yet valid (nbf)",
        ),
        (
            hs256(&json!({"sub":"ann"})),
            401,
            "token has no 'exp' claim",
        ),
        (
            hs256(&json!({"exp": t + 60})),
            401,
            "token has no 'sub' claim",
        ),
        (
            hs256(&claims("ann", json!({"nbf": t - 5, "aud": "anyone"}))),
            101,
            "",
        ),
    ] {
        let (got, body) = try_token(&srv, &token);
        assert_eq!(got, status, "{token}: {body}");
        if status == 401 {
            assert_eq!(body, reason, "{token}");
        }
    }
    let (status, body) = {
        let resp = raw_exchange(srv.addr, upgrade("x").replace("?token=x", "").as_bytes());
        (status_of(&resp), String::from_utf8_lossy(&resp).to_string())
    };
    assert_eq!(status, 401);
    assert!(body.ends_with("missing token\n"), "{body}");
    // Authorization: Bearer works as the query does.
    let bearer = upgrade("").replace(
        "?token= HTTP/1.1\r\n",
        &format!(
            " HTTP/1.1\r\nAuthorization: Bearer {}\r\n",
            hs256(&claims("ann", json!({})))
        ),
    );
    let resp = raw_exchange_first(srv.addr, bearer.as_bytes());
    assert_eq!(status_of(&resp), 101);
    srv.wait_stats("every connection to be let go", |s| s.connections == 0);
}

#[test]
fn audience_and_issuer_are_checked_when_configured() {
    let dir = TempDir::new("aud");
    let srv = hs256_server(&dir, |c| {
        let jwt = c.jwt.as_mut().unwrap();
        jwt.audience = Some("trading-ui".into());
        jwt.issuer = Some("https://login.example".into());
    });
    let good = json!({"aud": "trading-ui", "iss": "https://login.example"});
    for (extra, status, reason) in [
        (good.clone(), 101, ""),
        (
            json!({"aud": ["other", "trading-ui"], "iss": "https://login.example"}),
            101,
            "",
        ),
        (
            json!({"aud": "other", "iss": "https://login.example"}),
            401,
            "token audience not accepted",
        ),
        (
            json!({"aud": "trading-ui", "iss": "https://evil.example"}),
            401,
            "token issuer not accepted",
        ),
        (
            json!({"iss": "https://login.example"}),
            401,
            "token has no 'aud' claim",
        ),
    ] {
        let (got, body) = try_token(&srv, &hs256(&claims("ann", extra.clone())));
        assert_eq!(got, status, "{extra}: {body}");
        if status == 401 {
            assert_eq!(body, reason, "{extra}");
        }
    }
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(key_file(name)).unwrap()
}

fn public_key_server(file: &str) -> TestServer {
    TestServer::start(|c| {
        c.jwt = Some(JwtConfig {
            key: JwtKey::PublicKeyFile(key_file(file)),
            audience: None,
            issuer: None,
        });
    })
}

#[test]
fn the_algorithm_is_the_keys_and_confusion_is_refused() {
    let rsa = EncodingKey::from_rsa_pem(&pem("rsa.key.pem")).unwrap();
    let ec = EncodingKey::from_ec_pem(&pem("ec.key.pem")).unwrap();
    let c = claims("ann", json!({}));
    for file in ["rsa.pub.pem", "rsa.pkcs1.pub.pem"] {
        let srv = public_key_server(file);
        assert_eq!(try_token(&srv, &sign(Algorithm::RS256, &rsa, &c)).0, 101);
        // The classic confusion: HS256 keyed with the server's public key.
        let confused = EncodingKey::from_secret(&pem(file));
        assert_eq!(
            try_token(&srv, &sign(Algorithm::HS256, &confused, &c)),
            (401, "token algorithm is not RS256".into()),
            "{file}"
        );
        assert_eq!(
            try_token(&srv, &sign(Algorithm::ES256, &ec, &c)),
            (401, "token algorithm is not RS256".into())
        );
        // Another RSA algorithm of the same key is refused as well.
        assert_eq!(try_token(&srv, &sign(Algorithm::RS384, &rsa, &c)).0, 401);
    }
    let srv = public_key_server("ec.pub.pem");
    assert_eq!(try_token(&srv, &sign(Algorithm::ES256, &ec, &c)).0, 101);
    assert_eq!(
        try_token(&srv, &sign(Algorithm::RS256, &rsa, &c)),
        (401, "token algorithm is not ES256".into())
    );
    let confused = EncodingKey::from_secret(&pem("ec.pub.pem"));
    assert_eq!(
        try_token(&srv, &sign(Algorithm::HS256, &confused, &c)).0,
        401
    );
}

#[test]
fn bad_key_files_stop_the_start_naming_the_file() {
    let dir = TempDir::new("keys");
    let start = |key: JwtKey| {
        Broadcaster::start(Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            synthetic_rate: 0,
            pin_threads: false,
            jwt: Some(JwtConfig {
                key,
                audience: None,
                issuer: None,
            }),
            ..Config::default()
        })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    let short = dir.file("short", b"tiny\n");
    for (key, says) in [
        (
            JwtKey::SecretFile(short),
            "the secret is 4 bytes, HS256 needs at least 32",
        ),
        (
            JwtKey::SecretFile(dir.path().join("missing")),
            "jwt_secret_file",
        ),
        (
            JwtKey::PublicKeyFile(key_file("p384.pub.pem")),
            "a curve other than P-256",
        ),
        (
            JwtKey::PublicKeyFile(key_file("rsa.key.pem")),
            "a private key",
        ),
        (
            JwtKey::PublicKeyFile(dir.file("junk.pem", b"not a pem")),
            "not a PEM file",
        ),
    ] {
        let e = start(key.clone());
        assert!(e.contains(says), "{key:?}: {e}");
        let file = match &key {
            JwtKey::SecretFile(p) | JwtKey::PublicKeyFile(p) => p.display().to_string(),
        };
        assert!(e.contains(&file), "the error names the file: {e}");
    }
}

#[test]
fn entitlements_come_from_the_tickcast_claim() {
    let dir = TempDir::new("ent");
    let srv = hs256_server(&dir, |_| {});
    srv.b().set_group("fx", ["EURUSD", "GBPUSD"]).unwrap();
    srv.b().set_group("tech", ["MSFT"]).unwrap();
    let limited = hs256(&claims(
        "bob",
        json!({"tickcast": {"groups": ["fx"], "symbols": ["AAPL"]}}),
    ));
    let mut bob = connect(&srv, &limited);
    for req in [
        json!({"op":"subscribe","groups":["tech"]}),
        json!({"op":"subscribe","groups":["*"]}),
        json!({"op":"subscribe","symbols":["MSFT"]}),
    ] {
        assert_eq!(bob.request(req.clone(), 1)["code"], "forbidden", "{req}");
    }
    bob.subscribe(&["AAPL", "EURUSD"], &["fx"], 2);
    let star = hs256(&claims("eve", json!({"tickcast": {"groups": ["*"]}})));
    let mut eve = connect(&srv, &star);
    eve.subscribe(&[], &["*"], 1);
    let mut ann = connect(&srv, &hs256(&claims("ann", json!({}))));
    ann.subscribe(&["MSFT"], &["tech"], 1);
    // `sub` is the user a notice addresses: bob's comes before his tick,
    // ann gets none.
    srv.b().notice_user("bob", "for bob");
    srv.publish(tick("MSFT", 1));
    srv.publish(tick("EURUSD", 1));
    assert_eq!(bob.json()["text"], "for bob");
    assert_eq!(bob.json()["symbol"], "EURUSD");
    assert_eq!(ann.json()["symbol"], "MSFT");
    assert_eq!(eve.json()["symbol"], "MSFT");
}

#[test]
fn an_expiring_token_closes_with_1008_unless_refreshed() {
    let dir = TempDir::new("exp");
    let srv = hs256_server(&dir, |_| {});
    srv.b().set_group("fx", ["EURUSD"]).unwrap();
    // Whole seconds: the grant ends 1 to 2 s from now.
    let exp = now() + 2;
    let short = |sub: &str, extra: Value| {
        let mut c = claims(sub, extra);
        c["exp"] = json!(exp);
        hs256(&c)
    };
    let mut quiet = connect(&srv, &short("ann", json!({})));
    let mut fresh = connect(&srv, &short("ann", json!({})));
    fresh.subscribe(&["AAPL"], &["fx"], 1);
    // Refusals change nothing: another user, an expired token, garbage.
    for (token, says) in [
        (
            hs256(&claims("bob", json!({}))),
            "the token is for another user",
        ),
        (
            hs256(&json!({"sub":"ann","exp": now() - 1})),
            "token expired",
        ),
        ("nope".to_string(), "malformed token"),
    ] {
        let r = fresh.request(json!({"op":"refresh","token": token}), 2);
        assert_eq!(
            (r["code"].as_str(), r["message"].as_str()),
            (Some("unauthorized"), Some(says))
        );
    }
    // A refresh that keeps only the fx group: AAPL is dropped, told
    // without an id, right after the reply.
    let later = now() + 3600;
    let mut narrower = claims("ann", json!({"tickcast": {"groups": ["fx"]}}));
    narrower["exp"] = json!(later);
    let r = fresh.request(json!({"op":"refresh","token": hs256(&narrower)}), 3);
    assert_eq!(r, json!({"type":"refreshed","id":3,"expires_at":later}));
    assert_eq!(
        fresh.json(),
        json!({"type":"unsubscribed","symbols":["AAPL"],"groups":[]})
    );
    let started = Instant::now();
    assert_eq!(quiet.until_close().0, 1008, "the unrefreshed grant ended");
    assert!(started.elapsed() < Duration::from_secs(3));
    srv.publish(tick("AAPL", 1));
    srv.publish(tick("EURUSD", 1));
    let v = fresh.json();
    assert_eq!(
        (v["type"].as_str(), v["symbol"].as_str()),
        (Some("tick"), Some("EURUSD"))
    );
    assert_eq!(fresh.request(json!({"op":"ping"}), 4)["type"], "pong");
    // Shards publish their counts once a turn: wait for it.
    srv.wait_stats("the expiry to be counted", |s| s.closed_expired == 1);
}

#[test]
fn the_per_user_limit_trips_and_recovers() {
    let dir = TempDir::new("user");
    let srv = hs256_server(&dir, |c| c.max_connections_per_user = 2);
    let ann = hs256(&claims("ann", json!({})));
    let a1 = connect(&srv, &ann);
    let _a2 = connect(&srv, &ann);
    assert_eq!(
        try_token(&srv, &ann),
        (429, "too many connections for this user".into())
    );
    // Another user is not counted against ann.
    let _b1 = connect(&srv, &hs256(&claims("bob", json!({}))));
    drop(a1);
    srv.wait_stats("ann's first connection to go", |s| s.connections == 2);
    let mut a3 = connect(&srv, &ann);
    assert_eq!(a3.request(json!({"op":"ping"}), 1)["type"], "pong");
    assert_eq!(try_token(&srv, &ann).0, 429, "full again");
}
