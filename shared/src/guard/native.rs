//! Built-in rules matched by hand instead of by a compiled regex: every built-in pattern, and the
//! prompt-injection phrases. Each finds exactly what its pattern in `rules.rs` finds with
//! `Regex::find_at` (leftmost-first, greedy), which stays the specification: the tests compare the
//! two on generated text. Why: with no literal to skip to, the regex engine walks every byte of a
//! text once per rule (~2 ms per MB each), and a new isolate or instance compiles each pattern
//! before its first scan (the email and card rules together 0.6-1 ms natively); these loops skip
//! to a byte their matches must hold and test a byte or two there.

mod deny;
mod injection;
mod phone;
mod secret;

pub(crate) use deny::DenyTerms;

/// A built-in rule's hand-written matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Native {
    Card,
    Ssn,
    Ipv4,
    Iban,
    RandomToken,
    Ipv6,
    Email,
    ProviderKey,
    PrivateKey,
    Jwt,
    Phone,
    Injection,
}

impl Native {
    /// The leftmost match starting at or after `at` (a char boundary), as its pattern's regex
    /// would find it; text before `at` is context for the start boundary only.
    pub(crate) fn find_at(self, hay: &str, at: usize) -> Option<(usize, usize)> {
        let b = hay.as_bytes();
        match self {
            Native::Card => digit_runs(b, at, card_at),
            Native::Ssn => digit_runs(b, at, ssn_at),
            Native::Ipv4 => digit_runs(b, at, ipv4_at),
            Native::Iban => iban(b, at),
            Native::RandomToken => random_token(b, at),
            Native::Ipv6 => ipv6(b, at),
            Native::Email => email(b, at),
            Native::ProviderKey => secret::provider_key(b, at),
            Native::PrivateKey => secret::private_key(b, at),
            Native::Jwt => secret::jwt(b, at),
            Native::Phone => phone::phone(b, at),
            Native::Injection => injection::injection(b, at),
        }
    }
}

/// `\w` in ASCII mode (`(?-u:\b)`): bytes of multi-byte characters are not word bytes.
#[inline(always)]
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// No word byte precedes `i`: `(?-u:\b{start-half})`, and `(?-u:\b)` before a word byte.
#[inline(always)]
fn no_word_before(b: &[u8], i: usize) -> bool {
    i == 0 || b.get(i - 1).is_none_or(|&c| !is_word(c))
}

/// The text at `i` does not go on with a word byte (the `(?-u:\b)` after a match ending in one).
#[inline(always)]
fn ends_word(b: &[u8], i: usize) -> bool {
    b.get(i).is_none_or(|&c| !is_word(c))
}

/// How many bytes of `class` start at `i`.
#[inline(always)]
fn run_len(b: &[u8], i: usize, class: impl Fn(u8) -> bool) -> usize {
    b.get(i..)
        .map_or(0, |rest| rest.iter().take_while(|&&c| class(c)).count())
}

/// How many ASCII digits start at `i`.
#[inline(always)]
fn digits(b: &[u8], i: usize) -> usize {
    run_len(b, i, |c| c.is_ascii_digit())
}

#[inline(always)]
fn is(b: &[u8], i: usize, f: impl Fn(u8) -> bool) -> bool {
    b.get(i).is_some_and(|&c| f(c))
}

/// The first ASCII digit at or after `from`, eight bytes at a time: in text that is mostly words
/// this loop, not the patterns, is what a scan costs.
fn next_digit(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
        let x = u64::from_le_bytes(chunk);
        // Per byte, on its low seven bits (no carry can cross into the next byte): the high bit
        // of `from_zero` is set for bytes >= b'0', that of `past_nine` for bytes > b'9'.
        let low = x & !HIGH;
        let from_zero = low + ONES * u64::from(0x80 - b'0');
        let past_nine = low + ONES * u64::from(0x80 - b'9' - 1);
        let found = from_zero & !past_nine & !x & HIGH;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(u8::is_ascii_digit)
        .map(|p| i + p)
}

/// Tries `at_start(b, s, run)` at every digit run from `at` on whose start is a word boundary.
/// These patterns start with `(?-u:\b)` and a digit, so no match starts inside a run.
fn digit_runs(
    b: &[u8],
    at: usize,
    at_start: fn(&[u8], usize, usize) -> Option<usize>,
) -> Option<(usize, usize)> {
    let mut s = at;
    loop {
        s = next_digit(b, s)?;
        let run = digits(b, s);
        if no_word_before(b, s) {
            if let Some(e) = at_start(b, s, run) {
                return Some((s, e));
            }
        }
        s += run;
    }
}

#[inline(always)]
fn card_sep(c: u8) -> bool {
    c == b' ' || c == b'-'
}

/// `[0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{4}){2}[ -][0-9]{1,4}(?:[ -][0-9]{1,3})?|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5}`
/// then `(?-u:\b)`, at a run of `run` digits starting at `s`.
fn card_at(b: &[u8], s: usize, run: usize) -> Option<usize> {
    if (13..=19).contains(&run) {
        return ends_word(b, s + run).then_some(s + run);
    }
    // The other alternatives start with exactly four digits and a separator.
    if run != 4 || !is(b, s + 4, card_sep) {
        return None;
    }
    let group = |p: usize, n: usize| digits(b, p) == n && is(b, p + n, card_sep);
    let g1 = s + 5;
    if group(g1, 4) && group(g1 + 5, 4) {
        let last = g1 + 10;
        let n = digits(b, last);
        if (1..=4).contains(&n) {
            let end = last + n;
            // The optional `[ -][0-9]{1,3}` is taken when it ends at a boundary; otherwise the
            // match ends before it, at a separator (a boundary).
            if is(b, end, card_sep) {
                let m = digits(b, end + 1);
                if (1..=3).contains(&m) && ends_word(b, end + 1 + m) {
                    return Some(end + 1 + m);
                }
            }
            if ends_word(b, end) {
                return Some(end);
            }
        }
    }
    if digits(b, g1) == 6 && is(b, g1 + 6, card_sep) {
        let last = g1 + 7;
        let n = digits(b, last);
        if (4..=5).contains(&n) && ends_word(b, last + n) {
            return Some(last + n);
        }
    }
    None
}

/// `[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4}` then `(?-u:\b)`.
fn ssn_at(b: &[u8], s: usize, run: usize) -> Option<usize> {
    let sep = *b.get(s + 3)?;
    let ok = run == 3
        && (sep == b'-' || sep == b' ')
        && digits(b, s + 4) == 2
        && b.get(s + 6) == Some(&sep)
        && digits(b, s + 7) == 4
        && ends_word(b, s + 11);
    ok.then_some(s + 11)
}

/// `(?:[0-9]{1,3}\.){3}[0-9]{1,3}` then `(?-u:\b)`.
fn ipv4_at(b: &[u8], s: usize, run: usize) -> Option<usize> {
    let mut p = s;
    let mut n = run;
    for _ in 0..3 {
        if !(1..=3).contains(&n) || b.get(p + n) != Some(&b'.') {
            return None;
        }
        p += n + 1;
        n = digits(b, p);
    }
    ((1..=3).contains(&n) && ends_word(b, p + n)).then_some(p + n)
}

/// `(?-u:\b)[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){11,30}`: found from its digits (a digit run
/// after two letters that start a word); nothing follows the greedy repetition, so a match takes
/// as many units (an alphanumeric, or a space and one) as there are, up to 30.
fn iban(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    let letter = |c: u8| c.is_ascii_alphabetic();
    let mut d = at.checked_add(2)?;
    loop {
        d = next_digit(b, d)?;
        let run = digits(b, d);
        let s = d - 2;
        if run >= 2 && is(b, s, letter) && is(b, s + 1, letter) && no_word_before(b, s) {
            let mut p = s + 4;
            let mut units = 0;
            while units < 30 {
                if is(b, p, alnum) {
                    p += 1;
                } else if b.get(p) == Some(&b' ') && is(b, p + 1, alnum) {
                    p += 2;
                } else {
                    break;
                }
                units += 1;
            }
            if units >= 11 {
                return Some((s, p));
            }
        }
        d += run;
    }
}

#[inline(always)]
fn hex_run(b: &[u8], i: usize) -> usize {
    run_len(b, i, |c| c.is_ascii_hexdigit())
}

/// `(?:[0-9A-Fa-f]{1,4})?(?::(?:[0-9A-Fa-f]{1,4})?){2,7}(?:\.[0-9]{1,3}){0,3}`, found from its
/// colons. Nothing is required after the repetitions, and taking fewer hex digits anywhere would
/// leave a hex digit where a `:` or `.` must come, so the greedy reading is the only one: a colon
/// starts a match if its group is followed by a second one, and the match starts at the up to
/// four hex digits just before that colon.
fn ipv6(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut c = at;
    loop {
        c += memchr::memchr(b':', b.get(c..)?)?;
        // The first group: `:` and up to four hex digits, then the second group's `:`.
        let h = hex_run(b, c + 1);
        if h <= 4 && b.get(c + 1 + h) == Some(&b':') {
            let mut before = 0;
            while before < 4 && c - before > at && is(b, c - before - 1, |x| x.is_ascii_hexdigit())
            {
                before += 1;
            }
            let mut end = c + 1 + h;
            let mut groups = 1;
            while groups < 7 && b.get(end) == Some(&b':') {
                let h = hex_run(b, end + 1).min(4);
                end += 1 + h;
                groups += 1;
            }
            let mut tail = 0;
            while tail < 3 && b.get(end) == Some(&b'.') {
                let n = digits(b, end + 1).min(3);
                if n == 0 {
                    break;
                }
                end += 1 + n;
                tail += 1;
            }
            return Some((c - before, end));
        }
        c += 1;
    }
}

#[inline(always)]
fn local_part(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// `[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,5}[A-Za-z]{2,24}`, found from its `@`. The
/// local part cannot hold an `@`, nor a label a `.`, so each piece is the whole run before its
/// delimiter; the only choice is how many labels to take before the top-level domain, and the
/// regex takes the most (up to five) after which two letters follow.
fn email(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut a = at;
    loop {
        a += memchr::memchr(b'@', b.get(a..)?)?;
        let mut s = a;
        while s > at && a - s < 64 && is(b, s - 1, local_part) {
            s -= 1;
        }
        if s < a {
            if let Some(end) = domain(b, a + 1) {
                return Some((s, end));
            }
        }
        a += 1;
    }
}

/// The end of `(?:[A-Za-z0-9-]{1,63}\.){1,5}[A-Za-z]{2,24}` from `p`, if it matches there.
fn domain(b: &[u8], p: usize) -> Option<usize> {
    let label = |c: u8| c.is_ascii_alphanumeric() || c == b'-';
    let mut after_labels = [0usize; 5];
    let mut labels = 0;
    let mut q = p;
    while labels < 5 {
        let run = run_len(b, q, label);
        if !(1..=63).contains(&run) || b.get(q + run) != Some(&b'.') {
            break;
        }
        q += run + 1;
        if let Some(slot) = after_labels.get_mut(labels) {
            *slot = q;
        }
        labels += 1;
    }
    let taken = after_labels.get(..labels).unwrap_or_default();
    taken.iter().rev().find_map(|&t| {
        let letters = run_len(b, t, |c| c.is_ascii_alphabetic());
        (letters >= 2).then_some(t + letters.min(24))
    })
}

#[inline(always)]
fn token_class(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'_' | b'-')
}

/// `(?-u:\b{start-half})[A-Za-z0-9+/=_-]{32,512}`: at a position not preceded by a word byte, the
/// run of class bytes, cut at 512. A start needs the 32 bytes from it in the class, so a window is
/// checked from its far end: a byte outside the class there rules out every start up to it, and
/// in prose most windows are passed over after a few bytes.
fn random_token(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut s = at;
    while s < b.len() {
        if !is(b, s, token_class) || !no_word_before(b, s) {
            s += 1;
            continue;
        }
        // Later starts have less text left.
        let window = b.get(s..s + 32)?;
        match window.iter().rposition(|&c| !token_class(c)) {
            Some(j) => s += j + 1,
            None => {
                let rest = b.get(s..).unwrap_or_default();
                let run = rest
                    .iter()
                    .take(512)
                    .take_while(|&&c| token_class(c))
                    .count();
                return Some((s, s + run));
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "native_tests.rs"]
mod tests;
