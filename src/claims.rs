//! The claim map: every promise of the source privacy page, the tests that prove it
//! (`docs/claims.md`, compiled in), and which of the demo's live checks exercise it, so that
//! `sealpost demo` can end by printing each claim's status from its own run.

use std::io::Write;

/// One promise checked by the demo: the live evidence a claim's status is read from. It lives
/// here, not in the demo, so that the claim map depends on nothing and the demo (with its HTTP
/// act) depends on it, one way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
}

/// `docs/claims.md`, the single written map of claim → tests.
pub const CLAIMS_MD: &str = include_str!("../docs/claims.md");

/// One claim as `docs/claims.md` states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// `C1`, `C2`, …
    pub id: String,
    /// The promise, quoted briefly.
    pub promise: String,
    /// The tests that prove it (`file::test`), or "not testable in code".
    pub proved_by: String,
}

impl Claim {
    /// Whether the map says code cannot test it.
    pub fn untestable(&self) -> bool {
        self.proved_by.starts_with("not testable")
    }

    /// The `file::test` names it lists.
    pub fn tests(&self) -> Vec<&str> {
        self.proved_by
            .split(',')
            .map(str::trim)
            .filter(|t| t.contains("::"))
            .collect()
    }
}

/// Every claim row of `docs/claims.md`, in order.
pub fn claims() -> Vec<Claim> {
    CLAIMS_MD
        .lines()
        .filter(|l| l.starts_with("| C"))
        .filter_map(|l| {
            let cols: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            Some(Claim {
                id: cols.first()?.to_string(),
                promise: cols.get(1)?.to_string(),
                proved_by: cols.get(2)?.to_string(),
            })
        })
        .collect()
}

/// Which demo checks (by the start of their name) exercise a claim in the live run.
pub const LIVE: &[(&str, &[&str])] = &[
    ("C1", &["Alice's phone decrypted", "Bob's phone decrypted"]),
    ("C2", &["the transport carried"]),
    ("C3", &["Dana's message reached the business as a webhook"]),
    ("C6", &["a retransmission of a 31-day-old message"]),
    (
        "C7",
        &[
            "Alice's phone decrypted",
            "Dana's phone decrypted the answer",
        ],
    ),
    ("C8", &["the transport carried"]),
    ("C14", &["message content, operator"]),
    (
        "C16",
        &[
            "the auditor lists the operator's refused reads",
            "audit verify",
        ],
    ),
    (
        "C19",
        &["message content, operator", "message content, auditor"],
    ),
    (
        "C20",
        &[
            "Alice's day-0 messages (older than 30 days)",
            "retention report",
        ],
    ),
    ("C21", &["a retransmission of a 31-day-old message"]),
    ("C22", &["the business answered by business-scoped user id"]),
    (
        "C24",
        &["Alice's phone number is gone with her last message"],
    ),
    (
        "C25",
        &["consumer phone number, operator analytics: denied"],
    ),
    ("C26", &["the transport carried"]),
    (
        "C27",
        &["message content, operator", "message content, transport"],
    ),
    (
        "C28",
        &[
            "consumer phone number, the transport",
            "consumer phone number, operator analytics",
        ],
    ),
    ("C29", &["statuses survive shredding"]),
    (
        "C37",
        &["no message text, phone number or profile name in any file"],
    ),
    (
        "C38",
        &[
            "Alice's day-0 messages (older than 30 days)",
            "the destroyed epoch key is gone",
        ],
    ),
    (
        "C42",
        &[
            "Carol's erasure certificate",
            "a later message from Carol's number",
        ],
    ),
];

/// How a claim stands after a live run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Exercised by this run's checks, all passed.
    Live(usize),
    /// Exercised by this run, and a check failed.
    Failed,
    /// Proved by the test suite, not exercised by the demo.
    Tested,
    /// A promise about an organisation or legal terms.
    Untestable,
}

/// The status of `claim` given the demo's checks.
pub fn status(claim: &Claim, checks: &[Check]) -> Status {
    let prefixes = LIVE
        .iter()
        .find(|(id, _)| *id == claim.id)
        .map_or(&[][..], |(_, p)| *p);
    let mine: Vec<&Check> = checks
        .iter()
        .filter(|c| prefixes.iter().any(|p| c.name.starts_with(p)))
        .collect();
    if mine.iter().any(|c| !c.passed) {
        Status::Failed
    } else if !mine.is_empty() {
        Status::Live(mine.len())
    } else if claim.untestable() {
        Status::Untestable
    } else {
        Status::Tested
    }
}

/// Prints the claim map with each claim's status.
pub fn print(out: &mut dyn Write, checks: &[Check]) -> std::io::Result<()> {
    writeln!(out, "\nclaims of the privacy page (docs/claims.md):")?;
    for claim in claims() {
        let s = status(&claim, checks);
        let label = match &s {
            Status::Live(n) => format!("PASS, {n} live check{}", if *n == 1 { "" } else { "s" }),
            Status::Failed => "FAIL in this run".to_owned(),
            Status::Tested => format!("tested by {}", claim.tests().len()),
            Status::Untestable => "not testable in code".to_owned(),
        };
        let mut promise: String = claim.promise.chars().take(90).collect();
        if promise.len() < claim.promise.len() {
            promise.push('…');
        }
        writeln!(out, "  {:<4} [{label}] {promise}", claim.id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_claim_is_mapped_and_every_named_test_exists() {
        let claims = claims();
        assert!(claims.len() >= 40, "{}", claims.len());
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for c in &claims {
            assert!(
                c.untestable() || !c.tests().is_empty(),
                "{} names no test",
                c.id
            );
            for t in c.tests() {
                let (file, name) = t.split_once("::").expect("file::test");
                let source = std::fs::read_to_string(root.join(file))
                    .unwrap_or_else(|_| panic!("{}: no file {file}", c.id));
                assert!(
                    source.contains(&format!("fn {name}(")),
                    "{}: no test {name} in {file}",
                    c.id
                );
            }
        }
        for (id, _) in LIVE {
            assert!(
                claims.iter().any(|c| c.id == *id),
                "LIVE names unknown {id}"
            );
        }
    }

    #[test]
    fn a_failed_live_check_fails_its_claim() {
        let c = claims().into_iter().find(|c| c.id == "C2").expect("C2");
        let pass = Check {
            name: "the transport carried 3 envelopes".into(),
            passed: true,
        };
        assert_eq!(status(&c, std::slice::from_ref(&pass)), Status::Live(1));
        let fail = Check {
            passed: false,
            ..pass
        };
        assert_eq!(status(&c, &[fail]), Status::Failed);
        assert_eq!(status(&c, &[]), Status::Tested);
    }
}
