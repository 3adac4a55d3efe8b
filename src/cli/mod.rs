//! The binary's own modules (not part of the library): how the operator's
//! settings are read and turned into a [`Config`], how logs are written,
//! and what the binary says at start.
//!
//! Settings come from four places, the first that gives a value wins: the
//! command line (`--heartbeat-ms 3000`), the environment
//! (`TICKCAST_HEARTBEAT_MS=3000`), the settings file (`heartbeat_ms =
//! 3000` in `--config FILE`), the default. [`table`] holds every setting
//! once; [`args`] and [`file`] read the sources into layers; [`load`]
//! stacks them.

pub(crate) mod args;
pub(crate) mod file;
pub(crate) mod logging;
pub(crate) mod publish;
pub(crate) mod summary;
pub(crate) mod table;
pub(crate) mod value;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use tickcast::{Broadcaster, Config, JwtConfig, JwtKey, RedisFeed, TlsFiles};

use file::FileGroup;
use table::Settings;

/// Why the settings were not loaded.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// clap's own: a usage error, or `--help` / `--version` (print it and
    /// exit with its code).
    Clap(clap::Error),
    /// A bad value or an unknown file key, named.
    Invalid(String),
}

/// Everything the operator configured.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) settings: Settings,
    /// The `[groups]` of the settings file, in file order.
    pub(crate) groups: Vec<FileGroup>,
    /// The settings file read, if any.
    pub(crate) file: Option<PathBuf>,
    /// `TICKCAST_*` variables that are not settings (to be logged).
    pub(crate) unknown_env: Vec<String>,
}

/// Reads the command line `args` (with the program name), the environment
/// `vars` and the settings file they name, and stacks them.
///
/// # Errors
/// [`LoadError::Clap`] for a usage error, `--help` or `--version`;
/// [`LoadError::Invalid`] naming the flag, variable or file key (and
/// line) of a bad value or an unknown file key.
pub(crate) fn load<A, T, V>(args: A, vars: V) -> Result<Loaded, LoadError>
where
    A: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
    V: IntoIterator<Item = (OsString, OsString)>,
{
    let cli = args::from_args(args)?;
    let env = args::from_env(vars).map_err(LoadError::Invalid)?;
    let file = cli.config.or(env.config);
    let from_file = match &file {
        Some(path) => file::read(path).map_err(LoadError::Invalid)?,
        None => file::FileSettings::default(),
    };
    Ok(Loaded {
        settings: cli.layer.over(env.layer).over(from_file.layer).resolve(),
        groups: from_file.groups,
        file,
        unknown_env: env.unknown,
    })
}

impl Settings {
    /// The library's configuration for these settings.
    ///
    /// # Errors
    /// Settings that contradict each other, named: both JWT key files, a
    /// TLS certificate without its key, JWT or per-user options without a
    /// JWT key.
    pub(crate) fn to_config(&self) -> Result<Config, String> {
        let key = match (&self.jwt_secret_file, &self.jwt_public_key_file) {
            (Some(_), Some(_)) => {
                return Err("jwt_secret_file and jwt_public_key_file are exclusive: \
                            tokens are verified with one key"
                    .to_string());
            }
            (Some(f), None) => Some(JwtKey::SecretFile(f.clone())),
            (None, Some(f)) => Some(JwtKey::PublicKeyFile(f.clone())),
            (None, None) => None,
        };
        if key.is_none() {
            for (name, set) in [
                ("jwt_audience", self.jwt_audience.is_some()),
                ("jwt_issuer", self.jwt_issuer.is_some()),
                (
                    "max_connections_per_user",
                    self.max_connections_per_user > 0,
                ),
            ] {
                if set {
                    return Err(format!(
                        "{name} needs a JWT key (jwt_secret_file or jwt_public_key_file): \
                         without tokens there is nothing to check it against"
                    ));
                }
            }
        }
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, None) => None,
            (Some(_), None) => return Err("tls_cert needs tls_key (its private key)".into()),
            (None, Some(_)) => return Err("tls_key needs tls_cert (its certificate)".into()),
        };
        Ok(Config {
            listen: self.listen,
            io_threads: self.io_threads,
            pin_threads: !self.no_pin,
            queue_capacity: self.queue_capacity,
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            send_buffer: self.send_buffer,
            max_lag: Duration::from_millis(self.max_lag_ms),
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_message_size: self.max_message_size,
            max_subscriptions: self.max_subscriptions,
            history_depth: self.history_depth,
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms),
            close_linger: Duration::from_millis(self.close_linger_ms),
            publish_queue: self.publish_queue,
            shard_inbox: self.shard_inbox,
            reject_unknown_symbols: self.reject_unknown_symbols,
            request_rate: self.request_rate,
            request_burst: self.request_burst,
            allowed_origins: self.allow_origin.clone(),
            auth: None,
            jwt: key.map(|key| JwtConfig {
                key,
                audience: self.jwt_audience.clone(),
                issuer: self.jwt_issuer.clone(),
            }),
            max_connections_per_user: self.max_connections_per_user,
            tls,
            synthetic_symbols: self.synthetic_symbols,
            synthetic_rate: self.synthetic_rate,
            feeds: self
                .feed
                .iter()
                .map(|url| RedisFeed::parse(url))
                .collect::<Result<_, _>>()?,
        })
    }
}

impl Loaded {
    /// Defines the file's groups on `b` (after the synthetic feed's, so a
    /// file group of the same name replaces one of those).
    ///
    /// # Errors
    /// A bad group name, symbol or prefix, named with its file and line.
    pub(crate) fn define_groups(&self, b: &Broadcaster) -> anyhow::Result<()> {
        for g in &self.groups {
            b.set_group_spec(&g.name, g.spec.clone()).map_err(|e| {
                let file = self.file.as_deref().unwrap_or("settings file".as_ref());
                anyhow::anyhow!("{}:{}: groups.{}: {e}", file.display(), g.line, g.name)
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Settings {
        let f = file::parse(text).unwrap();
        f.layer.resolve()
    }

    #[test]
    fn the_defaults_are_the_library_defaults() {
        let c = Settings::default().to_config().unwrap();
        assert_eq!(format!("{c:?}"), format!("{:?}", Config::default()));
    }

    #[test]
    fn the_example_file_claims_the_real_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tickcast.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let f = file::parse(&text).unwrap();
        assert!(f.groups.is_empty(), "its groups are commented out");
        assert_eq!(f.layer.resolve(), Settings::default());
        for spec in table::SPECS {
            let set = text
                .lines()
                .any(|l| l.starts_with(&format!("{} = ", spec.key)));
            let commented = text
                .lines()
                .any(|l| l.starts_with(&format!("# {} = ", spec.key)));
            assert!(set || commented, "{} is not in the example", spec.key);
            let has_default = Settings::default().shown(spec.key).is_some();
            assert_eq!(
                set, has_default,
                "{}: a setting with a default is set to it, one without is commented out",
                spec.key
            );
        }
    }

    #[test]
    fn cli_beats_env_beats_file_beats_default() {
        let dir = std::env::temp_dir().join(format!("tickcast-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.toml");
        std::fs::write(
            &path,
            "heartbeat_ms = 1000\nqueue_capacity = 100\nio_threads = 3\n",
        )
        .unwrap();
        let vars = |v: &[(&str, &str)]| -> Vec<(OsString, OsString)> {
            v.iter().map(|(k, v)| (k.into(), v.into())).collect()
        };
        let env = vars(&[
            ("TICKCAST_CONFIG", path.to_str().unwrap()),
            ("TICKCAST_HEARTBEAT_MS", "2000"),
            ("TICKCAST_QUEUE_CAPACITY", "200"),
        ]);
        let s = load(["tickcast", "--heartbeat-ms", "3000"], env.clone())
            .unwrap()
            .settings;
        assert_eq!(
            (s.heartbeat_ms, s.queue_capacity, s.io_threads, s.max_lag_ms),
            (3000, 200, 3, 5000)
        );
        let s = load(["tickcast"], env).unwrap().settings;
        assert_eq!((s.heartbeat_ms, s.queue_capacity), (2000, 200));
        let s = load(["tickcast", "--config", path.to_str().unwrap()], vars(&[]))
            .unwrap()
            .settings;
        assert_eq!((s.heartbeat_ms, s.queue_capacity), (1000, 100));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn contradicting_settings_are_named() {
        let err = |text: &str| settings(text).to_config().unwrap_err();
        let e = err("jwt_secret_file = \"a\"\njwt_public_key_file = \"b\"");
        assert!(e.contains("jwt_secret_file and jwt_public_key_file"), "{e}");
        assert!(err("tls_cert = \"c.pem\"").starts_with("tls_cert needs tls_key"));
        assert!(err("tls_key = \"k.pem\"").starts_with("tls_key needs tls_cert"));
        assert!(err("jwt_issuer = \"me\"").starts_with("jwt_issuer needs a JWT key"));
        let e = err("max_connections_per_user = 2");
        assert!(
            e.starts_with("max_connections_per_user needs a JWT key"),
            "{e}"
        );
    }

    #[test]
    fn jwt_and_tls_settings_reach_the_config() {
        let c = settings(
            "jwt_public_key_file = \"pub.pem\"\njwt_audience = \"feeds\"\n\
             max_connections_per_user = 3\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n\
             allow_origin = [\"https://a.example\"]\nmax_connections_per_ip = 9\n\
             request_rate = 7\nrequest_burst = 8\nno_pin = true\nclose_linger_ms = 300\n",
        )
        .to_config()
        .unwrap();
        assert_eq!(
            c.jwt,
            Some(JwtConfig {
                key: JwtKey::PublicKeyFile("pub.pem".into()),
                audience: Some("feeds".into()),
                issuer: None,
            })
        );
        assert_eq!(c.max_connections_per_user, 3);
        assert_eq!(
            c.tls,
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        assert_eq!(c.allowed_origins, ["https://a.example"]);
        assert_eq!(
            (c.max_connections_per_ip, c.request_rate, c.request_burst),
            (9, 7, 8)
        );
        assert!(!c.pin_threads);
        assert_eq!(c.close_linger, Duration::from_millis(300));
        let c = settings("jwt_secret_file = \"s\"").to_config().unwrap();
        assert_eq!(c.jwt.map(|j| j.key), Some(JwtKey::SecretFile("s".into())));
    }
}
