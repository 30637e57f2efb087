//! The stage the demo plays on: the application, the simulated clock, network and phones,
//! the pipeline, and how it prints what happened and records each check.

use super::*;
pub(super) struct Demo<'a> {
    pub(super) app: Sealpost,
    pub(super) clock: SimClock,
    pub(super) net: SimNetwork,
    pub(super) pipeline: Pipeline,
    pub(super) devices: Vec<SimDevice>,
    pub(super) totals: StepReport,
    pub(super) out: &'a mut dyn Write,
    pub(super) outcome: Outcome,
}

pub(super) const CONSUMERS: [(&str, &str); 3] = [
    ("Alice", "4915112345678"),
    ("Bob", "447700900123"),
    ("Carol", "33612345678"),
];

impl Demo<'_> {
    pub(super) fn say(&mut self, line: &str) -> std::io::Result<()> {
        writeln!(self.out, "{line}")
    }

    pub(super) fn check(&mut self, name: &str, passed: bool) -> std::io::Result<()> {
        writeln!(
            self.out,
            "  [{}] {name}",
            if passed { "PASS" } else { "FAIL" }
        )?;
        self.outcome.checks.push(Check {
            name: name.to_owned(),
            passed,
        });
        Ok(())
    }

    /// Runs the pipeline and the devices until nothing moves, and prints what moved.
    pub(super) async fn run(&mut self, label: &str) -> anyhow::Result<StepReport> {
        let mut total = StepReport::default();
        for _ in 0..20 {
            let r = self.pipeline.run_until_idle(20).await?;
            let mut shown = 0;
            for d in &mut self.devices {
                shown += d.step(&self.net).await?;
            }
            let back = self.pipeline.run_until_idle(20).await?;
            total.merge(r);
            total.merge(back);
            if r.is_idle() && back.is_idle() && shown == 0 {
                break;
            }
        }
        self.totals.merge(total);
        self.say(&format!(
            "  pipeline ({label}): {} sent, {} received, {} receipts, {} failed, {} undecryptable (sender asked to resend), {} retransmitted, {} refused",
            total.sent, total.received, total.receipts, total.failed, total.decrypt_failures, total.retransmitted, total.refused
        ))?;
        Ok(total)
    }

    /// The newest inbound message.
    pub(super) async fn last_inbound(&self) -> anyhow::Result<MessageId> {
        let all = self.app.store().read_all(0, u32::MAX).await?;
        let e = all
            .iter()
            .rev()
            .find(|e| e.header.event_type == "InboundMessageReceived")
            .ok_or_else(|| anyhow::anyhow!("no inbound message"))?;
        MessageId::parse(&e.header.stream.id).map_err(|e| anyhow::anyhow!("{e}"))
    }

    pub(super) fn day(&self) -> i64 {
        (self.clock.now_ms() - DEMO_START_MS) / DAY_MS
    }

    pub(super) async fn readable(
        &self,
        who: &Principal,
        purpose: Purpose,
        id: &MessageId,
    ) -> &'static str {
        let Ok(business) = self.app.messaging().find_business(id).await else {
            return "error";
        };
        match self
            .app
            .messaging()
            .read_content(who, purpose, &business, id)
            .await
        {
            Ok(Opened::Plain(_)) => "readable",
            Ok(Opened::Shredded) => "shredded",
            Err(AppError::Gate(GateError::Denied(_))) => "denied",
            Err(_) => "error",
        }
    }
}

pub(super) trait NowMs {
    fn now_ms(&self) -> i64;
}

impl NowMs for SimClock {
    fn now_ms(&self) -> i64 {
        sealpost_domain::ports::Clock::now(self).millis()
    }
}

pub(super) fn phone(digits: &str) -> anyhow::Result<E164> {
    E164::parse(digits).map_err(|e| anyhow::anyhow!("demo phone number: {e}"))
}
