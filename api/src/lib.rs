//! `sluice-api`: the contract every sluice plugin implements and the runtime drives.
//!
//! It holds the record model ([`Record`], [`Headers`], [`Value`] with an optional
//! [`Schema`], mirroring Kafka Connect's `SchemaAndValue`), the connector and task
//! traits for sources and sinks, single-message [`Transform`]s and [`Predicate`]s,
//! [`Converter`]s, declarative configuration ([`ConfigDef`]) with validation, the
//! per-record error reporter, the error types, and the backoff retries share.
//!
//! **API boundary.** Connector and transform crates depend on this crate alone (plus
//! their own client libraries). It must not depend on `sluice-runtime`, on any
//! connector, or on any I/O library: nothing here opens a socket, a file or a
//! thread. Changing a trait here changes every plugin, so additions come with
//! default method bodies.

#![warn(missing_docs)]

pub mod backoff;
pub mod clock;
pub mod config;
pub mod connector;
pub mod convert;
pub mod error;
pub mod json;
pub mod metrics;
pub mod plugin;
pub mod record;
pub mod report;
pub mod schema;
pub mod transform;
pub mod value;

pub use backoff::Backoff;
pub use clock::now_ms;
pub use config::{
    ConfigDef, ConfigErrors, ConfigKey, ConfigType, Importance, Password, ValidatedConfig,
    Validator,
};
pub use connector::{
    OffsetMap, Rewinds, SinkConnector, SinkTask, SinkTaskContext, SourceConnector, SourceTask,
    SourceTaskContext, TaskConfig, TopicPartition,
};
pub use convert::Converter;
pub use error::{ConnectError, ErrorKind};
pub use metrics::TaskMetricsHandle;
pub use plugin::{ConnectorFactory, ConnectorPlugin, PluginKind, PredicatePlugin, TransformPlugin};
pub use record::{Header, Headers, Position, Record, SourceOffset, SourcePartition, SourceRef};
pub use report::ErrantRecordReporter;
pub use schema::{Field, LogicalType, Schema, SchemaRef, SchemaType};
pub use transform::{Predicate, Transform};
pub use value::{Decimal, Value};
