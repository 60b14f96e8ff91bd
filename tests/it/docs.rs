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
