//! Where the worker keeps what must outlive a task: source offsets, connector
//! configs and statuses, each behind a trait (Kafka Connect's
//! `OffsetBackingStore`, `ConfigBackingStore`, `StatusBackingStore`). The
//! herder and the task runners see only the traits; the binary picks the
//! implementations: files and memory for standalone, topics for distributed.

pub mod config_file;
pub mod configs;
pub mod offset_file;
pub mod offsets;
pub mod statuses;

pub use config_file::FileConfigStore;
pub use configs::{ConfigBackingStore, StoredConnector};
pub use offset_file::FileOffsetStore;
pub use offsets::{partition_key, ConnectorOffsets, OffsetBackingStore, TopicMark};
pub use statuses::{MemoryStatusStore, State, StatusBackingStore, StatusRecord};
