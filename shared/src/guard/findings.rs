//! What one request's guardrails decided: placeholder numbering (the same value gets the same
//! number within a request) and the decisions for the audit record and the response header.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::scanner::Rule;
use super::{Action, Detector, Side};
use crate::audit::{GuardrailAction, GuardrailDecision};

/// Response header listing a request's guardrail decisions ([`Decisions::header_value`]).
pub const GUARDRAILS_HEADER: &str = crate::headers::GUARDRAILS;

/// Per-request guard state. Create one per request and pass it to every guard call of that
/// request (request body, then response body or stream), so numbering continues across them.
#[derive(Debug, Default)]
pub struct Findings {
    pub placeholders: Placeholders,
    decisions: Decisions,
}

impl Findings {
    pub fn decisions(&self) -> &Decisions {
        &self.decisions
    }

    pub(crate) fn record(&mut self, side: Side, rule: &Rule, action: Action) {
        self.decisions.add(side, rule, action, 1);
    }
}

/// The redaction numbering of one request. It keys numbers by a truncated SHA-256 of the
/// normalized matched value, so it holds no matched text, and its `Debug` shows counts only.
#[derive(Default)]
pub struct Placeholders {
    numbers: HashMap<(Arc<str>, [u8; 16]), u32>,
    next: HashMap<Arc<str>, u32>,
}

impl fmt::Debug for Placeholders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut labels: Vec<(&str, u32)> = self.next.iter().map(|(l, n)| (&**l, *n)).collect();
        labels.sort_unstable();
        f.debug_struct("Placeholders")
            .field("assigned", &labels)
            .finish_non_exhaustive()
    }
}

impl Placeholders {
    /// `[LABEL_n]` for `value`: the number it got before in this request, or the next one.
    pub(crate) fn placeholder(&mut self, rule: &Rule, value: &str) -> String {
        let digest: [u8; 32] = Sha256::digest(normalized(rule.detector, value)).into();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        let label = rule.label.clone();
        let n = match self.numbers.get(&(label.clone(), key)) {
            Some(&n) => n,
            None => {
                let next = self.next.entry(label.clone()).or_insert(0);
                *next += 1;
                let n = *next;
                self.numbers.insert((label.clone(), key), n);
                n
            }
        };
        format!("[{label}_{n}]")
    }

    /// How many distinct values got a placeholder.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }
}

/// The form in which two spellings of one value are the same value.
fn normalized(detector: Detector, value: &str) -> Vec<u8> {
    match detector {
        Detector::CreditCard | Detector::Phone | Detector::UsSsn => {
            value.bytes().filter(u8::is_ascii_digit).collect()
        }
        Detector::Iban => value
            .bytes()
            .filter(u8::is_ascii_alphanumeric)
            .map(|b| b.to_ascii_uppercase())
            .collect(),
        Detector::Email | Detector::DenyTerm => value.to_lowercase().into_bytes(),
        _ => value.as_bytes().to_vec(),
    }
}

/// One aggregated guardrail decision: which detector, configured mode, action taken, how often.
/// Never the matched text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub side: Side,
    pub detector: Detector,
    /// The custom pattern's name, for `custom_pattern`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The rule's configured mode.
    pub mode: Action,
    /// What was done. Differs from `mode` when a block-mode rule redacted a response.
    pub action: Action,
    pub count: u32,
}

/// A request's decisions, ordered by side, detector, pattern, mode and action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decisions(Vec<Decision>);

impl Decisions {
    fn add(&mut self, side: Side, rule: &Rule, action: Action, count: u32) {
        let name = rule.name.as_deref();
        let same = |d: &&mut Decision| {
            d.side == side
                && d.detector == rule.detector
                && d.pattern.as_deref() == name
                && d.mode == rule.mode
                && d.action == action
        };
        match self.0.iter_mut().find(same) {
            Some(d) => d.count = d.count.saturating_add(count),
            None => {
                self.0.push(Decision {
                    side,
                    detector: rule.detector,
                    pattern: name.map(str::to_string),
                    mode: rule.mode,
                    action,
                    count,
                });
                // A canonical order, whatever order the lanes decided in.
                self.0.sort_by(|a, b| {
                    (a.side, a.detector, &a.pattern, a.mode, a.action)
                        .cmp(&(b.side, b.detector, &b.pattern, b.mode, b.action))
                });
            }
        }
    }

    pub fn as_slice(&self) -> &[Decision] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a request was blocked.
    pub fn blocked(&self) -> Option<&Decision> {
        self.0.iter().find(|d| d.action == Action::Block)
    }

    /// The [`GUARDRAILS_HEADER`] value, an RFC 8941 list such as
    /// `email;side=request;action=redact;count=2, credit_card;side=response;action=redact;mode=block;count=1`
    /// (`name="..."` for custom patterns). `None` when nothing was decided.
    pub fn header_value(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        let items: Vec<String> = self
            .0
            .iter()
            .map(|d| {
                let mut item = d.detector.name().to_string();
                if let Some(name) = &d.pattern {
                    // Names are validated to [a-z0-9_]: no escaping needed.
                    item.push_str(&format!(";name=\"{name}\""));
                }
                item.push_str(&format!(
                    ";side={};action={}",
                    d.side.name(),
                    d.action.name()
                ));
                if d.mode != d.action {
                    item.push_str(&format!(";mode={}", d.mode.name()));
                }
                item.push_str(&format!(";count={}", d.count));
                item
            })
            .collect();
        Some(items.join(", "))
    }
}

impl Decision {
    /// As the audit record holds it (counts only; never the matched text: there is none to record).
    pub fn to_record(&self) -> GuardrailDecision {
        let action = |a: Action| match a {
            Action::Block => GuardrailAction::Block,
            Action::Redact => GuardrailAction::Redact,
            Action::Flag => GuardrailAction::Flag,
        };
        GuardrailDecision {
            detector: self.detector.name().to_string(),
            action: action(self.action),
            count: self.count,
            side: Some(self.side.name().to_string()),
            pattern: self.pattern.clone(),
            mode: (self.mode != self.action).then(|| action(self.mode)),
        }
    }
}
