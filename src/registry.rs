//! Every plugin this binary ships. A new connector or transform is one line here.

use sluice_runtime::Plugins;

pub fn builtin() -> Plugins {
    let mut plugins = Plugins::new()
        .connector_plugin(sluice_datagen::plugin())
        .connector_plugin(sluice_file::sink_plugin())
        .connector_plugin(sluice_file::source_plugin())
        .connector_plugin(sluice_s3::plugin())
        .connector_plugin(sluice_postgres_cdc::plugin())
        .connector_plugin(sluice_elasticsearch::plugin());
    for t in sluice_transforms::transforms() {
        plugins = plugins.transform_plugin(t);
    }
    for p in sluice_transforms::predicates() {
        plugins = plugins.predicate_plugin(p);
    }
    plugins
}
