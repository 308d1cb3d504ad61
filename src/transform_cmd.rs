//! `sluice transform new NAME`: starts a WebAssembly transform project — a
//! crate with one struct implementing `sluice_transform::Transform`, a copy of
//! the guest SDK and of the WIT world this binary's host speaks, built for
//! wasm32-wasip2 by a plain `cargo build --release`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum TransformAction {
    /// Create a transform project in DIR/NAME.
    New {
        /// The crate's name: lower case letters, digits, `-` and `_`, starting
        /// with a letter.
        name: String,
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

// The SDK and the world as this binary was built with them, so a project
// started here speaks the host's version of the contract.
const SDK_MANIFEST: &str = include_str!("../transforms/sdk/Cargo.toml");
const SDK_LIB: &str = include_str!("../transforms/sdk/src/lib.rs");
const WORLD: &str = include_str!("../transforms/wit/transform.wit");

pub fn run(action: TransformAction) -> anyhow::Result<()> {
    let TransformAction::New { name, dir } = action;
    let root = create(&name, &dir)?;
    println!(
        "created {}; build it with `cargo build --release` there (needs `rustup target add wasm32-wasip2`); the component is target/wasm32-wasip2/release/{}.wasm",
        root.display(),
        name.replace('-', "_")
    );
    Ok(())
}

/// Writes the project and returns its directory.
pub fn create(name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!("'{name}' is not a crate name: use lower case letters, digits, '-' and '_', starting with a letter");
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    let type_name: String = name
        .split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    // The SDK becomes a member of the project's workspace, not a root of its own.
    let sdk_manifest: String = SDK_MANIFEST
        .lines()
        .filter(|l| *l != "[workspace]" && !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let files = [
        ("Cargo.toml", manifest(name)),
        (
            ".cargo/config.toml",
            "[build]\ntarget = \"wasm32-wasip2\"\n".to_owned(),
        ),
        (".gitignore", "/target\n".to_owned()),
        ("src/lib.rs", template(name, &type_name)),
        ("sdk/Cargo.toml", sdk_manifest),
        ("sdk/src/lib.rs", SDK_LIB.to_owned()),
        ("wit/transform.wit", WORLD.to_owned()),
    ];
    for (path, text) in files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(root)
}

fn manifest(name: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
sluice-transform-sdk = {{ path = "sdk" }}

[workspace]

[profile.release]
opt-level = "s"
panic = "abort"
strip = true
"#
    )
}

fn template(name: &str, type_name: &str) -> String {
    format!(
        r#"//! `{name}`: a sluice WebAssembly transform.
//!
//! Build with `cargo build --release`; configure it with
//!
//!     "transforms": "t",
//!     "transforms.t.type": "io.sluice.transforms.Wasm",
//!     "transforms.t.module": "<here>/target/wasm32-wasip2/release/{file}.wasm"
//!
//! Every other `transforms.t.*` key (but `memory.max.bytes`, `timeout.ms`,
//! `predicate`, `negate`) reaches `init`. The contract is wit/transform.wit.

use sluice_transform::{{Config, Outcome, Parts, Reads, Record, Transform}};

struct {type_name};

impl Transform for {type_name} {{
    fn init(_config: &Config) -> Result<Self, String> {{
        Ok({type_name})
    }}

    /// What `apply` reads; the host does not encode or copy the rest. Parts
    /// read whole arrive as `Data` (the others as `Data::Omitted`, or no
    /// headers); `Reads::value_fields(&["user.email"])` instead sends just
    /// those fields of a structured value, typed (`record.field(0)`), and
    /// takes `record.set_field(0, ..)` back as an edit: the fast way.
    fn reads(&self) -> Reads {{
        Reads::from(Parts::KEY | Parts::VALUE | Parts::HEADERS)
    }}

    /// Keep the record (`Outcome::Unchanged`, or `Outcome::Keep` with a
    /// changed record), drop it, or reject it with `Outcome::Error(message)`
    /// for the connector's error policy.
    fn apply(&mut self, _record: Record) -> Outcome {{
        Outcome::Unchanged
    }}
}}

sluice_transform::export!({type_name});
"#,
        file = name.replace('-', "_")
    )
}
