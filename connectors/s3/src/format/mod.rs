//! File formats: Parquet (columns built from a whole file's records at once) and
//! JSON lines.

mod columns;
mod json;
mod parquet;

use sluice_api::{ConnectError, Record};

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

    /// Encodes one file's records. CPU-bound: call it off the async threads.
    pub fn encode(&self, records: &[Record]) -> Result<Vec<u8>, ConnectError> {
        match self {
            Format::Parquet(codec) => parquet::encode(records, *codec),
            Format::Json => json::encode(records),
        }
    }

    /// Starts a file written in pieces, its schema set by `first_rows`.
    pub fn start(&self, first_rows: &[Record]) -> Result<FileEncoder, ConnectError> {
        Ok(match self {
            Format::Parquet(codec) => {
                FileEncoder::Parquet(Box::new(parquet::ParquetFile::new(first_rows, *codec)?))
            }
            Format::Json => FileEncoder::Json(Vec::new()),
        })
    }
}

/// A file being encoded in pieces: rows in, bytes out as they accumulate.
pub enum FileEncoder {
    Parquet(Box<parquet::ParquetFile>),
    Json(Vec<u8>),
}

impl FileEncoder {
    pub fn fits(&self, rows: &[Record]) -> bool {
        match self {
            FileEncoder::Parquet(p) => p.fits(rows),
            FileEncoder::Json(_) => true,
        }
    }

    /// Encodes `rows` (one row group for Parquet). CPU-bound.
    pub fn write(&mut self, rows: &[Record]) -> Result<(), ConnectError> {
        match self {
            FileEncoder::Parquet(p) => p.write(rows),
            FileEncoder::Json(buf) => {
                buf.extend(json::encode(rows)?);
                Ok(())
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

/// What encoding a row group did.
pub enum Encoded {
    /// Written into the file's encoder.
    Written(FileEncoder),
    /// The rows do not fit the file's schema: the file (as it was) must be
    /// finished, and the rows start a new file.
    Misfit(FileEncoder, Vec<Record>),
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
    rows: Vec<Record>,
) -> Result<Encoded, ConnectError> {
    blocking(move || {
        let mut encoder = match encoder {
            Some(e) if !e.fits(&rows) => return Ok(Encoded::Misfit(e, rows)),
            Some(e) => e,
            None => format.start(&rows)?,
        };
        encoder.write(&rows)?;
        Ok(Encoded::Written(encoder))
    })
    .await
}
