//! Files served over plain HTTP on the broadcaster's port, embedded in the
//! binary. Empty for now: `/healthz` and `/ws` are handled in `http`.

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StaticFile {
    pub(crate) content_type: &'static str,
    pub(crate) body: &'static [u8],
}

/// The embedded file served at `path`, if any.
pub(crate) fn lookup(_path: &str) -> Option<StaticFile> {
    None
}
