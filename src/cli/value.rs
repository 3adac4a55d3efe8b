//! [`SettingValue`]: how a setting's type is read from the text of a flag
//! or an environment variable, and shown in `--help`. The settings file
//! reads the same types through serde (`Deserialize`), so a value means
//! the same wherever it is given.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// How a setting is written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `--key VALUE`.
    Value,
    /// `--key` alone means true; `--key=false` gives false.
    Switch,
    /// `--key A --key B`, or `--key A,B`; `A,B` in the environment.
    List,
}

/// A type a setting may have.
pub(crate) trait SettingValue: Sized + DeserializeOwned {
    /// How the flag is written.
    const FORM: Form;

    /// Reads the text of one flag or environment variable.
    fn parse(text: &str) -> Result<Self, String>;

    /// Reads every occurrence of a flag (only lists take more than one).
    fn parse_all(texts: &[&str]) -> Result<Self, String> {
        Self::parse(texts.last().copied().unwrap_or_default())
    }

    /// The value as `--help` shows it; `None` when there is nothing to
    /// show (unset, empty).
    fn show(&self) -> Option<String>;
}

/// Types read with `FromStr` and shown with `Display`.
macro_rules! from_str_value {
    ($($t:ty),*) => {$(
        impl SettingValue for $t {
            const FORM: Form = Form::Value;
            fn parse(text: &str) -> Result<Self, String> {
                text.trim().parse().map_err(|e| format!("{e}"))
            }
            fn show(&self) -> Option<String> {
                Some(self.to_string())
            }
        }
    )*};
}
from_str_value!(u32, u64, usize, SocketAddr);

impl SettingValue for String {
    const FORM: Form = Form::Value;
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
    fn show(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl SettingValue for PathBuf {
    const FORM: Form = Form::Value;
    fn parse(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }
    fn show(&self) -> Option<String> {
        Some(self.display().to_string())
    }
}

impl SettingValue for bool {
    const FORM: Form = Form::Switch;
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected true or false".to_string()),
        }
    }
    fn show(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl SettingValue for Vec<String> {
    const FORM: Form = Form::List;
    /// Comma-separated; blanks around items are dropped, and so are
    /// empty items (an empty text is an empty list).
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect())
    }
    fn parse_all(texts: &[&str]) -> Result<Self, String> {
        let mut all = Vec::new();
        for t in texts {
            all.extend(Self::parse(t)?);
        }
        Ok(all)
    }
    fn show(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.join(","))
    }
}

/// An optional setting: an empty text leaves it unset.
impl<T: SettingValue> SettingValue for Option<T> {
    const FORM: Form = T::FORM;
    fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            Ok(None)
        } else {
            T::parse(text).map(Some)
        }
    }
    fn show(&self) -> Option<String> {
        self.as_ref().and_then(T::show)
    }
}

/// How log lines are written (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl SettingValue for LogFormat {
    const FORM: Form = Form::Value;
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".to_string()),
        }
    }
    fn show(&self) -> Option<String> {
        Some(
            match self {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
            .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_read_as_their_types() {
        assert_eq!(u64::parse(" 3000 "), Ok(3000));
        assert!(u64::parse("fast").is_err());
        assert!(usize::parse("-1").is_err());
        assert_eq!(bool::parse("false"), Ok(false));
        assert!(bool::parse("yes").is_err());
        assert_eq!(
            Vec::<String>::parse_all(&["a, b", "", "c"]),
            Ok(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(Option::<PathBuf>::parse(""), Ok(None));
        assert_eq!(LogFormat::parse("json"), Ok(LogFormat::Json));
        assert!(LogFormat::parse("xml").is_err());
        assert_eq!(
            "127.0.0.1:8080"
                .parse::<SocketAddr>()
                .ok()
                .and_then(|a| a.show()),
            Some("127.0.0.1:8080".into())
        );
    }
}
