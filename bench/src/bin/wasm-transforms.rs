//! `wasm-transforms`: what a WebAssembly transform costs next to a native one,
//! in process, on the same records (datagen's API usage events, with their
//! schema, in batches as a task gives them):
//!
//! - records/s through native `MaskField$Value` and through the `mask-pii`
//!   component masking the same fields;
//! - the `noop` component's cost per record in ns: the boundary alone (JSON
//!   encoding of the value, the copy into the guest and back, the comparison
//!   that keeps an unchanged record as it was).
//!
//! No broker and no worker: the transform step alone, single-threaded as a
//! task runs it. `bench/run-wasm` builds the guests and runs it.

#[path = "../../../tests/support/guests.rs"]
mod guests;

use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use sluice_api::{Record, TaskConfig, Transform, Value};
use sluice_datagen::{ApiUsageEvent, EventGenerator, DEFAULT_EPOCH_MS};
use sluice_wasm::{Limits, WasmTransform};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 200_000)]
    records: usize,
    /// Records per `apply_batch` call (a task's poll or put batch).
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The value fields both maskers mask.
    #[arg(long, default_value = "api_key_id,tenant_id")]
    fields: String,
}

fn records(n: usize) -> Vec<Record> {
    let g = EventGenerator {
        seed: 42,
        generator: 0,
        tenants: 1000,
        hot_tenants: 3,
        hot_share: 0.3,
        composite_hot_keys: true,
        epoch_ms: DEFAULT_EPOCH_MS,
        schema: ApiUsageEvent::schema(),
    };
    (0..n as i64)
        .map(|i| {
            let e = g.event(i);
            let mut r = Record::new(
                "api-usage-events.v1",
                Value::String(e.key.clone()),
                Value::Null,
            );
            r.value = e.to_value();
            r.value_schema = Some(ApiUsageEvent::schema());
            r
        })
        .collect()
}

/// Median seconds to push every record through `t`, batch by batch.
fn time(t: &mut dyn Transform, input: &[Record], batch: usize, runs: usize) -> Result<f64> {
    let mut secs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let batches: Vec<Vec<Record>> = input.chunks(batch).map(<[Record]>::to_vec).collect();
        let start = Instant::now();
        for b in batches {
            for r in t.apply_batch(b) {
                r.context("a record failed")?;
            }
        }
        secs.push(start.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    Ok(secs[runs / 2])
}

fn native_mask(fields: &str) -> Result<Box<dyn Transform>> {
    let Some(plugin) = sluice_transforms::transforms().into_iter().find(|p| {
        p.aliases
            .contains(&"org.apache.kafka.connect.transforms.MaskField$Value")
    }) else {
        bail!("this build has no native MaskField$Value (transforms/builtin)");
    };
    let config: TaskConfig = [
        ("fields".to_owned(), fields.to_owned()),
        ("replacement".to_owned(), "****".to_owned()),
    ]
    .into_iter()
    .collect();
    Ok((plugin.create)(&config)?)
}

fn component(name: &str, config: &[(&str, &str)]) -> Result<WasmTransform> {
    let config = config
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Ok(WasmTransform::new(
        &guests::guest(name),
        Limits {
            memory_max_bytes: 256 << 20,
            ..Limits::default()
        },
        config,
    )?)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let input = records(args.records);
    let n = args.records as f64;
    println!(
        "{} records, batches of {}, median of {} runs",
        args.records, args.batch, args.runs
    );

    let mut wasm_mask = component("mask-pii", &[("fields", &args.fields)])?;
    let wasm_secs = time(&mut wasm_mask, &input, args.batch, args.runs)?;
    let native = match native_mask(&args.fields) {
        Ok(mut t) => Some(time(t.as_mut(), &input, args.batch, args.runs)?),
        Err(e) => {
            println!("native MaskField: skipped ({e})");
            None
        }
    };
    let mut noop = component("noop", &[])?;
    let noop_secs = time(&mut noop, &input, args.batch, args.runs)?;

    if let Some(native_secs) = native {
        println!(
            "native MaskField$Value   {:>12.0} records/s",
            n / native_secs
        );
    }
    println!("mask-pii component       {:>12.0} records/s", n / wasm_secs);
    if let Some(native_secs) = native {
        println!(
            "mask-pii / native        {:>12.1} %",
            100.0 * native_secs / wasm_secs
        );
    }
    println!(
        "noop component           {:>12.0} ns/record",
        noop_secs * 1e9 / n
    );
    Ok(())
}
