//! Typed reads out of a TOML table that name every bad key by its dotted path and keep going,
//! so `ferry config check` can print every error at once (linkerd's `parse_config` style).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::{Table, Value};

use super::units::{parse_duration, parse_size};

/// One configuration error: the dotted key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Reads one section. Every key taken is removed; what is left at `finish` is unknown.
pub struct Reader<'e> {
    prefix: String,
    table: Table,
    errors: &'e mut Vec<KeyError>,
}

impl<'e> Reader<'e> {
    pub fn new(prefix: &str, table: Table, errors: &'e mut Vec<KeyError>) -> Self {
        Self { prefix: prefix.to_string(), table, errors }
    }

    /// Takes a sub-table as its own reader's input (missing means empty).
    pub fn section(&mut self, key: &str) -> Table {
        match self.table.remove(key) {
            None => Table::new(),
            Some(Value::Table(table)) => table,
            Some(other) => {
                self.fail(key, format!("expected a table, found {}", other.type_str()));
                Table::new()
            }
        }
    }

    /// A reader for the sub-table `key` (missing means empty), naming its keys `prefix.key.…` and
    /// reporting into the same error list.
    pub fn nested(&mut self, key: &str) -> Reader<'_> {
        let table = self.section(key);
        let dotted = self.dotted(key);
        Reader::new(&dotted, table, self.errors)
    }

    /// Whether the section sets `key` (for a deprecated alias that yields to its new name).
    pub fn contains(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Takes a key's raw value, for keys that accept more than one shape.
    pub fn value(&mut self, key: &str) -> Option<Value> {
        self.table.remove(key)
    }

    /// The keys still unread, for sections whose keys are names (`[storages.NAME]`).
    pub fn keys(&self) -> Vec<String> {
        self.table.keys().cloned().collect()
    }

    /// Lends the error list to a nested reader.
    pub fn errors(&mut self) -> &mut Vec<KeyError> {
        self.errors
    }

    pub fn dotted(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_string() } else { format!("{}.{key}", self.prefix) }
    }

    pub fn fail(&mut self, key: &str, message: impl Into<String>) {
        let key = self.dotted(key);
        self.errors.push(KeyError { key, message: message.into() });
    }

    pub fn bool(&mut self, key: &str, default: bool) -> bool {
        match self.table.remove(key) {
            None => default,
            Some(Value::Boolean(b)) => b,
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(other) => {
                self.fail(key, format!("expected true or false, found {}", other.type_str()));
                default
            }
        }
    }

    pub fn string(&mut self, key: &str, default: &str) -> String {
        match self.table.remove(key) {
            None => default.to_string(),
            Some(Value::String(s)) => s,
            Some(other) => {
                self.fail(key, format!("expected a string, found {}", other.type_str()));
                default.to_string()
            }
        }
    }

    pub fn path(&mut self, key: &str, default: PathBuf) -> PathBuf {
        match self.table.remove(key) {
            None => default,
            Some(Value::String(s)) if s.is_empty() => default,
            Some(Value::String(s)) => PathBuf::from(s),
            Some(other) => {
                self.fail(key, format!("expected a path string, found {}", other.type_str()));
                default
            }
        }
    }

    pub fn strings(&mut self, key: &str, default: &[&str]) -> Vec<String> {
        let fallback = || default.iter().map(|s| s.to_string()).collect();
        match self.table.remove(key) {
            None => fallback(),
            // An env override gives one comma-separated string.
            Some(Value::String(s)) => {
                s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
            }
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s),
                        other => self.fail(
                            &format!("{key}[{i}]"),
                            format!("expected a string, found {}", other.type_str()),
                        ),
                    }
                }
                out
            }
            Some(other) => {
                self.fail(key, format!("expected a list of strings, found {}", other.type_str()));
                fallback()
            }
        }
    }

    pub fn integer(&mut self, key: &str, default: u64, min: u64, max: u64) -> u64 {
        let value = match self.table.remove(key) {
            None => return default,
            Some(Value::Integer(i)) => u64::try_from(i).ok(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(other) => {
                self.fail(key, format!("expected an integer, found {}", other.type_str()));
                return default;
            }
        };
        match value {
            Some(v) if (min..=max).contains(&v) => v,
            _ => {
                self.fail(key, format!("expected an integer from {min} to {max}"));
                default
            }
        }
    }

    pub fn duration(&mut self, key: &str, default: Duration) -> Duration {
        match self.table.remove(key) {
            None => default,
            Some(Value::String(s)) => parse_duration(&s).unwrap_or_else(|e| {
                self.fail(key, e);
                default
            }),
            Some(Value::Integer(secs)) if secs >= 0 => Duration::from_secs(secs.unsigned_abs()),
            Some(other) => {
                self.fail(key, format!("expected a duration such as \"30s\", found {}", other.type_str()));
                default
            }
        }
    }

    /// A duration where "0" or "off" disables the feature.
    pub fn optional_duration(&mut self, key: &str, default: Option<Duration>) -> Option<Duration> {
        match self.table.get(key) {
            None => default,
            Some(Value::String(s)) if s == "off" || s == "0" => {
                self.table.remove(key);
                None
            }
            Some(Value::Integer(0)) => {
                self.table.remove(key);
                None
            }
            Some(_) => Some(self.duration(key, default.unwrap_or_default())),
        }
    }

    pub fn size(&mut self, key: &str, default: u64, min: u64, max: u64) -> u64 {
        let value = match self.table.remove(key) {
            None => return default,
            Some(Value::String(s)) => match parse_size(&s) {
                Ok(v) => v,
                Err(e) => {
                    self.fail(key, e);
                    return default;
                }
            },
            Some(Value::Integer(i)) if i >= 0 => i.unsigned_abs(),
            Some(other) => {
                self.fail(key, format!("expected a size such as \"64MiB\", found {}", other.type_str()));
                return default;
            }
        };
        if (min..=max).contains(&value) {
            value
        } else {
            self.fail(key, format!("expected a size from {min} to {max} bytes"));
            default
        }
    }

    pub fn socket_addr(&mut self, key: &str, default: &str) -> SocketAddr {
        let raw = self.string(key, default);
        raw.parse().unwrap_or_else(|_| {
            self.fail(
                key,
                format!("invalid socket address `{raw}` (expected e.g. \"0.0.0.0:2222\" or \"[::]:2222\")"),
            );
            default.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
        })
    }

    /// An enum-valued key: one of `choices` (its name in the file, its value), `default` when
    /// missing. Anything else is reported with every accepted name, so no section hand-writes
    /// its own "expected X or Y".
    pub fn choice<T: Copy>(&mut self, key: &str, default: T, choices: &[(&str, T)]) -> T {
        self.choice_because(key, default, choices, "")
    }

    /// `choice`, with a reason appended to the error (`(older versions are refused)`).
    pub fn choice_because<T: Copy>(
        &mut self,
        key: &str,
        default: T,
        choices: &[(&str, T)],
        because: &str,
    ) -> T {
        let raw = match self.table.remove(key) {
            None => return default,
            Some(Value::String(s)) => s,
            Some(other) => {
                self.fail(key, format!("expected a string, found {}", other.type_str()));
                return default;
            }
        };
        if let Some((_, value)) = choices.iter().find(|(name, _)| *name == raw) {
            return *value;
        }
        let names: Vec<String> = choices
            .iter()
            .map(|(name, _)| if name.is_empty() { "\"\" (none)".to_string() } else { format!("\"{name}\"") })
            .collect();
        let listed = match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        let because = if because.is_empty() { String::new() } else { format!(" ({because})") };
        self.fail(key, format!("expected {listed}{because}, found `{raw}`"));
        default
    }

    /// A path where "" means none.
    pub fn optional_path(&mut self, key: &str) -> Option<PathBuf> {
        let path = self.path(key, PathBuf::new());
        (!path.as_os_str().is_empty()).then_some(path)
    }

    /// A string where "" means none.
    pub fn optional_string(&mut self, key: &str) -> Option<String> {
        Some(self.string(key, "")).filter(|s| !s.is_empty())
    }

    /// A secret where "" means none.
    pub fn optional_secret(&mut self, key: &str) -> Option<crate::types::Secret<String>> {
        self.optional_string(key).map(crate::types::Secret::new)
    }

    /// A duration that must be more than zero (a zero timeout would close every connection).
    pub fn positive_duration(&mut self, key: &str, default: Duration) -> Duration {
        let value = self.duration(key, default);
        if value.is_zero() {
            self.fail(key, "must be more than 0s");
            return default;
        }
        value
    }

    /// Reports every key nobody asked for.
    pub fn finish(self) {
        for key in self.table.keys() {
            let key = if self.prefix.is_empty() { key.clone() } else { format!("{}.{key}", self.prefix) };
            self.errors.push(KeyError { key, message: "unknown key".to_string() });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_reported_with_its_dotted_key() {
        let table: Table =
            toml::from_str("bind = \":22x\"\nidle_timeout = \"5 fortnights\"\ncolour = \"blue\"\nmax = 0\n")
                .unwrap();
        let mut errors = Vec::new();
        let mut r = Reader::new("sftp", table, &mut errors);
        r.socket_addr("bind", "127.0.0.1:2222");
        r.duration("idle_timeout", Duration::from_secs(1));
        r.integer("max", 1, 1, 10);
        r.finish();
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["sftp.bind", "sftp.idle_timeout", "sftp.max", "sftp.colour"]);
        assert!(errors[0].message.contains(":22x"));
        assert_eq!(errors[3].message, "unknown key");
    }

    #[test]
    fn a_choice_names_the_key_and_every_accepted_value() {
        let table: Table = toml::from_str("a = \"json\"\nb = \"xml\"\nc = \"md5\"\nd = 3\n").unwrap();
        let mut errors = Vec::new();
        let mut r = Reader::new("log", table, &mut errors);
        assert_eq!(r.choice("a", 0, &[("text", 0), ("json", 1)]), 1);
        assert_eq!(r.choice("b", 0, &[("text", 0), ("json", 1), ("csv", 2)]), 0);
        assert!(!r.choice("c", false, &[("sha256", true), ("", false)]));
        assert_eq!(r.choice_because("d", 7, &[("1.2", 7)], "why"), 7);
        assert_eq!(r.choice("missing", 9, &[("x", 1)]), 9);
        r.finish();
        let messages: Vec<_> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "log.b: expected \"text\", \"json\" or \"csv\", found `xml`",
                "log.c: expected \"sha256\" or \"\" (none), found `md5`",
                "log.d: expected a string, found integer",
            ]
        );
    }
}
