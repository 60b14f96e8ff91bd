//! Properties of the configuration loader on generated input (proptest; case count from
//! `PROPTEST_CASES`): no file, value or environment variable panics it, and a bad value is
//! reported under the key it was given for, so `ferry config check` points at the right line.
//!
//! The keys come from config/ferry.toml, which lists every key with its default, so a key added
//! there is covered here without touching this file.

use std::io::Write as _;

use proptest::prelude::*;
use toml::{Table, Value};

use super::{Config, ConfigError};

const REFERENCE: &str = include_str!("../../config/ferry.toml");

fn reference() -> Table {
    REFERENCE.parse().unwrap_or_default()
}

/// Dotted paths of every table and leaf in `table`, with the value found there.
fn paths(table: &Table, prefix: &str, out: &mut Vec<(Vec<String>, Value)>) {
    for (key, value) in table {
        let mut path: Vec<String> = prefix.split('.').filter(|s| !s.is_empty()).map(String::from).collect();
        path.push(key.clone());
        out.push((path.clone(), value.clone()));
        if let Value::Table(inner) = value {
            paths(inner, &path.join("."), out);
        }
    }
}

fn reference_paths() -> Vec<(Vec<String>, Value)> {
    let mut out = Vec::new();
    paths(&reference(), "", &mut out);
    out
}

/// Sets `path` in `table` to `value` (the path exists in the reference).
fn set(table: &mut Table, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut current = table;
    for parent in parents {
        let Some(Value::Table(inner)) = current.get_mut(parent) else { return };
        current = inner;
    }
    current.insert(last.clone(), value);
}

/// Values no key accepts: they must always be refused under the key they were given for.
fn never_valid() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<f64>().prop_map(Value::Float),
        Just(Value::Datetime("1979-05-27T07:32:00Z".parse().unwrap_or_else(|_| unreachable!()))),
        "[a-z]{1,8}".prop_map(|k| {
            let mut t = Table::new();
            t.insert(format!("zz_garbage_{k}"), Value::Integer(1));
            Value::Table(t)
        }),
        prop::collection::vec(any::<i64>().prop_map(Value::Integer), 1..4).prop_map(Value::Array),
        prop::collection::vec(any::<bool>().prop_map(Value::Boolean), 1..3).prop_map(Value::Array),
    ]
}

/// Values of an ordinary shape but arbitrary content: accepted, or refused under their key.
fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        "\\PC{0,24}".prop_map(Value::String),
        "[0-9]{0,6}[a-zA-Z]{0,4}".prop_map(Value::String),
        Just(Value::String(String::new())),
        Just(Value::String("-1s".into())),
        Just(Value::String("99999999999999999999GiB".into())),
        Just(Value::String("18446744073709551615d".into())),
        Just(Value::String("[::1]:99999".into())),
        any::<i64>().prop_map(Value::Integer),
        prop_oneof![Just(0i64), Just(-1), Just(i64::MAX), Just(i64::MIN)].prop_map(Value::Integer),
        any::<bool>().prop_map(Value::Boolean),
        prop::collection::vec("\\PC{0,8}".prop_map(Value::String), 0..3).prop_map(Value::Array),
        Just(Value::Table(Table::new())),
    ]
}

/// True when `errors` point at `path`: the key itself, an element or key below it.
fn names(errors: &[super::KeyError], dotted: &str) -> bool {
    errors.iter().any(|e| {
        e.key == dotted
            || e.key.starts_with(&format!("{dotted}."))
            || e.key.starts_with(&format!("{dotted}["))
            || e.message.contains(dotted.rsplit('.').next().unwrap_or(dotted))
    })
}

fn load(table: Table) -> Result<Config, ConfigError> {
    Config::from_table(table, Vec::new())
}

proptest! {
    /// The reference file itself loads; every key given a value no key accepts is refused,
    /// and the error names that key.
    #[test]
    fn impossible_values_are_refused_by_name(pick in any::<prop::sample::Index>(), garbage in never_valid()) {
        let targets = reference_paths();
        let (path, default) = &targets[pick.index(targets.len())];
        // A table where the key takes a table is no longer impossible (an unknown key inside
        // it is, and is named below the key).
        let dotted = path.join(".");
        let mut table = reference();
        set(&mut table, path, garbage.clone());
        match load(table) {
            Ok(_) => prop_assert!(false, "{dotted} = {garbage} (default {default}) was accepted"),
            Err(ConfigError::Invalid(errors)) => prop_assert!(names(&errors, &dotted), "{dotted} = {garbage}: errors {errors:?} do not name it"),
            Err(other) => prop_assert!(false, "{dotted}: unexpected {other}"),
        }
    }

    /// Any value of an ordinary shape at any key: loaded, or refused naming that key; never
    /// a panic, never an error about some other key only.
    #[test]
    fn odd_values_are_accepted_or_refused_by_name(pick in any::<prop::sample::Index>(), value in odd_value()) {
        let targets = reference_paths();
        let (path, _) = &targets[pick.index(targets.len())];
        let dotted = path.join(".");
        let mut table = reference();
        set(&mut table, path, value.clone());
        match load(table) {
            Ok(_) => {}
            Err(ConfigError::Invalid(errors)) => prop_assert!(names(&errors, &dotted), "{dotted} = {value}: errors {errors:?} do not name it"),
            Err(other) => prop_assert!(false, "{dotted}: unexpected {other}"),
        }
    }

    /// The same through the environment (`FERRY_SECTION__KEY=value`), where every value
    /// arrives as text: loaded, or refused naming the key.
    #[test]
    fn environment_overrides_are_accepted_or_refused_by_name(pick in any::<prop::sample::Index>(), raw in "\\PC{0,24}|[0-9]{1,25}|\\[[0-9a-z\", ]{0,10}\\]|\\{[a-z =0-9]{0,10}\\}") {
        let targets: Vec<_> = reference_paths().into_iter().filter(|(p, v)| p.len() >= 2 && !v.is_table()).collect();
        let (path, _) = &targets[pick.index(targets.len())];
        let dotted = path.join(".");
        let name = format!("FERRY_{}", path.iter().map(|p| p.to_uppercase()).collect::<Vec<_>>().join("__"));
        match Config::from_table(reference(), vec![(name.clone(), raw.clone())]) {
            Ok(_) => {}
            Err(ConfigError::Invalid(errors)) => prop_assert!(names(&errors, &dotted), "{name}={raw:?}: errors {errors:?} do not name {dotted}"),
            Err(other) => prop_assert!(false, "{name}: unexpected {other}"),
        }
    }

    /// Arbitrary environment variables: never a panic.
    #[test]
    fn any_environment_never_panics(vars in prop::collection::vec(("FERRY_[A-Z_]{0,20}|[A-Z_]{0,8}", "\\PC{0,20}"), 0..6)) {
        let _ = Config::from_table(reference(), vars);
    }

    /// Arbitrary file contents, and the reference file with a line dropped or a byte changed:
    /// an error (syntax or key) or a config, never a panic.
    #[test]
    fn any_file_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        drop_line in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let path = dir.path().join("ferry.toml");
        let lines: Vec<&str> = REFERENCE.lines().collect();
        let skip = drop_line.index(lines.len());
        let without_line: String = lines.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, l)| format!("{l}\n")).collect();
        let mut changed = REFERENCE.as_bytes().to_vec();
        let i = at.index(changed.len());
        changed[i] = byte;
        for contents in [bytes, without_line.into_bytes(), changed] {
            let mut file = std::fs::File::create(&path).map_err(|e| TestCaseError::fail(e.to_string()))?;
            file.write_all(&contents).map_err(|e| TestCaseError::fail(e.to_string()))?;
            drop(file);
            match Config::load(Some(&path), Vec::new()) {
                Ok(_) | Err(ConfigError::Syntax { .. } | ConfigError::Invalid(_)) => {}
                Err(ConfigError::Read { source, .. }) => {
                    // Only a file that is not UTF-8 may fail to read.
                    prop_assert!(std::str::from_utf8(&contents).is_err(), "read error {source}");
                }
            }
        }
    }
}

#[test]
fn the_reference_file_loads() {
    let config = load(reference());
    assert!(config.is_ok(), "config/ferry.toml: {:?}", config.err().map(|e| e.to_string()));
    assert!(reference_paths().len() > 100, "config/ferry.toml lists the keys");
}

/// config/ferry.toml documents the defaults: loading it gives exactly the configuration no file
/// gives. The whole `Config` is compared through its Debug text (every field; a secret shows
/// only whether it is set, and the reference sets none).
#[test]
fn the_reference_file_is_exactly_the_built_in_defaults() {
    let from_file = format!("{:#?}", load(reference()).map_err(|e| e.to_string()));
    let built_in = format!("{:#?}", load(Table::new()).map_err(|e| e.to_string()));
    let differences: Vec<String> = from_file
        .lines()
        .zip(built_in.lines())
        .filter(|(file, default)| file != default)
        .map(|(file, default)| {
            format!("config/ferry.toml gives `{}`, the default is `{}`", file.trim(), default.trim())
        })
        .collect();
    assert!(differences.is_empty(), "{differences:#?}");
    assert_eq!(from_file.lines().count(), built_in.lines().count(), "{from_file}\n---\n{built_in}");
    assert!(from_file.contains("max_attempts"), "{from_file}");
}
