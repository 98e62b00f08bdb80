//! Secrets as the core sees them: a `SecretRef` is a name the adapter resolves (a Worker secret, a
//! Spin variable); a `Secret` is the resolved value, which never prints.

use serde::{Deserialize, Serialize};

/// The name of a secret in the deployment's secret store, e.g. `OPENAI_API_KEY`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(pub String);

impl SecretRef {
    pub fn name(&self) -> &str {
        &self.0
    }
}

/// A resolved secret. `Debug` and `Display` are redacted so it cannot leak through a log line,
/// an error message or a test snapshot by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must put it on the wire or into a MAC.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("sk-live-canary-123");
        assert!(!format!("{s:?}").contains("canary"));
        assert!(!format!("{s}").contains("canary"));
        assert_eq!(s.expose(), "sk-live-canary-123");
    }
}
