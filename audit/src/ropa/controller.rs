//! One tenant's controller part (Art. 30(1) shape): its numbers, regions, purposes, categories
//! and recipients, its own webhook endpoints first.

use super::processor::{grants, ordered_purposes, purpose_label};
use super::record::{
    CategoryGrant, CategoryRecord, ControllerRecord, ProcessingActivity, TenantRecipient,
};
use super::regions::regions;
use super::TenantInput;
use sealpost_domain::access::{MatrixRow, PrincipalKind};

pub(super) fn controller_record(
    matrix: &[MatrixRow],
    categories: &[CategoryRecord],
    tenant: &TenantInput,
) -> ControllerRecord {
    let grants_of = |kind: PrincipalKind| -> Vec<CategoryGrant> {
        matrix
            .iter()
            .filter_map(|row| {
                grants(row)
                    .find(|(k, _)| *k == kind)
                    .map(|(_, own_only)| CategoryGrant {
                        category: row.category,
                        own_only,
                    })
            })
            .collect()
    };
    // Sealpost can push to a webhook only what its own pipelines hold.
    let pushed: Vec<CategoryGrant> = grants_of(PrincipalKind::Business)
        .into_iter()
        .filter(|g| {
            grants_of(PrincipalKind::Processor)
                .iter()
                .any(|p| p.category == g.category)
        })
        .collect();
    let mut recipients: Vec<TenantRecipient> = tenant
        .webhook_hosts
        .iter()
        .map(|host| TenantRecipient {
            recipient: format!("the business's own webhook endpoint at {host}"),
            kind: PrincipalKind::Business,
            webhook_host: Some(host.clone()),
            categories: pushed.clone(),
        })
        .collect();
    recipients.extend(PrincipalKind::ALL.into_iter().filter_map(|kind| {
        let categories = grants_of(kind);
        (!categories.is_empty()).then(|| TenantRecipient {
            recipient: kind.label().to_owned(),
            kind,
            webhook_host: None,
            categories,
        })
    }));
    ControllerRecord {
        business_id: tenant.business_id.clone(),
        name: tenant.name.clone(),
        phone_number_ids: tenant.phone_number_ids.clone(),
        regions: regions(tenant.regions.iter().map(String::as_str)),
        purposes: ordered_purposes(categories.iter().flat_map(|c| c.purposes.iter().copied()))
            .into_iter()
            .map(|purpose| ProcessingActivity {
                purpose,
                description: purpose_label(purpose).to_owned(),
                categories: categories
                    .iter()
                    .filter(|c| c.purposes.contains(&purpose))
                    .map(|c| c.category)
                    .collect(),
            })
            .collect(),
        categories: categories.iter().map(|c| c.category).collect(),
        recipients,
    }
}
