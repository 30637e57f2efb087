//! Destroying a region's root key makes exactly that region unreadable (issue 14, ADR 0019).

use super::*;
use sealpost::app::Sealpost;
use sealpost_adapters::store::Stores;

/// Destroying a region's root key makes exactly that region unreadable (issue 14): numbers in
/// EU, DE and IN each receive a message; the DE root key is replaced (the old one is gone for
/// good); DE's content no longer opens, EU's and IN's do, and the business's own information
/// still reads.
async fn a_destroyed_root_key_takes_exactly_its_region(env: Env) {
    use sealpost_adapters::crypto::SecretKey;
    use sealpost_adapters::vault::RootKeys;
    use sealpost_domain::aggregates::phone_number::PhoneNumberCommand;
    use sealpost_domain::{Purpose, RetentionPolicy};
    use std::sync::Arc;
    let bytes: Vec<(Region, [u8; 32])> = Region::ALL
        .iter()
        .map(|r| (*r, rand::random::<[u8; 32]>()))
        .collect();
    let roots = |without: Option<Region>| {
        RootKeys::fixed(bytes.iter().map(|(r, b)| {
            let key = if Some(*r) == without {
                SecretKey::random()
            } else {
                SecretKey::from_bytes(*b)
            };
            (*r, key)
        }))
    };
    let open = |roots: RootKeys| async {
        let stores = match (&env.dir, &env.pg) {
            (Some(dir), _) => Stores::sqlite(dir.path()).await.expect("stores"),
            (None, Some(pg)) => Stores::postgres(pg.pool.clone(), pg.regions()),
            _ => unreachable!("an environment is on one backend"),
        };
        Sealpost::start(
            stores,
            roots,
            Arc::new(env.clock.clone()),
            RetentionPolicy::default(),
        )
        .await
    };
    let app = open(roots(None)).await.expect("start");
    let business = app
        .catalog()
        .register_business("Three Regions", Region::Eu)
        .await
        .expect("business");
    let owner = Principal::business(business.clone(), "system-user");
    let mut received = Vec::new();
    for (i, region) in [Region::Eu, Region::De, Region::In].into_iter().enumerate() {
        let number = app
            .catalog()
            .add_phone_number(&business, &format!("1555078388{i}"), Region::Eu)
            .await
            .expect("number");
        if region.is_local_storage() {
            app.catalog()
                .number_command(
                    &owner,
                    &number,
                    (&business, Region::Eu),
                    PhoneNumberCommand::ConfigureStorage {
                        region: Some(region),
                    },
                )
                .await
                .expect("elect while unregistered");
        }
        let phone = E164::parse(PHONES[i]).expect("phone");
        let id = common::receive(
            &app,
            &number,
            &phone,
            canary(i, "rk-ct").as_bytes(),
            &MessageContent::text(canary(i, "rk")),
            None,
        )
        .await
        .expect("receive");
        received.push((region, id));
    }
    async fn readable(
        app: &Sealpost,
        owner: &Principal,
        business: &BusinessId,
        id: &MessageId,
    ) -> bool {
        use sealpost_adapters::{ledger::LedgerError, vault::VaultError};
        match app
            .messaging()
            .read_content(owner, Purpose::BusinessApi, business, id)
            .await
        {
            Ok(c) => c.plain().is_some(),
            // The region's keys no longer unwrap: nothing opens, and nothing else is wrong.
            Err(AppError::Ledger(LedgerError::Vault(VaultError::Crypto(_)))) => false,
            Err(e) => panic!("not a failure to unwrap: {e:?}"),
        }
    }
    for (region, id) in &received {
        assert!(
            readable(&app, &owner, &business, id).await,
            "{region:?} reads before"
        );
    }
    drop(app);

    let app = open(roots(Some(Region::De)))
        .await
        .expect("start without DE's key");
    for (region, id) in &received {
        assert_eq!(
            readable(&app, &owner, &business, id).await,
            *region != Region::De,
            "{region:?} after DE's root key is gone"
        );
    }
    assert_eq!(
        app.catalog()
            .business(&business)
            .await
            .expect("business")
            .name,
        "Three Regions",
        "the business's own information is not DE's"
    );
    drop(app);
    // The old key, had it survived, would open DE again: it was the key, not where DE's keys are.
    let app = open(roots(None)).await.expect("start with every key");
    for (region, id) in &received {
        assert!(readable(&app, &owner, &business, id).await, "{region:?}");
    }
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_destroyed_root_key_takes_exactly_its_region() {
    a_destroyed_root_key_takes_exactly_its_region(sqlite_env().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_destroyed_root_key_takes_exactly_its_region() {
    let Some(env) = postgres_env("root key").await else {
        return;
    };
    a_destroyed_root_key_takes_exactly_its_region(env).await;
}
