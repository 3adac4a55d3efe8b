//! Optional access control: who may connect, until when, and to what.
//!
//! With no [`Authenticator`] configured (the default) every upgrade is
//! accepted and every symbol and group may be subscribed. With one, an
//! upgrade without a valid token gets HTTP 401, a token that expires while
//! connected closes the connection with 1008, and subscriptions outside the
//! identity's entitlements get `forbidden`.

mod jwt;

pub use jwt::JwtAuthenticator;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch of `t` (the `expires_at` of `refreshed`).
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Checks access tokens. Called on a shard thread during the upgrade, so it
/// must be fast and must not block (look tokens up in memory).
///
/// ```
/// use std::sync::Arc;
/// use tickcast::{Authenticator, Config, Identity};
///
/// /// Accepts tokens of the form `user:<name>`.
/// #[derive(Debug)]
/// struct Prefix;
/// impl Authenticator for Prefix {
///     fn authenticate(&self, token: &str) -> Option<Identity> {
///         token.strip_prefix("user:").map(Identity::new)
///     }
/// }
/// let c = Config { auth: Some(Arc::new(Prefix)), ..Config::default() };
/// assert!(c.auth.unwrap().authenticate("user:ann").is_some());
/// ```
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// The identity `token` grants, or `None` if it is unknown or invalid.
    fn authenticate(&self, token: &str) -> Option<Identity>;

    /// The identity `token` grants, or the one-line reason it grants none
    /// (the body of the HTTP 401, the message of an `unauthorized` error).
    /// The default calls [`Authenticator::authenticate`].
    ///
    /// # Errors
    /// The reason the token is refused.
    fn verify(&self, token: &str) -> Result<Identity, String> {
        self.authenticate(token)
            .ok_or_else(|| "invalid or expired token".to_string())
    }

    /// What the startup summary says of it, e.g. `jwt HS256`. Must not
    /// reveal a secret.
    fn describe(&self) -> String {
        "custom authenticator".to_string()
    }
}

/// Who a token belongs to and what it may see.
///
/// ```
/// use tickcast::Identity;
/// let id = Identity::new("alice").entitled_to_groups(["fx-majors"]);
/// assert_eq!(id.user, "alice");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name; [`Broadcaster::notice_user`](crate::Broadcaster::notice_user)
    /// addresses all connections of one user.
    pub user: String,
    /// When the grant ends; a connection still open then is closed with 1008.
    pub expires_at: Option<SystemTime>,
    /// `None`: entitled to everything. `Some`: only these.
    pub entitlements: Option<Entitlements>,
}

/// The symbols and groups an identity may subscribe to.
///
/// ```
/// let id = tickcast::Identity::new("bob").entitled_to_symbols(["AAPL"]);
/// let e = id.entitlements.unwrap();
/// assert!(e.symbols.contains("AAPL") && e.groups.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entitlements {
    /// Symbols that may be subscribed individually.
    pub symbols: HashSet<String>,
    /// Groups that may be subscribed (`*` for the every-symbol group); their
    /// symbols may also be subscribed individually.
    pub groups: HashSet<String>,
}

impl Identity {
    /// An identity for `user`, entitled to everything, never expiring.
    pub fn new(user: impl Into<String>) -> Identity {
        Identity {
            user: user.into(),
            expires_at: None,
            entitlements: None,
        }
    }

    /// Sets the expiry.
    pub fn expires_at(mut self, at: SystemTime) -> Identity {
        self.expires_at = Some(at);
        self
    }

    /// Restricts the identity to `groups` (plus any symbols already allowed).
    pub fn entitled_to_groups<I, S>(mut self, groups: I) -> Identity
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let e = self.entitlements.get_or_insert_with(Entitlements::default);
        e.groups.extend(groups.into_iter().map(Into::into));
        self
    }

    /// Restricts the identity to `symbols` (plus any groups already allowed).
    pub fn entitled_to_symbols<I, S>(mut self, symbols: I) -> Identity
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let e = self.entitlements.get_or_insert_with(Entitlements::default);
        e.symbols.extend(symbols.into_iter().map(Into::into));
        self
    }
}

/// A fixed table of tokens, for tests, demos and small deployments.
///
/// ```
/// use tickcast::{Authenticator, Identity, StaticTokens};
/// let auth = StaticTokens::default().with("s3cret", Identity::new("alice"));
/// assert_eq!(auth.authenticate("s3cret").unwrap().user, "alice");
/// assert!(auth.authenticate("guess").is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct StaticTokens {
    tokens: HashMap<String, Identity>,
}

impl StaticTokens {
    /// Adds `token`, granting `identity`.
    pub fn with(mut self, token: impl Into<String>, identity: Identity) -> StaticTokens {
        self.tokens.insert(token.into(), identity);
        self
    }
}

impl Authenticator for StaticTokens {
    fn describe(&self) -> String {
        format!("static tokens ({})", self.tokens.len())
    }

    fn authenticate(&self, token: &str) -> Option<Identity> {
        let id = self.tokens.get(token)?;
        if id.expires_at.is_some_and(|t| t <= SystemTime::now()) {
            return None;
        }
        Some(id.clone())
    }
}
