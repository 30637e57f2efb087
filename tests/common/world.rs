//! A business with one number, a running pipeline over the simulated transport and simulated
//! consumer devices with real Signal sessions: the set-up of the message-path tests.

use super::Env;
use sealpost::pipeline::{IntegrityRecorder, Pipeline};
use sealpost_adapters::signal::{Libsignal, SignalEngine};
use sealpost_adapters::transport::sim::{SimDevice, SimNetwork};
use sealpost_domain::{
    BusinessId, MessageContent, MessageId, PhoneNumberId, Principal, Region, E164,
};
use std::sync::Arc;

/// The business's number.
pub const BUSINESS_NUMBER: &str = "15550783881";

/// The phone number of the `i`-th consumer device.
pub fn consumer(i: usize) -> String {
    format!("49151{:08}", 1000 + i)
}

pub struct World {
    pub net: SimNetwork,
    pub engine: Arc<dyn SignalEngine>,
    pub devices: Vec<SimDevice>,
    pub business: BusinessId,
    pub number: PhoneNumberId,
    /// Where the number's data is stored (at the start).
    pub region: Region,
    pub me: Principal,
}

/// Registers the business and its number, starts the pipeline (with an integrity recorder) on
/// it and joins `devices` consumer devices (`consumer(0)`, …) to the network.
pub async fn world(env: &Env, devices: usize) -> (World, Pipeline) {
    world_in(env, devices, Region::Eu).await
}

/// [`world`] with the number's data stored in `region` (elected before the pipeline starts).
pub async fn world_in(env: &Env, devices: usize, region: Region) -> (World, Pipeline) {
    let recorder = IntegrityRecorder::new(&env.app);
    let net = SimNetwork::with(Arc::new(env.clock.clone()), Some(recorder.clone()));
    let engine: Arc<dyn SignalEngine> = Arc::new(Libsignal);
    let business = env
        .app
        .catalog()
        .register_business("Bikes", Region::Eu)
        .await
        .expect("business");
    let number = env
        .app
        .catalog()
        .add_phone_number(&business, BUSINESS_NUMBER, Region::Eu)
        .await
        .expect("number");
    let me = Principal::business(business.clone(), "system-user");
    if region.is_local_storage() {
        elect(&env.app, &me, &number, region).await;
    }
    let mut pipeline = Pipeline::start(env.app.clone(), engine.clone(), Arc::new(net.clone()))
        .await
        .expect("pipeline")
        .with_integrity(recorder);
    pipeline
        .attach_number(&business, &number)
        .await
        .expect("attach");
    let mut list = Vec::new();
    for i in 0..devices {
        list.push(
            SimDevice::join(engine.clone(), &net, &consumer(i))
                .await
                .expect("device"),
        );
    }
    (
        World {
            net,
            engine,
            devices: list,
            business,
            number,
            region,
            me,
        },
        pipeline,
    )
}

/// The business `me` elects Local Storage in `region` for its (unregistered) EU `number`.
pub async fn elect(
    app: &sealpost::app::Sealpost,
    me: &Principal,
    number: &PhoneNumberId,
    region: Region,
) {
    let business = me.business.clone().expect("a business principal");
    app.catalog()
        .number_command(
            me,
            number,
            (&business, Region::Eu),
            sealpost_domain::PhoneNumberCommand::ConfigureStorage {
                region: Some(region),
            },
        )
        .await
        .expect("elect while unregistered");
}

impl World {
    /// Device `i` writes `body` to the business (envelope id `envelope`), which opens its
    /// service window once the pipeline takes it.
    pub async fn device_writes(&mut self, i: usize, envelope: &str, body: &[u8]) {
        self.devices[i]
            .send(&self.net, BUSINESS_NUMBER, envelope, body)
            .await
            .expect("device send");
    }

    /// The business sends the text `body` to consumer `i`.
    pub async fn answer(&self, app: &sealpost::app::Sealpost, i: usize, body: &str) -> MessageId {
        let phone = E164::parse(&consumer(i)).expect("phone");
        app.messaging()
            .send(
                &self.me,
                &self.number,
                &phone,
                &MessageContent::text(body),
                None,
            )
            .await
            .expect("send")
    }
}
