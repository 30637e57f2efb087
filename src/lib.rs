//! Sealpost: the application layer and the `sealpost` binary's commands.
//!
//! [`app::Sealpost`] wires the stores, the key vault, the executor, the access gate and the
//! retention process into the operations a business, a transport and a DPO use. The HTTP
//! service and the Signal pipeline build on it.

pub mod app;
pub mod bootstrap;
pub mod claims;
pub mod cli;
pub mod config;
pub mod demo;
pub mod demo_http;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod nodes;
pub mod pipeline;
pub mod projections;
mod tables;
pub mod webhooks;
