//! Where in the bucket a file goes: Confluent's partitioners and object names,
//! `<topics.dir>/<topic>/<encoded partition>/<topic>+<kafkaPartition>+<startOffset>.<ext>`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioner {
    /// `partition=<kafka partition>`.
    Default,
}

impl Partitioner {
    pub fn from_class(class: &str) -> Result<Self, String> {
        match class {
            "default" | "io.confluent.connect.storage.partitioner.DefaultPartitioner" => Ok(Partitioner::Default),
            "io.confluent.connect.storage.partitioner.FieldPartitioner"
            | "io.confluent.connect.storage.partitioner.TimeBasedPartitioner"
            | "io.confluent.connect.storage.partitioner.HourlyPartitioner"
            | "io.confluent.connect.storage.partitioner.DailyPartitioner" => {
                Err(format!("'{class}' is not supported yet; use io.confluent.connect.storage.partitioner.DefaultPartitioner"))
            }
            other => Err(format!("unknown partitioner '{other}'")),
        }
    }

    pub fn encoded_partition(&self, kafka_partition: i32) -> String {
        match self {
            Partitioner::Default => format!("partition={kafka_partition}"),
        }
    }
}

/// The object key of a file starting at `start_offset`.
pub fn object_key(
    topics_dir: &str,
    partitioner: Partitioner,
    topic: &str,
    partition: i32,
    start_offset: i64,
    pad_width: usize,
    extension: &str,
) -> String {
    let encoded = partitioner.encoded_partition(partition);
    let file = format!("{topic}+{partition}+{start_offset:0pad_width$}.{extension}");
    if topics_dir.is_empty() {
        format!("{topic}/{encoded}/{file}")
    } else {
        format!("{topics_dir}/{topic}/{encoded}/{file}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_confluent_naming() {
        let k = object_key(
            "topics",
            Partitioner::Default,
            "api-usage-events.v1",
            7,
            4200,
            10,
            "snappy.parquet",
        );
        assert_eq!(k, "topics/api-usage-events.v1/partition=7/api-usage-events.v1+7+0000004200.snappy.parquet");
        assert!(Partitioner::from_class(
            "io.confluent.connect.storage.partitioner.TimeBasedPartitioner"
        )
        .unwrap_err()
        .contains("not supported yet"));
    }
}
