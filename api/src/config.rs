//! Declarative configuration, as Kafka Connect's `ConfigDef`: every plugin declares
//! its keys (type, default, importance, documentation, validator); validation
//! reports every problem at once, each naming its key. The REST `validate`
//! endpoint and the worker's start-up check use this same code.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use crate::connector::TaskConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// The type of a configuration key, as Connect's `ConfigDef.Type`.
pub enum ConfigType {
    /// `true` or `false`.
    Boolean,
    /// A 32-bit integer.
    Int,
    /// A 64-bit integer.
    Long,
    /// A floating-point number.
    Double,
    /// Text.
    String,
    /// Comma-separated values.
    List,
    /// A secret: never logged, masked in REST responses.
    Password,
    /// A plugin class or alias.
    Class,
}

impl ConfigType {
    /// Connect's upper-case type name, as in `config/validate` responses.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::Int => "INT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::String => "STRING",
            ConfigType::List => "LIST",
            ConfigType::Password => "PASSWORD",
            ConfigType::Class => "CLASS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// How much a key matters, as Connect's `ConfigDef.Importance` (shown by validate).
pub enum Importance {
    /// Must be looked at.
    High,
    /// Worth a look.
    Medium,
    /// Rarely changed.
    Low,
}

impl Importance {
    /// Connect's upper-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Importance::High => "HIGH",
            Importance::Medium => "MEDIUM",
            Importance::Low => "LOW",
        }
    }
}

/// A check on a value that has already parsed as its type.
#[derive(Debug, Clone)]
pub enum Validator {
    /// Inclusive numeric bounds.
    Range {
        /// The smallest value allowed, if any.
        min: Option<f64>,
        /// The largest value allowed, if any.
        max: Option<f64>,
    },
    /// One of these strings, compared case-insensitively.
    OneOf(&'static [&'static str]),
    /// Not empty once trimmed.
    NonEmpty,
    /// Any other rule; the `Err` text says what is wrong.
    Custom(fn(&str) -> Result<(), String>),
}

impl Validator {
    /// Values at least `min`.
    pub fn at_least(min: f64) -> Self {
        Validator::Range {
            min: Some(min),
            max: None,
        }
    }

    /// Values from `min` to `max`, both included.
    pub fn between(min: f64, max: f64) -> Self {
        Validator::Range {
            min: Some(min),
            max: Some(max),
        }
    }

    fn check(&self, raw: &str, value: &ConfigValue) -> Result<(), String> {
        match self {
            Validator::Range { min, max } => {
                let n = match value {
                    ConfigValue::Int(v) => f64::from(*v),
                    ConfigValue::Long(v) => *v as f64,
                    ConfigValue::Double(v) => *v,
                    _ => return Ok(()),
                };
                if let Some(min) = min.filter(|m| n < *m) {
                    return Err(format!("must be at least {min}"));
                }
                if let Some(max) = max.filter(|m| n > *m) {
                    return Err(format!("must be at most {max}"));
                }
                Ok(())
            }
            Validator::OneOf(allowed) => {
                if allowed.iter().any(|a| a.eq_ignore_ascii_case(raw.trim())) {
                    Ok(())
                } else {
                    Err(format!("must be one of {}", allowed.join(", ")))
                }
            }
            Validator::NonEmpty => {
                if raw.trim().is_empty() {
                    Err("must not be empty".to_owned())
                } else {
                    Ok(())
                }
            }
            Validator::Custom(f) => f(raw),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
/// What a key that is not set stands for.
pub enum DefaultValue {
    /// The key must be set.
    Required,
    /// The key may be left out, and then has no value.
    Absent,
    /// This text, parsed as the key's type.
    Value(String),
}

#[derive(Debug, Clone)]
/// One declared configuration key: its type, default, documentation and check.
pub struct ConfigKey {
    /// The key users write (e.g. `flush.size`).
    pub name: String,
    /// What its value parses as.
    pub config_type: ConfigType,
    /// What leaving it out means.
    pub default: DefaultValue,
    /// How much it matters.
    pub importance: Importance,
    /// What it does, for validate and the docs.
    pub doc: String,
    /// Connect's group, for display.
    pub group: Option<String>,
    /// A check beyond the type, if any.
    pub validator: Option<Validator>,
}

impl ConfigKey {
    /// A key that must be set; chain `.default(..)` or `.optional()` to relax it.
    pub fn new(name: impl Into<String>, config_type: ConfigType) -> Self {
        Self {
            name: name.into(),
            config_type,
            default: DefaultValue::Required,
            importance: Importance::Medium,
            doc: String::new(),
            group: None,
            validator: None,
        }
    }
    /// Defaults the key to `value` (written as a user would write it).
    pub fn default(mut self, value: impl Into<String>) -> Self {
        self.default = DefaultValue::Value(value.into());
        self
    }
    /// Lets the key be left out, with no value then.
    pub fn optional(mut self) -> Self {
        self.default = DefaultValue::Absent;
        self
    }
    /// Sets how much the key matters.
    pub fn importance(mut self, importance: Importance) -> Self {
        self.importance = importance;
        self
    }
    /// Sets what the key does.
    pub fn doc(mut self, doc: impl Into<String>) -> Self {
        self.doc = doc.into();
        self
    }
    /// Sets Connect's group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }
    /// Adds a check beyond the type.
    pub fn validator(mut self, validator: Validator) -> Self {
        self.validator = Some(validator);
        self
    }
}

/// A typed configuration value.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// A boolean.
    Boolean(bool),
    /// A 32-bit integer.
    Int(i32),
    /// A 64-bit integer.
    Long(i64),
    /// A floating-point number.
    Double(f64),
    /// Text (also a class name).
    String(String),
    /// A comma-separated list, split and trimmed.
    List(Vec<String>),
    /// A secret.
    Password(Password),
}

/// A secret. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// What is shown in place of a secret.
    pub const MASK: &'static str = "[hidden]";

    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }
    /// The secret itself, for handing to a client library; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MASK)
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MASK)
    }
}

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The key at fault.
    pub key: String,
    /// What is wrong with its value.
    pub message: String,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// One problem with one key.
    pub fn single(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![ConfigError {
            key: key.into(),
            message: message.into(),
        }])
    }
    /// Adds a problem with a key.
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            key: key.into(),
            message: message.into(),
        });
    }
    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Adds every problem of `other`.
    pub fn extend(&mut self, other: ConfigErrors) {
        self.0.extend(other.0);
    }
    /// `Ok(())` when there are no errors.
    pub fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "'{}': {}", e.key, e.message)?;
        }
        Ok(())
    }
}

/// A plugin's configuration declaration.
#[derive(Debug, Clone, Default)]
pub struct ConfigDef {
    keys: Vec<ConfigKey>,
}

impl ConfigDef {
    /// No keys yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key.
    pub fn define(mut self, key: ConfigKey) -> Self {
        self.keys.retain(|k| k.name != key.name);
        self.keys.push(key);
        self
    }

    /// Adds every key of `other` (a later definition of a name wins).
    pub fn merge(mut self, other: ConfigDef) -> Self {
        for key in other.keys {
            self = self.define(key);
        }
        self
    }

    /// Every key, in the order declared.
    pub fn keys(&self) -> &[ConfigKey] {
        &self.keys
    }

    /// The key named `name`, if declared.
    pub fn key(&self, name: &str) -> Option<&ConfigKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Validates `raw` against every declared key and returns the typed values, or
    /// every error at once. Keys that are not declared are ignored, as in Connect
    /// (they may belong to a converter, a transform or a client library).
    pub fn validate(&self, raw: &TaskConfig) -> Result<ValidatedConfig, ConfigErrors> {
        let mut values = BTreeMap::new();
        let mut errors = ConfigErrors::default();
        for key in &self.keys {
            let text = match (raw.get(&key.name), &key.default) {
                (Some(v), _) => v.as_str(),
                (None, DefaultValue::Value(d)) => d.as_str(),
                (None, DefaultValue::Absent) => continue,
                (None, DefaultValue::Required) => {
                    errors.push(&key.name, "is required and has no default value");
                    continue;
                }
            };
            match parse_value(key.config_type, text) {
                Ok(value) => {
                    if let Some(Err(why)) = key.validator.as_ref().map(|v| v.check(text, &value)) {
                        errors.push(
                            &key.name,
                            format!("invalid value '{}': {why}", shown(key, text)),
                        );
                    } else {
                        values.insert(key.name.clone(), value);
                    }
                }
                Err(why) => errors.push(
                    &key.name,
                    format!("invalid value '{}': {why}", shown(key, text)),
                ),
            }
        }
        errors.into_result()?;
        Ok(ValidatedConfig { values })
    }
}

fn shown<'a>(key: &ConfigKey, text: &'a str) -> Cow<'a, str> {
    if key.config_type == ConfigType::Password {
        Cow::Borrowed(Password::MASK)
    } else {
        hide_embedded_secrets(text)
    }
}

/// `text` with any secret written inside it replaced by [`Password::MASK`]: a
/// URL's password (`postgres://user:secret@host/db`) and the value of a
/// parameter named like a secret (`?password=secret`, `;pwd=secret`,
/// `password=secret` in a libpq conninfo). A value such as a connection URL is
/// a plain string, so a secret in it would otherwise be shown wherever the
/// value is (REST answers, validation errors, logs).
pub fn hide_embedded_secrets(text: &str) -> Cow<'_, str> {
    let mut hidden: Vec<std::ops::Range<usize>> = Vec::new();
    // A URL's user information: `scheme://user:password@`.
    let mut from = 0;
    while let Some(at) = text[from..].find("://") {
        let start = from + at + 3;
        let end = text[start..]
            .find(['/', '?', '#', ' '])
            .map_or(text.len(), |e| start + e);
        let authority = &text[start..end];
        if let Some(user_end) = authority.rfind('@') {
            if let Some(colon) = authority[..user_end].find(':') {
                if colon + 1 < user_end {
                    hidden.push(start + colon + 1..start + user_end);
                }
            }
        }
        from = end;
    }
    // `name=value` pairs whose name says secret, after `?`, `&`, `;`, a blank
    // or at the start.
    let bytes = text.as_bytes();
    let mut name_start = 0;
    for (i, b) in bytes.iter().copied().enumerate() {
        match b {
            b'?' | b'&' | b';' | b' ' | b'\t' => name_start = i + 1,
            b'=' if name_start <= i => {
                let name = text[name_start..i].trim().to_ascii_lowercase();
                let secret = name.contains("password")
                    || name.contains("secret")
                    || name == "pwd"
                    || name.ends_with("token");
                if secret {
                    let end = text[i + 1..]
                        .find(['&', ';', ' ', '\t', '#'])
                        .map_or(text.len(), |e| i + 1 + e);
                    if end > i + 1 {
                        hidden.push(i + 1..end);
                    }
                }
                name_start = text.len();
            }
            _ => {}
        }
    }
    if hidden.is_empty() {
        return Cow::Borrowed(text);
    }
    hidden.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in hidden {
        if r.start < at {
            continue;
        }
        out.push_str(&text[at..r.start]);
        out.push_str(Password::MASK);
        at = r.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

fn parse_value(config_type: ConfigType, text: &str) -> Result<ConfigValue, String> {
    let t = text.trim();
    Ok(match config_type {
        ConfigType::Boolean => match t.to_ascii_lowercase().as_str() {
            "true" => ConfigValue::Boolean(true),
            "false" => ConfigValue::Boolean(false),
            _ => return Err("expected true or false".to_owned()),
        },
        ConfigType::Int => ConfigValue::Int(
            t.parse()
                .map_err(|_| "expected a 32-bit integer".to_owned())?,
        ),
        ConfigType::Long => ConfigValue::Long(
            t.parse()
                .map_err(|_| "expected a 64-bit integer".to_owned())?,
        ),
        ConfigType::Double => {
            ConfigValue::Double(t.parse().map_err(|_| "expected a number".to_owned())?)
        }
        ConfigType::String | ConfigType::Class => ConfigValue::String(t.to_owned()),
        ConfigType::List => ConfigValue::List(split_list(t)),
        ConfigType::Password => ConfigValue::Password(Password::new(text)),
    })
}

/// Splits a comma-separated list, trimming blanks, as Connect's LIST type does.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Configuration values that passed validation, read by type.
///
/// Reading a key that is not declared, or as the wrong type, is a programming error
/// in the plugin; the getters then return `None` rather than panic.
#[derive(Debug, Clone, Default)]
pub struct ValidatedConfig {
    values: BTreeMap<String, ConfigValue>,
}

impl ValidatedConfig {
    /// A key's value, of whatever type.
    pub fn get(&self, key: &str) -> Option<&ConfigValue> {
        self.values.get(key)
    }
    /// A text (or class) key's value.
    pub fn string(&self, key: &str) -> Option<&str> {
        match self.values.get(key)? {
            ConfigValue::String(s) => Some(s),
            _ => None,
        }
    }
    /// An `INT` key's value.
    pub fn int(&self, key: &str) -> Option<i32> {
        match self.values.get(key)? {
            ConfigValue::Int(v) => Some(*v),
            _ => None,
        }
    }
    /// A `LONG` key's value (an `INT` one widens).
    pub fn long(&self, key: &str) -> Option<i64> {
        match self.values.get(key)? {
            ConfigValue::Long(v) => Some(*v),
            ConfigValue::Int(v) => Some((*v).into()),
            _ => None,
        }
    }
    /// A `DOUBLE` key's value.
    pub fn double(&self, key: &str) -> Option<f64> {
        match self.values.get(key)? {
            ConfigValue::Double(v) => Some(*v),
            _ => None,
        }
    }
    /// A `BOOLEAN` key's value.
    pub fn boolean(&self, key: &str) -> Option<bool> {
        match self.values.get(key)? {
            ConfigValue::Boolean(v) => Some(*v),
            _ => None,
        }
    }
    /// A `LIST` key's items.
    pub fn list(&self, key: &str) -> Option<&[String]> {
        match self.values.get(key)? {
            ConfigValue::List(v) => Some(v),
            _ => None,
        }
    }
    /// A `PASSWORD` key's value.
    pub fn password(&self, key: &str) -> Option<&Password> {
        match self.values.get(key)? {
            ConfigValue::Password(v) => Some(v),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ConfigDef {
        ConfigDef::new()
            .define(ConfigKey::new("topic", ConfigType::String).validator(Validator::NonEmpty))
            .define(
                ConfigKey::new("batch.size", ConfigType::Int)
                    .default("100")
                    .validator(Validator::at_least(1.0)),
            )
            .define(
                ConfigKey::new("mode", ConfigType::String)
                    .default("fast")
                    .validator(Validator::OneOf(&["fast", "slow"])),
            )
            .define(ConfigKey::new("secret", ConfigType::Password).optional())
            .define(ConfigKey::new("tags", ConfigType::List).default(""))
    }

    fn raw(pairs: &[(&str, &str)]) -> TaskConfig {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_apply_and_types_parse() {
        let c = def()
            .validate(&raw(&[
                ("topic", "t"),
                ("tags", "a, b,,c"),
                ("mode", "SLOW"),
            ]))
            .unwrap();
        assert_eq!(c.string("topic"), Some("t"));
        assert_eq!(c.int("batch.size"), Some(100));
        assert_eq!(c.long("batch.size"), Some(100));
        assert_eq!(c.list("tags").unwrap(), ["a", "b", "c"]);
        assert!(c.password("secret").is_none());
    }

    #[test]
    fn every_error_is_reported_with_its_key() {
        let errs = def()
            .validate(&raw(&[
                ("batch.size", "zero"),
                ("mode", "medium"),
                ("secret", "s3cr3t"),
            ]))
            .unwrap_err();
        let keys: Vec<_> = errs.0.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["topic", "batch.size", "mode"]);
        let text = errs.to_string();
        assert!(text.contains("'topic': is required"), "{text}");
        assert!(text.contains("expected a 32-bit integer"), "{text}");
        assert!(text.contains("must be one of fast, slow"), "{text}");
    }

    #[test]
    fn range_and_password_masking() {
        let errs = def()
            .validate(&raw(&[("topic", "t"), ("batch.size", "0")]))
            .unwrap_err();
        assert_eq!(
            errs.to_string(),
            "'batch.size': invalid value '0': must be at least 1"
        );
        let d = ConfigDef::new().define(
            ConfigKey::new("pw", ConfigType::Password)
                .validator(Validator::Custom(|_| Err("too short".into()))),
        );
        let errs = d.validate(&raw(&[("pw", "hunter2")])).unwrap_err();
        assert!(!errs.to_string().contains("hunter2"));
        assert_eq!(format!("{:?}", Password::new("hunter2")), "[hidden]");
        // A secret inside a plain string value is not echoed either.
        let d = ConfigDef::new().define(
            ConfigKey::new("url", ConfigType::String)
                .validator(Validator::Custom(|_| Err("bad".into()))),
        );
        let errs = d
            .validate(&raw(&[("url", "mysql://u:hunter2@h/db")]))
            .unwrap_err();
        assert!(!errs.to_string().contains("hunter2"), "{errs}");
    }

    #[test]
    fn secrets_inside_values_are_hidden() {
        let cases = [
            (
                "postgres://u:s3cret@h:5432/db",
                "postgres://u:[hidden]@h:5432/db",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://h/db", "postgres://h/db"),
            ("postgres://u:p@ss@h/db", "postgres://u:[hidden]@h/db"),
            (
                "jdbc:postgresql://h/db?user=u&password=s3cret&ssl=true",
                "jdbc:postgresql://h/db?user=u&password=[hidden]&ssl=true",
            ),
            (
                "jdbc:sqlserver://h;databaseName=d;Password=s3cret",
                "jdbc:sqlserver://h;databaseName=d;Password=[hidden]",
            ),
            (
                "host=h password=s3cret dbname=d",
                "host=h password=[hidden] dbname=d",
            ),
            ("a=b, c", "a=b, c"),
            ("password=a=b&x=1", "password=[hidden]&x=1"),
            ("plain text", "plain text"),
            (
                "https://a:b@x.example/?token=t1#f",
                "https://a:[hidden]@x.example/?token=[hidden]#f",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(hide_embedded_secrets(text), want, "{text}");
        }
        assert!(matches!(hide_embedded_secrets("x=1"), Cow::Borrowed(_)));
    }
}
