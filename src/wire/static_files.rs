//! Files served over plain HTTP on the broadcaster's port, embedded in the
//! binary: the live trading board in `web/` (`/` is `web/index.html`, plus
//! `/app.js` and `/style.css`), the reference browser client of protocol
//! v1, and the operator page `/status` (`web/status.html`, one file that
//! polls `/stats`). Neither needs anything from the network but this
//! server. `/healthz`, `/metrics`, `/stats` and `/ws` are handled in
//! `http`, which also answers
//! GET/HEAD for every path [`lookup`] knows and 404 for the rest.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StaticFile {
    pub(crate) content_type: &'static str,
    pub(crate) body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every embedded file: (path, content type, body).
const FILES: &[(&str, &str, &[u8])] = &[
    ("/", HTML, include_bytes!("../../web/index.html")),
    ("/index.html", HTML, include_bytes!("../../web/index.html")),
    ("/app.js", JS, include_bytes!("../../web/app.js")),
    ("/style.css", CSS, include_bytes!("../../web/style.css")),
    ("/status", HTML, include_bytes!("../../web/status.html")),
];

/// The embedded file served at `path` (without the query string), if any.
pub(crate) fn lookup(path: &str) -> Option<StaticFile> {
    FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|&(_, content_type, body)| StaticFile { content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_is_served_at_the_root_with_its_assets() {
        let index = lookup("/").expect("/ is served");
        assert!(index.content_type.starts_with("text/html"));
        let html = std::str::from_utf8(index.body).expect("UTF-8");
        assert!(html.contains("<script src=\"app.js\""), "{html}");
        assert!(html.contains("href=\"style.css\""));
        assert_eq!(lookup("/index.html").map(|f| f.body), Some(index.body));
        let js = lookup("/app.js").expect("app.js");
        assert!(js.content_type.starts_with("text/javascript"));
        assert!(std::str::from_utf8(js.body).is_ok_and(|s| s.contains("requestAnimationFrame")));
        assert!(lookup("/style.css").is_some_and(|f| f.content_type.starts_with("text/css")));
        let status = lookup("/status").expect("/status");
        let html = std::str::from_utf8(status.body).expect("UTF-8");
        assert!(html.contains("fetch(\"/stats\"") && !html.contains("<script src"));
        for missing in ["/nope", "/web/app.js", "/../Cargo.toml", "", "/app.js/"] {
            assert!(lookup(missing).is_none(), "{missing}");
        }
    }
}
