//! The command line and the environment: each gives a [`Layer`] of
//! settings read from text, plus the settings file to read.
//!
//! Flags come from the table (`--heartbeat-ms`), and so do environment
//! variables (`TICKCAST_HEARTBEAT_MS`); `--config` / `TICKCAST_CONFIG`
//! name the file. clap parses the flags into text; the table's types read
//! the text, so a bad value names the flag or variable it came from.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgAction, Command, value_parser};

use super::LoadError;
use super::table::{ENV_PREFIX, Layer, SPECS, Settings};
use super::value::Form;

/// The settings file flag, and (with [`ENV_PREFIX`]) its variable.
const CONFIG: &str = "config";

/// What one source of text gives.
#[derive(Debug, Default)]
pub(crate) struct Given {
    /// The settings file to read, if this source names one.
    pub(crate) config: Option<PathBuf>,
    pub(crate) layer: Layer,
    /// `TICKCAST_*` variables that are not settings (ignored, and logged:
    /// an error would make a stray test variable stop the server).
    pub(crate) unknown: Vec<String>,
}

/// The command line interface, built from the table.
pub(crate) fn command() -> Command {
    let defaults = Settings::default();
    let mut cmd = Command::new("tickcast")
        .version(env!("CARGO_PKG_VERSION"))
        .about("A WebSocket broadcaster for market data (protocol v1 on /ws).")
        .after_help(
            "Every setting is also TICKCAST_<KEY> in the environment and <key> in the \
             --config file (keys are the flags with underscores: heartbeat_ms). \
             Precedence: flag, then environment, then file, then default. \
             Log levels come from RUST_LOG (default info).",
        )
        .arg(
            Arg::new(CONFIG)
                .long(CONFIG)
                .value_name("FILE")
                .value_parser(value_parser!(PathBuf))
                .help(format!(
                    "Read settings from this TOML file (see tickcast.example.toml) \
                     [env: {ENV_PREFIX}CONFIG]"
                )),
        );
    for spec in SPECS {
        let mut help: Vec<&str> = spec.doc.lines().map(str::trim).collect();
        let default = defaults.shown(spec.key).map(|v| format!("[default: {v}]"));
        let env = format!("[env: {}]", spec.env_var());
        help.extend(default.as_deref());
        help.push(&env);
        let arg = Arg::new(spec.key)
            .long(spec.flag())
            .value_name(spec.value_name)
            .value_parser(value_parser!(String))
            .help(help.join(" "));
        cmd = cmd.arg(match spec.form {
            Form::Value => arg.action(ArgAction::Set),
            Form::Switch => arg
                .action(ArgAction::Set)
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true"),
            Form::List => arg.action(ArgAction::Append),
        });
    }
    cmd
}

/// Reads the command line (`args` includes the program name).
pub(crate) fn from_args<I, T>(args: I) -> Result<Given, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let m = command()
        .try_get_matches_from(args)
        .map_err(LoadError::Clap)?;
    let mut given = Given {
        config: m.get_one::<PathBuf>(CONFIG).cloned(),
        ..Given::default()
    };
    for spec in SPECS {
        let Some(values) = m.get_many::<String>(spec.key) else {
            continue;
        };
        let texts: Vec<&str> = values.map(String::as_str).collect();
        if let Some(Err(e)) = given.layer.set_texts(spec.key, &texts) {
            return Err(LoadError::Invalid(format!(
                "--{}: invalid value {:?}: {e}",
                spec.flag(),
                texts.join(" ")
            )));
        }
    }
    Ok(given)
}

/// Reads the `TICKCAST_*` variables of `vars` (the process environment,
/// or a test's).
///
/// # Errors
/// A variable of a setting whose value does not read, named.
pub(crate) fn from_env<I>(vars: I) -> Result<Given, String>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    let mut given = Given::default();
    for (name, value) in vars {
        // A name that is not UTF-8 cannot be one of ours.
        let Some(name) = name.to_str() else { continue };
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let Some(value) = value.to_str() else {
            return Err(format!("{name}: the value is not valid UTF-8"));
        };
        if key == CONFIG.to_ascii_uppercase() {
            given.config = (!value.is_empty()).then(|| PathBuf::from(value));
            continue;
        }
        let known = key.bytes().all(|b| !b.is_ascii_lowercase());
        match given.layer.set_texts(&key.to_ascii_lowercase(), &[value]) {
            Some(Err(e)) if known => return Err(format!("{name}: invalid value {value:?}: {e}")),
            Some(Ok(())) if known => {}
            _ => given.unknown.push(name.to_string()),
        }
    }
    given.unknown.sort();
    Ok(given)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<Given, String> {
        from_env(vars.iter().map(|(k, v)| (k.into(), v.into())))
    }

    #[test]
    fn the_table_makes_a_valid_command() {
        command().debug_assert();
    }

    #[test]
    fn a_bad_flag_value_names_the_flag() {
        let e = from_args(["tickcast", "--heartbeat-ms", "fast"]).unwrap_err();
        assert!(
            matches!(&e, LoadError::Invalid(m) if m.starts_with("--heartbeat-ms: invalid value \"fast\"")),
            "{e:?}"
        );
        assert!(matches!(
            from_args(["tickcast", "--heartbeat"]),
            Err(LoadError::Clap(_))
        ));
    }

    #[test]
    fn switches_and_lists_read_as_written() {
        let g = from_args([
            "tickcast",
            "--no-pin",
            "--reject-unknown-symbols=false",
            "--allow-origin",
            "https://a.example",
            "--allow-origin=https://b.example,https://c.example",
            "--config",
            "x.toml",
        ])
        .unwrap();
        let s = g.layer.resolve();
        assert!(s.no_pin);
        assert!(!s.reject_unknown_symbols);
        assert_eq!(s.allow_origin.len(), 3);
        assert_eq!(g.config, Some(PathBuf::from("x.toml")));
    }

    #[test]
    fn a_bad_env_value_names_the_variable() {
        let e = env(&[("TICKCAST_HEARTBEAT_MS", "fast")]).unwrap_err();
        assert!(e.starts_with("TICKCAST_HEARTBEAT_MS: invalid value"), "{e}");
        let g = env(&[
            ("TICKCAST_HEARTBEAT_MS", "2000"),
            ("TICKCAST_CONFIG", "t.toml"),
            ("TICKCAST_SCREENSHOT", "x.png"),
            ("TICKCAST_heartbeat_ms", "fast"),
            ("PATH", "/bin"),
        ])
        .unwrap();
        assert_eq!(g.layer.resolve().heartbeat_ms, 2000);
        assert_eq!(g.config, Some(PathBuf::from("t.toml")));
        assert_eq!(g.unknown, ["TICKCAST_SCREENSHOT", "TICKCAST_heartbeat_ms"]);
    }
}
