//! How a plugin crate describes itself to the runtime's registry.

use crate::config::ConfigDef;
use crate::connector::{SinkConnector, SourceConnector};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Source,
    Sink,
}

impl PluginKind {
    /// Connect's lower-case name, as in `GET /connector-plugins`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PluginKind::Source => "source",
            PluginKind::Sink => "sink",
        }
    }
}

/// Builds a fresh connector instance.
#[derive(Clone, Copy)]
pub enum ConnectorFactory {
    Source(fn() -> Box<dyn SourceConnector>),
    Sink(fn() -> Box<dyn SinkConnector>),
}

/// What a connector crate exports (`pub fn plugin() -> ConnectorPlugin`) and the
/// binary registers: one line per connector.
#[derive(Clone, Copy)]
pub struct ConnectorPlugin {
    /// The short class name users write in `connector.class` (e.g. `datagen`).
    pub class: &'static str,
    /// Other accepted names, such as the Kafka Connect / Debezium / Confluent class.
    pub aliases: &'static [&'static str],
    pub version: &'static str,
    pub config_def: fn() -> ConfigDef,
    pub factory: ConnectorFactory,
}

impl ConnectorPlugin {
    pub fn kind(&self) -> PluginKind {
        match self.factory {
            ConnectorFactory::Source(_) => PluginKind::Source,
            ConnectorFactory::Sink(_) => PluginKind::Sink,
        }
    }

    pub fn answers_to(&self, class: &str) -> bool {
        self.class == class || self.aliases.contains(&class)
    }
}

/// A single-message transform type, configured under `transforms.<alias>.`.
#[derive(Clone, Copy)]
pub struct TransformPlugin {
    /// The short name users write in `transforms.<alias>.type`.
    pub name: &'static str,
    /// Accepted Kafka Connect class names.
    pub aliases: &'static [&'static str],
    pub config_def: fn() -> ConfigDef,
    /// Builds one instance from its keys (the `transforms.<alias>.` prefix removed).
    pub create: fn(&crate::TaskConfig) -> Result<Box<dyn crate::Transform>, crate::ConnectError>,
}

/// A predicate type, configured under `predicates.<alias>.`.
#[derive(Clone, Copy)]
pub struct PredicatePlugin {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub config_def: fn() -> ConfigDef,
    pub create: fn(&crate::TaskConfig) -> Result<Box<dyn crate::Predicate>, crate::ConnectError>,
}
