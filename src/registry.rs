//! Every plugin this binary ships. A new connector or transform is one line here.

use sluice_runtime::Plugins;

pub fn builtin() -> Plugins {
    Plugins::new()
        .connector_plugin(sluice_datagen::plugin())
        .connector_plugin(sluice_file::sink_plugin())
        .connector_plugin(sluice_file::source_plugin())
}
