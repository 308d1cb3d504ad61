use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::schema::primitives;
use sluice_api::{
    ConnectError, Position, Record, SchemaRef, SourceConnector, SourceOffset, SourcePartition,
    SourceRef, SourceTask, SourceTaskContext, TaskConfig, Value,
};
use tokio::fs::File;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};

pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("file", ConfigType::String)
                .importance(Importance::High)
                .validator(Validator::NonEmpty)
                .doc("The file to read, line by line; lines appended later are picked up."),
        )
        .define(
            ConfigKey::new("topic", ConfigType::String)
                .importance(Importance::High)
                .validator(Validator::NonEmpty),
        )
        .define(
            ConfigKey::new("batch.size", ConfigType::Int)
                .default("2000")
                .validator(Validator::at_least(1.0)),
        )
}

#[derive(Default)]
pub struct FileSourceConnector {
    config: TaskConfig,
}

impl SourceConnector for FileSourceConnector {
    fn start(&mut self, config: &TaskConfig) -> Result<(), ConnectError> {
        config_def().validate(config)?;
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        Ok(vec![self.config.clone()])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(FileSourceTask::default())
    }
}

#[derive(Default)]
struct FileSourceTask {
    tail: Option<Tail>,
}

/// The file being read, once started: where the last whole line ended.
struct Tail {
    path: String,
    reader: Option<BufReader<File>>,
    /// Byte offset just past the last complete line emitted.
    position: u64,
    topic: Arc<str>,
    partition: Arc<SourcePartition>,
    schema: SchemaRef,
    batch_size: usize,
    line: String,
}

#[async_trait]
impl SourceTask for FileSourceTask {
    async fn start(&mut self, context: SourceTaskContext) -> Result<(), ConnectError> {
        let c = config_def().validate(&context.config)?;
        let path = c.string("file").unwrap_or_default().to_owned();
        let mut partition = SourcePartition::new();
        partition.insert("filename".into(), json!(path));
        let position = context
            .offset(&partition)
            .and_then(|o| o.get("position"))
            .and_then(|p| p.as_u64())
            .unwrap_or(0);
        self.tail = Some(Tail {
            path,
            reader: None,
            position,
            topic: c.string("topic").unwrap_or_default().into(),
            partition: Arc::new(partition),
            schema: primitives::optional_string(),
            batch_size: c.int("batch.size").unwrap_or(2000).max(1) as usize,
            line: String::new(),
        });
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<Record>, ConnectError> {
        let s = self
            .tail
            .as_mut()
            .ok_or_else(|| ConnectError::fatal("poll before start"))?;
        if s.reader.is_none() {
            match File::open(&s.path).await {
                Ok(mut f) => {
                    f.seek(std::io::SeekFrom::Start(s.position))
                        .await
                        .map_err(|e| {
                            ConnectError::fatal(format!("cannot seek '{}': {e}", s.path))
                        })?;
                    s.reader = Some(BufReader::new(f));
                }
                // Not there yet: wait for it, as Connect's FileStreamSource does.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    return Ok(Vec::new());
                }
                Err(e) => {
                    return Err(ConnectError::fatal(format!(
                        "cannot open '{}': {e}",
                        s.path
                    )))
                }
            }
        }
        let Some(reader) = s.reader.as_mut() else {
            return Ok(Vec::new());
        };
        let mut records = Vec::new();
        while records.len() < s.batch_size {
            let n = reader
                .read_line(&mut s.line)
                .await
                .map_err(|e| ConnectError::retriable(format!("cannot read '{}': {e}", s.path)))?;
            if n == 0 || !s.line.ends_with('\n') {
                // End of file, possibly mid-line: keep the partial line for later.
                break;
            }
            s.position += s.line.len() as u64;
            let text = s.line.trim_end_matches(['\n', '\r']).to_owned();
            s.line.clear();
            let mut offset = SourceOffset::new();
            offset.insert("position".into(), json!(s.position));
            records.push(Record {
                topic: s.topic.clone(),
                value_schema: Some(s.schema.clone()),
                value: Value::String(text),
                source: Some(SourceRef {
                    partition: s.partition.clone(),
                    offset,
                    position: Some(Position::new(s.position, 0)),
                }),
                ..Record::default()
            });
        }
        if records.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(records)
    }
}
