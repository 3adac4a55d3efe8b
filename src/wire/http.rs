//! The HTTP side of a connection, before it is a WebSocket: parse the
//! request head, route it, and produce either an upgrade or a one-shot
//! response.
//!
//! Pure (bytes in, decision out) so that every hostile input can be unit
//! tested. Refusals follow `PROTOCOL.md`: 400 malformed upgrade, 401 bad
//! token, 403 origin, 404 path, 426 not an upgrade, 429 per-IP limit, 503
//! connection limit, each with a one-line reason as the body.

/// Largest request head accepted, in bytes. Browsers send ~1 KiB; a head
/// that does not fit is refused with 400 rather than buffered.
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 48;
/// Most bytes of the `client` query parameter (`PROTOCOL.md`).
pub(crate) const MAX_CLIENT_NAME: usize = 64;

/// A WebSocket upgrade request that passed every syntactic check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upgrade {
    pub(crate) key: String,
    pub(crate) token: Option<String>,
    pub(crate) client: Option<String>,
    pub(crate) origin: Option<String>,
    /// Bytes of the buffer taken by the request head; the rest are early
    /// WebSocket frames.
    pub(crate) consumed: usize,
}

/// A complete HTTP response to send before closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    pub(crate) extra: Vec<(&'static str, String)>,
    /// HEAD request: send the headers only.
    pub(crate) head_only: bool,
}

impl Response {
    /// A plain-text response with a one-line body.
    pub(crate) fn text(status: u16, line: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{line}\n").into_bytes(),
            extra: Vec::new(),
            head_only: false,
        }
    }

    fn with(mut self, name: &'static str, value: &str) -> Response {
        self.extra.push((name, value.to_string()));
        self
    }

    /// The response's bytes; always `Connection: close`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (k, v) in &self.extra {
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// What to do with a request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Upgrade to a WebSocket (after the caller's policy checks).
    Upgrade(Upgrade),
    /// Send this response and close.
    Respond(Response),
    /// Send the current metrics in this form and close (`head_only`: the
    /// headers only).
    Report { report: Report, head_only: bool },
}

/// The forms the metrics are served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    /// `/metrics`: the Prometheus text format.
    Prometheus,
    /// `/stats`: JSON.
    Json,
    /// `/healthz` (readiness): 200 `ok`, or 503 `feed down` while an
    /// upstream feed is down.
    Health,
}

/// Parses the request head at the start of `buf`. `Ok(None)`: incomplete,
/// read more (the caller refuses heads over [`MAX_HEAD`]).
pub(crate) fn route(buf: &[u8]) -> Option<Route> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Some(Route::Respond(Response::text(
                400,
                "request head too large",
            )));
        }
        Ok(httparse::Status::Partial) => return None,
        Err(e) => {
            return Some(Route::Respond(Response::text(
                400,
                &format!("malformed request: {e}"),
            )));
        }
    };
    let method = req.method.unwrap_or("");
    let target = req.path.unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let head = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    if path != "/ws" {
        return Some(route_other(method, path));
    }
    let has_token = |name: &str, token: &str| {
        head(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if head("Upgrade").is_none() {
        return Some(Route::Respond(
            Response::text(426, "this is a WebSocket endpoint: send an upgrade request")
                .with("Upgrade", "websocket"),
        ));
    }
    let bad = |m: &str| Some(Route::Respond(Response::text(400, m)));
    if method != "GET" {
        return bad("a WebSocket upgrade must use GET");
    }
    if req.version != Some(1) {
        return bad("a WebSocket upgrade needs HTTP/1.1");
    }
    if !has_token("Upgrade", "websocket") {
        return bad("Upgrade header must be 'websocket'");
    }
    if !has_token("Connection", "upgrade") {
        return bad("Connection header must include 'Upgrade'");
    }
    if head("Sec-WebSocket-Version") != Some("13") {
        return Some(Route::Respond(
            Response::text(426, "unsupported WebSocket version: use 13")
                .with("Sec-WebSocket-Version", "13"),
        ));
    }
    let key = match head("Sec-WebSocket-Key") {
        Some(k) if valid_key(k) => k.to_string(),
        _ => return bad("missing or malformed Sec-WebSocket-Key"),
    };
    let mut token = None;
    let mut client = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(v) = percent_decode(v) else {
            return bad("malformed query string");
        };
        match k {
            "token" => token = Some(v),
            "client" => {
                if v.len() > MAX_CLIENT_NAME {
                    return bad("client name longer than 64 bytes");
                }
                client = Some(v);
            }
            _ => {}
        }
    }
    // Another scheme (say Basic, for a proxy in front) carries no token of
    // ours: it is ignored, and a missing token is the authenticator's 401.
    if token.is_none()
        && let Some((scheme, t)) = head("Authorization").and_then(|a| a.split_once(' '))
        && scheme.eq_ignore_ascii_case("bearer")
    {
        token = Some(t.trim().to_string());
    }
    let origin = head("Origin").map(str::to_string);
    Some(Route::Upgrade(Upgrade {
        key,
        token,
        client,
        origin,
        consumed,
    }))
}

/// The answer to a request for any path but `/ws`: a report, a file, or
/// an error.
fn route_other(method: &str, path: &str) -> Route {
    let get_or_head = matches!(method, "GET" | "HEAD");
    let head_only = method == "HEAD";
    let use_get = || Route::Respond(Response::text(405, "use GET").with("Allow", "GET, HEAD"));
    let report = match path {
        "/metrics" => Some(Report::Prometheus),
        "/stats" => Some(Report::Json),
        "/healthz" => Some(Report::Health),
        _ => None,
    };
    if let Some(report) = report {
        return match get_or_head {
            true => Route::Report { report, head_only },
            false => use_get(),
        };
    }
    // Liveness (`/livez`): the process answers, whatever its feeds do.
    let body = match path {
        "/livez" => Some(("text/plain; charset=utf-8", &b"ok\n"[..])),
        _ => super::static_files::lookup(path).map(|f| (f.content_type, f.body)),
    };
    match body {
        Some(_) if !get_or_head => use_get(),
        Some((content_type, body)) => Route::Respond(Response {
            status: 200,
            content_type,
            body: body.to_vec(),
            extra: Vec::new(),
            head_only,
        }),
        None => {
            let mut shown: String = path.chars().take(64).collect();
            if shown.len() < path.len() {
                shown.push('…');
            }
            Route::Respond(Response::text(404, &format!("no such path: {shown}")))
        }
    }
}

/// The 101 response completing an upgrade.
pub(crate) fn switching_protocols(key: &str) -> Vec<u8> {
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

/// A `Sec-WebSocket-Key` is the base64 of 16 bytes: 22 characters and `==`.
fn valid_key(k: &str) -> bool {
    k.len() == 24
        && k.ends_with("==")
        && k.as_bytes()[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// Decodes `%XX` escapes and `+` (as space); `None` if malformed or not
/// UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn upgrade_req(target: &str, extra: &str) -> String {
        format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
        )
    }

    fn status(buf: &str) -> u16 {
        match route(buf.as_bytes()) {
            Some(Route::Respond(r)) => r.status,
            Some(Route::Report { .. }) => 200,
            Some(Route::Upgrade(_)) => 101,
            None => 0,
        }
    }

    #[test]
    fn a_proper_upgrade_is_accepted_with_its_query() {
        let req = upgrade_req("/ws?token=a%20b&client=ui+1&x=y", "Origin: http://h\r\n");
        let Some(Route::Upgrade(u)) = route(req.as_bytes()) else {
            panic!()
        };
        assert_eq!(u.token.as_deref(), Some("a b"));
        assert_eq!(u.client.as_deref(), Some("ui 1"));
        assert_eq!(u.origin.as_deref(), Some("http://h"));
        assert_eq!(u.consumed, req.len());
        let resp = String::from_utf8(switching_protocols(KEY)).unwrap();
        assert!(
            resp.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            "RFC 6455 example key"
        );
    }

    #[test]
    fn bearer_token_is_read_from_the_header() {
        let req = upgrade_req("/ws", "Authorization: Bearer t0k\r\n");
        let Some(Route::Upgrade(u)) = route(req.as_bytes()) else {
            panic!()
        };
        assert_eq!(u.token.as_deref(), Some("t0k"));
    }

    #[test]
    fn refusals_use_the_contract_statuses() {
        assert_eq!(status("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"), 426);
        assert_eq!(status("GET /nope HTTP/1.1\r\n\r\n"), 404);
        assert_eq!(status("GET /livez HTTP/1.1\r\n\r\n"), 200);
        assert_eq!(status("POST /livez HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), 200);
        assert_eq!(status("DELETE /app.js HTTP/1.1\r\n\r\n"), 405);
        let Some(Route::Respond(livez)) = route(b"HEAD /livez HTTP/1.1\r\n\r\n") else {
            panic!("HEAD /livez is answered directly");
        };
        assert!(livez.head_only && livez.status == 200 && livez.body == b"ok\n");
        assert_eq!(status("POST /healthz HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(
            route(b"HEAD /healthz HTTP/1.1\r\n\r\n"),
            Some(Route::Report {
                report: Report::Health,
                head_only: true
            })
        );
        assert_eq!(status("POST /metrics HTTP/1.1\r\n\r\n"), 405);
        assert_eq!(
            route(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"),
            Some(Route::Report {
                report: Report::Prometheus,
                head_only: false
            })
        );
        assert_eq!(
            route(b"HEAD /stats HTTP/1.1\r\n\r\n"),
            Some(Route::Report {
                report: Report::Json,
                head_only: true
            })
        );
        assert_eq!(status("\x16\x03\x01garbage\r\n\r\n"), 400);
        assert_eq!(status(&upgrade_req("/ws", "").replace(KEY, "short")), 400);
        assert_eq!(
            status(&upgrade_req("/ws", "").replace("Version: 13", "Version: 8")),
            426
        );
        assert_eq!(status(&upgrade_req("/ws", "").replace("GET", "POST")), 400);
        assert_eq!(
            status(&upgrade_req("/ws", "").replace("HTTP/1.1", "HTTP/1.0")),
            400
        );
        assert_eq!(
            status(&upgrade_req(&format!("/ws?client={}", "x".repeat(65)), "")),
            400
        );
        assert_eq!(status(&upgrade_req("/ws?client=%zz", "")), 400);
        assert_eq!(
            status(&upgrade_req("/ws", "Authorization: Basic abc\r\n")),
            101,
            "another scheme is not ours: ignored"
        );
        assert_eq!(
            status(&upgrade_req("/ws", "").replace("websocket", "h2c")),
            400
        );
    }

    #[test]
    fn partial_heads_wait_and_huge_heads_are_refused() {
        assert_eq!(status("GET /ws HTTP/1.1\r\nHost:"), 0);
        let huge = format!("GET /ws HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD));
        assert_eq!(status(&huge), 400);
    }

    #[test]
    fn responses_are_well_formed() {
        let r = Response::text(404, "no such path: /x").to_bytes();
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(s.contains("Content-Length: 17\r\n"));
        assert!(s.ends_with("\r\n\r\nno such path: /x\n"));
    }
}
