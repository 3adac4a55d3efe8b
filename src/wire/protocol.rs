//! Client requests and server replies of protocol v1 (`PROTOCOL.md`).
//!
//! Parsing is strict about types and lenient about extra fields: a request
//! that fails gets an [`RequestError`] naming the problem, and changes
//! nothing. Never panics on any input.

use serde_json::{Map, Value, json};

/// A request id as the client sent it (an integer), echoed in the reply.
pub(crate) type Id = Option<serde_json::Number>;

/// One parsed client request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Request {
    Subscribe {
        id: Id,
        symbols: Vec<String>,
        groups: Vec<String>,
        /// 1.1: where the client's stream stopped, if it resumes.
        resume: Option<Resume>,
    },
    Unsubscribe {
        id: Id,
        symbols: Vec<String>,
        groups: Vec<String>,
        all: bool,
    },
    ListGroups {
        id: Id,
    },
    Ping {
        id: Id,
    },
    /// 1.1: a new access token for the same user.
    Refresh {
        id: Id,
        token: String,
    },
    /// 1.1: the last `limit` ticks of `symbol` (`None`: the server's most).
    History {
        id: Id,
        symbol: String,
        limit: Option<u64>,
    },
}

/// A `subscribe`'s `epoch` and `resume`: the last `seq` held per symbol,
/// in the client's order, one entry per symbol.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resume {
    pub(crate) epoch: String,
    pub(crate) last_seq: Vec<(String, u64)>,
}

impl Request {
    pub(crate) fn id(&self) -> &Id {
        match self {
            Request::Subscribe { id, .. }
            | Request::Unsubscribe { id, .. }
            | Request::ListGroups { id }
            | Request::Ping { id }
            | Request::Refresh { id, .. }
            | Request::History { id, .. } => id,
        }
    }
}

/// The error codes of `PROTOCOL.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    BadRequest,
    UnknownGroup,
    UnknownSymbol,
    Forbidden,
    TooManySubscriptions,
    RateLimited,
    Unauthorized,
}

impl ErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownGroup => "unknown_group",
            ErrorCode::UnknownSymbol => "unknown_symbol",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unauthorized => "unauthorized",
        }
    }
}

/// A refused request: becomes an `error` reply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RequestError {
    pub(crate) id: Id,
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

impl RequestError {
    pub(crate) fn new(id: &Id, code: ErrorCode, message: impl Into<String>) -> RequestError {
        RequestError {
            id: id.clone(),
            code,
            message: message.into(),
        }
    }

    fn bad(id: &Id, message: impl Into<String>) -> RequestError {
        RequestError::new(id, ErrorCode::BadRequest, message)
    }

    /// The `error` reply.
    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), "error".into());
        if let Some(id) = &self.id {
            m.insert("id".into(), Value::Number(id.clone()));
        }
        m.insert("code".into(), self.code.as_str().into());
        m.insert("message".into(), self.message.clone().into());
        Value::Object(m)
    }
}

/// Parses one text message into a request.
pub(crate) fn parse_request(text: &str) -> Result<Request, RequestError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| RequestError::bad(&None, format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(RequestError::bad(&None, "a request must be a JSON object"));
    };
    let id = match obj.get("id") {
        None => None,
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.clone()),
        Some(_) => return Err(RequestError::bad(&None, "'id' must be an integer")),
    };
    let op = match obj.get("op") {
        Some(Value::String(op)) => op.as_str(),
        Some(_) => return Err(RequestError::bad(&id, "'op' must be a string")),
        None => return Err(RequestError::bad(&id, "missing 'op'")),
    };
    match op {
        "subscribe" => {
            let (symbols, groups) = names(&obj, &id, false)?;
            let resume = resume(&obj, &id)?;
            Ok(Request::Subscribe {
                id,
                symbols,
                groups,
                resume,
            })
        }
        "unsubscribe" => {
            let all = match obj.get("all") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(RequestError::bad(&id, "'all' must be a boolean")),
            };
            let (symbols, groups) = names(&obj, &id, all)?;
            Ok(Request::Unsubscribe {
                id,
                symbols,
                groups,
                all,
            })
        }
        "list_groups" => Ok(Request::ListGroups { id }),
        "ping" => Ok(Request::Ping { id }),
        "refresh" => match obj.get("token") {
            Some(Value::String(token)) => Ok(Request::Refresh {
                id,
                token: token.clone(),
            }),
            Some(_) => Err(RequestError::bad(&id, "'token' must be a string")),
            None => Err(RequestError::bad(&id, "missing 'token'")),
        },
        "history" => {
            let symbol = match obj.get("symbol") {
                Some(Value::String(s)) => s.clone(),
                Some(_) => return Err(RequestError::bad(&id, "'symbol' must be a string")),
                None => return Err(RequestError::bad(&id, "missing 'symbol'")),
            };
            let limit = match obj.get("limit") {
                None => None,
                Some(Value::Number(n)) if n.as_u64().is_some_and(|l| l >= 1) => n.as_u64(),
                Some(_) => {
                    return Err(RequestError::bad(
                        &id,
                        "'limit' must be an integer of at least 1",
                    ));
                }
            };
            Ok(Request::History { id, symbol, limit })
        }
        other => {
            let mut shown: String = other.chars().take(32).collect();
            if shown.len() < other.len() {
                shown.push('…');
            }
            Err(RequestError::bad(&id, format!("unknown op '{shown}'")))
        }
    }
}

/// Reads `symbols` and `groups`: each absent or an array of strings, not
/// both absent (unless `all`). Duplicates are dropped, order kept.
fn names(
    obj: &Map<String, Value>,
    id: &Id,
    all: bool,
) -> Result<(Vec<String>, Vec<String>), RequestError> {
    let symbols = string_list(obj, "symbols", id)?;
    let groups = string_list(obj, "groups", id)?;
    if symbols.is_none() && groups.is_none() && !all {
        return Err(RequestError::bad(
            id,
            "give 'symbols' or 'groups' (or both)",
        ));
    }
    Ok((symbols.unwrap_or_default(), groups.unwrap_or_default()))
}

/// Reads `epoch` and `resume` (1.1): `resume` is an object from symbol to
/// the last `seq` held (a non-negative integer) and needs `epoch`, a
/// string. An `epoch` without `resume` resumes nothing.
fn resume(obj: &Map<String, Value>, id: &Id) -> Result<Option<Resume>, RequestError> {
    let epoch = match obj.get("epoch") {
        None => None,
        Some(Value::String(e)) => Some(e.clone()),
        Some(_) => return Err(RequestError::bad(id, "'epoch' must be a string")),
    };
    let Some(v) = obj.get("resume") else {
        return Ok(None);
    };
    let Value::Object(entries) = v else {
        return Err(RequestError::bad(
            id,
            "'resume' must be an object of symbol to seq",
        ));
    };
    let Some(epoch) = epoch else {
        return Err(RequestError::bad(id, "'resume' needs the 'epoch' it is in"));
    };
    let mut last_seq = Vec::with_capacity(entries.len());
    for (symbol, seq) in entries {
        if let Err(reason) = crate::tick::validate_symbol(symbol) {
            return Err(RequestError::bad(id, format!("'resume': {reason}")));
        }
        let Some(seq) = seq.as_u64() else {
            return Err(RequestError::bad(
                id,
                "'resume' values must be non-negative integers (the last seq held)",
            ));
        };
        last_seq.push((symbol.clone(), seq));
    }
    Ok(Some(Resume { epoch, last_seq }))
}

fn string_list(
    obj: &Map<String, Value>,
    key: &str,
    id: &Id,
) -> Result<Option<Vec<String>>, RequestError> {
    let Some(v) = obj.get(key) else {
        return Ok(None);
    };
    let Value::Array(items) = v else {
        return Err(RequestError::bad(
            id,
            format!("'{key}' must be an array of strings"),
        ));
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(s) = item else {
            return Err(RequestError::bad(
                id,
                format!("'{key}' must be an array of strings"),
            ));
        };
        if !out.iter().any(|o| o == s) {
            out.push(s.clone());
        }
    }
    Ok(Some(out))
}

fn with_id(mut m: Map<String, Value>, id: &Id) -> Value {
    if let Some(id) = id {
        m.insert("id".into(), Value::Number(id.clone()));
    }
    Value::Object(m)
}

/// `subscribed` or `unsubscribed`.
pub(crate) fn ack(kind: &str, id: &Id, symbols: &[String], groups: &[String]) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), kind.into());
    let v = with_id(m, id);
    let Value::Object(mut m) = v else { return v };
    m.insert("symbols".into(), json!(symbols));
    m.insert("groups".into(), json!(groups));
    Value::Object(m)
}

/// `groups`, from `(name, symbol count)` pairs.
pub(crate) fn groups(id: &Id, list: &[(String, usize)]) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), "groups".into());
    let Value::Object(mut m) = with_id(m, id) else {
        return Value::Null;
    };
    let items: Vec<Value> = list
        .iter()
        .map(|(name, n)| json!({"name": name, "symbols": n}))
        .collect();
    m.insert("groups".into(), Value::Array(items));
    Value::Object(m)
}

/// `pong` with the server's clock.
pub(crate) fn pong(id: &Id, ts: u64) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), "pong".into());
    let Value::Object(mut m) = with_id(m, id) else {
        return Value::Null;
    };
    m.insert("ts".into(), ts.into());
    Value::Object(m)
}

/// `refreshed`: the connection's grant now ends at `expires_at` (seconds
/// since the epoch; `null` for a token that does not expire).
pub(crate) fn refreshed(id: &Id, expires_at: Option<u64>) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), "refreshed".into());
    let Value::Object(mut m) = with_id(m, id) else {
        return Value::Null;
    };
    m.insert("expires_at".into(), json!(expires_at));
    Value::Object(m)
}

/// `welcome`.
pub(crate) fn welcome(conn_id: u64, heartbeat_ms: u64, max_queue: usize, epoch: &str) -> Value {
    json!({
        "type": "welcome",
        "conn_id": format!("c-{conn_id}"),
        "server": concat!("tickcast/", env!("CARGO_PKG_VERSION")),
        "protocol": 1,
        "heartbeat_ms": heartbeat_ms,
        "max_queue": max_queue,
        "epoch": epoch,
    })
}

/// `notice`.
pub(crate) fn notice(ts: u64, text: &str) -> Value {
    json!({"type": "notice", "ts": ts, "text": text})
}

/// `feed_status`: the node's upstream feed went `down` or came back `up`.
pub(crate) fn feed_status(ts: u64, state: &str, text: &str) -> Value {
    json!({"type": "feed_status", "state": state, "ts": ts, "text": text})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> RequestError {
        parse_request(text).unwrap_err()
    }

    #[test]
    fn parses_every_op() {
        assert_eq!(
            parse_request(
                r#"{"op":"subscribe","id":1,"symbols":["AAPL","MSFT","AAPL"],"groups":["fx-majors"]}"#
            ),
            Ok(Request::Subscribe {
                id: Some(1.into()),
                symbols: vec!["AAPL".into(), "MSFT".into()],
                groups: vec!["fx-majors".into()],
                resume: None,
            })
        );
        assert_eq!(
            parse_request(r#"{"op":"subscribe","symbols":["A"],"epoch":"e-1","resume":{"A":41}}"#),
            Ok(Request::Subscribe {
                id: None,
                symbols: vec!["A".into()],
                groups: vec![],
                resume: Some(Resume {
                    epoch: "e-1".into(),
                    last_seq: vec![("A".into(), 41)],
                }),
            })
        );
        assert_eq!(
            parse_request(r#"{"op":"history","id":6,"symbol":"AAPL","limit":100}"#),
            Ok(Request::History {
                id: Some(6.into()),
                symbol: "AAPL".into(),
                limit: Some(100),
            })
        );
        assert_eq!(
            parse_request(r#"{"op":"unsubscribe","id":2,"symbols":["MSFT"]}"#),
            Ok(Request::Unsubscribe {
                id: Some(2.into()),
                symbols: vec!["MSFT".into()],
                groups: vec![],
                all: false
            })
        );
        assert!(matches!(
            parse_request(r#"{"op":"unsubscribe","all":true}"#),
            Ok(Request::Unsubscribe { all: true, .. })
        ));
        assert_eq!(
            parse_request(r#"{"op":"list_groups","id":3}"#),
            Ok(Request::ListGroups { id: Some(3.into()) })
        );
        assert_eq!(
            parse_request(r#"{"op":"ping"}"#),
            Ok(Request::Ping { id: None })
        );
    }

    #[test]
    fn bad_requests_name_the_problem_and_keep_the_id() {
        assert_eq!(err("not json").code, ErrorCode::BadRequest);
        assert_eq!(err("[1,2]").code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"id":5}"#).id, Some(5.into()));
        let e = err(r#"{"op":"fly","id":6}"#);
        assert_eq!(
            (e.code, e.id.clone()),
            (ErrorCode::BadRequest, Some(6.into()))
        );
        assert!(e.message.contains("fly"));
        assert!(
            err(r#"{"op":"subscribe","id":7}"#)
                .message
                .contains("symbols")
        );
        assert!(
            err(r#"{"op":"subscribe","symbols":"AAPL"}"#)
                .message
                .contains("array")
        );
        assert!(
            err(r#"{"op":"subscribe","symbols":[1]}"#)
                .message
                .contains("array")
        );
        assert!(
            err(r#"{"op":"unsubscribe","all":"yes"}"#)
                .message
                .contains("boolean")
        );
        assert!(err(r#"{"op":"ping","id":"x"}"#).message.contains("integer"));
        assert!(err(r#"{"op":"ping","id":1.5}"#).message.contains("integer"));
        assert!(err(r#"{"op":7}"#).message.contains("string"));
        for (req, says) in [
            (
                r#"{"op":"subscribe","symbols":["A"],"resume":{"A":1}}"#,
                "epoch",
            ),
            (
                r#"{"op":"subscribe","symbols":["A"],"epoch":1,"resume":{}}"#,
                "string",
            ),
            (
                r#"{"op":"subscribe","symbols":["A"],"epoch":"e","resume":[]}"#,
                "object",
            ),
            (
                r#"{"op":"subscribe","symbols":["A"],"epoch":"e","resume":{"A":-1}}"#,
                "non-negative",
            ),
            (
                r#"{"op":"subscribe","symbols":["A"],"epoch":"e","resume":{"A":1.5}}"#,
                "non-negative",
            ),
            (
                r#"{"op":"subscribe","symbols":["A"],"epoch":"e","resume":{"":1}}"#,
                "symbol",
            ),
            (r#"{"op":"history","limit":5}"#, "symbol"),
            (r#"{"op":"history","symbol":"A","limit":0}"#, "at least 1"),
            (r#"{"op":"history","symbol":"A","limit":"9"}"#, "integer"),
        ] {
            let e = err(req);
            assert_eq!(e.code, ErrorCode::BadRequest, "{req}");
            assert!(e.message.contains(says), "{req}: {}", e.message);
        }
    }

    #[test]
    fn error_reply_shape() {
        let e = RequestError::new(
            &Some(1.into()),
            ErrorCode::UnknownGroup,
            "no group named 'x'",
        );
        assert_eq!(
            e.to_json(),
            json!({"type":"error","id":1,"code":"unknown_group","message":"no group named 'x'"})
        );
        let e = RequestError::new(&None, ErrorCode::BadRequest, "m");
        assert!(e.to_json().get("id").is_none());
    }

    #[test]
    fn replies_match_the_contract() {
        assert_eq!(
            ack("unsubscribed", &Some(2.into()), &["MSFT".into()], &[]),
            json!({"type":"unsubscribed","id":2,"symbols":["MSFT"],"groups":[]})
        );
        assert_eq!(
            groups(&Some(3.into()), &[("fx-majors".into(), 7)]),
            json!({"type":"groups","id":3,"groups":[{"name":"fx-majors","symbols":7}]})
        );
        assert_eq!(pong(&None, 9), json!({"type":"pong","ts":9}));
        let w = welcome(17, 5000, 4096, "e-5f3a9c");
        assert_eq!(w["epoch"], "e-5f3a9c");
        assert_eq!(w["conn_id"], "c-17");
        assert_eq!(w["protocol"], 1);
    }
}
