//! The protocol reference (`PROTOCOL.md`) checked against the code: every request and frame
//! type the registered families declare is documented, and every documented one exists.

use std::collections::BTreeSet;

use super::family::Endpoint;

/// The `type` names in the tables under "Client → server" and "Server → client" headings.
fn documented() -> (BTreeSet<String>, BTreeSet<String>) {
    let doc = include_str!("PROTOCOL.md");
    let (mut client, mut server) = (BTreeSet::new(), BTreeSet::new());
    let mut section: Option<bool> = None; // Some(true): client → server
    let mut in_type_table = false;
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            section = if h.contains("Client → server") {
                Some(true)
            } else if h.contains("Server → client") {
                Some(false)
            } else {
                None
            };
            in_type_table = false;
            continue;
        }
        let Some(row) = line.strip_prefix('|') else {
            in_type_table = false;
            continue;
        };
        let first = row.split('|').next().unwrap_or("").trim();
        if first == "type" {
            in_type_table = true;
            continue;
        }
        if !in_type_table || first.starts_with("---") {
            continue;
        }
        let name = first.trim_matches('`').to_string();
        match section {
            Some(true) => client.insert(name),
            Some(false) => server.insert(name),
            None => panic!("a type table outside a direction heading: {line}"),
        };
    }
    (client, server)
}

#[test]
fn every_frame_type_is_documented_and_every_documented_type_exists() {
    let features = crate::live::features();
    let endpoint = Endpoint::json(features.families);
    let code_client: BTreeSet<String> = endpoint
        .families
        .request_types()
        .map(String::from)
        .collect();
    let code_server: BTreeSet<String> = endpoint.families.frame_types().map(String::from).collect();
    let (doc_client, doc_server) = documented();
    assert!(
        code_client.len() >= 16 && code_server.len() >= 20,
        "the lists were read"
    );
    assert_eq!(
        code_client.difference(&doc_client).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "client requests missing from PROTOCOL.md"
    );
    assert_eq!(
        doc_client.difference(&code_client).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "client requests in PROTOCOL.md that no family takes"
    );
    assert_eq!(
        code_server.difference(&doc_server).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "server frames missing from PROTOCOL.md"
    );
    assert_eq!(
        doc_server.difference(&code_server).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "server frames in PROTOCOL.md that no family sends"
    );
}

#[test]
fn each_request_type_routes_to_exactly_one_family() {
    let endpoint = Endpoint::json(crate::live::features().families);
    let names: Vec<&str> = endpoint.families.names().collect();
    assert_eq!(
        names,
        [
            "core", "user", "prefs", "study", "chat", "dm", "doc", "video"
        ]
    );
    for ty in endpoint.families.request_types() {
        let family = names[endpoint.families.route(ty).expect("routed")];
        let prefix = ty.split('.').next().unwrap();
        assert!(
            family == prefix || (family == "core" && ty == "ping"),
            "{ty} is handled by {family}"
        );
    }
    assert_eq!(endpoint.families.route("launch"), None);
}
