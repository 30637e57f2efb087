//! `serve` with its region root keys in a PKCS#11 token (SoftHSM2; ADR 0023).

use crate::common::server::Data;
use crate::common::{text, CONSUMER};
use crate::{checked, serve};
use sealpost_adapters::vault::TokenRoots;
use sealpost_domain::Region;
use sealpost_testkit::hsm::{test_token, token_env};

/// With the token configured, `serve` says so at start, writes no root key file, and a message
/// it stored is read back after a restart: every key below the roots is unwrapped in the token.
/// EU's root key rotates in the token too: generation 1 is destroyed there, and what was
/// stored before still reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_keeps_its_root_keys_in_the_token() {
    let Some(token) = test_token("serve") else {
        return;
    };
    let data = Data::fresh(None);
    let with_token = token_env(&token)
        .into_iter()
        .fold(serve(&data), |s, (k, v)| s.env(k, v));
    let node = checked(with_token.start());
    let (st, sent) = node
        .converse("hallo", text(CONSUMER, "kept under the token"))
        .await;
    assert_eq!(st, 200, "{sent}");
    let id = sent["messages"][0]["id"].as_str().expect("id").to_owned();
    crate::root_keys::rotate_eu_and_destroy_the_first(&node).await;
    let node = node.restart();
    let read = node.read_message(&id).await;
    assert_eq!(read["message"]["text"]["body"], "kept under the token");
    assert!(
        !data.dir.join(sealpost::app::ROOT_KEY_DIR).exists(),
        "no root key file"
    );
    let log = node.log_text();
    assert!(
        log.contains("root key custody") && log.contains("PKCS#11 token"),
        "the start-up log names the custody"
    );
    assert!(!log.contains(token.pin.as_str()), "the PIN is never logged");
    // Opened without the token, the store refuses: its keys are not in this process's reach,
    // and new ones must not be wrapped under a second set of roots.
    let mut node = node;
    node.stop().expect("a clean stop");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sealpost"))
        .args(["report", "retention", "--format", "json", "--data-dir"])
        .arg(&data.dir)
        .env_remove("SEALPOST_PKCS11_MODULE")
        .output()
        .expect("run sealpost");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("custody it was made with"), "{said}");
    assert!(
        !data.dir.join(sealpost::app::ROOT_KEY_DIR).exists(),
        "no root key file made on the way"
    );
    let roots = TokenRoots::open(token).expect("login");
    assert_eq!(roots.never_leaves(Region::Eu, 1).expect("ask"), None);
    assert_eq!(roots.never_leaves(Region::Eu, 2).expect("ask"), Some(true));
}
