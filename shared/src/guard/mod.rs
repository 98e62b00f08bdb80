//! Guardrails: a tenant's policy for what may pass through the gateway in prompts and completions.
//!
//! The policy (`guardrails` in the tenant config, [`GuardPolicy`]) is validated like all config and
//! compiled once into a [`Scanner`] that is cached with the tenant config. Detectors find personal
//! data (email, phone numbers, card numbers with Luhn, IBANs with mod-97, US SSNs, IP addresses),
//! secrets (provider key prefixes, high-entropy tokens), deny terms, custom patterns and
//! prompt-injection phrases. Each has a mode: [`Action::Block`] refuses a request with a 400 whose
//! code names the detector, [`Action::Redact`] replaces the match with a typed, numbered
//! placeholder (`[EMAIL_1]`), [`Action::Flag`] lets it pass and records it.
//!
//! # What the pipeline calls
//! Per request, one [`Findings`] holds the placeholder numbering and the decisions:
//! 1. Request: [`openai::check_chat_request`] enforces `max_input_chars` / `max_output_tokens`,
//!    redacts the body in place and returns a [`GatewayError`](crate::GatewayError) for a block.
//! 2. Full response: [`openai::redact_chat_response`] (never blocks: block-mode detectors redact).
//! 3. Streamed response: [`openai::OpenAiStreamGuard`] rewrites each parsed `chat.completion.chunk`
//!    ([`OpenAiStreamGuard::on_chunk`]); [`OpenAiStreamGuard::finish`] yields a last chunk for text
//!    still held back when the stream ended without a `finish_reason`.
//! 4. [`Findings::decisions`] go to the audit record ([`Decision`] is serde-serializable) and to the
//!    [`GUARDRAILS_HEADER`] response header ([`Decisions::header_value`]).
//!
//! Other dialects use [`Scanner::redact`] on each text and [`StreamRedactor`] on text deltas.
//!
//! # Matching semantics
//! Each rule is a bounded regex (its longest match is known at compile time) plus a validator
//! (checksum, context). Within one lane (block, redact or flag rules of one side) the earliest
//! valid match wins, then the longest, then the rule order; matching resumes after it. Lanes are
//! independent, so a flagged phrase never hides text that must be redacted. Every decision looks
//! only at a bounded window around the match, which is what lets [`StreamRedactor`] hold back no
//! more than the longest possible match and still equal the whole-text result for any split.
//!
//! Matched text is never stored: placeholders are numbered by a truncated SHA-256 of the
//! normalized value, errors and decisions name the detector only.
//!
//! # Compiling, and size
//! No regex engine runs in the request path. Every built-in rule, prompt-injection phrases
//! included, is matched by hand (`native.rs`): its pattern stays the specification, which the
//! tests hold the matcher to, and gives the longest match and the characters a match can hold
//! (a table derived ahead, `shapes.rs`). A tenant's custom patterns run as table DFAs
//! (`automaton.rs`) that builds with the `compile-patterns` feature compile with regex-automata
//! (`automaton_build.rs`); its word boundaries are ASCII, as no DFA sees Unicode ones. The request
//! plane's Worker has neither that compiler nor the Unicode case tables (~165 KB of its wasm
//! gzip together) and gets what a config needs from the control plane ([`CompiledGuard`],
//! [`GuardSources`], `Host::compile_guard`).
//! Deny terms match case-insensitively, with Unicode simple case folding (`über` matches `ÜBER`),
//! through a trie of the terms (`native/deny.rs`): as one regex, a list of 100 terms scanned at
//! ~450 ms per MB (Unicode word boundaries keep the lazy DFA off non-ASCII text) and one of ~150
//! exceeded the compiled-size limit.

mod automaton;
#[cfg(feature = "compile-patterns")]
mod automaton_build;
mod charset;
mod checks;
mod findings;
mod fold;
mod native;
pub mod openai;
mod patterns;
mod policy;
mod reply_view;
mod rules;
mod scanner;
mod shapes;
mod skip;
mod stream;

use serde::{Deserialize, Serialize};

pub use findings::{Decision, Decisions, Findings, Placeholders, GUARDRAILS_HEADER};
pub use openai::{OpenAiStreamGuard, ResponseGuard};
pub use patterns::{CompiledGuard, GuardSources};
pub use policy::{
    ApplyTo, CustomPattern, GuardPolicy, ScanRules, APPLY_TO_FIELDS, CUSTOM_PATTERN_FIELDS,
    DETECTOR_FIELDS, DETECTOR_NAMES, GUARDRAIL_FIELDS, MAX_CUSTOM_PATTERN_LEN,
};
pub use scanner::{Blocked, Finding, ScanOutcome, Scanner};
pub use stream::StreamRedactor;

/// What found a match. The snake_case names are a public contract (error codes `guardrail_<name>`,
/// audit records, the response header): add new ones, never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    Email,
    Phone,
    CreditCard,
    Iban,
    UsSsn,
    IpAddress,
    Secret,
    PromptInjection,
    DenyTerm,
    CustomPattern,
}

impl Detector {
    /// The detectors configured under `guardrails.detectors`, in rule order.
    pub const BUILTIN: [Detector; 8] = [
        Detector::Secret,
        Detector::CreditCard,
        Detector::Iban,
        Detector::UsSsn,
        Detector::Email,
        Detector::Phone,
        Detector::IpAddress,
        Detector::PromptInjection,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::CreditCard => "credit_card",
            Detector::Iban => "iban",
            Detector::UsSsn => "us_ssn",
            Detector::IpAddress => "ip_address",
            Detector::Secret => "secret",
            Detector::PromptInjection => "prompt_injection",
            Detector::DenyTerm => "deny_term",
            Detector::CustomPattern => "custom_pattern",
        }
    }

    /// The error code of a request this detector blocked: `guardrail_<name>`.
    pub fn error_code(self) -> &'static str {
        match self {
            Detector::Email => "guardrail_email",
            Detector::Phone => "guardrail_phone",
            Detector::CreditCard => "guardrail_credit_card",
            Detector::Iban => "guardrail_iban",
            Detector::UsSsn => "guardrail_us_ssn",
            Detector::IpAddress => "guardrail_ip_address",
            Detector::Secret => "guardrail_secret",
            Detector::PromptInjection => "guardrail_prompt_injection",
            Detector::DenyTerm => "guardrail_deny_term",
            Detector::CustomPattern => "guardrail_custom_pattern",
        }
    }

    /// A built-in detector by its config name.
    pub fn builtin(name: &str) -> Option<Detector> {
        Detector::BUILTIN.into_iter().find(|d| d.name() == name)
    }

    /// What a match is, for messages ("contains {what}").
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Detector::Email => "an email address",
            Detector::Phone => "a phone number",
            Detector::CreditCard => "a payment card number",
            Detector::Iban => "an IBAN",
            Detector::UsSsn => "a US social security number",
            Detector::IpAddress => "an IP address",
            Detector::Secret => "what looks like an API key or secret",
            Detector::PromptInjection => "a prompt-injection phrase",
            Detector::DenyTerm => "a term this tenant denies",
            Detector::CustomPattern => "text matching a custom pattern",
        }
    }

    /// The placeholder label of a redacted match (`[EMAIL_1]`).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Detector::Email => "EMAIL",
            Detector::Phone => "PHONE",
            Detector::CreditCard => "CREDIT_CARD",
            Detector::Iban => "IBAN",
            Detector::UsSsn => "US_SSN",
            Detector::IpAddress => "IP_ADDRESS",
            Detector::Secret => "SECRET",
            Detector::PromptInjection => "PROMPT_INJECTION",
            Detector::DenyTerm => "DENY_TERM",
            Detector::CustomPattern => "REDACTED",
        }
    }
}

/// What a rule does with a match: its configured mode, and the action taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Refuse the request (400, code `guardrail_<detector>`). On a response: redact instead.
    Block,
    /// Replace the match with a typed placeholder such as `[EMAIL_1]`.
    Redact,
    /// Let it pass; record the decision.
    Flag,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Block => "block",
            Action::Redact => "redact",
            Action::Flag => "flag",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "block" => Some(Action::Block),
            "redact" => Some(Action::Redact),
            "flag" => Some(Action::Flag),
            _ => None,
        }
    }
}

/// Which way the text flows. Requests may be blocked; responses are only redacted or flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Request,
    Response,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Request => "request",
            Side::Response => "response",
        }
    }
}
