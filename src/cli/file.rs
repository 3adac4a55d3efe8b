//! The settings file (`--config FILE`, TOML): every setting by its key,
//! and `[groups]`. An unknown key or a bad value is an error naming the key
//! and its line; the first one in the file is reported.
//!
//! The document is parsed once into spanned values (`toml::de::DeTable`),
//! then each value is deserialized into its setting's type, so an error
//! knows both the key and where it is.

use std::path::Path;

use serde::Deserialize;
use tickcast::GroupSpec;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::table::Layer;

/// The key of the group table.
const GROUPS: &str = "groups";

/// What a settings file gives.
#[derive(Debug, Default)]
pub(crate) struct FileSettings {
    pub(crate) layer: Layer,
    /// In the order of the file.
    pub(crate) groups: Vec<FileGroup>,
}

/// A group of the `[groups]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileGroup {
    pub(crate) name: String,
    pub(crate) spec: GroupSpec,
    /// Where it is defined, for errors found when it is applied.
    pub(crate) line: usize,
}

/// Reads and parses the settings file at `path`.
///
/// # Errors
/// `FILE: message` when it cannot be read, `FILE:LINE: message` for a
/// syntax error, an unknown key or a bad value.
pub(crate) fn read(path: &Path) -> Result<FileSettings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the settings file: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}:{e}", path.display()))
}

/// Parses the text of a settings file.
///
/// # Errors
/// `LINE: message` (see [`read`]).
pub(crate) fn parse(text: &str) -> Result<FileSettings, String> {
    let doc = DeTable::parse(text).map_err(|e| at(text, e.span(), e.message()))?;
    let mut entries: Vec<_> = doc.into_inner().into_iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut out = FileSettings::default();
    for (key, value) in entries {
        let key_span = Some(key.span());
        let key = key.into_inner();
        if key == GROUPS {
            out.groups = groups(text, value)?;
            continue;
        }
        let value_span = Some(value.span());
        match out.layer.set_toml(&key, ValueDeserializer::from(value)) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                let msg = format!("{key}: {}", e.message());
                return Err(at(text, e.span().or(value_span), &msg));
            }
            None => {
                let msg = format!(
                    "unknown key `{key}`: not a setting (tickcast --help and \
                     tickcast.example.toml list them all)"
                );
                return Err(at(text, key_span, &msg));
            }
        }
    }
    Ok(out)
}

/// The `[groups]` table: `name = ["SYMBOL", "PREFIX*", …]`.
fn groups(text: &str, value: Spanned<DeValue<'_>>) -> Result<Vec<FileGroup>, String> {
    let span = Some(value.span());
    let DeValue::Table(table) = value.into_inner() else {
        let msg = "groups: must be a table, `[groups]` then `name = [\"SYMBOL\", \"PREFIX*\"]`";
        return Err(at(text, span, msg));
    };
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut out = Vec::with_capacity(entries.len());
    for (name, list) in entries {
        let line = line_of(text, name.span().start);
        let name = name.into_inner().into_owned();
        let list_span = Some(list.span());
        let symbols = Vec::<String>::deserialize(ValueDeserializer::from(list)).map_err(|e| {
            let msg = format!("groups.{name}: {} (a list of symbols)", e.message());
            at(text, e.span().or(list_span), &msg)
        })?;
        out.push(FileGroup {
            name,
            spec: GroupSpec::from_entries(&symbols),
            line,
        });
    }
    Ok(out)
}

/// `LINE: message`, or `message` alone when there is no span.
fn at(text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> String {
    match span {
        Some(s) => format!("{}: {message}", line_of(text, s.start)),
        None => format!(" {message}"),
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text).map(|_| ()).unwrap_err()
    }

    #[test]
    fn an_error_names_the_key_and_its_line() {
        for (text, want) in [
            (
                "listen = \"127.0.0.1:0\"\n\nheartbeat = 3\n",
                "3: unknown key `heartbeat`",
            ),
            (
                "# c\nio_threads = 2\nheartbeat_ms = \"fast\"\n",
                "3: heartbeat_ms: ",
            ),
            (
                "log_format = \"xml\"",
                "1: log_format: unknown variant `xml`",
            ),
            ("max_connections = -1", "1: max_connections: "),
            ("no_pin = 1", "1: no_pin: "),
            // The first in the file, not the first by name.
            ("zzz = 1\naaa = 2\n", "1: unknown key `zzz`"),
            // A syntax error.
            ("io_threads = 2\nlisten = \n", "2: "),
        ] {
            let e = err(text);
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn groups_are_read_in_file_order() {
        let f =
            parse("[groups]\nmajors = [\"EURUSD\", \"GBPUSD\"]\nall-eur = [\"EUR*\"]\n").unwrap();
        assert_eq!(f.groups.len(), 2);
        assert_eq!(f.groups[0].name, "majors");
        assert_eq!(f.groups[0].spec, GroupSpec::exact(["EURUSD", "GBPUSD"]));
        assert_eq!(f.groups[1].spec.prefixes, ["EUR"]);
        assert_eq!(f.groups[1].line, 3);
        let e = err("[groups]\nx = \"EURUSD\"\n");
        assert!(e.starts_with("2: groups.x: "), "{e}");
        let e = err("groups = 3\n");
        assert!(e.starts_with("1: groups: must be a table"), "{e}");
    }
}
