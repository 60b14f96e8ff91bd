//! `FERRY_<SECTION>__<KEY>` environment overrides, applied to the file's table before it is
//! read, so a value from the environment is checked exactly like one from the file.

use toml::{Table, Value};

use super::reader::KeyError;

/// The names (never the values) of the variables that override the file, for `Config::source`.
pub(super) fn override_names(env: &[(String, String)]) -> Vec<&str> {
    env.iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| name.starts_with("FERRY_") && (name.contains("__") || *name == "FERRY_DATA_DIR"))
        .collect()
}

/// `FERRY_SFTP__BIND=…` sets `sftp.bind`; `FERRY_DATA_DIR` sets `data_dir`. Values that read as
/// TOML literals (`true`, `30`, `["a"]`) keep their type; everything else is a string.
pub(super) fn apply(
    table: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
    errors: &mut Vec<KeyError>,
) {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("FERRY_") else {
            continue;
        };
        let value = toml::from_str::<Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(Value::String(raw.clone()));
        if rest == "DATA_DIR" {
            table.insert("data_dir".into(), Value::String(raw));
            continue;
        }
        // `FERRY_AUDIT__FILE__ENABLED` sets `audit.file.enabled`: each `__` goes one table down.
        let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
        let Some((key, tables)) = path.split_last().filter(|(_, tables)| !tables.is_empty()) else {
            continue;
        };
        if let Err(depth) = insert_at(table, tables, key, value) {
            let blocked = tables[..=depth].join(".");
            errors.push(KeyError {
                key: blocked.clone(),
                message: format!("{name} needs `{blocked}` to be a table"),
            });
        }
    }
}

/// Sets `tables.….key`, creating missing tables; `Err(i)` when `tables[i]` is not a table.
fn insert_at(table: &mut Table, tables: &[String], key: &str, value: Value) -> Result<(), usize> {
    let Some((first, rest)) = tables.split_first() else {
        table.insert(key.to_string(), value);
        return Ok(());
    };
    match table.entry(first.clone()).or_insert_with(|| Value::Table(Table::new())) {
        Value::Table(inner) => insert_at(inner, rest, key, value).map_err(|depth| depth + 1),
        _ => Err(0),
    }
}
