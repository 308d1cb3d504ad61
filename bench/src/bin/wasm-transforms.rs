//! `wasm-transforms`: what a WebAssembly transform costs next to a native one,
//! in process, on the same records (datagen's API usage events, with their
//! schema, in batches as a task gives them):
//!
//! - records/s through native `MaskField$Value` and through the `mask-pii`
//!   component masking the same fields;
//! - the `noop` component's cost per record in ns over a native pass-through:
//!   the boundary alone (the record's coordinates into the guest, an
//!   `unchanged` outcome back; it reads no key, value or headers).
//!
//! No broker and no worker: the transform step alone, single-threaded as a
//! task runs it, timed in the thread's CPU time (records/s are per CPU second). `bench/run-wasm` builds the guests and runs it.

#[path = "../../../tests/support/guests.rs"]
mod guests;

use anyhow::{bail, Context, Result};
use clap::Parser;
use sluice_api::{ConnectError, Record, TaskConfig, Transform, Value};
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
    /// Run only the no-op component (to profile the boundary alone).
    #[arg(long)]
    noop_only: bool,
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

/// This thread's CPU time in seconds. The machine is shared: wall-clock time
/// counts the time other processes had the CPU, thread CPU time does not.
fn cpu_secs() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Median CPU seconds to push every record through `t`, batch by batch. The
/// records out are dropped after the clock stops: freeing them is the same
/// work whatever the transform, and would blur the difference.
fn time(t: &mut dyn Transform, input: &[Record], batch: usize, runs: usize) -> Result<f64> {
    let mut secs = Vec::with_capacity(runs);
    for _ in 0..runs {
        let batches: Vec<Vec<Record>> = input.chunks(batch).map(<[Record]>::to_vec).collect();
        let mut out = Vec::with_capacity(batches.len());
        let start = cpu_secs();
        for b in batches {
            out.push(t.apply_batch(b));
        }
        secs.push(cpu_secs() - start);
        for r in out.into_iter().flatten() {
            r.context("a record failed")?;
        }
    }
    secs.sort_by(f64::total_cmp);
    Ok(secs[runs / 2])
}

/// Keeps every record as it is, natively: what the no-op component is
/// measured against, so its figure is the boundary's cost alone.
struct PassThrough;

impl Transform for PassThrough {
    fn apply(&mut self, record: Record) -> Result<Option<Record>, ConnectError> {
        Ok(Some(record))
    }
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

    let noop_overhead = |input: &[Record]| -> Result<f64> {
        let mut noop = component("noop", &[])?;
        let noop_secs = time(&mut noop, input, args.batch, args.runs)?;
        let native_secs = time(&mut PassThrough, input, args.batch, args.runs)?;
        Ok((noop_secs - native_secs) * 1e9 / n)
    };
    if args.noop_only {
        println!(
            "noop component           {:>12.0} ns/record over native",
            noop_overhead(&input)?
        );
        return Ok(());
    }
    let mut wasm_mask = component("mask-pii", &[("fields", &args.fields)])?;
    let wasm_secs = time(&mut wasm_mask, &input, args.batch, args.runs)?;
    let native = match native_mask(&args.fields) {
        Ok(mut t) => Some(time(t.as_mut(), &input, args.batch, args.runs)?),
        Err(e) => {
            println!("native MaskField: skipped ({e})");
            None
        }
    };
    let noop_ns = noop_overhead(&input)?;

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
    println!("noop component           {noop_ns:>12.0} ns/record over native");
    Ok(())
}
