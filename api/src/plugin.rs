//! How a plugin crate describes itself to the runtime's registry.

use crate::config::ConfigDef;
use crate::connector::{SinkConnector, SourceConnector};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Whether a connector reads into Kafka or writes out of it.
pub enum PluginKind {
    /// Writes into Kafka.
    Source,
    /// Reads from Kafka.
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
    /// Builds a source connector.
    Source(fn() -> Box<dyn SourceConnector>),
    /// Builds a sink connector.
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
    /// What Connect's `GET /connectors/{name}/tasks` names as each task's
    /// `task.class`: the task class of the Connect plugin this one stands in
    /// for (e.g. `org.apache.kafka.connect.file.FileStreamSinkTask`), else the
    /// plugin's own name.
    pub task_class: &'static str,
    /// The plugin's version, for `GET /connector-plugins`.
    pub version: &'static str,
    /// Its configuration keys.
    pub config_def: fn() -> ConfigDef,
    /// Builds an instance.
    pub factory: ConnectorFactory,
}

impl ConnectorPlugin {
    /// Source or sink.
    pub fn kind(&self) -> PluginKind {
        match self.factory {
            ConnectorFactory::Source(_) => PluginKind::Source,
            ConnectorFactory::Sink(_) => PluginKind::Sink,
        }
    }

    /// Whether `class` names this plugin: its class, an alias, or one of the
    /// short names Connect gives a Java class alias (its simple name, and that
    /// without the `Connector` suffix: `FileStreamSinkConnector` and
    /// `FileStreamSink` for `org.apache.kafka.connect.file.FileStreamSinkConnector`).
    pub fn answers_to(&self, class: &str) -> bool {
        self.class == class
            || self.aliases.iter().any(|alias| {
                *alias == class
                    || alias.rsplit_once('.').is_some_and(|(_, simple)| {
                        simple == class
                            || simple
                                .strip_suffix("Connector")
                                .is_some_and(|pruned| !pruned.is_empty() && pruned == class)
                    })
            })
    }

    /// The name Connect tooling knows this plugin by: the first Java class it
    /// stands in for, else its own class.
    pub fn connect_class(&self) -> &'static str {
        self.aliases
            .iter()
            .find(|a| a.contains('.'))
            .copied()
            .unwrap_or(self.class)
    }
}

/// A single-message transform type, configured under `transforms.<alias>.`.
#[derive(Clone, Copy)]
pub struct TransformPlugin {
    /// The short name users write in `transforms.<alias>.type`.
    pub name: &'static str,
    /// Accepted Kafka Connect class names.
    pub aliases: &'static [&'static str],
    /// Its configuration keys (without the `transforms.<alias>.` prefix).
    pub config_def: fn() -> ConfigDef,
    /// Builds one instance from its keys (the `transforms.<alias>.` prefix removed).
    pub create: fn(&crate::TaskConfig) -> Result<Box<dyn crate::Transform>, crate::ConnectError>,
}

/// A predicate type, configured under `predicates.<alias>.`.
#[derive(Clone, Copy)]
pub struct PredicatePlugin {
    /// The short name users write in `predicates.<alias>.type`.
    pub name: &'static str,
    /// Accepted Kafka Connect class names.
    pub aliases: &'static [&'static str],
    /// Its configuration keys (without the `predicates.<alias>.` prefix).
    pub config_def: fn() -> ConfigDef,
    /// Builds one instance from its keys (the `predicates.<alias>.` prefix removed).
    pub create: fn(&crate::TaskConfig) -> Result<Box<dyn crate::Predicate>, crate::ConnectError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_sink() -> ConnectorPlugin {
        ConnectorPlugin {
            class: "file-sink",
            aliases: &["org.apache.kafka.connect.file.FileStreamSinkConnector"],
            task_class: "org.apache.kafka.connect.file.FileStreamSinkTask",
            version: "1",
            config_def: ConfigDef::new,
            factory: ConnectorFactory::Sink(|| unreachable!("never built")),
        }
    }

    #[test]
    fn a_plugin_answers_to_the_names_connect_gives_its_class() {
        let p = file_sink();
        for name in [
            "file-sink",
            "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "FileStreamSinkConnector",
            "FileStreamSink",
        ] {
            assert!(p.answers_to(name), "{name}");
        }
        for name in [
            "",
            "Connector",
            "file",
            "FileStream",
            "connect.file.FileStreamSinkConnector",
        ] {
            assert!(!p.answers_to(name), "{name}");
        }
        assert_eq!(
            p.connect_class(),
            "org.apache.kafka.connect.file.FileStreamSinkConnector"
        );
    }
}
