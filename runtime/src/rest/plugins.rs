//! `/connector-plugins/...`: what this worker can run, each plugin's config
//! definition, and config validation with every error at once.

use std::collections::BTreeMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use sluice_api::config::{ConfigDef, ConfigKey, DefaultValue};

use super::connectors::config_map;
use super::error::{query_flag, query_values, ApiError, Body};
use super::Shared;
use crate::config::{connector_config_def, ConnectorConfig};
use crate::convert::CONVERTERS;
use crate::herder::shown;

pub const ROUTES: [(&str, &str); 3] = [
    ("/connector-plugins", "get"),
    ("/connector-plugins/{pluginName}/config", "get"),
    ("/connector-plugins/{pluginName}/config/validate", "put"),
];

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/connector-plugins", get(list))
        .route("/connector-plugins/{plugin}/config", get(config_def))
        .route("/connector-plugins/{plugin}/config/validate", put(validate))
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

async fn list(State(s): State<Shared>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    // True unless given, then read as Connect reads it (only "true" is true).
    let connectors_only = query_values(q.as_deref(), "connectorsOnly")
        .last()
        .is_none()
        || query_flag(q.as_deref(), "connectorsOnly");
    let plugins = s.herder.worker().plugins();
    // Listed by the Connect class each stands in for, as Connect lists it
    // (tools look for `...FileStreamSinkConnector`); both names configure it.
    let mut out: Vec<Value> = plugins
        .connectors()
        .iter()
        .map(|p| json!({"class": p.connect_class(), "type": p.kind().as_str(), "version": p.version}))
        .collect();
    if !connectors_only {
        out.extend(
            plugins
                .transforms()
                .iter()
                .map(|t| json!({"class": connect_class(t.name, t.aliases), "type": "transformation", "version": VERSION})),
        );
        out.extend(
            plugins
                .predicates()
                .iter()
                .map(|p| json!({"class": connect_class(p.name, p.aliases), "type": "predicate", "version": VERSION})),
        );
        for (name, aliases) in CONVERTERS {
            let class = aliases.first().copied().unwrap_or(name);
            out.push(json!({"class": class, "type": "converter", "version": VERSION}));
            out.push(json!({"class": class, "type": "header_converter", "version": VERSION}));
        }
    }
    Ok(Json(out).into_response())
}

/// The name Connect tooling knows a plugin by: its Connect class when it has one.
fn connect_class(name: &'static str, aliases: &[&'static str]) -> &'static str {
    aliases
        .iter()
        .find(|a| a.contains('.'))
        .copied()
        .unwrap_or(name)
}

/// The definition of any plugin as Connect's `GET .../config` lists it: a
/// connector's own keys, then the keys every connector of its kind has; a
/// transform's or predicate's keys.
fn definition_of(s: &Shared, name: &str) -> Option<Vec<Value>> {
    let plugins = s.herder.worker().plugins();
    if let Some(p) = plugins.connector(name) {
        let mut keys = key_infos(&(p.config_def)(), false);
        let own: std::collections::HashSet<String> = keys
            .iter()
            .filter_map(|k| k["name"].as_str().map(str::to_owned))
            .collect();
        keys.extend(
            key_infos(&connector_config_def(p.kind()), true)
                .into_iter()
                .filter(|k| k["name"].as_str().is_some_and(|n| !own.contains(n))),
        );
        return Some(keys);
    }
    if let Some(t) = plugins.transform(name) {
        return Some(key_infos(&(t.config_def)(), false));
    }
    plugins
        .predicate(name)
        .map(|p| key_infos(&(p.config_def)(), false))
}

async fn config_def(
    State(s): State<Shared>,
    Path(plugin): Path<String>,
) -> Result<Response, ApiError> {
    let keys = definition_of(&s, &plugin)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Unknown plugin {plugin}.")))?;
    Ok(Json(keys).into_response())
}

fn unknown(plugin: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "Failed to find any class that implements Connector and which name matches {plugin}"
        ),
    )
}

async fn validate(
    State(s): State<Shared>,
    Path(plugin): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let plugins = s.herder.worker().plugins();
    let mut written = config_map(&body)?;
    let class = written
        .entry("connector.class".into())
        .or_insert_with(|| plugin.clone())
        .clone();
    let p = plugins
        .connector(&class)
        .or_else(|| plugins.connector(&plugin))
        .ok_or_else(|| unknown(&plugin))?;
    if !p.answers_to(&plugin) {
        return Err(ApiError::bad_request(format!(
            "'connector.class' is {class}, but the URL validates {plugin}"
        )));
    }
    let common = connector_config_def(p.kind());
    let own = (p.config_def)();
    let infos: std::collections::HashMap<String, Value> = key_infos(&own, false)
        .into_iter()
        .chain(key_infos(&common, true))
        .filter_map(|k| Some((k["name"].as_str()?.to_owned(), k)))
        .collect();
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Err(all) = ConnectorConfig::from_written(
        written.clone(),
        plugins,
        s.herder.worker().config().connector_rules(),
    ) {
        for e in all.0 {
            errors.entry(e.key).or_default().push(e.message);
        }
    }
    let mut groups: Vec<String> = Vec::new();
    let mut configs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for k in common.keys().iter().chain(own.keys()) {
        if !seen.insert(k.name.clone()) {
            continue;
        }
        let definition = infos.get(&k.name).cloned().unwrap_or(Value::Null);
        if let Some(group) = definition["group"].as_str() {
            if !groups.iter().any(|g| g == group) {
                groups.push(group.to_owned());
            }
        }
        // As Connect reports it: the value written, else the default.
        let value = match (written.get(&k.name), &k.default) {
            (Some(v), _) => Some(shown(&k.name, v, &common, Some(&own))),
            (None, DefaultValue::Value(d)) => Some(d.clone()),
            (None, _) => None,
        };
        let errs = errors.remove(&k.name).unwrap_or_default();
        configs.push(json!({
            "definition": definition,
            "value": {"name": k.name, "value": value, "recommended_values": [], "errors": errs, "visible": true},
        }));
    }
    // Errors on keys no definition names (a transform's, a provider's).
    for (key, errs) in errors {
        configs.push(json!({
            "definition": {"name": key, "type": "STRING", "required": false, "default_value": null,
                "importance": "LOW", "documentation": "", "group": null, "order_in_group": -1,
                "width": "NONE", "display_name": key, "dependents": []},
            "value": {"name": key, "value": written.get(&key), "recommended_values": [], "errors": errs, "visible": true},
        }));
    }
    let error_count: usize = configs
        .iter()
        .map(|c| c["value"]["errors"].as_array().map_or(0, Vec::len))
        .sum();
    Ok(Json(json!({
        "name": p.connect_class(),
        "error_count": error_count,
        "groups": groups,
        "configs": configs,
    }))
    .into_response())
}

/// Connect's `ConfigKeyInfo` of every key of `def`, in order. The keys every
/// connector has are in Connect's "Common" group unless they name another; a
/// plugin's own keys without a group have none and are ordered -1, as
/// Connect reports them.
fn key_infos(def: &ConfigDef, common: bool) -> Vec<Value> {
    let mut in_group: BTreeMap<String, i32> = BTreeMap::new();
    def.keys()
        .iter()
        .map(|k| {
            let group = k
                .group
                .clone()
                .or_else(|| common.then(|| "Common".to_owned()));
            let order = match &group {
                Some(g) => {
                    let n = in_group.entry(g.clone()).or_insert(0);
                    *n += 1;
                    *n
                }
                None => -1,
            };
            key_info(k, group, order)
        })
        .collect()
}

fn key_info(k: &ConfigKey, group: Option<String>, order_in_group: i32) -> Value {
    let default = match &k.default {
        DefaultValue::Value(v) => Value::String(v.clone()),
        DefaultValue::Required | DefaultValue::Absent => Value::Null,
    };
    json!({
        "name": k.name,
        "type": k.config_type.as_str(),
        "required": k.default == DefaultValue::Required,
        "default_value": default,
        "importance": k.importance.as_str(),
        "documentation": k.doc,
        "group": group,
        "order_in_group": order_in_group,
        "width": "NONE",
        "display_name": k.name,
        "dependents": [],
    })
}
