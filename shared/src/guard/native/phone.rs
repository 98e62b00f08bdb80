//! The phone rule's matcher: `\+[1-9][0-9]{0,3}(?:[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,6}`
//! (E.164-style) or `(?:1[ .-])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}`
//! (North American). Every match holds a digit in its first two bytes, so starts are found from
//! the digit runs (eight bytes at a time).
//!
//! Why the greedy reading is the regex's: in the E.164 form nothing follows the group loop, so
//! once one group matched every later choice succeeds (the loop may stop), and the first choice
//! in the regex's order that matches where it stands is the one taken: a separator if there is
//! one, a parenthesised group before digits, the most digits. Only the country code gives back
//! a digit when no group can follow it. The North American form is fixed but for its optional
//! pieces, each taken when what follows still matches.

use super::{digits, is, next_digit};

#[inline(always)]
fn sep(c: u8) -> bool {
    matches!(c, b' ' | b'.' | b'-')
}

#[inline(always)]
fn two_to_nine(c: u8) -> bool {
    (b'2'..=b'9').contains(&c)
}

/// The leftmost match from `at`. In a run of digits only three places can start one: the byte
/// before it (a `+` or `(`), three digits before its end (an area code and its separator), and
/// its last digit (a `1` and a separator).
pub(super) fn phone(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut d = at;
    loop {
        d = next_digit(b, d)?;
        let run = digits(b, d);
        if d > at {
            if let Some(e) = match b.get(d - 1) {
                Some(b'+') => e164(b, d - 1),
                Some(b'(') => north_american(b, d - 1),
                _ => None,
            } {
                return Some((d - 1, e));
            }
        }
        let end = d + run;
        for s in [end.checked_sub(3), end.checked_sub(1)]
            .into_iter()
            .flatten()
        {
            if s >= d {
                if let Some(e) = north_american(b, s) {
                    return Some((s, e));
                }
            }
        }
        d = end;
    }
}

/// `\+[1-9][0-9]{0,3}` and one to six groups, at the `+` at `s`.
fn e164(b: &[u8], s: usize) -> Option<usize> {
    let cc = s + 2;
    if !is(b, s + 1, |c| (b'1'..=b'9').contains(&c)) {
        return None;
    }
    // The country code's greedy `[0-9]{0,3}`, shorter only if no group can follow it.
    let (mut end, mut groups) = (0..=digits(b, cc).min(3))
        .rev()
        .find_map(|k| group(b, cc + k))
        .map(|e| (e, 1))?;
    while groups < 6 {
        match group(b, end) {
            Some(e) => end = e,
            None => break,
        }
        groups += 1;
    }
    Some(end)
}

/// `[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})` at `i`: with the separator if it leads to a group.
fn group(b: &[u8], i: usize) -> Option<usize> {
    if is(b, i, sep) {
        if let Some(e) = group_body(b, i + 1) {
            return Some(e);
        }
    }
    group_body(b, i)
}

fn group_body(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'(') {
        let n = digits(b, i + 1);
        return ((1..=4).contains(&n) && b.get(i + 1 + n) == Some(&b')')).then_some(i + 2 + n);
    }
    let n = digits(b, i).min(5);
    (n >= 1).then_some(i + n)
}

/// `(?:1[ .-])?` then the area code and the local number, at `s`.
fn north_american(b: &[u8], s: usize) -> Option<usize> {
    if b.get(s) == Some(&b'1') && is(b, s + 1, sep) {
        if let Some(e) = area_and_local(b, s + 2) {
            return Some(e);
        }
    }
    area_and_local(b, s)
}

/// `(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ .-])[2-9][0-9]{2}[ .-][0-9]{4}` at `i`.
fn area_and_local(b: &[u8], i: usize) -> Option<usize> {
    let three = |p: usize| is(b, p, two_to_nine) && digits(b, p + 1) >= 2;
    if b.get(i) == Some(&b'(') {
        if !(three(i + 1) && b.get(i + 4) == Some(&b')')) {
            return None;
        }
        // `\) ?`: a space is taken when the local number follows it; without it the local
        // number would start at that space, which it cannot.
        let k = i + 5;
        return if b.get(k) == Some(&b' ') {
            local(b, k + 1)
        } else {
            local(b, k)
        };
    }
    (three(i) && is(b, i + 3, sep))
        .then(|| local(b, i + 4))
        .flatten()
}

/// `[2-9][0-9]{2}[ .-][0-9]{4}` at `i`.
fn local(b: &[u8], i: usize) -> Option<usize> {
    let ok = is(b, i, two_to_nine)
        && digits(b, i + 1) >= 2
        && is(b, i + 3, sep)
        && digits(b, i + 4) >= 4;
    ok.then_some(i + 8)
}
