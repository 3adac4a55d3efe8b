//! Handling one client request against the shard's subscription index:
//! resolve names, check entitlements and limits, change the subscriptions,
//! build the reply and say which snapshots follow it.
//!
//! Invariant: a request that fails changes nothing. Every check runs in
//! [`resolve`] before the index is touched. An `unsubscribe` is applied
//! here; a `subscribe` is handed back as a [`Join`] for the shard to apply,
//! because the shard decides *when* each symbol joins: at once with all its
//! snapshots, or symbol by symbol as the socket drains (so that a large
//! subscription never overflows its own queue).

use crate::Config;
use crate::auth::{Entitlements, Identity, unix_seconds};
use crate::history::History;
use crate::subscriptions::{ConnKey, Index, Selection};
use crate::symbols::{SymId, SymbolTable};
use crate::wire::encode;
use crate::wire::protocol::{self, ErrorCode, Id, Request, RequestError, Resume};
use crate::{Frame, tick};

/// What one connection's request may read and change.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) key: ConnKey,
    pub(crate) entitlements: Option<&'a Entitlements>,
    /// The user the connection was opened for (when auth is on).
    pub(crate) user: Option<&'a str>,
    pub(crate) index: &'a mut Index,
    pub(crate) symbols: &'a SymbolTable,
    pub(crate) config: &'a Config,
    /// Symbol ids below this may have a last value (for `*` snapshots).
    pub(crate) known_symbols: usize,
    /// The wall clock, for `pong`.
    pub(crate) now_nanos: u64,
    /// The shard's ticks per symbol, for the `history` op.
    pub(crate) history: &'a History,
    /// The node's epoch in force, which a `resume` must name.
    pub(crate) epoch: &'a str,
}

/// The reply to queue, then what the shard does after it: the
/// subscription to join, or the identity a `refresh` moves the connection
/// to (with the `unsubscribed` notice of what it no longer allows).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) frame: Frame,
    pub(crate) join: Option<Join>,
    pub(crate) refreshed: Option<Refreshed>,
}

/// A verified `refresh`: the new grant, already applied to the index.
#[derive(Debug)]
pub(crate) struct Refreshed {
    pub(crate) identity: Identity,
    /// `unsubscribed` (no `id`) for the subscriptions dropped, if any.
    pub(crate) dropped: Option<Frame>,
}

/// A checked subscription: once the connection joins `selection`, it gets
/// one snapshot of each of `snapshots` that has a last value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Join {
    pub(crate) selection: Selection,
    /// Sorted, no duplicates: the symbols the selection covers now.
    pub(crate) snapshots: Vec<SymId>,
    /// Sorted by symbol, each one of `snapshots`: the symbols the client
    /// resumes, with the last `seq` it holds, or `None` when its epoch is
    /// not this node's (the symbol's snapshot is then a reset).
    pub(crate) resume: Vec<(SymId, Option<u64>)>,
}

/// Handles `req`; never fails (a refused request becomes an error reply).
pub(crate) fn handle(req: Request, cx: &mut Context<'_>) -> Reply {
    let mut join = None;
    let mut refreshed = None;
    let reply = match req {
        Request::Subscribe {
            id,
            symbols,
            groups,
            resume,
        } => subscribe(cx, &id, &symbols, &groups, resume.as_ref()).map(|(reply, j)| {
            join = Some(j);
            reply
        }),
        Request::History { id, symbol, limit } => {
            let frame =
                history(cx, &id, &symbol, limit).unwrap_or_else(|e| encode::json(&e.to_json()));
            return Reply {
                frame,
                join: None,
                refreshed: None,
            };
        }
        Request::Unsubscribe {
            id,
            symbols,
            groups,
            all,
        } => unsubscribe(cx, &id, &symbols, &groups, all),
        Request::ListGroups { id } => Ok(protocol::groups(&id, &cx.index.group_list())),
        Request::Ping { id } => Ok(protocol::pong(&id, cx.now_nanos)),
        Request::Refresh { id, token } => refresh(cx, &id, &token).map(|(reply, r)| {
            refreshed = Some(r);
            reply
        }),
    };
    let frame = match reply {
        Ok(v) => encode::json(&v),
        Err(e) => encode::json(&e.to_json()),
    };
    Reply {
        frame,
        join,
        refreshed,
    }
}

/// `refresh`: verifies the new token (same user), then drops the
/// subscriptions its entitlements no longer allow. An `unauthorized`
/// refusal changes nothing: the old grant and its expiry stay.
fn refresh(
    cx: &mut Context<'_>,
    id: &Id,
    token: &str,
) -> Result<(serde_json::Value, Refreshed), RequestError> {
    let unauthorized = |m: String| RequestError::new(id, ErrorCode::Unauthorized, m);
    let Some(auth) = &cx.config.auth else {
        return Err(unauthorized(
            "this server does not use access tokens".into(),
        ));
    };
    let identity = auth.verify(token).map_err(unauthorized)?;
    if cx.user != Some(identity.user.as_str()) {
        return Err(unauthorized("the token is for another user".into()));
    }
    let mut dropped = None;
    if let Some(ent) = &identity.entitlements {
        let held = cx.index.selection(cx.key);
        let lost = not_allowed(ent, cx.index, cx.symbols, &held);
        if !lost.is_empty() {
            cx.index.unsubscribe(cx.key, &lost);
            let (names, groups) = names_of(&lost, cx.symbols);
            let v = protocol::ack("unsubscribed", &None, &names, &groups);
            dropped = Some(encode::json(&v));
        }
    }
    let expires_at = identity.expires_at.map(unix_seconds);
    Ok((
        protocol::refreshed(id, expires_at),
        Refreshed { identity, dropped },
    ))
}

/// The parts of `held` that `ent` does not allow.
fn not_allowed(
    ent: &Entitlements,
    index: &Index,
    symbols: &SymbolTable,
    held: &Selection,
) -> Selection {
    if ent.groups.contains("*") {
        return Selection::default();
    }
    Selection {
        all: held.all,
        groups: held
            .groups
            .iter()
            .filter(|g| !ent.groups.contains(&***g))
            .cloned()
            .collect(),
        symbols: held
            .symbols
            .iter()
            .copied()
            .filter(|&s| {
                let name = symbols.name(s).map(|n| n.to_string()).unwrap_or_default();
                !allows_symbol(ent, index, &name, s)
            })
            .collect(),
    }
}

/// Returns true if and only if `ent` allows subscribing to symbol `sym`
/// (named `name`): by name, or through a group it allows.
fn allows_symbol(ent: &Entitlements, index: &Index, name: &str, sym: SymId) -> bool {
    ent.symbols.contains(name)
        || ent
            .groups
            .iter()
            .any(|g| index.group_symbols(g).binary_search(&sym).is_ok())
}

/// `history`: the symbol's last `limit` ticks from the shard's history,
/// oldest first, under the same entitlements as a subscription. A symbol
/// never published has no ticks (or is `unknown_symbol` when the server
/// rejects unknown symbols).
fn history(
    cx: &Context<'_>,
    id: &Id,
    symbol: &str,
    limit: Option<u64>,
) -> Result<Frame, RequestError> {
    let bad = |m: String| RequestError::new(id, ErrorCode::BadRequest, m);
    tick::validate_symbol(symbol).map_err(bad)?;
    let depth = cx.history.depth();
    if depth == 0 {
        return Err(bad("this server keeps no history (history_depth 0)".into()));
    }
    let limit = match limit {
        None => depth,
        Some(l) if l <= depth as u64 => l as usize,
        Some(l) => return Err(bad(format!("limit {l} is over the maximum, {depth}"))),
    };
    let sym = cx.symbols.get(symbol);
    if let Some(ent) = cx.entitlements
        && !ent.groups.contains("*")
        && !sym.is_some_and(|s| allows_symbol(ent, cx.index, symbol, s))
        && !ent.symbols.contains(symbol)
    {
        return Err(RequestError::new(
            id,
            ErrorCode::Forbidden,
            format!("not entitled to symbol '{symbol}'"),
        ));
    }
    if sym.is_none() && cx.config.reject_unknown_symbols {
        return Err(RequestError::new(
            id,
            ErrorCode::UnknownSymbol,
            format!("no symbol named '{symbol}'"),
        ));
    }
    let ticks = sym.into_iter().flat_map(|s| cx.history.last(s, limit));
    Ok(encode::history(id.as_ref(), symbol, ticks))
}

fn subscribe(
    cx: &mut Context<'_>,
    id: &Id,
    symbols: &[String],
    groups: &[String],
    resume: Option<&Resume>,
) -> Result<(serde_json::Value, Join), RequestError> {
    let sel = resolve(cx, id, symbols, groups, true)?;
    let mut syms: Vec<SymId> = if sel.all {
        (0..cx.known_symbols as SymId).collect()
    } else {
        let mut v = sel.symbols.clone();
        for g in &sel.groups {
            v.extend_from_slice(cx.index.group_symbols(g));
        }
        v
    };
    syms.sort_unstable();
    syms.dedup();
    let resume = resume.map_or_else(Vec::new, |r| resumed(cx, r, &syms));
    let join = Join {
        selection: sel,
        snapshots: syms,
        resume,
    };
    Ok((protocol::ack("subscribed", id, symbols, groups), join))
}

/// The entries of `r` for symbols the subscription covers (`covered`,
/// sorted), sorted by symbol; entries for other symbols are ignored (a
/// client may send its whole book with each part it subscribes to).
fn resumed(cx: &Context<'_>, r: &Resume, covered: &[SymId]) -> Vec<(SymId, Option<u64>)> {
    let same_epoch = r.epoch == cx.epoch;
    let mut out: Vec<(SymId, Option<u64>)> = r
        .last_seq
        .iter()
        .filter_map(|(name, seq)| {
            let sym = cx.symbols.get(name)?;
            covered.binary_search(&sym).ok()?;
            Some((sym, same_epoch.then_some(*seq)))
        })
        .collect();
    out.sort_unstable_by_key(|&(s, _)| s);
    out
}

fn unsubscribe(
    cx: &mut Context<'_>,
    id: &Id,
    symbols: &[String],
    groups: &[String],
    all: bool,
) -> Result<serde_json::Value, RequestError> {
    if all {
        let sel = cx.index.selection(cx.key);
        cx.index.unsubscribe(cx.key, &sel);
        let (names, groups) = names_of(&sel, cx.symbols);
        return Ok(protocol::ack("unsubscribed", id, &names, &groups));
    }
    let sel = resolve(cx, id, symbols, groups, false)?;
    cx.index.unsubscribe(cx.key, &sel);
    Ok(protocol::ack("unsubscribed", id, symbols, groups))
}

/// The names of `sel`'s symbols (sorted) and groups (`*` first), for an
/// `unsubscribed` message.
fn names_of(sel: &Selection, symbols: &SymbolTable) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = sel
        .symbols
        .iter()
        .filter_map(|&s| symbols.name(s).map(|n| n.to_string()))
        .collect();
    names.sort();
    let mut groups: Vec<String> = sel.groups.iter().map(|g| g.to_string()).collect();
    if sel.all {
        groups.insert(0, "*".to_string());
    }
    (names, groups)
}

/// Resolves names to a [`Selection`], checking everything before anything
/// changes: unknown groups, bad or (when configured) unknown symbols, and
/// for a subscription the entitlements and the subscription limit.
fn resolve(
    cx: &Context<'_>,
    id: &Id,
    symbols: &[String],
    groups: &[String],
    for_subscribe: bool,
) -> Result<Selection, RequestError> {
    let mut sel = Selection::default();
    for g in groups {
        if g == "*" {
            sel.all = true;
        } else if let Some(name) = cx.index.group_name(g) {
            sel.groups.push(name);
        } else {
            let shown: String = g.chars().take(64).collect();
            return Err(RequestError::new(
                id,
                ErrorCode::UnknownGroup,
                format!("no group named '{shown}'"),
            ));
        }
    }
    for s in symbols {
        if let Err(reason) = tick::validate_symbol(s) {
            return Err(RequestError::new(id, ErrorCode::BadRequest, reason));
        }
        let sym = if for_subscribe && !cx.config.reject_unknown_symbols {
            Some(cx.symbols.intern(s))
        } else {
            cx.symbols.get(s)
        };
        match sym {
            Some(sym) => sel.symbols.push(sym),
            None if for_subscribe => {
                return Err(RequestError::new(
                    id,
                    ErrorCode::UnknownSymbol,
                    format!("no symbol named '{s}'"),
                ));
            }
            None => {}
        }
    }
    if for_subscribe {
        if let Some(ent) = cx.entitlements {
            check_entitlements(ent, cx.index, id, symbols, &sel)?;
        }
        let after = cx.index.count_after(cx.key, &sel);
        let limit = cx.config.max_subscriptions;
        if after > limit {
            return Err(RequestError::new(
                id,
                ErrorCode::TooManySubscriptions,
                format!("this would make {after} subscriptions; the limit is {limit}"),
            ));
        }
    }
    Ok(sel)
}

/// `forbidden` unless `ent` allows every part of `sel`: `*` needs `*`, a
/// group needs that group, a symbol needs the symbol or a group holding it.
/// `names[i]` is the name of `sel.symbols[i]`.
fn check_entitlements(
    ent: &Entitlements,
    index: &Index,
    id: &Id,
    names: &[String],
    sel: &Selection,
) -> Result<(), RequestError> {
    let forbidden = |what: String| RequestError::new(id, ErrorCode::Forbidden, what);
    if ent.groups.contains("*") {
        // `*` means everything: every symbol and every group.
        return Ok(());
    }
    if sel.all {
        return Err(forbidden("not entitled to '*'".into()));
    }
    if let Some(g) = sel.groups.iter().find(|g| !ent.groups.contains(&***g)) {
        return Err(forbidden(format!("not entitled to group '{g}'")));
    }
    for (name, &sym) in names.iter().zip(&sel.symbols) {
        if !allows_symbol(ent, index, name, sym) {
            return Err(forbidden(format!("not entitled to symbol '{name}'")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::Identity;
    use crate::wire::protocol::parse_request;

    struct World {
        index: Index,
        symbols: SymbolTable,
        config: Config,
        history: History,
        /// The last subscription's resume entries.
        resume: Vec<(SymId, Option<u64>)>,
        /// The last request's verified refresh, with its `unsubscribed`.
        refreshed: Option<(Identity, Option<Value>)>,
    }

    impl World {
        fn new() -> World {
            let symbols = SymbolTable::default();
            let mut index = Index::default();
            let fx: Vec<SymId> = ["EURUSD", "GBPUSD"]
                .iter()
                .map(|s| symbols.intern(s))
                .collect();
            index.set_group(Arc::from("fx"), fx);
            World {
                index,
                symbols,
                config: Config::default(),
                history: History::new(8),
                resume: Vec::new(),
                refreshed: None,
            }
        }

        fn ask(
            &mut self,
            key: ConnKey,
            ent: Option<&Entitlements>,
            req: &str,
        ) -> (Value, Vec<SymId>) {
            let mut cx = Context {
                key,
                entitlements: ent,
                user: Some("ann"),
                index: &mut self.index,
                symbols: &self.symbols,
                config: &self.config,
                known_symbols: self.symbols.len(),
                now_nanos: 7,
                history: &self.history,
                epoch: "e-1",
            };
            let r = handle(parse_request(req).unwrap(), &mut cx);
            self.refreshed = r.refreshed.map(|r| {
                let dropped = r.dropped.map(|f| {
                    let p = crate::wire::ws::payload(f.as_bytes()).unwrap();
                    serde_json::from_slice(p).unwrap()
                });
                (r.identity, dropped)
            });
            let payload = crate::wire::ws::payload(r.frame.as_bytes()).unwrap();
            let snapshots = match r.join {
                Some(j) => {
                    self.index.subscribe(key, &j.selection);
                    self.resume = j.resume;
                    j.snapshots
                }
                None => Vec::new(),
            };
            (serde_json::from_slice(payload).unwrap(), snapshots)
        }
    }

    #[test]
    fn subscribe_replies_then_names_the_snapshots() {
        let mut w = World::new();
        let (v, snaps) = w.ask(
            1,
            None,
            r#"{"op":"subscribe","id":1,"symbols":["AAPL"],"groups":["fx"]}"#,
        );
        assert_eq!(
            v,
            json!({"type":"subscribed","id":1,"symbols":["AAPL"],"groups":["fx"]})
        );
        assert_eq!(snaps, vec![0, 1, 2], "the group's two symbols and AAPL");
        let (_, snaps) = w.ask(2, None, r#"{"op":"subscribe","groups":["*"]}"#);
        assert_eq!(snaps.len(), 3, "every known symbol");
    }

    #[test]
    fn resume_entries_are_kept_for_covered_symbols_in_the_epoch() {
        let mut w = World::new();
        let (v, _) = w.ask(
            1,
            None,
            r#"{"op":"subscribe","symbols":["AAPL"],"groups":["fx"],"epoch":"e-1",
                "resume":{"GBPUSD":7,"AAPL":3,"MSFT":9,"NEVER":1}}"#,
        );
        assert_eq!(v["type"], "subscribed");
        // Interned in order: EURUSD 0, GBPUSD 1 (the group), then AAPL.
        let (gbp, aapl) = (1, 2);
        assert_eq!(
            w.resume,
            vec![(gbp, Some(7)), (aapl, Some(3))],
            "sorted by symbol; MSFT and NEVER are not covered"
        );
        w.ask(
            2,
            None,
            r#"{"op":"subscribe","symbols":["AAPL"],"epoch":"e-0","resume":{"AAPL":3}}"#,
        );
        assert_eq!(w.resume, vec![(aapl, None)], "another epoch: reset");
    }

    #[test]
    fn refresh_moves_the_grant_and_drops_what_it_no_longer_allows() {
        let mut w = World::new();
        let later = std::time::UNIX_EPOCH + std::time::Duration::from_secs(4_000_000_000);
        w.config.auth = Some(Arc::new(
            crate::StaticTokens::default()
                .with(
                    "fx-only",
                    Identity::new("ann")
                        .entitled_to_groups(["fx"])
                        .expires_at(later),
                )
                .with("bob", Identity::new("bob")),
        ));
        w.ask(
            1,
            None,
            r#"{"op":"subscribe","symbols":["AAPL","EURUSD"],"groups":["fx","*"]}"#,
        );
        for (token, why) in [("bob", "another user"), ("guess", "invalid")] {
            let req = format!(r#"{{"op":"refresh","id":3,"token":"{token}"}}"#);
            let (v, _) = w.ask(1, None, &req);
            assert_eq!(v["code"], "unauthorized", "{why}: {v}");
            assert!(w.refreshed.is_none());
        }
        assert_eq!(w.index.count(1), 4, "a refused refresh changes nothing");
        let (v, _) = w.ask(1, None, r#"{"op":"refresh","id":4,"token":"fx-only"}"#);
        assert_eq!(
            v,
            json!({"type":"refreshed","id":4,"expires_at":4_000_000_000u64})
        );
        let (id, dropped) = w.refreshed.take().unwrap();
        assert_eq!(id.user, "ann");
        assert_eq!(
            dropped,
            Some(json!({"type":"unsubscribed","symbols":["AAPL"],"groups":["*"]})),
            "EURUSD stays: the fx group allows it"
        );
        let held = w.index.selection(1);
        assert!(!held.all && held.groups.len() == 1 && held.symbols.len() == 1);
    }

    #[test]
    fn refresh_without_access_tokens_is_unauthorized() {
        let mut w = World::new();
        let (v, _) = w.ask(1, None, r#"{"op":"refresh","id":1,"token":"x"}"#);
        assert_eq!(v["code"], "unauthorized");
        let e = parse_request(r#"{"op":"refresh","id":2}"#).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::BadRequest, "missing 'token'")
        );
    }

    #[test]
    fn a_failed_request_changes_nothing() {
        let mut w = World::new();
        w.ask(1, None, r#"{"op":"subscribe","symbols":["AAPL"]}"#);
        let (v, snaps) = w.ask(
            1,
            None,
            r#"{"op":"subscribe","id":2,"symbols":["MSFT"],"groups":["nope"]}"#,
        );
        assert_eq!(
            (v["type"].as_str(), v["code"].as_str()),
            (Some("error"), Some("unknown_group"))
        );
        assert!(snaps.is_empty());
        assert_eq!(w.index.selection(1).symbols.len(), 1, "MSFT was not added");
        w.config.max_subscriptions = 2;
        let (v, _) = w.ask(1, None, r#"{"op":"subscribe","id":3,"symbols":["X","Y"]}"#);
        assert_eq!(v["code"], "too_many_subscriptions");
        assert_eq!(w.index.selection(1).symbols.len(), 1);
    }

    #[test]
    fn entitlements_allow_symbols_through_their_groups() {
        let mut w = World::new();
        let ent = Identity::new("u")
            .entitled_to_groups(["fx"])
            .entitled_to_symbols(["AAPL"])
            .entitlements
            .unwrap();
        for (req, want) in [
            (
                r#"{"op":"subscribe","symbols":["EURUSD","AAPL"]}"#,
                "subscribed",
            ),
            (r#"{"op":"subscribe","groups":["fx"]}"#, "subscribed"),
            (r#"{"op":"subscribe","symbols":["MSFT"]}"#, "forbidden"),
            (r#"{"op":"subscribe","groups":["*"]}"#, "forbidden"),
        ] {
            let (v, _) = w.ask(1, Some(&ent), req);
            let got = v["code"]
                .as_str()
                .or(v["type"].as_str())
                .unwrap_or("")
                .to_string();
            assert_eq!(got, want, "{req}: {v}");
        }
    }

    #[test]
    fn an_entitlement_to_star_covers_every_group_and_symbol() {
        let mut w = World::new();
        let ent = Identity::new("u")
            .entitled_to_groups(["*"])
            .entitlements
            .unwrap();
        for req in [
            r#"{"op":"subscribe","groups":["fx"]}"#,
            r#"{"op":"subscribe","groups":["*"]}"#,
            r#"{"op":"subscribe","symbols":["ANY"]}"#,
        ] {
            let (v, _) = w.ask(1, Some(&ent), req);
            assert_eq!(v["type"], "subscribed", "{req}: {v}");
        }
    }

    #[test]
    fn unsubscribe_all_lists_what_was_dropped() {
        let mut w = World::new();
        w.ask(
            1,
            None,
            r#"{"op":"subscribe","symbols":["AAPL"],"groups":["fx","*"]}"#,
        );
        let (v, _) = w.ask(1, None, r#"{"op":"unsubscribe","id":4,"all":true}"#);
        assert_eq!(
            v,
            json!({"type":"unsubscribed","id":4,"symbols":["AAPL"],"groups":["*","fx"]})
        );
        assert_eq!(w.index.selection(1), Selection::default());
        let (v, _) = w.ask(1, None, r#"{"op":"ping","id":5}"#);
        assert_eq!(v, json!({"type":"pong","id":5,"ts":7}));
    }
}
