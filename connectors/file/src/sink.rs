use std::io::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use sluice_api::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
use sluice_api::json::JsonView;
use sluice_api::{
    ConnectError, ErrantRecordReporter, OffsetMap, Record, SinkConnector, SinkTask,
    SinkTaskContext, TaskConfig, Value,
};
use tokio::fs::OpenOptions;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new("file", ConfigType::String)
                .importance(Importance::High)
                .validator(Validator::NonEmpty)
                .doc("The file to append to (created if missing)."),
        )
        .define(
            ConfigKey::new("format", ConfigType::String)
                .default("value")
                .validator(Validator::OneOf(&["value", "envelope"]))
                .doc("value: one value per line, as Connect's FileStreamSink; envelope: a JSON object with topic, partition, offset, timestamp, key, value and headers."),
        )
}

#[derive(Default)]
pub struct FileSinkConnector {
    config: TaskConfig,
}

impl SinkConnector for FileSinkConnector {
    fn start(&mut self, config: &TaskConfig) -> Result<(), ConnectError> {
        config_def().validate(config)?;
        self.config = config.clone();
        Ok(())
    }

    /// One file takes one writer: a single task, whatever `tasks.max` says.
    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        Ok(vec![self.config.clone()])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(FileSinkTask::default())
    }
}

#[derive(Default)]
struct FileSinkTask {
    /// Unbuffered: a batch is one write of its lines (`line`), so what was put
    /// is in the file when `put` returns, as with Connect's FileStreamSink.
    /// Behind a buffer, a burst's last lines waited for the next commit's
    /// flush (up to `offset.flush.interval.ms`) before a reader saw them.
    /// A std file, written on a blocking thread: tokio's `File` copies each
    /// write into a buffer of its own first (3 % of a file sink's work).
    writer: Option<Arc<std::fs::File>>,
    envelope: bool,
    line: Vec<u8>,
    reporter: Option<Arc<dyn ErrantRecordReporter>>,
}

impl FileSinkTask {
    /// Appends a batch, one line per record. With `json`, values are JSON text
    /// the runtime has checked (`put_json`): written as they came, line breaks
    /// (whitespace in valid JSON) turned into spaces, rather than decoded and
    /// encoded again. Decoding would write the same document, but may spell it
    /// differently (`1e3` as `1000.0`, `\u00e9` as `é`); the text as produced
    /// is what a reader of the topic saw.
    async fn write(&mut self, records: Vec<Record>, json: bool) -> Result<(), ConnectError> {
        let writer = self
            .writer
            .clone()
            .ok_or_else(|| ConnectError::fatal("put before start"))?;
        // The whole batch becomes one write: one await, not one per record.
        self.line.clear();
        for record in &records {
            let start = self.line.len();
            let written = if self.envelope {
                serde_json::to_writer(&mut self.line, &Envelope(record)).map_err(|e| e.to_string())
            } else if let Some(text) = json.then(|| json_text(&record.value)).flatten() {
                self.line
                    .extend_from_slice(&sluice_api::json::one_line(text));
                Ok(())
            } else if let Some(s) = string_value(&record.value, json) {
                if memchr::memchr2(b'\n', b'\r', s.as_bytes()).is_some() {
                    Err("the value holds a line break, which would split it across lines of the file; use format=envelope".to_owned())
                } else {
                    self.line.extend_from_slice(s.as_bytes());
                    Ok(())
                }
            } else {
                serde_json::to_writer(
                    &mut self.line,
                    &JsonView::new(record.value_schema.as_deref(), &record.value),
                )
                .map_err(|e| e.to_string())
            };
            if let Err(why) = written {
                self.line.truncate(start);
                // The destination cannot take this record: the error policy decides.
                let error = ConnectError::data(format!(
                    "cannot write record {}: {why}",
                    record.coordinates()
                ));
                match &self.reporter {
                    Some(r) => r.report(record, &error).await?,
                    None => return Err(error),
                }
                continue;
            }
            self.line.push(b'\n');
        }
        // The put waits for the write (not for the disk: that is `flush`'s
        // fsync), so its lines are in the file when it returns.
        let line = std::mem::take(&mut self.line);
        let (line, wrote) = tokio::task::spawn_blocking(move || {
            let wrote = (&*writer).write_all(&line);
            (line, wrote)
        })
        .await
        .map_err(|e| ConnectError::fatal(format!("the write stopped: {e}")))?;
        wrote.map_err(|e| ConnectError::retriable(format!("write failed: {e}")))?;
        // A large batch's buffer is not kept for the life of the task.
        if line.capacity() <= 4 << 20 {
            self.line = line;
        }
        Ok(())
    }
}

/// JSON text to write as it came: anything but a string, which is written
/// as its text (as Connect's `toString` does), unquoted.
fn json_text(value: &Value) -> Option<&[u8]> {
    match value {
        Value::Bytes(text) if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'"') => {
            Some(text)
        }
        _ => None,
    }
}

/// The text of a string value; with `json`, also of JSON text holding a string.
fn string_value(value: &Value, json: bool) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Bytes(text) if json => match sluice_api::json::parse_schemaless_slice(text) {
            Ok(Value::String(s)) => Some(std::borrow::Cow::Owned(s)),
            _ => None,
        },
        _ => None,
    }
}

#[async_trait]
impl SinkTask for FileSinkTask {
    async fn start(&mut self, context: SinkTaskContext) -> Result<(), ConnectError> {
        let c = config_def().validate(&context.config)?;
        self.reporter = Some(context.reporter.clone());
        let path = c.string("file").unwrap_or_default().to_owned();
        if let Some(dir) = std::path::Path::new(&path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                ConnectError::fatal(format!("cannot create directory for '{path}': {e}"))
            })?;
        }
        drop_torn_tail(&path).await?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|e| ConnectError::fatal(format!("cannot open '{path}' for appending: {e}")))?;
        self.writer = Some(Arc::new(file.into_std().await));
        self.envelope = c.string("format") == Some("envelope");
        Ok(())
    }

    /// Only the envelope format writes them.
    fn reads_headers(&self) -> bool {
        self.envelope
    }

    /// The value format writes JSON text as it came (see `write`).
    fn takes_json_values(&self) -> bool {
        !self.envelope
    }

    async fn put(&mut self, records: Vec<Record>) -> Result<(), ConnectError> {
        self.write(records, false).await
    }

    async fn put_json(&mut self, records: Vec<Record>) -> Result<(), ConnectError> {
        self.write(records, true).await
    }

    async fn flush(&mut self, _offsets: &OffsetMap) -> Result<(), ConnectError> {
        if let Some(w) = self.writer.clone() {
            tokio::task::spawn_blocking(move || w.sync_data())
                .await
                .map_err(|e| ConnectError::fatal(format!("the fsync stopped: {e}")))?
                .map_err(|e| ConnectError::retriable(format!("fsync failed: {e}")))?;
        }
        Ok(())
    }

    async fn stop(&mut self) -> Result<(), ConnectError> {
        self.flush(&OffsetMap::new()).await
    }
}

/// A crash can leave half a line at the end of the file. Its record comes after
/// the last commit, so it will be written again; the fragment is cut off first, so
/// it does not glue itself to the next line.
async fn drop_torn_tail(path: &str) -> Result<(), ConnectError> {
    let fail =
        |e: std::io::Error| ConnectError::fatal(format!("cannot repair the end of '{path}': {e}"));
    let mut file = match OpenOptions::new().read(true).write(true).open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fail(e)),
    };
    let len = file.metadata().await.map_err(fail)?.len();
    let mut end = len;
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(block.len() as u64);
        let n = (end - start) as usize;
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(fail)?;
        file.read_exact(&mut block[..n]).await.map_err(fail)?;
        if let Some(i) = block[..n].iter().rposition(|b| *b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end != len {
        tracing::warn!(
            file = path,
            bytes = len - end,
            "cutting off a partial last line left by a crash"
        );
        file.set_len(end).await.map_err(fail)?;
        file.sync_all().await.map_err(fail)?;
    }
    Ok(())
}

/// A record as one JSON object, headers as `[name, text]` pairs in order (values
/// that are not UTF-8 are written as `base64:<...>`).
struct Envelope<'a>(&'a Record);

impl Serialize for Envelope<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let headers: Vec<(&str, Option<String>)> = r
            .headers
            .iter()
            .map(|h| {
                let v = h.value.as_ref().map(|v| match std::str::from_utf8(v) {
                    Ok(text) => text.to_owned(),
                    Err(_) => format!("base64:{}", BASE64.encode(v)),
                });
                (&*h.key, v)
            })
            .collect();
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("topic", &*r.topic)?;
        m.serialize_entry("partition", &r.partition)?;
        m.serialize_entry("offset", &r.offset)?;
        m.serialize_entry("timestamp", &r.timestamp)?;
        m.serialize_entry("key", &JsonView::new(r.key_schema.as_deref(), &r.key))?;
        m.serialize_entry("value", &JsonView::new(r.value_schema.as_deref(), &r.value))?;
        m.serialize_entry("headers", &headers)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a batch of records becomes in the file, through `put` or `put_json`.
    async fn written(records: Vec<Record>, json: bool) -> String {
        let path = std::env::temp_dir().join(format!(
            "sluice-file-sink-{}-{json}.jsonl",
            std::process::id()
        ));
        let file = std::fs::File::create(&path).unwrap();
        let mut task = FileSinkTask {
            writer: Some(Arc::new(file)),
            ..FileSinkTask::default()
        };
        if json {
            task.put_json(records).await.unwrap();
        } else {
            task.put(records).await.unwrap();
        }
        task.stop().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        text
    }

    fn record(value: Value) -> Record {
        Record::new("t", Value::Null, value)
    }

    #[tokio::test]
    async fn json_text_is_written_as_it_came_on_one_line() {
        let texts = [
            r#"{"tenant_id":"t-1","n":1e3,"s":"\u00e9"}"#,
            "{\n  \"pretty\": [1,\r\n 2]\n}",
            r#""a string""#,
            "42",
        ];
        let records = texts
            .iter()
            .map(|t| record(Value::Bytes(t.as_bytes().to_vec())))
            .chain([record(Value::Null)])
            .collect();
        assert_eq!(
            written(records, true).await,
            "{\"tenant_id\":\"t-1\",\"n\":1e3,\"s\":\"\\u00e9\"}\n\
             {   \"pretty\": [1,   2] }\n\
             a string\n\
             42\n\
             null\n"
        );
        // Decoded first (a transform in the chain), the same values are
        // encoded again: the same documents, spelled as serde_json does.
        let decoded = texts
            .iter()
            .map(|t| record(sluice_api::json::parse_schemaless(t).unwrap()))
            .chain([record(Value::Null)])
            .collect();
        assert_eq!(
            written(decoded, false).await,
            "{\"tenant_id\":\"t-1\",\"n\":1000.0,\"s\":\"é\"}\n\
             {\"pretty\":[1,2]}\n\
             a string\n\
             42\n\
             null\n"
        );
    }

    /// A reader of the file sees a batch as soon as `put` returns, not at the
    /// next commit: before, the last lines of a burst sat in a buffer for up
    /// to `offset.flush.interval.ms`.
    #[tokio::test]
    async fn a_put_is_in_the_file_when_it_returns() {
        let path = std::env::temp_dir().join(format!(
            "sluice-file-sink-{}-visible.jsonl",
            std::process::id()
        ));
        let mut task = FileSinkTask {
            writer: Some(Arc::new(std::fs::File::create(&path).unwrap())),
            ..FileSinkTask::default()
        };
        task.put(vec![record(Value::String("one".into()))])
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
        task.put(vec![record(Value::String("two".into()))])
            .await
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        task.stop().await.unwrap();
        std::fs::remove_file(&path).unwrap();
    }
}
