//! Config providers, as Connect's `${provider:path:key}` references:
//! `${env:NAME}` reads an environment variable, `${file:/path/to/file:key}` reads
//! `key` from a properties file (`key=value` lines). References are resolved when
//! a connector starts; the configuration as written (references unresolved) is what
//! gets stored and shown.

use std::collections::BTreeMap;

use sluice_api::{ConfigErrors, TaskConfig};

/// Returns `config` with every reference replaced, or an error per key whose
/// reference cannot be resolved.
pub fn resolve_providers(config: &TaskConfig) -> Result<TaskConfig, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut out = TaskConfig::new();
    for (key, value) in config {
        match resolve_value(value) {
            Ok(v) => {
                out.insert(key.clone(), v);
            }
            Err(why) => errors.push(key, why),
        }
    }
    errors.into_result()?;
    Ok(out)
}

fn resolve_value(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let reference = &rest[start + 2..start + len];
        match reference.split_once(':') {
            Some(("env", name)) => {
                let v = std::env::var(name)
                    .map_err(|_| format!("environment variable '{name}' is not set"))?;
                out.push_str(&v);
            }
            Some(("file", path_key)) => {
                let (path, key) = path_key.rsplit_once(':').ok_or_else(|| {
                    format!("'${{{reference}}}' must name a key: ${{file:/path:key}}")
                })?;
                out.push_str(&read_properties_key(path, key)?);
            }
            // Not ours (e.g. a literal "${...}" in a query): leave it as written.
            _ => out.push_str(&rest[start..start + len + 1]),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn read_properties_key(path: &str, key: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read '{path}': {e}"))?;
    let props: BTreeMap<&str, &str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| l.split_once(['=', ':']).map(|(k, v)| (k.trim(), v.trim())))
        .collect();
    props
        .get(key)
        .map(|v| (*v).to_owned())
        .ok_or_else(|| format!("key '{key}' not found in '{path}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_file_references_resolve() {
        std::env::set_var("SLUICE_TEST_PROVIDER_SECRET", "s3cr3t");
        let dir = std::env::temp_dir().join(format!("sluice-providers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("creds.properties");
        std::fs::write(&file, "# comment\nuser = alice\npassword=pw:with:colons\n").unwrap();
        let mut c = TaskConfig::new();
        c.insert("a".into(), "x-${env:SLUICE_TEST_PROVIDER_SECRET}-y".into());
        c.insert("b".into(), format!("${{file:{}:password}}", file.display()));
        c.insert("c".into(), "plain ${not.a.provider}".into());
        let r = resolve_providers(&c).unwrap();
        assert_eq!(r["a"], "x-s3cr3t-y");
        assert_eq!(r["b"], "pw:with:colons");
        assert_eq!(r["c"], "plain ${not.a.provider}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn unresolvable_references_name_the_key() {
        let mut c = TaskConfig::new();
        c.insert(
            "db.password".into(),
            "${env:SLUICE_SURELY_UNSET_VAR}".into(),
        );
        c.insert("other".into(), "${file:/nonexistent/x.properties:k}".into());
        let errs = resolve_providers(&c).unwrap_err();
        assert_eq!(errs.0.len(), 2);
        assert!(errs
            .to_string()
            .contains("'db.password': environment variable 'SLUICE_SURELY_UNSET_VAR' is not set"));
    }
}
