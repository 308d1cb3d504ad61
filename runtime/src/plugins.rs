//! The registry of plugins a worker can run. The runtime knows no plugin by name:
//! the binary registers each one (one line per plugin).

use sluice_api::plugin::{PredicatePlugin, TransformPlugin};
use sluice_api::ConnectorPlugin;

#[derive(Clone, Default)]
pub struct Plugins {
    connectors: Vec<ConnectorPlugin>,
    transforms: Vec<TransformPlugin>,
    predicates: Vec<PredicatePlugin>,
}

impl Plugins {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn connector_plugin(mut self, plugin: ConnectorPlugin) -> Self {
        self.connectors.push(plugin);
        self
    }

    pub fn transform_plugin(mut self, plugin: TransformPlugin) -> Self {
        self.transforms.push(plugin);
        self
    }

    pub fn predicate_plugin(mut self, plugin: PredicatePlugin) -> Self {
        self.predicates.push(plugin);
        self
    }

    /// Looks a connector up by its class or any alias.
    pub fn connector(&self, class: &str) -> Option<&ConnectorPlugin> {
        self.connectors.iter().find(|p| p.answers_to(class))
    }

    pub fn connectors(&self) -> &[ConnectorPlugin] {
        &self.connectors
    }

    pub fn connector_classes(&self) -> Vec<&'static str> {
        self.connectors.iter().map(|p| p.class).collect()
    }

    pub fn transform(&self, name: &str) -> Option<&TransformPlugin> {
        self.transforms
            .iter()
            .find(|t| t.name == name || t.aliases.contains(&name))
    }

    pub fn transform_names(&self) -> Vec<&'static str> {
        self.transforms.iter().map(|t| t.name).collect()
    }

    pub fn predicate(&self, name: &str) -> Option<&PredicatePlugin> {
        self.predicates
            .iter()
            .find(|p| p.name == name || p.aliases.contains(&name))
    }

    pub fn transforms(&self) -> &[TransformPlugin] {
        &self.transforms
    }

    pub fn predicates(&self) -> &[PredicatePlugin] {
        &self.predicates
    }
}
