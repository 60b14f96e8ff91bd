//! Keeps the dependency direction of ARCHITECTURE.md honest: scans `src/` for `crate::<room>`
//! uses and fails on an edge the DAG does not allow.

use std::collections::BTreeSet;
use std::path::Path;

/// Rooms every room may use.
/// `clients` (outbound TLS and HTTP clients) uses none of our rooms, so `auth`, `audit` and
/// `events` may all build their clients the same way.
const LEAVES: &[&str] = &["config", "telemetry", "types", "clients"];

fn allowed(room: &str) -> Option<&'static [&'static str]> {
    Some(match room {
        "main" | "server" | "lib" => return None, // composition roots use anything
        "protocols" => &["session", "admin", "net"],
        "events" => &["session", "audit", "state"],
        "session" => &["vfs", "auth", "audit", "state"],
        "admin" => &["auth", "audit", "state"],
        "vfs" => &["storage"],
        "auth" | "audit" | "net" => &["state"],
        "state" | "storage" | "config" | "telemetry" | "types" | "clients" => &[],
        other => panic!("room `{other}` is not in the DAG; add it to ARCHITECTURE.md and here"),
    })
}

fn room_of(path: &Path, src: &Path) -> String {
    let relative = path.strip_prefix(src).expect("under src");
    let first = relative.components().next().expect("non-empty").as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            visit(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn dependencies_point_down_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    visit(&src, &mut files);
    let mut violations = BTreeSet::new();
    for file in &files {
        let room = room_of(file, &src);
        let Some(allowed) = allowed(&room) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable");
        for (i, _) in text.match_indices("crate::") {
            let target: String =
                text[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if target.is_empty() || target == room || LEAVES.contains(&target.as_str()) {
                continue;
            }
            if !allowed.contains(&target.as_str()) {
                violations.insert(format!("{} ({room}) uses crate::{target}", file.display()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.into_iter().collect::<Vec<_>>().join("\n")
    );
    assert!(files.len() > 20, "scanned the source tree");
}

/// Every listener accepts through `net` (limits, bans and, next, the PROXY protocol live in
/// that one place): no TCP accept anywhere else. A call is recognised by its receiver's name
/// (`listener.accept()`, `self.listener.accept()`, ...) or by naming tokio's accept outright.
#[test]
fn connections_are_accepted_only_in_net() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    visit(&src, &mut files);
    let mut found = BTreeSet::new();
    for file in &files {
        if file.strip_prefix(&src).is_ok_and(|p| p.starts_with("net")) {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("readable");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let named =
                ["TcpListener::accept", "poll_accept", "TcpListenerStream"].iter().any(|n| code.contains(n));
            let on_listener = code.match_indices(".accept()").any(|(at, _)| {
                let receiver: String = code[..at]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                    .collect();
                receiver.to_ascii_lowercase().contains("renetsil") // "listener", read backwards
            });
            if named || on_listener {
                found.insert(format!("{}:{}: {}", file.display(), number + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "accept outside src/net (use net::serve or net::accept_from):\n{}", {
        found.into_iter().collect::<Vec<_>>().join("\n")
    });
}
