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

use sluice_transform::{list, Config, Data, Outcome, Reads, Record, Transform};

const TENANT: usize = 0;
const API_KEY: usize = 1;

struct TenantRouter {
    hot: BTreeSet<String>,
    /// The tenant field's path, then the API key's ([`TENANT`], [`API_KEY`]).
    fields: [String; 2],
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
            fields: [
                field("tenant.field", "tenant_id"),
                field("api.key.field", "api_key_id"),
            ],
        })
    }

    // The key comes from two value fields; the old key and the headers do not
    // matter.
    fn reads(&self) -> Reads {
        Reads::value_fields(&self.fields)
    }

    fn apply(&mut self, mut record: Record) -> Outcome {
        let Some(tenant) = record.field(TENANT).and_then(|f| f.to_text()) else {
            return Outcome::Error(format!("the value has no '{}'", self.fields[TENANT]));
        };
        let api_key = record.field(API_KEY).and_then(|f| f.to_text());
        let key = match api_key {
            Some(api_key) if self.hot.contains(&tenant) => format!("{tenant}:{api_key}"),
            _ => tenant,
        };
        record.key = Data::Text(key);
        Outcome::Keep(record)
    }
}

sluice_transform::export!(TenantRouter);
