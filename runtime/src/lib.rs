//! `sluice-runtime`: the worker process that runs sluice plugins.
//!
//! It loads worker and connector configuration, builds Kafka clients, and runs
//! source tasks (poll → transforms → converter → idempotent producer, with
//! exactly-once "idempotent resume") and sink tasks (consumer group →
//! converter → transforms → put, committing only what the sink made durable).
//! The herder decides which connectors run and in what state; the REST API
//! (Kafka Connect's) drives it.
//!
//! It depends on `sluice-api` and on client libraries; it must not depend on any
//! connector or transform crate. Plugins reach it only through [`Plugins`], which
//! the binary fills.

pub mod blocking;
pub mod config;
pub mod control;
pub mod convert;
pub mod durable;
pub mod error;
pub mod error_handling;
pub mod herder;
pub mod kafka;
pub mod lag;
pub mod metrics;
pub mod placement;
pub mod plugins;
pub mod rest;
pub mod sink;
pub mod source;
pub mod storage;
pub mod topics;
pub mod transforms;
pub mod worker;

pub use config::{ConnectorConfig, WorkerConfig};
pub use error::WorkerError;
pub use herder::Herder;
pub use plugins::Plugins;
pub use worker::Worker;
