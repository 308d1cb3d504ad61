//! `sluice-file`: JSON-lines file connectors, like Kafka Connect's FileStream
//! connectors: a sink that appends one line per record (the value, or a JSON
//! envelope with topic, partition, offset, key, value and headers), and a source
//! that emits one record per line of a file, resuming at the byte it stopped at.
//! Depends only on `sluice-api`.

mod sink;
mod source;

use sluice_api::{ConnectorFactory, ConnectorPlugin};

pub fn sink_plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class: "file-sink",
        aliases: &["org.apache.kafka.connect.file.FileStreamSinkConnector"],
        task_class: "org.apache.kafka.connect.file.FileStreamSinkTask",
        version: env!("CARGO_PKG_VERSION"),
        config_def: sink::config_def,
        factory: ConnectorFactory::Sink(|| Box::new(sink::FileSinkConnector::default())),
    }
}

pub fn source_plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class: "file-source",
        aliases: &["org.apache.kafka.connect.file.FileStreamSourceConnector"],
        task_class: "org.apache.kafka.connect.file.FileStreamSourceTask",
        version: env!("CARGO_PKG_VERSION"),
        config_def: source::config_def,
        factory: ConnectorFactory::Source(|| Box::new(source::FileSourceConnector::default())),
    }
}
