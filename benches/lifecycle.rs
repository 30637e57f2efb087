//! The full message lifecycle, as one rate: a business's message is accepted, encrypted with
//! Signal by the pipeline, carried by the (simulated) transport, decrypted by the device, and
//! its delivered and read receipts are recorded — on SQLite and on Postgres, durable commits.
//!
//! `cargo bench --bench lifecycle` (figures in docs/benchmarks.md).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sealpost::app::Sealpost;
use sealpost::pipeline::Pipeline;
use sealpost_adapters::clock::SystemClock;
use sealpost_adapters::crypto::SecretKey;
use sealpost_adapters::signal::{Libsignal, SignalEngine};
use sealpost_adapters::store::Stores;
use sealpost_adapters::transport::sim::{SimDevice, SimNetwork};
use sealpost_adapters::vault::RootKeys;
use sealpost_domain::{MessageContent, PhoneNumberId, Principal, Region, RetentionPolicy, E164};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEVICES: usize = 10;
/// Messages per measured round.
const MESSAGES: usize = 200;
const NUMBER: &str = "15550783881";

fn consumer(i: usize) -> String {
    format!("49151{:08}", 1000 + i)
}

struct Rig {
    app: Sealpost,
    pipeline: Pipeline,
    net: SimNetwork,
    devices: Vec<SimDevice>,
    number: PhoneNumberId,
    me: Principal,
}

async fn rig(stores: Stores) -> Rig {
    let roots = RootKeys::fixed([(Region::Eu, SecretKey::random())]);
    let app = Sealpost::start(
        stores,
        roots,
        Arc::new(SystemClock),
        RetentionPolicy::default(),
    )
    .await
    .expect("app");
    let engine: Arc<dyn SignalEngine> = Arc::new(Libsignal);
    let net = SimNetwork::new();
    let business = app
        .catalog()
        .register_business("Bench", Region::Eu)
        .await
        .expect("business");
    let number = app
        .catalog()
        .add_phone_number(&business, NUMBER, Region::Eu)
        .await
        .expect("number");
    let mut pipeline = Pipeline::start(app.clone(), engine.clone(), Arc::new(net.clone()))
        .await
        .expect("pipeline");
    pipeline
        .attach_number(&business, &number)
        .await
        .expect("attach");
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        let mut d = SimDevice::join(engine.clone(), &net, &consumer(i))
            .await
            .expect("device");
        d.send(&net, NUMBER, &format!("open-{i}"), b"hi")
            .await
            .expect("send");
        devices.push(d);
    }
    pipeline.run_until_idle(10).await.expect("pipeline");
    let me = Principal::business(business, "bench");
    Rig {
        app,
        pipeline,
        net,
        devices,
        number,
        me,
    }
}

/// Accepts MESSAGES messages concurrently, then runs pipeline and devices until every receipt
/// is recorded. Returns the elapsed time.
async fn round(r: &mut Rig) -> Duration {
    let start = Instant::now();
    let mut sends = Vec::with_capacity(MESSAGES);
    for m in 0..MESSAGES {
        let (app, me, number) = (r.app.clone(), r.me.clone(), r.number.clone());
        let phone = E164::parse(&consumer(m % DEVICES)).expect("phone");
        sends.push(tokio::spawn(async move {
            app.messaging()
                .send(
                    &me,
                    &number,
                    &phone,
                    &MessageContent::text("your order has shipped"),
                    None,
                )
                .await
        }));
    }
    for s in sends {
        s.await.expect("task").expect("send");
    }
    loop {
        let out = r.pipeline.run_until_idle(50).await.expect("pipeline");
        let mut shown = 0;
        for d in &mut r.devices {
            shown += d.step(&r.net).await.expect("device");
        }
        let back = r.pipeline.run_until_idle(50).await.expect("pipeline");
        if out.is_idle() && shown == 0 && back.is_idle() {
            break;
        }
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("lifecycle");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(MESSAGES as u64));

    let dir = tempfile::tempdir().expect("dir");
    let mut sqlite =
        rt.block_on(async { rig(Stores::sqlite(dir.path()).await.expect("sqlite")).await });
    g.bench_function(
        BenchmarkId::new("sqlite", "accept→signal→transport→delivered→read"),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += rt.block_on(round(&mut sqlite));
                }
                total
            })
        },
    );

    if let Some(pg) = rt.block_on(sealpost_testkit::postgres_test_db("lifecycle")) {
        let mut postgres = rt.block_on(rig(Stores::postgres(pg.pool.clone(), pg.regions())));
        g.bench_function(
            BenchmarkId::new("postgres", "accept→signal→transport→delivered→read"),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += rt.block_on(round(&mut postgres));
                    }
                    total
                })
            },
        );
        drop(postgres);
        rt.block_on(pg.drop_schema());
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
