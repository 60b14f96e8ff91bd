//! Human units in configuration: durations ("500ms", "30s", "10m", "2h", "1d") and byte sizes
//! ("4096", "64KiB", "8MiB", "1GiB", "10MB"). Errors say what was expected.

use std::time::Duration;

pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{raw}` is not a duration such as \"30s\", \"10m\" or \"500ms\""))?;
    let millis = match unit.trim() {
        "ms" => Some(value),
        "s" | "" => value.checked_mul(1_000),
        "m" | "min" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        "d" => value.checked_mul(86_400_000),
        other => {
            return Err(format!("unknown duration unit `{other}` in `{raw}` (use ms, s, m, h or d)"));
        }
    };
    millis.map(Duration::from_millis).ok_or_else(|| format!("`{raw}` is too long a duration"))
}

pub fn parse_size(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{raw}` is not a size such as \"64KiB\", \"8MiB\" or \"1GiB\""))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!("unknown size unit `{other}` in `{raw}` (use B, KiB, MiB, GiB, KB, MB, GB)"));
        }
    };
    value.checked_mul(factor).ok_or_else(|| format!("`{raw}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("5 fortnights").unwrap_err().contains("unit"));
    }

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }
}
