//! A connector's chain of single-message transforms, each optionally gated by a
//! predicate, as Connect's `transforms` / `predicates` keys configure it.

use sluice_api::{ConfigErrors, ConnectError, Predicate, Record, Transform};

use crate::config::{ConnectorConfig, TransformSpec};
use crate::plugins::Plugins;

struct Step {
    alias: String,
    type_name: String,
    transform: Box<dyn Transform>,
    predicate: Option<(Box<dyn Predicate>, bool)>,
}

/// One task's instances of its connector's transforms.
#[derive(Default)]
pub struct TransformChain {
    steps: Vec<Step>,
}

/// A record that a transform rejected.
#[derive(Debug)]
pub struct TransformFailure {
    /// Position of the record in the batch given to [`TransformChain::apply`], so
    /// the caller can report the original record.
    pub index: usize,
    pub alias: String,
    /// The transform's type, as configured (its class, for error reports).
    pub type_name: String,
    pub error: ConnectError,
}

impl TransformChain {
    pub fn build(config: &ConnectorConfig, plugins: &Plugins) -> Result<Self, ConnectError> {
        let mut steps = Vec::new();
        for spec in &config.transforms {
            steps.push(build_step(spec, config, plugins)?);
        }
        Ok(Self { steps })
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs `records` through every step, keeping their order. Dropped records
    /// vanish from the output; failed ones are reported by their input position.
    pub fn apply(&mut self, records: Vec<Record>) -> (Vec<Record>, Vec<TransformFailure>) {
        let (out, failures) = self.apply_indexed(records);
        (out.into_iter().map(|(_, r)| r).collect(), failures)
    }

    /// As [`TransformChain::apply`], with each output's input position.
    pub fn apply_indexed(
        &mut self,
        records: Vec<Record>,
    ) -> (Vec<(usize, Record)>, Vec<TransformFailure>) {
        if self.steps.is_empty() {
            return (records.into_iter().enumerate().collect(), Vec::new());
        }
        // A WebAssembly guest may run up to its `timeout.ms` per batch: off
        // the scheduler's thread, so other tasks and the REST API keep going.
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(|| self.run_steps(records))
        } else {
            self.run_steps(records)
        }
    }

    fn run_steps(&mut self, records: Vec<Record>) -> (Vec<(usize, Record)>, Vec<TransformFailure>) {
        let mut failures = Vec::new();
        let mut current: Vec<(usize, Record)> = records.into_iter().enumerate().collect();
        for step in &mut self.steps {
            let mut slots: Vec<(usize, Option<Record>)> = Vec::with_capacity(current.len());
            let mut inputs = Vec::new();
            let mut input_slots = Vec::new();
            for (origin, record) in current {
                let applies = step
                    .predicate
                    .as_ref()
                    .is_none_or(|(p, negate)| p.test(&record) != *negate);
                if applies {
                    input_slots.push(slots.len());
                    inputs.push(record);
                    slots.push((origin, None));
                } else {
                    slots.push((origin, Some(record)));
                }
            }
            let expected = inputs.len();
            let mut results = step.transform.apply_batch(inputs);
            if results.len() != expected {
                // A transform that loses track of records must not lose the records.
                let why = format!(
                    "transform returned {} results for {expected} records",
                    results.len()
                );
                results = (0..expected)
                    .map(|_| Err(ConnectError::fatal(why.clone())))
                    .collect();
            }
            for (slot, result) in input_slots.into_iter().zip(results) {
                match result {
                    Ok(out) => slots[slot].1 = out,
                    Err(error) => failures.push(TransformFailure {
                        index: slots[slot].0,
                        alias: step.alias.clone(),
                        type_name: step.type_name.clone(),
                        error,
                    }),
                }
            }
            current = slots
                .into_iter()
                .filter_map(|(origin, r)| r.map(|r| (origin, r)))
                .collect();
        }
        (current, failures)
    }
}

fn build_step(
    spec: &TransformSpec,
    config: &ConnectorConfig,
    plugins: &Plugins,
) -> Result<Step, ConnectError> {
    let plugin = plugins.transform(&spec.type_name).ok_or_else(|| {
        ConfigErrors::single(
            format!("transforms.{}.type", spec.alias),
            "unknown transform type",
        )
    })?;
    let transform = (plugin.create)(&spec.config).map_err(|e| {
        ConnectError::new(
            e.kind(),
            format!("transform '{}' ({}): {e}", spec.alias, spec.type_name),
        )
    })?;
    let predicate = match &spec.predicate {
        None => None,
        Some(name) => {
            let own = config.with_prefix(&format!("predicates.{name}."));
            let type_name = own.get("type").cloned().unwrap_or_default();
            let p = plugins.predicate(&type_name).ok_or_else(|| {
                ConfigErrors::single(
                    format!("predicates.{name}.type"),
                    format!("unknown predicate type '{type_name}'"),
                )
            })?;
            Some(((p.create)(&own)?, spec.negate))
        }
    };
    Ok(Step {
        alias: spec.alias.clone(),
        type_name: spec.type_name.clone(),
        transform,
        predicate,
    })
}
