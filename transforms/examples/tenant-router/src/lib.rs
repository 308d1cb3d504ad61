//! The seed's hot-tenant rule ("Handling Hot Tenants"): events of a tenant in
//! the hot list are re-keyed to `tenant_id:api_key_id`, spreading one tenant's
//! traffic over partitions while keeping per-API-key order; other events are
//! keyed by `tenant_id`.
//!
//! Keys: `hot.tenants` (comma-separated tenant ids), `tenant.field` (default
//! `tenant_id`), `api.key.field` (default `api_key_id`; dotted paths such as
//! `identity.api_key_id` reach nested fields). An event without a tenant is an
//! error; a hot tenant's event without an API key keeps the tenant key.

use std::collections::BTreeSet;

use sluice_transform::{json, list, Config, Data, Outcome, Reads, Record, Transform};

struct TenantRouter {
    hot: BTreeSet<String>,
    tenant_field: String,
    api_key_field: String,
}

impl Transform for TenantRouter {
    fn init(config: &Config) -> Result<Self, String> {
        let field = |key: &str, default: &str| {
            config
                .get(key)
                .cloned()
                .unwrap_or_else(|| default.to_owned())
        };
        Ok(TenantRouter {
            hot: list(config, "hot.tenants").into_iter().collect(),
            tenant_field: field("tenant.field", "tenant_id"),
            api_key_field: field("api.key.field", "api_key_id"),
        })
    }

    // The key comes from the value; the old key and the headers do not matter.
    fn reads(&self) -> Reads {
        Reads::VALUE
    }

    fn apply(&mut self, mut record: Record) -> Outcome {
        let Some(value) = record.value.to_json() else {
            return Outcome::Error("the value is not JSON".into());
        };
        let Some(tenant) = json::field(&value, &self.tenant_field).and_then(json::text) else {
            return Outcome::Error(format!("the value has no '{}'", self.tenant_field));
        };
        let api_key = json::field(&value, &self.api_key_field).and_then(json::text);
        let key = match api_key {
            Some(api_key) if self.hot.contains(&tenant) => format!("{tenant}:{api_key}"),
            _ => tenant,
        };
        record.key = Data::Text(key);
        Outcome::Keep(record)
    }
}

sluice_transform::export!(TenantRouter);
