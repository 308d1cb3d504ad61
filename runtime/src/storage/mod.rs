//! Where the worker keeps what must outlive a task: source offsets, connector
//! configs and statuses, each behind a trait (Kafka Connect's
//! `OffsetBackingStore`, `ConfigBackingStore`, `StatusBackingStore`). The
//! herder and the task runners see only the traits; the binary picks the
//! implementations: files and memory for standalone, topics for distributed.

pub mod config_file;
pub mod config_topic;
pub mod configs;
pub mod internal_topics;
pub mod kafka_log;
pub mod offset_file;
pub mod offset_store;
pub mod offset_topic;
pub mod status_topic;
pub mod statuses;

pub use config_file::FileConfigStore;
pub use config_topic::KafkaConfigStore;
pub use configs::{ConfigBackingStore, RestartRequest, StoredConnector};
pub use offset_file::FileOffsetStore;
pub use offset_store::{partition_key, OffsetBackingStore, StoredOffsets, TopicMark};
pub use offset_topic::KafkaOffsetStore;
pub use status_topic::KafkaStatusStore;
pub use statuses::{MemoryStatusStore, State, StatusBackingStore, StatusRecord, WorkerRecord};
