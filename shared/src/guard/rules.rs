//! The built-in rules: one or more bounded regexes per detector, the characters a match can hold
//! (so a stream need not hold back text that cannot be part of a match) and a validator that
//! checks what a regex cannot (checksums, context).

use super::checks;
use super::native::Native;
use super::Detector;

/// A built-in rule before compilation. `pattern` specifies what it matches; a rule with a
/// `native` matcher runs that instead of compiling it (the tests hold the two to the same matches).
pub(crate) struct Builtin {
    /// Read by the tests, which hold the native matcher to it and derive `shapes.rs` from it; not
    /// in other builds (the request plane's Worker would carry it unread).
    #[cfg(test)]
    pub pattern: &'static str,
    pub check: Check,
    pub native: Option<Native>,
}

/// What a candidate must satisfy beyond its regex. `accept` returns the end of the accepted match
/// (a validator may shorten it, never lengthen it), reading at most two characters on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    None,
    Email,
    Phone,
    Card,
    Iban,
    Ssn,
    Ipv4,
    Ipv6,
    ProviderKey,
    TokenBounds,
    RandomToken,
}

fn before(hay: &str, s: usize) -> Option<char> {
    hay[..s].chars().next_back()
}

fn after(hay: &str, e: usize) -> (Option<char>, Option<char>) {
    let mut it = hay[e..].chars();
    (it.next(), it.next())
}

fn is(c: Option<char>, f: impl Fn(char) -> bool) -> bool {
    c.is_some_and(f)
}

fn digit(c: char) -> bool {
    c.is_ascii_digit()
}

fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// `-` or `.` followed by a digit: the match continues as a longer number.
fn continues_number(next: (Option<char>, Option<char>)) -> bool {
    is(next.0, |c| c == '-' || c == '.') && is(next.1, digit)
}

fn digits_of(m: &str) -> Vec<u8> {
    m.bytes().filter(u8::is_ascii_digit).collect()
}

impl Check {
    pub(crate) fn accept(self, hay: &str, s: usize, e: usize) -> Option<usize> {
        let m = &hay[s..e];
        let prev = before(hay, s);
        let next = after(hay, e);
        // `.` then a letter or digit: the match would continue as a longer name or number.
        let dot_alnum = next.0 == Some('.') && is(next.1, |c| c.is_ascii_alphanumeric());
        let dot_digit = next.0 == Some('.') && is(next.1, digit);
        let ok = match self {
            Check::None => true,
            Check::Email => {
                m.len() <= 254
                    && !is(prev, |c| c.is_ascii_alphanumeric() || "._%+-@".contains(c))
                    && !is(next.0, |c| {
                        c.is_ascii_alphanumeric() || c == '-' || c == '@'
                    })
                    && !dot_alnum
            }
            Check::Phone => {
                let n = digits_of(m).len();
                let count_ok = if m.starts_with('+') {
                    (8..=15).contains(&n)
                } else {
                    n == 10 || (n == 11 && m.starts_with('1'))
                };
                count_ok
                    && !is(prev, |c| c.is_ascii_alphanumeric() || "+-./".contains(c))
                    && !is(next.0, digit)
                    && !continues_number(next)
            }
            Check::Card => {
                let mixed = m.contains(' ') && m.contains('-');
                !mixed && !continues_number(next) && checks::card_number(&digits_of(m))
            }
            Check::Iban => return iban_end(hay, s, e, prev),
            Check::Ssn => {
                let num = |digits: &[u8]| {
                    digits
                        .iter()
                        .fold(0u32, |acc, x| acc * 10 + u32::from(x - b'0'))
                };
                let digits = digits_of(m);
                <&[u8; 9]>::try_from(digits.as_slice()).is_ok_and(|d| {
                    !is(prev, |c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                        && !continues_number(next)
                        && checks::us_ssn(num(&d[..3]), num(&d[3..5]), num(&d[5..]))
                })
            }
            Check::Ipv4 => {
                !is(prev, |c| c.is_ascii_alphanumeric() || c == '.')
                    && !dot_digit
                    && checks::ipv4(m)
            }
            Check::Ipv6 => {
                !is(prev, |c| c.is_ascii_alphanumeric() || c == ':' || c == '.')
                    && !is(next.0, |c| c.is_ascii_alphanumeric() || c == ':')
                    && !dot_digit
                    && checks::ipv6(m)
            }
            Check::ProviderKey => {
                let bounded = !is(prev, token_char) && !is(next.0, token_char);
                let shaped = if m.starts_with("asc_") {
                    crate::apikey::ApiKey::parse(m).is_ok()
                } else if m.starts_with("sk-") {
                    m.bytes().any(|b| b.is_ascii_digit())
                } else {
                    true
                };
                bounded && shaped
            }
            Check::TokenBounds => !is(prev, token_char) && !is(next.0, token_char),
            Check::RandomToken => checks::random_token(m.as_bytes()),
        };
        ok.then_some(e)
    }
}

/// An IBAN is as long as its country says: the regex may run on into following text, so the
/// match is cut after that many alphanumerics and must end there.
fn iban_end(hay: &str, s: usize, e: usize, prev: Option<char>) -> Option<usize> {
    if is(prev, |c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let m = &hay[s..e];
    let country = m.get(..2)?.to_ascii_uppercase();
    let len = checks::iban_length(country.as_bytes())?;
    let mut alnum = Vec::with_capacity(len);
    let mut end = None;
    for (i, c) in m.char_indices() {
        if c.is_ascii_alphanumeric() {
            alnum.push(c.to_ascii_uppercase() as u8);
            if alnum.len() == len {
                end = Some(s + i + 1);
                break;
            }
        }
    }
    let end = end?;
    let next = after(hay, end).0;
    (!is(next, |c| c.is_ascii_alphanumeric()) && checks::iban(&alnum)).then_some(end)
}

#[cfg_attr(not(test), allow(unused_variables))]
const fn native(_: Detector, pattern: &'static str, check: Check, native: Native) -> Builtin {
    Builtin {
        #[cfg(test)]
        pattern,
        check,
        native: Some(native),
    }
}

const EMAIL: &[Builtin] = &[native(
    Detector::Email,
    r"[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,5}[A-Za-z]{2,24}",
    Check::Email,
    Native::Email,
)];

const PHONE: &[Builtin] = &[native(
    Detector::Phone,
    // E.164-style with a `+` and country code; or North American with separators.
    r"\+[1-9][0-9]{0,3}(?:[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,6}|(?:1[ .-])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}",
    Check::Phone,
    Native::Phone,
)];

const CARD: &[Builtin] = &[native(
    Detector::CreditCard,
    r"(?-u:\b)(?:[0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{4}){2}[ -][0-9]{1,4}(?:[ -][0-9]{1,3})?|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5})(?-u:\b)",
    Check::Card,
    Native::Card,
)];

const IBAN: &[Builtin] = &[native(
    Detector::Iban,
    r"(?-u:\b)[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){11,30}",
    Check::Iban,
    Native::Iban,
)];

const SSN: &[Builtin] = &[native(
    Detector::UsSsn,
    r"(?-u:\b)(?:[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4})(?-u:\b)",
    Check::Ssn,
    Native::Ssn,
)];

const IP: &[Builtin] = &[
    native(
        Detector::IpAddress,
        r"(?-u:\b)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?-u:\b)",
        Check::Ipv4,
        Native::Ipv4,
    ),
    native(
        Detector::IpAddress,
        r"(?:[0-9A-Fa-f]{1,4})?(?::(?:[0-9A-Fa-f]{1,4})?){2,7}(?:\.[0-9]{1,3}){0,3}",
        Check::Ipv6,
        Native::Ipv6,
    ),
];

const SECRET: &[Builtin] = &[
    native(
        Detector::Secret,
        // OpenAI / Anthropic, AWS access key ids, GitHub, Slack, Stripe, Google, GitLab,
        // Hugging Face, and ASC's own keys (checksum-validated).
        concat!(
            r"sk-(?:proj-|svcacct-|admin-|ant-[a-z0-9]{2,12}-)?[A-Za-z0-9_-]{20,256}",
            r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}",
            r"|gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,243}",
            r"|xox[abposr]-[A-Za-z0-9-]{10,200}",
            r"|[rs]k_(?:live|test)_[A-Za-z0-9]{16,247}",
            r"|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,64}|hf_[A-Za-z0-9]{30,64}",
            r"|asc_[0-9A-Za-z]{38}"
        ),
        Check::ProviderKey,
        Native::ProviderKey,
    ),
    native(
        Detector::Secret,
        r"-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY-----",
        Check::None,
        Native::PrivateKey,
    ),
    native(
        Detector::Secret,
        // JSON Web Tokens: base64url header and payload that both start with `{"`.
        r"eyJ[A-Za-z0-9_-]{8,1024}\.eyJ[A-Za-z0-9_-]{8,2048}\.[A-Za-z0-9_-]{8,1024}",
        Check::TokenBounds,
        Native::Jwt,
    ),
    native(
        Detector::Secret,
        r"(?-u:\b{start-half})[A-Za-z0-9+/=_-]{32,512}",
        Check::RandomToken,
        Native::RandomToken,
    ),
];

/// Phrases of the common prompt-injection attempts; ASCII case-insensitive, any 1-3 whitespace
/// characters between words. A heuristic: flag only.
pub(crate) const INJECTION_PHRASES: &[&str] = &[
    "ignore (?:all |any |the |your )?(?:previous|prior|above|earlier|preceding|former) (?:instructions|prompts|messages|rules|directions|context)",
    "disregard (?:all |any |the |your )?(?:previous|prior|above|earlier|preceding|system) (?:instructions|prompts|messages|rules|directions|guidelines)",
    "forget (?:all |everything |your |the )?(?:previous|prior|above|earlier) (?:instructions|prompts|rules|guidelines)",
    "(?:reveal|print|show|repeat|output|leak|display) (?:me )?(?:your|the) (?:system prompt|hidden instructions|initial instructions|original instructions|system message|developer message)",
    "you are now (?:dan|in developer mode|jailbroken|unrestricted|unfiltered)",
    "do anything now",
    "(?:pretend|act as if|imagine) (?:that )?(?:you have|there are) no (?:restrictions|rules|guidelines|filters|limits)",
    "developer mode (?:enabled|activated|on)",
    "(?:override|bypass) (?:your|the|all) (?:safety|content|system) (?:filters|rules|guidelines|instructions|policies|prompt)",
];

/// The prompt-injection regex, built from the phrases.
#[cfg(test)]
pub(crate) fn injection_pattern() -> String {
    let alts: Vec<String> = INJECTION_PHRASES
        .iter()
        .map(|p| p.replace(' ', r"(?-u:\s){1,3}"))
        .collect();
    format!(r"(?i-u)\b(?:{})\b", alts.join("|"))
}

/// The regex of a deny-term list: case-insensitive, not inside a longer word, whitespace in a
/// term matching any run of 1-8 whitespace characters. The specification the deny-term matcher
/// (`native/deny.rs`) is tested against; no build compiles it.
#[cfg(test)]
pub(crate) fn deny_pattern(terms: &[String]) -> String {
    // Longer terms first, so "foo bar" wins over "foo" where both fit.
    let mut sorted: Vec<&String> = terms.iter().collect();
    sorted.sort_by_key(|t| std::cmp::Reverse(t.chars().count()));
    let alts: Vec<String> = sorted
        .into_iter()
        .map(|t| {
            t.split_whitespace()
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join(r"\s{1,8}")
        })
        .collect();
    format!(r"(?i)\b{{start-half}}(?:{})\b{{end-half}}", alts.join("|"))
}

/// The built-in rules of a detector, in priority order.
pub(crate) fn builtins(detector: Detector) -> &'static [Builtin] {
    match detector {
        Detector::Email => EMAIL,
        Detector::Phone => PHONE,
        Detector::CreditCard => CARD,
        Detector::Iban => IBAN,
        Detector::UsSsn => SSN,
        Detector::IpAddress => IP,
        Detector::Secret => SECRET,
        Detector::PromptInjection | Detector::DenyTerm | Detector::CustomPattern => &[],
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
