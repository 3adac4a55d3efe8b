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
use crate::auth::Entitlements;
use crate::subscriptions::{ConnKey, Index, Selection};
use crate::symbols::{SymId, SymbolTable};
use crate::wire::encode;
use crate::wire::protocol::{self, ErrorCode, Id, Request, RequestError};
use crate::{Frame, tick};

/// What one connection's request may read and change.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) key: ConnKey,
    pub(crate) entitlements: Option<&'a Entitlements>,
    pub(crate) index: &'a mut Index,
    pub(crate) symbols: &'a SymbolTable,
    pub(crate) config: &'a Config,
    /// Symbol ids below this may have a last value (for `*` snapshots).
    pub(crate) known_symbols: usize,
    /// The wall clock, for `pong`.
    pub(crate) now_nanos: u64,
}

/// The reply to queue, then the subscription to join after it.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) frame: Frame,
    pub(crate) join: Option<Join>,
}

/// A checked subscription: once the connection joins `selection`, it gets
/// one snapshot of each of `snapshots` that has a last value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Join {
    pub(crate) selection: Selection,
    /// Sorted, no duplicates: the symbols the selection covers now.
    pub(crate) snapshots: Vec<SymId>,
}

/// Handles `req`; never fails (a refused request becomes an error reply).
pub(crate) fn handle(req: Request, cx: &mut Context<'_>) -> Reply {
    let mut join = None;
    let reply = match req {
        Request::Subscribe {
            id,
            symbols,
            groups,
        } => subscribe(cx, &id, &symbols, &groups).map(|(reply, j)| {
            join = Some(j);
            reply
        }),
        Request::Unsubscribe {
            id,
            symbols,
            groups,
            all,
        } => unsubscribe(cx, &id, &symbols, &groups, all),
        Request::ListGroups { id } => Ok(protocol::groups(&id, &cx.index.group_list())),
        Request::Ping { id } => Ok(protocol::pong(&id, cx.now_nanos)),
    };
    let frame = match reply {
        Ok(v) => encode::json(&v),
        Err(e) => encode::json(&e.to_json()),
    };
    Reply { frame, join }
}

fn subscribe(
    cx: &mut Context<'_>,
    id: &Id,
    symbols: &[String],
    groups: &[String],
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
    let join = Join {
        selection: sel,
        snapshots: syms,
    };
    Ok((protocol::ack("subscribed", id, symbols, groups), join))
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
        let mut names: Vec<String> = sel
            .symbols
            .iter()
            .filter_map(|&s| cx.symbols.name(s).map(|n| n.to_string()))
            .collect();
        names.sort();
        let mut gnames: Vec<String> = sel.groups.iter().map(|g| g.to_string()).collect();
        if sel.all {
            gnames.insert(0, "*".to_string());
        }
        return Ok(protocol::ack("unsubscribed", id, &names, &gnames));
    }
    let sel = resolve(cx, id, symbols, groups, false)?;
    cx.index.unsubscribe(cx.key, &sel);
    Ok(protocol::ack("unsubscribed", id, symbols, groups))
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
        let in_group = ent
            .groups
            .iter()
            .any(|g| index.group_symbols(g).binary_search(&sym).is_ok());
        if !ent.symbols.contains(name) && !in_group {
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
                index: &mut self.index,
                symbols: &self.symbols,
                config: &self.config,
                known_symbols: self.symbols.len(),
                now_nanos: 7,
            };
            let r = handle(parse_request(req).unwrap(), &mut cx);
            let payload = crate::wire::ws::payload(r.frame.as_bytes()).unwrap();
            let snapshots = match r.join {
                Some(j) => {
                    self.index.subscribe(key, &j.selection);
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
