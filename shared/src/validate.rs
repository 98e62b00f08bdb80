//! A small walker over `serde_json::Value` that checks fields by hand so that *every* problem is
//! reported with its path, not only the first one serde would stop at.

use serde_json::{Map, Value};
use std::fmt;

/// One problem in a config document, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// e.g. `models["gpt-4o"].endpoint`
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(root)"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}

/// Every problem found in one document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn paths(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.path.as_str()).collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// `parent.field`, or `field` at the root.
pub fn field_path(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}

/// `parent["key"]`: map keys (model names) may hold dots, so they are quoted.
pub fn key_path(parent: &str, key: &str) -> String {
    format!("{parent}[{key:?}]")
}

/// Checks that `value` is an object whose fields are all among `known`.
pub fn object<'v>(
    value: &'v Value,
    path: &str,
    known: &[&str],
    errs: &mut ConfigErrors,
) -> Option<&'v Map<String, Value>> {
    let Some(map) = value.as_object() else {
        errs.push(path, format!("must be an object, found {}", kind(value)));
        return None;
    };
    for name in map.keys() {
        if !known.contains(&name.as_str()) {
            errs.push(
                field_path(path, name),
                format!("unknown field; expected one of: {}", known.join(", ")),
            );
        }
    }
    Some(map)
}

pub fn required<'v>(
    map: &'v Map<String, Value>,
    path: &str,
    name: &str,
    errs: &mut ConfigErrors,
) -> Option<&'v Value> {
    let found = map.get(name);
    if found.is_none() {
        errs.push(field_path(path, name), "is required");
    }
    found
}

pub fn string<'v>(value: &'v Value, path: &str, errs: &mut ConfigErrors) -> Option<&'v str> {
    match value.as_str() {
        Some(s) => Some(s),
        None => {
            errs.push(path, format!("must be a string, found {}", kind(value)));
            None
        }
    }
}

/// An integer in `min..=max`.
pub fn integer(
    value: &Value,
    path: &str,
    min: u64,
    max: u64,
    errs: &mut ConfigErrors,
) -> Option<u64> {
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Some(n),
        Some(n) => {
            errs.push(path, format!("must be between {min} and {max}, found {n}"));
            None
        }
        None => {
            errs.push(
                path,
                format!(
                    "must be a whole number between {min} and {max}, found {}",
                    kind(value)
                ),
            );
            None
        }
    }
}

pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
