//! Tests of the record of processing: it follows the matrix (a flipped cell changes it), its
//! purposes pass the gate, tenants and regions stay apart, and both renderings hold up.

use super::*;
use sealpost_domain::access::{decide, Availability, Category, Principal, PrincipalKind, Purpose};
use sealpost_domain::ids::BusinessId;

fn tenant(id: &str, name: &str, phone: &str, regions: &[&str], host: &str) -> TenantInput {
    TenantInput {
        business_id: id.to_owned(),
        name: name.to_owned(),
        phone_number_ids: vec![phone.to_owned()],
        regions: regions.iter().map(|r| (*r).to_owned()).collect(),
        webhook_hosts: vec![host.to_owned()],
    }
}

fn input() -> RopaInput {
    RopaInput {
        generated_at: 1_700_000_000_000,
        processor_name: "Sealpost (self-hosted)".to_owned(),
        retention_days: 30,
        epoch_hours: 1,
        billing_retention_days: 400,
        statistics_min_group: 5,
        store: "sqlite (embedded)".to_owned(),
        stores: vec![
            StoreRecord {
                region: None,
                location: "/srv/sealpost".to_owned(),
                holds: "the home store's rows".to_owned(),
                checkpoint: None,
            },
            StoreRecord {
                region: Some("DE".to_owned()),
                location: "/srv/sealpost/regions/DE".to_owned(),
                holds: "DE's keys".to_owned(),
                checkpoint: Some(crate::log::Checkpoint {
                    origin: "sealpost/audit/v1/DE".to_owned(),
                    size: 7,
                    root: "ab".repeat(32),
                    signed_at: 1_700_000_000_000,
                    public_key: "cd".repeat(32),
                    signature: "ef".repeat(64),
                    ..Default::default()
                }),
            },
        ],
        root_key_source: "key file in the data directory (0600)".to_owned(),
        tenants: vec![
            tenant(
                "111111111111111",
                "Alpha Bakery",
                "555000111",
                &["EU", "de"],
                "hooks.alpha.example",
            ),
            tenant(
                "222222222222222",
                "Beta Garage",
                "555000222",
                &["NA", "GB"],
                "hooks.beta.example",
            ),
        ],
    }
}

fn record(ropa: &Ropa, category: Category) -> &CategoryRecord {
    ropa.processor
        .categories
        .iter()
        .find(|c| c.category == category)
        .expect("every matrix category has a record")
}

#[test]
fn every_matrix_category_appears_exactly_once() {
    let ropa = build(&input());
    for category in Category::ALL {
        let n = ropa
            .processor
            .categories
            .iter()
            .filter(|c| c.category == category)
            .count();
        assert_eq!(n, 1, "{category:?}");
    }
    assert_eq!(ropa.processor.categories.len(), MATRIX.len());
}

#[test]
fn message_content_goes_to_processor_and_own_business_only() {
    let ropa = build(&input());
    let content = record(&ropa, Category::MessageContent);
    let recipients: Vec<(PrincipalKind, &str, bool)> = content
        .recipients
        .iter()
        .map(|r| (r.kind, r.label.as_str(), r.own_only))
        .collect();
    assert_eq!(
        recipients,
        vec![
            (
                PrincipalKind::Processor,
                PrincipalKind::Processor.label(),
                false
            ),
            (PrincipalKind::Business, "business (own data)", true),
        ]
    );
    assert!(!content.purposes.contains(&Purpose::Advertising));
    assert!(!content.purposes.contains(&Purpose::Analytics));
    assert!(!content.survives_shredding);
    assert!(content.retention.contains("30 days"));
}

#[test]
fn flipping_one_matrix_cell_changes_the_recipients() {
    let col = PrincipalKind::ALL
        .iter()
        .position(|k| *k == PrincipalKind::Operator)
        .expect("operator is a column");
    let mut matrix = MATRIX;
    let row = matrix
        .iter_mut()
        .find(|r| r.category == Category::MessageContent)
        .expect("message content is a row");
    assert_eq!(row.cells[col], Availability::No);
    row.cells[col] = Availability::Yes;

    let before = build(&input());
    let after = build_with(&matrix, &input());
    assert_ne!(before, after);
    let content = record(&after, Category::MessageContent);
    assert!(content
        .recipients
        .iter()
        .any(|r| r.kind == PrincipalKind::Operator));
    assert!(content.purposes.contains(&Purpose::Analytics));
    // The gate's advertising rule still holds.
    assert!(!content.purposes.contains(&Purpose::Advertising));
    assert!(after
        .to_markdown()
        .contains("| message content | Cloud API (Sealpost) |"));
    assert_ne!(before.to_markdown(), after.to_markdown());
    // The per-tenant recipients follow too.
    let operator = after.controllers[0]
        .recipients
        .iter()
        .find(|r| r.kind == PrincipalKind::Operator)
        .expect("the operator receives something");
    assert!(operator
        .categories
        .iter()
        .any(|g| g.category == Category::MessageContent));
}

#[test]
fn listed_purposes_are_allowed_by_the_gate() {
    let ropa = build(&input());
    let owner = BusinessId::from_random(7);
    for c in &ropa.processor.categories {
        for r in &c.recipients {
            let principal = if r.kind == PrincipalKind::Business {
                Principal::business(owner.clone(), "token")
            } else {
                Principal::of_kind(r.kind, "principal")
            };
            for p in &r.purposes {
                assert!(
                    decide(&principal, c.category, *p, Some(&owner)).is_allowed(),
                    "{:?} {:?} {:?}",
                    c.category,
                    r.kind,
                    p
                );
            }
        }
    }
}

#[test]
fn two_tenants_appear_with_their_regions() {
    let ropa = build(&input());
    assert_eq!(ropa.controllers.len(), 2);
    let a = &ropa.controllers[0];
    let b = &ropa.controllers[1];
    assert_eq!(a.business_id, "111111111111111");
    assert_eq!(b.business_id, "222222222222222");
    let codes = |c: &ControllerRecord| -> Vec<String> {
        c.regions.iter().map(|r| r.code.clone()).collect()
    };
    assert_eq!(codes(a), vec!["EU", "DE"]);
    assert_eq!(codes(b), vec!["NA", "GB"]);
    assert_eq!(a.phone_number_ids, vec!["555000111"]);
    assert_eq!(
        a.recipients[0].webhook_host.as_deref(),
        Some("hooks.alpha.example")
    );
    assert_eq!(a.recipients[0].kind, PrincipalKind::Business);
    assert_eq!(a.categories, Category::ALL.to_vec());
    // The webhook carries only what Sealpost holds: not the access log, not integrity signals.
    let pushed: Vec<Category> = a.recipients[0]
        .categories
        .iter()
        .map(|g| g.category)
        .collect();
    assert!(pushed.contains(&Category::MessageContent));
    assert!(!pushed.contains(&Category::AccessLog));
    assert!(!pushed.contains(&Category::IntegritySignals));
    // Advertising is a purpose for business information only.
    let ads = a
        .purposes
        .iter()
        .find(|p| p.purpose == Purpose::Advertising)
        .expect("business information may be used for advertising");
    assert_eq!(ads.categories, vec![Category::BusinessInformation]);
}

#[test]
fn regions_mark_de_as_local_storage() {
    let ropa = build(&input());
    let regions = &ropa.processor.transfers.regions;
    let kind = |code: &str| {
        regions
            .iter()
            .find(|r| r.code == code)
            .map(|r| r.kind)
            .expect("region listed")
    };
    assert_eq!(kind("DE"), RegionKind::LocalStorage);
    assert_eq!(kind("GB"), RegionKind::LocalStorage);
    assert_eq!(kind("EU"), RegionKind::Default);
    assert_eq!(kind("NA"), RegionKind::Default);
    assert_eq!(regions.len(), 4, "no repeats");
    let statement = &ropa.processor.transfers.statement;
    assert!(statement.contains("Local Storage regions in use: DE, GB"));
    // The stores as the deployment has them: the home store and DE's own, each with what it
    // holds; GB has none yet (nothing was written there).
    assert!(
        statement.contains(
            "The home store (sqlite (embedded), /srv/sealpost) holds the home store's rows."
        ),
        "{statement}"
    );
    assert!(
        statement.contains(
            "DE has a store of its own (/srv/sealpost/regions/DE), which holds DE's keys."
        ),
        "{statement}"
    );
    assert!(!statement.contains("GB has a store"), "{statement}");
    assert!(
        statement.contains("are at rest only in its region's store"),
        "{statement}"
    );
    assert!(statement.contains("at most 60 minutes"), "{statement}");
    assert_eq!(ropa.processor.transfers.stores.len(), 2);
    let markdown = ropa.to_markdown();
    assert!(
        markdown.contains(&format!(
            "- DE store: /srv/sealpost/regions/DE; holds DE's keys; checkpoint of size 7 with root {}",
            "ab".repeat(32)
        )),
        "{markdown}"
    );
}

#[test]
fn a_record_without_its_stores_names_one_physical_store() {
    let mut i = input();
    i.stores.clear();
    let statement = build(&i).processor.transfers.statement;
    assert!(
        statement.contains("one physical store (sqlite (embedded))"),
        "{statement}"
    );
}

#[test]
fn without_local_storage_the_statement_has_no_caveat() {
    let mut i = input();
    for t in &mut i.tenants {
        t.regions.retain(|r| r == "EU" || r == "NA");
    }
    let statement = build(&i).processor.transfers.statement;
    assert!(statement.contains("in use: none"), "{statement}");
    assert!(!statement.contains("outside its country"), "{statement}");
}

#[test]
fn unknown_region_codes_are_flagged() {
    let mut i = input();
    i.tenants[0].regions.push("XX".to_owned());
    let ropa = build(&i);
    let last = ropa
        .processor
        .transfers
        .regions
        .last()
        .expect("regions listed");
    assert_eq!(last.code, "XX");
    assert_eq!(last.kind, RegionKind::Unrecognised);
    assert!(ropa.processor.transfers.statement.contains("Unrecognised"));
}

#[test]
fn retention_and_security_follow_the_configuration() {
    let mut i = input();
    i.retention_days = 14;
    i.billing_retention_days = 90;
    i.statistics_min_group = 11;
    i.store = "postgres".to_owned();
    i.root_key_source = "environment".to_owned();
    let ropa = build(&i);
    assert!(record(&ropa, Category::MessageContent)
        .retention
        .contains("14 days"));
    assert!(record(&ropa, Category::Billing)
        .retention
        .contains("90 days"));
    assert!(record(&ropa, Category::Statistics)
        .retention
        .contains("smaller than 11"));
    let measures = ropa.processor.security_measures.join("\n");
    assert!(measures.contains("VACUUM"));
    assert!(measures.contains("Root keys (one per region, wrapping every other key): environment."));
    assert!(measures.contains("AES-256-GCM-SIV"));
    assert!(measures.contains("PQXDH"));
    assert!(measures.contains("Ed25519"));
}

#[test]
fn markdown_has_every_category_and_keeps_tenants_apart() {
    let ropa = build(&input());
    let md = ropa.to_markdown();
    for heading in [
        "# Record of processing activities",
        "## Processor",
        "## Categories of personal data",
        "## Transfers and regions",
        "## Security measures",
        "## Controllers (per tenant)",
    ] {
        assert!(md.contains(heading), "{heading}");
    }
    for category in Category::ALL {
        assert!(md.contains(category.label()), "{category:?}");
    }
    let (_, tenants) = md
        .split_once("## Controllers (per tenant)")
        .expect("controllers section");
    let sections: Vec<&str> = tenants.split("\n### ").skip(1).collect();
    assert_eq!(sections.len(), 2);
    let alpha = [
        "111111111111111",
        "Alpha Bakery",
        "555000111",
        "hooks.alpha.example",
        "DE (in-country Local Storage)",
        "EU (default region)",
    ];
    let beta = [
        "222222222222222",
        "Beta Garage",
        "555000222",
        "hooks.beta.example",
        "GB (in-country Local Storage)",
        "NA (default region)",
    ];
    for (section, own, other) in [(sections[0], alpha, beta), (sections[1], beta, alpha)] {
        for s in own {
            assert!(section.contains(s), "{s} missing from its own section");
        }
        for s in other {
            assert!(!section.contains(s), "{s} leaked into another section");
        }
    }
    // Nor does any tenant's data appear in the processor part above.
    let (processor, _) = md
        .split_once("## Controllers (per tenant)")
        .expect("controllers section");
    for s in [
        "Alpha Bakery",
        "Beta Garage",
        "hooks.alpha.example",
        "555000222",
    ] {
        assert!(!processor.contains(s), "{s}");
    }
}

#[test]
fn markdown_cells_cannot_break_the_table() {
    let mut i = input();
    i.tenants[0].name = "Pipe | Name\n# Heading".to_owned();
    let md = build(&i).to_markdown();
    assert!(md.contains("Pipe \\| Name # Heading"));
    assert!(!md.contains("\n# Heading"));
}

#[test]
fn json_round_trips() {
    let ropa = build(&input());
    let json = ropa.to_json();
    let back: Ropa = serde_json::from_str(&json).expect("the JSON parses back");
    assert_eq!(back, ropa);
    let input_json = serde_json::to_string(&input()).expect("input serializes");
    let input_back: RopaInput = serde_json::from_str(&input_json).expect("input parses");
    assert_eq!(build(&input_back), ropa);
}
