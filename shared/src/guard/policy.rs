//! The `guardrails` object of a tenant config, validated with every error and its path, and
//! compiled once into a [`Scanner`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::patterns::CompiledGuard;
use super::scanner::{RuleSource, Scanner};
use super::{Action, Detector};
use crate::validate::{field_path, integer, kind, object, required, string, ConfigErrors};

pub const GUARDRAIL_FIELDS: &[&str] = &[
    "max_input_chars",
    "max_output_tokens",
    "deny_terms",
    "deny_mode",
    "custom_patterns",
    "detectors",
    "apply_to",
];
/// The keys of `guardrails.detectors`: the built-in detectors.
pub const DETECTOR_NAMES: &[&str] = &[
    "email",
    "phone",
    "credit_card",
    "iban",
    "us_ssn",
    "ip_address",
    "secret",
    "prompt_injection",
];
pub const DETECTOR_FIELDS: &[&str] = &["mode"];
pub const CUSTOM_PATTERN_FIELDS: &[&str] = &["name", "regex", "mode", "placeholder"];
pub const APPLY_TO_FIELDS: &[&str] = &["requests", "responses"];

/// Longest match a custom pattern may have, in bytes: a stream holds back up to this much.
pub const MAX_CUSTOM_PATTERN_LEN: usize = 512;
pub(crate) const MAX_CUSTOM_PATTERNS: usize = 32;
pub(crate) const MAX_PATTERN_SOURCE: usize = 1000;
pub(crate) const MAX_DENY_TERMS: usize = 1000;
pub(crate) const MAX_DENY_TERM_CHARS: usize = 128;

/// The declarative rules of a policy (what it was compiled from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRules {
    /// Enabled built-in detectors and their modes.
    pub detectors: BTreeMap<Detector, Action>,
    pub deny_terms: Vec<String>,
    pub deny_mode: Action,
    pub custom_patterns: Vec<CustomPattern>,
}

impl Default for ScanRules {
    fn default() -> Self {
        ScanRules {
            detectors: BTreeMap::new(),
            deny_terms: Vec::new(),
            deny_mode: Action::Block,
            custom_patterns: Vec::new(),
        }
    }
}

/// A tenant's own pattern, such as a medical record number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomPattern {
    /// `[a-z][a-z0-9_]{0,31}`, unique; the `param` of a block error and in decisions.
    pub name: String,
    pub regex: String,
    pub mode: Action,
    /// Placeholder label (`MRN` gives `[MRN_1]`); defaults to the upper-cased name.
    pub placeholder: String,
}

/// Which traffic the detectors apply to. Limits always apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyTo {
    pub requests: bool,
    pub responses: bool,
}

impl Default for ApplyTo {
    fn default() -> Self {
        ApplyTo {
            requests: true,
            responses: true,
        }
    }
}

/// A tenant's validated guardrail policy. The default enables nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardPolicy {
    /// Most characters of text content (all messages, tool results and arguments) per request.
    pub max_input_chars: Option<u64>,
    /// Highest `max_tokens` / `max_completion_tokens` a request may ask for.
    pub max_output_tokens: Option<u64>,
    pub apply_to: ApplyTo,
    scanner: Arc<Scanner>,
}

impl GuardPolicy {
    /// The compiled rules, shared by every request under this config.
    pub fn scanner(&self) -> &Arc<Scanner> {
        &self.scanner
    }

    /// Whether request text is scanned.
    pub fn scans_requests(&self) -> bool {
        self.apply_to.requests && !self.scanner.is_empty()
    }

    /// Whether response text is scanned.
    pub fn scans_responses(&self) -> bool {
        self.apply_to.responses && !self.scanner.is_empty()
    }

    /// Validates the `guardrails` object at `path` of a config document and compiles it, with
    /// what `compiled` holds (custom patterns, case classes); every problem goes to `errs` with
    /// its path.
    pub fn validate(
        value: &Value,
        path: &str,
        compiled: &CompiledGuard,
        errs: &mut ConfigErrors,
    ) -> Option<GuardPolicy> {
        validate_at(value, path, compiled, errs)
    }

    /// Validates a standalone `guardrails` object (errors carry paths under `guardrails`),
    /// compiling its custom patterns in this build.
    pub fn from_json(value: &Value) -> Result<GuardPolicy, ConfigErrors> {
        let mut errs = ConfigErrors::default();
        match validate_at(value, "guardrails", &CompiledGuard::local(), &mut errs) {
            Some(p) if errs.is_empty() => Ok(p),
            _ => Err(errs),
        }
    }
}

fn validate_at(
    value: &Value,
    path: &str,
    compiled: &CompiledGuard,
    errs: &mut ConfigErrors,
) -> Option<GuardPolicy> {
    let map = object(value, path, GUARDRAIL_FIELDS, errs)?;
    let before = errs.0.len();
    let at = |name: &str| field_path(path, name);
    let max_input_chars = map
        .get("max_input_chars")
        .and_then(|v| integer(v, &at("max_input_chars"), 1, 100_000_000, errs));
    let max_output_tokens = map
        .get("max_output_tokens")
        .and_then(|v| integer(v, &at("max_output_tokens"), 1, 10_000_000, errs));
    let apply_to = map.get("apply_to").map_or(Some(ApplyTo::default()), |v| {
        apply_to(v, &at("apply_to"), errs)
    });
    let deny_terms = map
        .get("deny_terms")
        .map_or(Some(Vec::new()), |v| deny_terms(v, &at("deny_terms"), errs));
    let deny_mode = map
        .get("deny_mode")
        .map_or(Some(Action::Block), |v| mode(v, &at("deny_mode"), errs));
    let detectors = map.get("detectors").map_or(Some(BTreeMap::new()), |v| {
        detectors(v, &at("detectors"), errs)
    });
    let custom_patterns = map.get("custom_patterns").map_or(Some(Vec::new()), |v| {
        custom_patterns(v, &at("custom_patterns"), errs)
    });
    if errs.0.len() != before {
        return None;
    }
    let rules = ScanRules {
        detectors: detectors?,
        deny_terms: deny_terms?,
        deny_mode: deny_mode?,
        custom_patterns: custom_patterns?,
    };
    match Scanner::new(rules, compiled) {
        Ok(scanner) => Some(GuardPolicy {
            max_input_chars,
            max_output_tokens,
            apply_to: apply_to?,
            scanner: Arc::new(scanner),
        }),
        Err(problems) => {
            for (source, message) in problems {
                let p = match source {
                    RuleSource::Builtin(d) => field_path(&at("detectors"), d.name()),
                    RuleSource::Custom(i) => format!("{}[{i}].regex", at("custom_patterns")),
                    RuleSource::CustomPatterns => at("custom_patterns"),
                    RuleSource::DenyTerms => at("deny_terms"),
                };
                errs.push(p, message);
            }
            None
        }
    }
}

fn mode(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<Action> {
    let s = string(value, path, errs)?;
    let m = Action::parse(s);
    if m.is_none() {
        errs.push(path, "must be one of \"block\", \"redact\", \"flag\"");
    }
    m
}

fn boolean(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<bool> {
    let b = value.as_bool();
    if b.is_none() {
        errs.push(
            path,
            format!("must be true or false, found {}", kind(value)),
        );
    }
    b
}

fn apply_to(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<ApplyTo> {
    let map = object(value, path, APPLY_TO_FIELDS, errs)?;
    let get = |name: &str, errs: &mut ConfigErrors| {
        map.get(name)
            .map_or(Some(true), |v| boolean(v, &field_path(path, name), errs))
    };
    let requests = get("requests", errs);
    let responses = get("responses", errs);
    Some(ApplyTo {
        requests: requests?,
        responses: responses?,
    })
}

fn array<'v>(
    value: &'v Value,
    path: &str,
    max: usize,
    errs: &mut ConfigErrors,
) -> Option<&'v [Value]> {
    let Some(items) = value.as_array() else {
        errs.push(path, format!("must be an array, found {}", kind(value)));
        return None;
    };
    if items.len() > max {
        errs.push(
            path,
            format!("must hold at most {max} entries, found {}", items.len()),
        );
        return None;
    }
    Some(items)
}

fn deny_terms(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<Vec<String>> {
    let items = array(value, path, MAX_DENY_TERMS, errs)?;
    let before = errs.0.len();
    let mut terms = Vec::new();
    for (i, v) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(s) = string(v, &p, errs) else {
            continue;
        };
        let n = s.chars().count();
        if s.trim().is_empty() || n > MAX_DENY_TERM_CHARS {
            errs.push(
                p,
                format!("must hold 1-{MAX_DENY_TERM_CHARS} characters and not be blank"),
            );
        } else {
            terms.push(s.trim().to_string());
        }
    }
    (errs.0.len() == before).then_some(terms)
}

fn detectors(
    value: &Value,
    path: &str,
    errs: &mut ConfigErrors,
) -> Option<BTreeMap<Detector, Action>> {
    let map = object(value, path, DETECTOR_NAMES, errs)?;
    let before = errs.0.len();
    let mut out = BTreeMap::new();
    for (name, v) in map {
        let Some(detector) = Detector::builtin(name) else {
            continue; // reported by `object`
        };
        let p = field_path(path, name);
        let Some(cfg) = object(v, &p, DETECTOR_FIELDS, errs) else {
            continue;
        };
        let mp = field_path(&p, "mode");
        let Some(m) = required(cfg, &p, "mode", errs).and_then(|v| mode(v, &mp, errs)) else {
            continue;
        };
        if detector == Detector::PromptInjection && m != Action::Flag {
            errs.push(
                mp,
                "prompt_injection is a heuristic and supports only \"flag\"",
            );
            continue;
        }
        out.insert(detector, m);
    }
    (errs.0.len() == before).then_some(out)
}

fn custom_patterns(
    value: &Value,
    path: &str,
    errs: &mut ConfigErrors,
) -> Option<Vec<CustomPattern>> {
    let items = array(value, path, MAX_CUSTOM_PATTERNS, errs)?;
    let before = errs.0.len();
    let mut out: Vec<CustomPattern> = Vec::new();
    for (i, v) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let Some(map) = object(v, &p, CUSTOM_PATTERN_FIELDS, errs) else {
            continue;
        };
        let name = required(map, &p, "name", errs).and_then(|v| {
            let np = field_path(&p, "name");
            let s = string(v, &np, errs)?;
            if !is_name(s, |c| c.is_ascii_lowercase()) {
                errs.push(np, "must be 1-32 of [a-z0-9_], starting with a letter");
                None
            } else if out.iter().any(|c| c.name == s) {
                errs.push(np, format!("duplicates the name {s:?}"));
                None
            } else {
                Some(s.to_string())
            }
        });
        let regex = required(map, &p, "regex", errs).and_then(|v| {
            let rp = field_path(&p, "regex");
            let s = string(v, &rp, errs)?;
            if s.is_empty() || s.len() > MAX_PATTERN_SOURCE {
                errs.push(rp, format!("must hold 1-{MAX_PATTERN_SOURCE} bytes"));
                return None;
            }
            Some(s.to_string())
        });
        let m = map.get("mode").map_or(Some(Action::Redact), |v| {
            mode(v, &field_path(&p, "mode"), errs)
        });
        let placeholder = match map.get("placeholder") {
            Some(v) => {
                let pp = field_path(&p, "placeholder");
                string(v, &pp, errs).and_then(|s| {
                    if is_name(s, |c| c.is_ascii_uppercase()) {
                        Some(s.to_string())
                    } else {
                        errs.push(pp, "must be 1-32 of [A-Z0-9_], starting with a letter");
                        None
                    }
                })
            }
            None => name.as_ref().map(|n| n.to_ascii_uppercase()),
        };
        if let (Some(name), Some(regex), Some(mode), Some(placeholder)) =
            (name, regex, m, placeholder)
        {
            out.push(CustomPattern {
                name,
                regex,
                mode,
                placeholder,
            });
        }
    }
    (errs.0.len() == before).then_some(out)
}

/// 1-32 characters of letters (of the case `first` accepts), digits and `_`, starting with a letter.
fn is_name(s: &str, first: impl Fn(char) -> bool) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(&first)
        && s.len() <= 32
        && chars.all(|c| first(c) || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
