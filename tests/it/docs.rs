//! Documentation that must match the code.

use ferry::audit::EventKind;

#[test]
fn audit_event_catalogue_matches_the_document() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/audit-events.md"))
        .expect("docs/audit-events.md exists");
    let documented: Vec<(u32, String)> = doc
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let id = cells.get(1)?.parse::<u32>().ok()?;
            Some((id, cells.get(2)?.trim_matches('`').to_string()))
        })
        .collect();
    let code: Vec<(u32, String)> = EventKind::ALL.iter().map(|k| (k.id(), k.name().to_string())).collect();
    assert_eq!(documented, code, "docs/audit-events.md and src/audit/event.rs disagree");
}

#[test]
fn every_event_has_a_documented_example_that_matches_it() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/audit-events.md")).unwrap();
    let mut examples = std::collections::BTreeMap::new();
    let mut heading: Option<(u32, String)> = None;
    let mut in_json = false;
    for line in doc.lines() {
        if let Some(rest) = line.strip_prefix("### ") {
            let mut words = rest.split_whitespace();
            heading = words.next().and_then(|id| id.parse().ok()).zip(words.next().map(String::from));
        } else if line.trim() == "```json" {
            in_json = true;
        } else if line.trim() == "```" {
            in_json = false;
        } else if in_json && let Some((id, name)) = &heading {
            let record: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("example of {id} {name} is not one JSON line: {e}"));
            assert_eq!(record["id"], *id, "example under {id} {name}");
            assert_eq!(record["event"], name.as_str(), "example under {id} {name}");
            for field in ["ts", "node", "outcome", "chain_seq", "prev", "hash"] {
                assert!(!record[field].is_null(), "example of {name} lacks `{field}`");
            }
            examples.insert(*id, name.clone());
        }
    }
    for kind in EventKind::ALL {
        assert_eq!(
            examples.get(&kind.id()).map(String::as_str),
            Some(kind.name()),
            "no example for {}",
            kind.name()
        );
    }
}
