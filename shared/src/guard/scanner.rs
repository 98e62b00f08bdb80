//! The compiled policy: rules (bounded regex + validator) grouped into lanes, and the matching
//! engine shared by whole-text scans and the streaming redactor.

use std::fmt;
use std::sync::{Arc, OnceLock};

use super::automaton::PatternAutomaton;
use super::charset::CharSet;
use super::findings::Findings;
use super::native::{DenyTerms, Native};
use super::patterns::CompiledGuard;
use super::policy::ScanRules;
use super::rules::{self, Check};
use super::{Action, Detector, Side};
use crate::error::{ErrorKind, GatewayError};

/// Bytes of text kept before the match position for look-behind: two characters of up to four
/// bytes. (Rules and validators look at most two characters behind a match start and two
/// characters past its end.)
pub(crate) const CONTEXT: usize = 8;
/// Most bytes a config's custom patterns' tables may take together, kept in every isolate that
/// serves the tenant.
const MAX_CUSTOM_AUTOMATA_BYTES: usize = 8 << 20;

pub(crate) struct Rule {
    pub detector: Detector,
    /// A custom pattern's name.
    pub name: Option<Arc<str>>,
    pub mode: Action,
    /// Placeholder label, e.g. `EMAIL`.
    pub label: Arc<str>,
    matcher: Matcher,
    /// Every character a match can hold (empty for deny terms, whose matcher answers: see
    /// [`Rule::holds`]).
    class: CharSet,
    check: Check,
    /// Longest possible match, in bytes.
    pub max_len: usize,
}

impl Rule {
    /// Whether a match of this rule can hold `c`.
    fn holds(&self, c: char) -> bool {
        match &self.matcher {
            Matcher::Deny(terms) => terms.holds(c),
            _ => self.class.contains(c),
        }
    }
}

/// Which part of the policy a compile error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleSource {
    Builtin(Detector),
    Custom(usize),
    /// The custom patterns together.
    CustomPatterns,
    DenyTerms,
}

/// Groups of rules that match independently of each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    RequestBlock,
    RequestRedact,
    ResponseRedact,
    Flag,
}

/// A policy compiled for matching; built once per tenant config and shared (`Arc`) by requests.
#[derive(Default)]
pub struct Scanner {
    rules: Vec<Rule>,
    source: ScanRules,
    lanes: Lanes,
}

/// The rules of each lane, as indexes into [`Scanner::rules`].
#[derive(Default)]
struct Lanes {
    request_block: Vec<usize>,
    request_redact: Vec<usize>,
    response_redact: Vec<usize>,
    flag: Vec<usize>,
}

impl Lanes {
    fn get(&self, lane: Lane) -> &[usize] {
        match lane {
            Lane::RequestBlock => &self.request_block,
            Lane::RequestRedact => &self.request_redact,
            Lane::ResponseRedact => &self.response_redact,
            Lane::Flag => &self.flag,
        }
    }

    fn get_mut(&mut self, lane: Lane) -> &mut Vec<usize> {
        match lane {
            Lane::RequestBlock => &mut self.request_block,
            Lane::RequestRedact => &mut self.request_redact,
            Lane::ResponseRedact => &mut self.response_redact,
            Lane::Flag => &mut self.flag,
        }
    }
}

impl PartialEq for Scanner {
    /// Two scanners are equal when compiled from equal rules.
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Scanner {}

impl fmt::Debug for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scanner")
            .field("rules", &self.source)
            .field("compiled", &self.rules.len())
            .finish()
    }
}

/// One match: what found it, the configured mode, and where (byte offsets into the scanned text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub detector: Detector,
    /// The custom pattern's name, for [`Detector::CustomPattern`].
    pub pattern: Option<Arc<str>>,
    pub mode: Action,
    pub span: std::ops::Range<usize>,
}

/// Everything a policy finds in one text, by what it does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanOutcome {
    /// The first match of a block-mode rule (requests only).
    pub blocked: Option<Finding>,
    /// Non-overlapping matches to replace with placeholders, in text order.
    pub redactions: Vec<Finding>,
    /// Matches to record only, in text order.
    pub flags: Vec<Finding>,
}

/// A request refused by a block-mode rule. Names the detector, never the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub detector: Detector,
    pub pattern: Option<String>,
}

impl Blocked {
    /// The client's 400: code `guardrail_<detector>`; `param` is the custom pattern's name, or
    /// else `location` (e.g. `messages[1].content`).
    pub fn to_error(&self, location: &str) -> GatewayError {
        let what = match &self.pattern {
            Some(name) => format!("text matching the custom pattern `{name}`"),
            None => self.detector.describe().to_string(),
        };
        let err = GatewayError::new(
            ErrorKind::GuardrailBlocked(self.detector.error_code()),
            format!(
                "This request was blocked by the tenant's guardrail policy: {location} contains {what}. Remove it and try again."
            ),
        );
        match &self.pattern {
            Some(name) => err.with_param(name.clone()),
            None => err.with_param(location),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Cand {
    Unknown,
    Found {
        start: usize,
        end: usize,
    },
    /// No valid match starts between `from` and the frontier.
    Nothing {
        from: usize,
    },
}

/// A decided match of rule `rule`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub rule: usize,
    pub start: usize,
    pub end: usize,
}

impl Scanner {
    /// Compiles the rules. Errors name the rule; [`GuardPolicy`](super::GuardPolicy) turns them into
    /// config errors with paths.
    pub(crate) fn new(
        source: ScanRules,
        compiled: &CompiledGuard,
    ) -> Result<Scanner, Vec<(RuleSource, String)>> {
        let mut scanner = Scanner::default();
        let mut errors = Vec::new();
        for d in Detector::BUILTIN {
            let Some(&mode) = source.detectors.get(&d) else {
                continue;
            };
            for (compiled, check) in builtin_rules(d) {
                match compiled {
                    Ok((matcher, max_len, class)) => scanner.rules.push(Rule {
                        detector: d,
                        name: None,
                        mode,
                        label: d.label().into(),
                        matcher: matcher.clone(),
                        class: class.clone(),
                        check: *check,
                        max_len: *max_len,
                    }),
                    Err(e) => errors.push((RuleSource::Builtin(d), e.clone())),
                }
            }
        }
        let mut automata_bytes = 0;
        for (i, p) in source.custom_patterns.iter().enumerate() {
            match compiled.pattern(&p.regex) {
                Ok(compiled) if compiled.max_len <= super::MAX_CUSTOM_PATTERN_LEN => {
                    automata_bytes += compiled.table_bytes();
                    scanner.rules.push(Rule {
                        detector: Detector::CustomPattern,
                        name: Some(p.name.as_str().into()),
                        mode: p.mode,
                        label: p.placeholder.as_str().into(),
                        class: compiled.class.clone(),
                        max_len: compiled.max_len,
                        matcher: Matcher::Pattern(compiled),
                        check: Check::None,
                    })
                }
                Ok(compiled) => errors.push((
                    RuleSource::Custom(i),
                    format!(
                        "can match up to {} bytes; at most {} are allowed (a stream holds back that much text)",
                        compiled.max_len,
                        super::MAX_CUSTOM_PATTERN_LEN
                    ),
                )),
                Err(e) => errors.push((RuleSource::Custom(i), e)),
            }
        }
        if automata_bytes > MAX_CUSTOM_AUTOMATA_BYTES {
            errors.push((
                RuleSource::CustomPatterns,
                format!(
                    "compile to {:.1} MiB of automata together; at most {} MiB are allowed (each \
                     isolate keeps them with the config): use ASCII classes or shorter repetitions",
                    automata_bytes as f64 / f64::from(1 << 20),
                    MAX_CUSTOM_AUTOMATA_BYTES >> 20
                ),
            ));
        }
        if !source.deny_terms.is_empty() {
            match DenyTerms::new(&source.deny_terms, compiled) {
                Ok(terms) => scanner.rules.push(Rule {
                    detector: Detector::DenyTerm,
                    name: None,
                    mode: source.deny_mode,
                    label: Detector::DenyTerm.label().into(),
                    max_len: terms.max_len(),
                    matcher: Matcher::Deny(Arc::new(terms)),
                    class: CharSet::default(),
                    check: Check::None,
                }),
                Err(e) => errors.push((RuleSource::DenyTerms, e)),
            }
        }
        for (i, r) in scanner.rules.iter().enumerate() {
            let lanes: &[Lane] = match r.mode {
                Action::Block => &[Lane::RequestBlock, Lane::ResponseRedact],
                Action::Redact => &[Lane::RequestRedact, Lane::ResponseRedact],
                Action::Flag => &[Lane::Flag],
            };
            for &l in lanes {
                scanner.lanes.get_mut(l).push(i);
            }
        }
        scanner.source = source;
        if errors.is_empty() {
            Ok(scanner)
        } else {
            Err(errors)
        }
    }

    /// The rules this scanner was compiled from.
    pub fn rules(&self) -> &ScanRules {
        &self.source
    }

    /// Whether any rule is enabled.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// About what this config's own compiled rules hold in memory: its custom patterns' tables
    /// and its deny terms' trie (the built-in rules are compiled once and shared).
    pub fn compiled_bytes(&self) -> usize {
        self.rules
            .iter()
            .map(|rule| match &rule.matcher {
                Matcher::Pattern(pattern) => pattern.table_bytes(),
                Matcher::Deny(terms) => terms.heap_bytes(),
                Matcher::Native(_) => 0,
            })
            .sum()
    }

    /// The most text a stream redactor holds back, in bytes: the longest match of any rule plus
    /// the look-ahead context.
    pub fn max_holdback(&self) -> usize {
        self.rules
            .iter()
            .map(|r| r.max_len + CONTEXT)
            .max()
            .unwrap_or(0)
    }

    /// Every match in `text` under `side`'s semantics: on a request, block-mode rules block; on a
    /// response they redact.
    pub fn scan(&self, text: &str, side: Side) -> ScanOutcome {
        let mut out = ScanOutcome::default();
        let mut cache = Vec::new();
        if side == Side::Request {
            out.blocked = self
                .next_hit(Lane::RequestBlock, text, 0, usize::MAX, &mut cache)
                .map(|h| self.finding(h));
        }
        let redact = match side {
            Side::Request => Lane::RequestRedact,
            Side::Response => Lane::ResponseRedact,
        };
        out.redactions = self
            .all_hits(redact, text)
            .map(|h| self.finding(h))
            .collect();
        out.flags = self
            .all_hits(Lane::Flag, text)
            .map(|h| self.finding(h))
            .collect();
        out
    }

    /// Scans `text` and records the decisions in `findings`. Returns the redacted text (`None` when
    /// nothing was replaced), or [`Blocked`] for a request that a block-mode rule refuses.
    pub fn redact(
        &self,
        text: &str,
        side: Side,
        findings: &mut Findings,
    ) -> Result<Option<String>, Blocked> {
        if side == Side::Request {
            let mut cache = Vec::new();
            if let Some(h) = self.next_hit(Lane::RequestBlock, text, 0, usize::MAX, &mut cache) {
                let rule = self.rule(h.rule);
                findings.record(side, rule, Action::Block);
                return Err(Blocked {
                    detector: rule.detector,
                    pattern: rule.name.as_deref().map(str::to_string),
                });
            }
        }
        for h in self.all_hits(Lane::Flag, text) {
            findings.record(side, self.rule(h.rule), Action::Flag);
        }
        let lane = match side {
            Side::Request => Lane::RequestRedact,
            Side::Response => Lane::ResponseRedact,
        };
        let mut out = String::new();
        let mut pos = 0;
        for h in self.all_hits(lane, text) {
            out.push_str(&text[pos..h.start]);
            out.push_str(&self.replace(h, text, side, findings));
            pos = h.end;
        }
        if pos == 0 {
            return Ok(None);
        }
        out.push_str(&text[pos..]);
        Ok(Some(out))
    }

    /// What [`Scanner::redact`] records for response texts it leaves as they are (their flags),
    /// when none of `texts` has anything to redact: then true. False, with nothing recorded, when
    /// one has.
    pub fn flag_unredacted_response<S: AsRef<str>>(
        &self,
        texts: &[S],
        findings: &mut Findings,
    ) -> bool {
        let redacts = |t: &S| {
            let mut cache = Vec::new();
            self.next_hit(Lane::ResponseRedact, t.as_ref(), 0, usize::MAX, &mut cache)
                .is_some()
        };
        if texts.iter().any(redacts) {
            return false;
        }
        for t in texts {
            for h in self.all_hits(Lane::Flag, t.as_ref()) {
                findings.record(Side::Response, self.rule(h.rule), Action::Flag);
            }
        }
        true
    }

    fn all_hits<'s>(&'s self, lane: Lane, text: &'s str) -> impl Iterator<Item = Hit> + 's {
        let mut cache = Vec::new();
        let mut pos = 0;
        std::iter::from_fn(move || {
            let h = self.next_hit(lane, text, pos, usize::MAX, &mut cache)?;
            pos = h.end;
            Some(h)
        })
    }

    fn finding(&self, h: Hit) -> Finding {
        let rule = self.rule(h.rule);
        Finding {
            detector: rule.detector,
            pattern: rule.name.clone(),
            mode: rule.mode,
            span: h.start..h.end,
        }
    }

    /// The placeholder for a redaction hit, recorded in the findings.
    pub(crate) fn replace(&self, h: Hit, hay: &str, side: Side, findings: &mut Findings) -> String {
        let rule = self.rule(h.rule);
        findings.record(side, rule, Action::Redact);
        findings
            .placeholders
            .placeholder(rule, &hay[h.start..h.end])
    }

    pub(crate) fn lane(&self, lane: Lane) -> &[usize] {
        self.lanes.get(lane)
    }

    /// Rule `i`, an index taken from a lane or a [`Hit`].
    #[allow(
        clippy::indexing_slicing,
        reason = "rule indexes come only from the lanes, which `new` fills with indexes of \
                  `rules`, and neither changes afterwards: `get` would hand the scanner's \
                  callers an error that cannot happen"
    )]
    pub(crate) fn rule(&self, i: usize) -> &Rule {
        &self.rules[i]
    }

    /// Where the undecided part of `hay` begins for `lane`, when more text may follow. A match
    /// is decided once the two characters after its end are known, so undecided matches end
    /// past `q`, the start of the second-to-last character; such a match consists of class
    /// characters from its start through `q` and is at most `max_len` long. Matches (and the
    /// absence of matches) starting before the returned position are the same whatever follows.
    /// `usize::MAX` for a lane without rules.
    pub(crate) fn frontier(&self, lane: Lane, hay: &str) -> usize {
        let mut tail = hay.char_indices().rev();
        let last = tail.next();
        let Some((q, at_q)) = tail.next() else {
            return if self.lane(lane).is_empty() {
                usize::MAX
            } else {
                0
            };
        };
        let last_start = last.map_or(hay.len(), |(i, _)| i);
        self.lane(lane)
            .iter()
            .map(|&r| {
                let rule = self.rule(r);
                if !rule.holds(at_q) {
                    return last_start;
                }
                let floor = (q + 1).saturating_sub(rule.max_len);
                let mut start = q;
                for (i, c) in hay[..q].char_indices().rev() {
                    if i < floor || !rule.holds(c) {
                        break;
                    }
                    start = i;
                }
                start
            })
            .min()
            .unwrap_or(usize::MAX)
    }

    /// The earliest decided match of `lane` starting at or after `pos` and before `frontier`;
    /// ties go to the longer match, then to the earlier rule. `cache` holds per-rule results for
    /// this `hay` and `frontier` (start with an empty one).
    pub(crate) fn next_hit(
        &self,
        lane: Lane,
        hay: &str,
        pos: usize,
        frontier: usize,
        cache: &mut Vec<Cand>,
    ) -> Option<Hit> {
        let rules = self.lane(lane);
        if cache.len() != rules.len() {
            cache.clear();
            cache.resize(rules.len(), Cand::Unknown);
        }
        let mut best: Option<Hit> = None;
        for (cached, &r) in cache.iter_mut().zip(rules) {
            let cand = match *cached {
                c @ Cand::Found { start, .. } if start >= pos => c,
                c @ Cand::Nothing { from } if from <= pos => c,
                _ => {
                    let c = self.search(r, hay, pos, frontier);
                    *cached = c;
                    c
                }
            };
            if let Cand::Found { start, end } = cand {
                let better =
                    best.is_none_or(|b| start < b.start || (start == b.start && end > b.end));
                if better {
                    best = Some(Hit {
                        rule: r,
                        start,
                        end,
                    });
                }
            }
        }
        best
    }

    /// The first valid match of rule `r` starting in `from..frontier`.
    fn search(&self, r: usize, hay: &str, from: usize, frontier: usize) -> Cand {
        let rule = self.rule(r);
        let mut at = from;
        while at < hay.len() {
            let Some((start, end)) = rule.matcher.find_at(hay, at) else {
                break;
            };
            if start >= frontier {
                break;
            }
            if let Some(end) = rule.check.accept(hay, start, end) {
                if end > start {
                    return Cand::Found { start, end };
                }
            }
            at = next_boundary(hay, start);
        }
        Cand::Nothing { from }
    }
}

/// The largest char boundary at or below `i`.
pub(crate) fn floor_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The char boundary after the character starting at `i`.
fn next_boundary(s: &str, i: usize) -> usize {
    s[i..].chars().next().map_or(s.len(), |c| i + c.len_utf8())
}

/// What finds a rule's candidate matches.
#[derive(Clone)]
pub(crate) enum Matcher {
    /// A tenant's custom pattern.
    Pattern(Arc<PatternAutomaton>),
    Native(Native),
    Deny(Arc<DenyTerms>),
}

impl Matcher {
    fn find_at(&self, hay: &str, at: usize) -> Option<(usize, usize)> {
        match self {
            Matcher::Pattern(automaton) => automaton.find_at(hay, at),
            Matcher::Native(native) => native.find_at(hay, at),
            Matcher::Deny(terms) => terms.find_at(hay, at),
        }
    }
}

/// A compiled rule: its matcher, longest match (bytes) and the characters a match can hold.
type Compiled = (Matcher, usize, CharSet);
/// A built-in rule compiled (or why it could not be), with its validator.
type BuiltinRule = (Result<Compiled, String>, Check);

/// The built-in rules of `d`, shared by every tenant that enables `d`. Each runs its native
/// matcher; its pattern gives the longest match and the characters a match can hold
/// ([`super::shapes`], derived from the patterns and checked against them by the tests).
fn builtin_rules(d: Detector) -> &'static [BuiltinRule] {
    static COMPILED: [OnceLock<Vec<BuiltinRule>>; Detector::BUILTIN.len()] =
        [const { OnceLock::new() }; Detector::BUILTIN.len()];
    let Some(slot) = Detector::BUILTIN
        .iter()
        .position(|b| *b == d)
        .and_then(|i| COMPILED.get(i))
    else {
        return &[];
    };
    slot.get_or_init(|| {
        if d == Detector::PromptInjection {
            let compiled = super::shapes::of(d, 0)
                .map(|(max_len, class)| (Matcher::Native(Native::Injection), max_len, class));
            return vec![(compiled, Check::None)];
        }
        rules::builtins(d)
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let compiled = match b.native {
                    Some(native) => super::shapes::of(d, i)
                        .map(|(max_len, class)| (Matcher::Native(native), max_len, class)),
                    None => Err("has no matcher".to_string()),
                };
                (compiled, b.check)
            })
            .collect()
    })
}

/// Parses a pattern as regex does (Unicode, UTF-8).
#[cfg(any(test, feature = "compile-patterns"))]
pub(crate) fn parse(pattern: &str) -> Result<regex_syntax::hir::Hir, String> {
    regex_syntax::ParserBuilder::new()
        .build()
        .parse(pattern)
        .map_err(|e| format!("invalid regex: {}", error_line(&e.to_string())))
}

/// A pattern's longest match (bytes) and the characters a match can hold, or why a rule cannot
/// have it.
#[cfg(any(test, feature = "compile-patterns"))]
pub(crate) fn analyse(hir: &regex_syntax::hir::Hir) -> Result<(usize, CharSet), String> {
    use regex_syntax::hir::Look;
    let props = hir.properties();
    let Some(max_len) = props.maximum_len() else {
        return Err(
            "can match text of unbounded length; bound every repetition (e.g. {1,64} instead of + or *)"
                .into(),
        );
    };
    if props.minimum_len() == Some(0) {
        return Err("can match empty text".into());
    }
    let looks = props.look_set();
    if looks.contains(Look::Start) || looks.contains(Look::End) {
        return Err(
            "must not use ^, $, \\A or \\z outside multi-line mode (a stream has no known start or end)"
                .into(),
        );
    }
    Ok((max_len, CharSet::of(hir)))
}

/// The `error: ...` line of regex's multi-line messages.
#[cfg(any(test, feature = "compile-patterns"))]
fn error_line(message: &str) -> String {
    message
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(|| message.replace('\n', " "), str::to_string)
}
