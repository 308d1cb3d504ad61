//! The API usage event and its deterministic generator.

use std::sync::Arc;

use sluice_api::schema::{primitives, Schema};
use sluice_api::{SchemaRef, Value};

const ENDPOINTS: &[(&str, &str)] = &[
    ("/v1/search", "GET"),
    ("/v1/search", "POST"),
    ("/v1/documents", "GET"),
    ("/v1/documents", "PUT"),
    ("/v1/embeddings", "POST"),
    ("/v1/completions", "POST"),
    ("/v1/usage", "GET"),
    ("/v1/keys", "DELETE"),
];

/// 2026-01-01T00:00:00Z: event times are derived from it, never from the clock,
/// so a regenerated event is identical to the first one.
pub const DEFAULT_EPOCH_MS: i64 = 1_767_225_600_000;

/// One generated event; `to_value` gives it in the connector's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiUsageEvent {
    pub event_id: String,
    pub generator: i32,
    pub sequence: i64,
    pub tenant_id: String,
    pub api_key_id: String,
    pub endpoint: &'static str,
    pub method: &'static str,
    pub status: i32,
    pub latency_ms: i32,
    pub request_bytes: i64,
    pub response_bytes: i64,
    pub timestamp: i64,
    /// The partition key: `tenant_id`, or `tenant_id:api_key_id` for a hot tenant.
    pub key: String,
}

impl ApiUsageEvent {
    pub fn schema() -> SchemaRef {
        Schema::struct_of([
            ("event_id", primitives::string()),
            ("generator", primitives::int32()),
            ("sequence", primitives::int64()),
            ("tenant_id", primitives::string()),
            ("api_key_id", primitives::string()),
            ("endpoint", primitives::string()),
            ("method", primitives::string()),
            ("status", primitives::int32()),
            ("latency_ms", primitives::int32()),
            ("request_bytes", primitives::int64()),
            ("response_bytes", primitives::int64()),
            ("timestamp", Schema::timestamp().into_ref()),
        ])
        .named("sluice.datagen.ApiUsageEvent")
        .into_ref()
    }

    pub fn to_value(self) -> Value {
        Value::Struct(vec![
            Value::String(self.event_id),
            Value::Int32(self.generator),
            Value::Int64(self.sequence),
            Value::String(self.tenant_id),
            Value::String(self.api_key_id),
            Value::String(self.endpoint.to_owned()),
            Value::String(self.method.to_owned()),
            Value::Int32(self.status),
            Value::Int32(self.latency_ms),
            Value::Int64(self.request_bytes),
            Value::Int64(self.response_bytes),
            Value::Int64(self.timestamp),
        ])
    }
}

#[derive(Debug, Clone)]
pub struct EventGenerator {
    pub seed: u64,
    pub generator: i32,
    pub tenants: u32,
    pub hot_tenants: u32,
    pub hot_share: f64,
    pub composite_hot_keys: bool,
    pub epoch_ms: i64,
    pub schema: Arc<Schema>,
}

/// SplitMix64: a tiny, well-mixed hash, enough to make events look random while
/// staying a pure function of their inputs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl EventGenerator {
    /// The event at `sequence`; the same inputs always give the same event.
    pub fn event(&self, sequence: i64) -> ApiUsageEvent {
        let base =
            mix(self.seed ^ mix(self.generator as u64) ^ mix(sequence as u64).rotate_left(17));
        let r = |salt: u64| mix(base ^ salt);
        let unit = |salt: u64| (r(salt) >> 11) as f64 / (1u64 << 53) as f64;
        let hot = self.hot_tenants > 0 && unit(1) < self.hot_share;
        let tenant = if hot {
            (r(2) % u64::from(self.hot_tenants)) as u32
        } else {
            let cold = self.tenants.saturating_sub(self.hot_tenants).max(1);
            self.hot_tenants.min(self.tenants - 1) + (r(2) % u64::from(cold)) as u32
        };
        let tenant_id = format!("tenant_{tenant:05}");
        let api_key_id = format!("key_{tenant:05}_{}", r(3) % 4);
        let (endpoint, method) = ENDPOINTS[(r(4) % ENDPOINTS.len() as u64) as usize];
        let status = match r(5) % 100 {
            0..=91 => 200,
            92..=94 => 429,
            95..=97 => 404,
            98 => 401,
            _ => 500,
        };
        let key = if hot && self.composite_hot_keys {
            format!("{tenant_id}:{api_key_id}")
        } else {
            tenant_id.clone()
        };
        ApiUsageEvent {
            event_id: format!("evt-{}-{sequence}", self.generator),
            generator: self.generator,
            sequence,
            tenant_id,
            api_key_id,
            endpoint,
            method,
            status,
            latency_ms: 5 + (r(6) % 400) as i32,
            request_bytes: 200 + (r(7) % 4_000) as i64,
            response_bytes: 500 + (r(8) % 60_000) as i64,
            timestamp: self.epoch_ms + sequence * 10 + i64::from(self.generator),
            key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(hot_share: f64) -> EventGenerator {
        EventGenerator {
            seed: 7,
            generator: 0,
            tenants: 100,
            hot_tenants: 2,
            hot_share,
            composite_hot_keys: true,
            epoch_ms: DEFAULT_EPOCH_MS,
            schema: ApiUsageEvent::schema(),
        }
    }

    #[test]
    fn events_are_deterministic() {
        let g = generator(0.3);
        assert_eq!(g.event(12345), g.event(12345));
        assert_ne!(g.event(1), g.event(2));
        let other = EventGenerator {
            seed: 8,
            ..g.clone()
        };
        assert_ne!(g.event(5), other.event(5));
    }

    #[test]
    fn hot_share_is_respected_and_hot_keys_are_composite() {
        let g = generator(0.3);
        let n = 20_000;
        let hot = (0..n).filter(|s| g.event(*s).key.contains(':')).count();
        let share = hot as f64 / n as f64;
        assert!((0.27..0.33).contains(&share), "hot share {share}");
        let e = (0..n)
            .map(|s| g.event(s))
            .find(|e| e.key.contains(':'))
            .unwrap();
        assert_eq!(e.key, format!("{}:{}", e.tenant_id, e.api_key_id));
        assert!((0..n)
            .map(|s| g.event(s))
            .all(|e| e.tenant_id.as_str() < "tenant_00100"));
    }

    #[test]
    fn value_matches_schema() {
        let g = generator(0.0);
        let v = g.event(3).to_value();
        let Value::Struct(fields) = v else {
            panic!("struct expected")
        };
        assert_eq!(fields.len(), ApiUsageEvent::schema().fields().len());
        assert_eq!(fields[2], Value::Int64(3));
    }
}
