//! Config providers, as Connect's `${provider:path:key}` references:
//! `${env:NAME}` reads an environment variable, `${file:/path/to/file:key}` reads
//! `key` from a properties file (`key=value` lines).
//!
//! A connector config can come from any REST client, so a reference in it may
//! read only what the worker's operator allowed, as in Connect: providers
//! declared in the worker's `config.providers` (`env`, `file`), each narrowed
//! by Connect's parameters, `config.providers.env.param.allowlist.pattern`
//! (KIP-887) and `config.providers.file.param.allowed.paths` (KIP-993). Connect
//! leaves a reference to an undeclared provider unresolved, so the literal text
//! reaches the connector; sluice refuses it, naming the key. The worker's own
//! file is the operator's and resolves `env` and `file` without restriction.
//!
//! References are resolved when a connector starts; the configuration as
//! written (references unresolved) is what gets stored and shown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sluice_api::{ConfigErrors, TaskConfig};

/// Connect's class names for the two providers, accepted beside `env` and `file`.
const ENV_CLASSES: &[&str] = &[
    "env",
    "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
];
const FILE_CLASSES: &[&str] = &[
    "file",
    "org.apache.kafka.common.config.provider.FileConfigProvider",
];

/// What `${...}` references a connector config may resolve.
#[derive(Debug, Clone, Default)]
pub struct ConfigProviders {
    /// Alias → provider, as declared in `config.providers`.
    declared: BTreeMap<String, Provider>,
}

#[derive(Debug, Clone)]
enum Provider {
    /// Variables whose whole name matches the pattern, or any if `None`.
    Env { allow: Option<regex::Regex> },
    /// Files under one of these directories (canonical), or anywhere if `None`.
    File { allowed: Option<Vec<PathBuf>> },
}

impl ConfigProviders {
    /// Every provider without restriction: for the operator's own worker file.
    pub fn unrestricted() -> Self {
        let declared = BTreeMap::from([
            ("env".to_owned(), Provider::Env { allow: None }),
            ("file".to_owned(), Provider::File { allowed: None }),
        ]);
        Self { declared }
    }

    /// The providers a worker config declares (`config.providers` and its
    /// `config.providers.<alias>.*` keys). Errors name the key.
    pub fn from_worker(raw: &TaskConfig) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let mut declared = BTreeMap::new();
        let aliases = raw
            .get("config.providers")
            .map(|l| sluice_api::config::split_list(l))
            .unwrap_or_default();
        for alias in aliases {
            let class_key = format!("config.providers.{alias}.class");
            let param = |name: &str| raw.get(&format!("config.providers.{alias}.param.{name}"));
            let class = raw.get(&class_key).map(String::as_str).unwrap_or(&alias);
            if ENV_CLASSES.contains(&class) {
                let key = format!("config.providers.{alias}.param.allowlist.pattern");
                match param("allowlist.pattern")
                    .map(|pattern| regex::Regex::new(&format!("^(?:{pattern})$")))
                    .transpose()
                {
                    Ok(allow) => {
                        declared.insert(alias, Provider::Env { allow });
                    }
                    Err(e) => errors.push(key, format!("not a valid regex: {e}")),
                }
            } else if FILE_CLASSES.contains(&class) {
                let key = format!("config.providers.{alias}.param.allowed.paths");
                let allowed = match param("allowed.paths") {
                    None => None,
                    Some(list) => {
                        let mut dirs = Vec::new();
                        for p in sluice_api::config::split_list(list) {
                            match std::fs::canonicalize(&p) {
                                Ok(d) => dirs.push(d),
                                Err(e) => errors.push(&key, format!("'{p}': {e}")),
                            }
                        }
                        Some(dirs)
                    }
                };
                declared.insert(alias, Provider::File { allowed });
            } else {
                errors.push(
                    class_key,
                    format!(
                        "unknown config provider class '{class}'; known: {}",
                        [ENV_CLASSES, FILE_CLASSES].concat().join(", ")
                    ),
                );
            }
        }
        errors.into_result()?;
        Ok(Self { declared })
    }

    /// Returns `config` with every reference replaced, or an error per key
    /// whose reference cannot or may not be resolved.
    pub fn resolve(&self, config: &TaskConfig) -> Result<TaskConfig, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let mut out = TaskConfig::new();
        for (key, value) in config {
            match self.resolve_value(value) {
                Ok(v) => {
                    out.insert(key.clone(), v);
                }
                Err(why) => errors.push(key, why),
            }
        }
        errors.into_result()?;
        Ok(out)
    }

    fn resolve_value(&self, value: &str) -> Result<String, String> {
        let mut out = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            out.push_str(&rest[..start]);
            let reference = &rest[start + 2..start + len];
            match reference.split_once(':') {
                Some((alias, path)) if is_provider_name(alias) => {
                    out.push_str(&self.lookup(alias, path, reference)?);
                }
                // Not a reference (e.g. a literal "${...}" in a query): as written.
                _ => out.push_str(&rest[start..start + len + 1]),
            }
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn lookup(&self, alias: &str, path: &str, reference: &str) -> Result<String, String> {
        match self.declared.get(alias) {
            Some(Provider::Env { allow }) => {
                if allow.as_ref().is_some_and(|re| !re.is_match(path)) {
                    return Err(format!(
                        "environment variable '{path}' is not allowed by config.providers.{alias}.param.allowlist.pattern"
                    ));
                }
                std::env::var(path).map_err(|_| format!("environment variable '{path}' is not set"))
            }
            Some(Provider::File { allowed }) => {
                let (file, key) = path.rsplit_once(':').ok_or_else(|| {
                    format!("'${{{reference}}}' must name a key: ${{{alias}:/path:key}}")
                })?;
                let file = allowed_file(file, allowed.as_deref(), alias)?;
                read_properties_key(&file, key)
            }
            None if ENV_CLASSES.contains(&alias) || FILE_CLASSES.contains(&alias) => Err(format!(
                "config provider '{alias}' is not enabled on this worker; declare it in the worker's config.providers"
            )),
            // An alias nobody declared and no known provider: text, as Connect leaves it.
            None => Ok(format!("${{{reference}}}")),
        }
    }
}

/// Provider aliases are plain words; anything else in `${...}` is text.
fn is_provider_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// `file` resolved (symlinks and `..` followed) and checked against the
/// allowed directories, so a reference cannot climb out of them.
fn allowed_file(file: &str, allowed: Option<&[PathBuf]>, alias: &str) -> Result<PathBuf, String> {
    let Some(dirs) = allowed else {
        return Ok(PathBuf::from(file));
    };
    let denied = || format!("'{file}' is not under config.providers.{alias}.param.allowed.paths");
    let real = std::fs::canonicalize(Path::new(file)).map_err(|_| denied())?;
    if dirs.iter().any(|d| real.starts_with(d)) {
        Ok(real)
    } else {
        Err(denied())
    }
}

fn read_properties_key(path: &Path, key: &str) -> Result<String, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read '{shown}': {e}"))?;
    let props: BTreeMap<&str, &str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| l.split_once(['=', ':']).map(|(k, v)| (k.trim(), v.trim())))
        .collect();
    props
        .get(key)
        .map(|v| (*v).to_owned())
        .ok_or_else(|| format!("key '{key}' not found in '{shown}'"))
}

/// Whether a value is exactly one provider reference, `${provider:...}` and
/// nothing around it: such a value says where a secret is, not what it is.
pub fn is_whole_reference(value: &str) -> bool {
    value
        .strip_prefix("${")
        .and_then(|v| v.strip_suffix('}'))
        .and_then(|inner| inner.split_once(':'))
        .is_some_and(|(alias, rest)| is_provider_name(alias) && !rest.contains(['{', '}', '$']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> TaskConfig {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sluice-providers-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn env_and_file_references_resolve() {
        std::env::set_var("SLUICE_TEST_PROVIDER_SECRET", "s3cr3t");
        let dir = scratch("ok");
        let file = dir.join("creds.properties");
        std::fs::write(&file, "# comment\nuser = alice\npassword=pw:with:colons\n").unwrap();
        let c = config(&[
            ("a", "x-${env:SLUICE_TEST_PROVIDER_SECRET}-y"),
            ("b", &format!("${{file:{}:password}}", file.display())),
            ("c", "plain ${not.a.provider}"),
            ("d", "${other:x}"),
        ]);
        let r = ConfigProviders::unrestricted().resolve(&c).unwrap();
        assert_eq!(r["a"], "x-s3cr3t-y");
        assert_eq!(r["b"], "pw:with:colons");
        assert_eq!(r["c"], "plain ${not.a.provider}");
        assert_eq!(r["d"], "${other:x}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn unresolvable_references_name_the_key() {
        let c = config(&[
            ("db.password", "${env:SLUICE_SURELY_UNSET_VAR}"),
            ("other", "${file:/nonexistent/x.properties:k}"),
        ]);
        let errs = ConfigProviders::unrestricted().resolve(&c).unwrap_err();
        assert_eq!(errs.0.len(), 2);
        assert!(errs
            .to_string()
            .contains("'db.password': environment variable 'SLUICE_SURELY_UNSET_VAR' is not set"));
    }

    #[test]
    fn undeclared_providers_are_refused() {
        let none = ConfigProviders::from_worker(&TaskConfig::new()).unwrap();
        let c = config(&[
            ("kafka.topic", "${file:/etc/os-release:ID}"),
            ("x", "${env:HOME}"),
        ]);
        let e = none.resolve(&c).unwrap_err().to_string();
        assert!(
            e.contains("'kafka.topic': config provider 'file' is not enabled"),
            "{e}"
        );
        assert!(
            e.contains("'x': config provider 'env' is not enabled"),
            "{e}"
        );
    }

    #[test]
    fn declared_providers_are_held_to_their_allow_lists() {
        std::env::set_var("SLUICE_TEST_ALLOWED", "yes");
        let dir = scratch("allow");
        let allowed = dir.join("secrets");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::write(allowed.join("db.properties"), "password=pw\n").unwrap();
        std::fs::write(dir.join("outside.properties"), "password=no\n").unwrap();
        let worker = config(&[
            ("config.providers", "env,file"),
            (
                "config.providers.env.class",
                "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
            ),
            (
                "config.providers.env.param.allowlist.pattern",
                "SLUICE_TEST_.*",
            ),
            ("config.providers.file.class", "file"),
            (
                "config.providers.file.param.allowed.paths",
                &allowed.display().to_string(),
            ),
        ]);
        let p = ConfigProviders::from_worker(&worker).unwrap();
        let ok = config(&[
            ("a", "${env:SLUICE_TEST_ALLOWED}"),
            (
                "b",
                &format!("${{file:{}/db.properties:password}}", allowed.display()),
            ),
        ]);
        let r = p.resolve(&ok).unwrap();
        assert_eq!((r["a"].as_str(), r["b"].as_str()), ("yes", "pw"));
        let climbing = format!(
            "${{file:{}/../outside.properties:password}}",
            allowed.display()
        );
        let bad = config(&[
            ("a", "${env:HOME}"),
            ("b", &climbing),
            ("c", "${file:/etc/passwd:root}"),
        ]);
        let e = p.resolve(&bad).unwrap_err();
        assert_eq!(e.0.len(), 3, "{e}");
        assert!(e
            .to_string()
            .contains("not allowed by config.providers.env.param.allowlist.pattern"));
        assert!(e
            .to_string()
            .contains("is not under config.providers.file.param.allowed.paths"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn an_unknown_provider_class_names_its_key() {
        let w = config(&[
            ("config.providers", "vault"),
            ("config.providers.vault.class", "com.x.Vault"),
        ]);
        let e = ConfigProviders::from_worker(&w).unwrap_err().to_string();
        assert!(
            e.contains("'config.providers.vault.class': unknown config provider class"),
            "{e}"
        );
    }

    #[test]
    fn only_a_whole_reference_counts_as_one() {
        assert!(is_whole_reference("${env:DB_PASSWORD}"));
        assert!(is_whole_reference("${file:/etc/x.properties:password}"));
        assert!(!is_whole_reference("abc${x}def"));
        assert!(!is_whole_reference("${x}"));
        assert!(!is_whole_reference("pw${env:A}"));
        assert!(!is_whole_reference("${env:A}tail"));
        assert!(!is_whole_reference("${env:A}${env:B}"));
        assert!(!is_whole_reference("secret"));
    }
}
