//! The policy checks of an upgrade that routed to `/ws`, in the order of
//! `PROTOCOL.md`'s refusals: the `Origin` allowlist (403), then the access
//! token (401). Admission (429, 503) comes after, in
//! [`Admission`](crate::admission::Admission), because it counts shared
//! state. Pure: a request and the configuration in, a decision out.

use crate::Config;
use crate::auth::Identity;
use crate::wire::http::{Response, Upgrade};

/// Checks `up` against the origin allowlist and the authenticator.
/// `Ok(None)`: no authentication is configured; `Ok(Some(id))`: the token
/// grants `id`; `Err`: the refusal to send.
pub(crate) fn authorize(up: &Upgrade, config: &Config) -> Result<Option<Identity>, Response> {
    if !config.allowed_origins.is_empty()
        && !up
            .origin
            .as_ref()
            .is_some_and(|o| config.allowed_origins.contains(o))
    {
        return Err(Response::text(403, "origin not allowed"));
    }
    let Some(auth) = &config.auth else {
        return Ok(None);
    };
    let Some(token) = up.token.as_deref() else {
        return Err(Response::text(401, "missing token"));
    };
    auth.verify(token)
        .map(Some)
        .map_err(|reason| Response::text(401, &reason))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::StaticTokens;

    fn up(origin: Option<&str>, token: Option<&str>) -> Upgrade {
        Upgrade {
            key: "dGhlIHNhbXBsZSBub25jZQ==".into(),
            token: token.map(Into::into),
            client: None,
            origin: origin.map(Into::into),
            consumed: 0,
        }
    }

    fn status(r: Result<Option<Identity>, Response>) -> u16 {
        r.map_or_else(|resp| resp.status, |_| 101)
    }

    #[test]
    fn open_by_default() {
        assert_eq!(authorize(&up(None, None), &Config::default()), Ok(None));
    }

    #[test]
    fn the_origin_is_checked_before_the_token() {
        let c = Config {
            allowed_origins: vec!["https://ok".into()],
            auth: Some(Arc::new(
                StaticTokens::default().with("t", Identity::new("ann")),
            )),
            ..Config::default()
        };
        assert_eq!(
            status(authorize(&up(Some("https://evil"), Some("t")), &c)),
            403
        );
        assert_eq!(status(authorize(&up(None, Some("t")), &c)), 403);
        assert_eq!(status(authorize(&up(Some("https://ok"), None), &c)), 401);
        assert_eq!(
            status(authorize(&up(Some("https://ok"), Some("x")), &c)),
            401
        );
        let id = authorize(&up(Some("https://ok"), Some("t")), &c).unwrap();
        assert_eq!(id.map(|i| i.user).as_deref(), Some("ann"));
    }
}
