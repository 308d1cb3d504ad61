//! Which Kafka partition a source record goes to, decided by the runtime before
//! sending: idempotent resume compares positions per Kafka partition, so it
//! must know where a replayed record will land, and that must be where it
//! landed the first time.
//!
//! Keys are hashed with Kafka's murmur2, exactly as Java producers do, so keys
//! land where every Java client puts them. A record without a key is placed by
//! its source position, which is stable across replays.

/// The partition of a record with `key` and source `position` in a topic of
/// `partitions`: its own when the task chose one, else by its key, else by
/// its position; `None` (the producer's choice) for a record with neither.
pub fn partition_of(
    chosen: Option<i32>,
    key: Option<&[u8]>,
    position: Option<sluice_api::Position>,
    partitions: i32,
) -> Option<i32> {
    match (chosen, key, position) {
        (Some(p), _, _) => Some(p),
        (None, Some(k), _) => Some(partition_for(k, partitions)),
        (None, None, Some(pos)) => Some(partition_for(pos.encode().as_bytes(), partitions)),
        (None, None, None) => None,
    }
}

/// Kafka's `Utils.murmur2` (seed 0x9747b28c), byte for byte.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= u32::from(tail[2]) << 16;
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's default partition for a keyed record: `toPositive(murmur2(key)) % n`.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_goes_where_its_task_its_key_or_its_position_says() {
        let pos = sluice_api::Position::new(500, 3);
        assert_eq!(partition_of(Some(7), Some(b"k"), Some(pos), 64), Some(7));
        assert_eq!(
            partition_of(None, Some(b"k"), Some(pos), 64),
            Some(partition_for(b"k", 64))
        );
        // Keyless: by position, so a replay lands where the original did.
        assert_eq!(
            partition_of(None, None, Some(pos), 64),
            Some(partition_for(b"500/3", 64))
        );
        assert_eq!(partition_of(None, None, None, 64), None);
    }

    #[test]
    fn matches_kafkas_murmur2() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }

    #[test]
    fn partitions_are_in_range_and_stable() {
        for key in [&b"tenant_00001"[..], b"", b"x"] {
            let p = partition_for(key, 64);
            assert!((0..64).contains(&p));
            assert_eq!(p, partition_for(key, 64));
        }
    }
}
