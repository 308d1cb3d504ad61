//! File formats: Parquet (columns built a row group at a time) and JSON lines.
//! A row is a decoded record or schemaless JSON text; Parquet decodes text
//! straight into its columns when the file's shape allows (`direct.rs`), and
//! parses it into values otherwise, with the same result.

mod columns;
mod direct;
mod json;
mod parquet;

use std::borrow::Cow;

use sluice_api::json::parse_schemaless_slice;
use sluice_api::{ConnectError, SchemaRef, Value};

use crate::file_set::Row;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Snappy,
    Gzip,
    Zstd,
    Lz4,
    Brotli,
}

impl Codec {
    /// Parses a validated `parquet.codec`.
    pub fn parse(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "none" => Codec::None,
            "gzip" => Codec::Gzip,
            "zstd" => Codec::Zstd,
            "lz4" => Codec::Lz4,
            "brotli" => Codec::Brotli,
            _ => Codec::Snappy,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Snappy => "snappy",
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
            Codec::Lz4 => "lz4",
            Codec::Brotli => "brotli",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet(Codec),
    Json,
}

impl Format {
    pub fn from_class(class: &str) -> Result<Self, String> {
        match class {
            "parquet" | "io.confluent.connect.s3.format.parquet.ParquetFormat" => {
                Ok(Format::Parquet(Codec::Snappy))
            }
            "json" | "io.confluent.connect.s3.format.json.JsonFormat" => Ok(Format::Json),
            other => Err(format!("unsupported format '{other}'; use parquet or json")),
        }
    }

    /// The object name's extension, as Confluent writes it (`snappy.parquet`).
    pub fn extension(&self) -> String {
        match self {
            Format::Parquet(Codec::None) => "parquet".to_owned(),
            Format::Parquet(c) => format!("{}.parquet", c.name()),
            Format::Json => "json".to_owned(),
        }
    }

    /// Encodes one file's rows. CPU-bound: call it off the async threads.
    pub fn encode(&self, rows: &[Row]) -> Result<Vec<u8>, ConnectError> {
        self.start(rows)?.finish()
    }

    /// Starts a file written in pieces, its schema set by `first_rows`, which
    /// it holds once this returns. CPU-bound.
    pub fn start(&self, first_rows: &[Row]) -> Result<FileEncoder, ConnectError> {
        Ok(match self {
            Format::Parquet(codec) => {
                FileEncoder::Parquet(Box::new(parquet::ParquetFile::start(first_rows, *codec)?))
            }
            Format::Json => FileEncoder::Json(json::encode(&decode(first_rows)?)?),
        })
    }
}

/// A file being encoded in pieces: rows in, bytes out as they accumulate.
pub enum FileEncoder {
    Parquet(Box<parquet::ParquetFile>),
    Json(Vec<u8>),
}

impl FileEncoder {
    /// Encodes `rows` (one row group for Parquet) if they fit the file's
    /// schema; `false` (nothing written) if they do not. CPU-bound.
    pub fn write_if_fits(&mut self, rows: &[Row]) -> Result<bool, ConnectError> {
        match self {
            FileEncoder::Parquet(p) => p.write_if_fits(rows),
            FileEncoder::Json(buf) => {
                buf.extend(json::encode(&decode(rows)?)?);
                Ok(true)
            }
        }
    }

    pub fn buffered(&self) -> usize {
        match self {
            FileEncoder::Parquet(p) => p.buffered(),
            FileEncoder::Json(buf) => buf.len(),
        }
    }

    pub fn take(&mut self) -> Vec<u8> {
        match self {
            FileEncoder::Parquet(p) => p.take(),
            FileEncoder::Json(buf) => std::mem::take(buf),
        }
    }

    pub fn finish(self) -> Result<Vec<u8>, ConnectError> {
        match self {
            FileEncoder::Parquet(p) => p.finish(),
            FileEncoder::Json(buf) => Ok(buf),
        }
    }
}

/// A row's value as the encoders read it: a record's own, or its JSON text
/// decoded as the JSON converter decodes it.
pub struct Decoded<'a> {
    pub offset: Option<i64>,
    pub schema: Option<&'a SchemaRef>,
    pub value: Cow<'a, Value>,
}

/// The rows' values; JSON text is parsed here (the slow way, for what the
/// direct decoder does not take).
pub fn decode(rows: &[Row]) -> Result<Vec<Decoded<'_>>, ConnectError> {
    rows.iter()
        .map(|row| match row {
            Row::Record(r) => Ok(Decoded {
                offset: r.offset,
                schema: r.value_schema.as_ref(),
                value: Cow::Borrowed(&r.value),
            }),
            Row::Json { offset, text, .. } => parse_schemaless_slice(text)
                .map(|v| Decoded {
                    offset: Some(*offset),
                    schema: None,
                    value: Cow::Owned(v),
                })
                .map_err(|e| {
                    ConnectError::data(format!("cannot decode the value at offset {offset}: {e}"))
                }),
        })
        .collect()
}

/// What encoding a row group did.
pub enum Encoded {
    /// Written into the file's encoder.
    Written(FileEncoder),
    /// The rows do not fit the file's schema: the file (as it was) must be
    /// finished, and the rows start a new file.
    Misfit(FileEncoder, Vec<Row>),
}

/// Runs CPU-bound encoding off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ConnectError> + Send + 'static,
) -> Result<T, ConnectError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ConnectError::fatal(format!("encoding task failed: {e}")))?
}

/// Encodes one row group off the async threads: `encoder` is the file's so
/// far (none for a new file).
pub async fn encode_rows(
    format: Format,
    encoder: Option<FileEncoder>,
    rows: Vec<Row>,
) -> Result<Encoded, ConnectError> {
    blocking(move || match encoder {
        None => format.start(&rows).map(Encoded::Written),
        Some(mut e) => Ok(if e.write_if_fits(&rows)? {
            Encoded::Written(e)
        } else {
            Encoded::Misfit(e, rows)
        }),
    })
    .await
}
