//! The secret rules' matchers: provider keys, private-key headers and JSON Web Tokens. Each
//! starts with a literal, so each skips to it.

/// The provider-key rule: `sk-(?:proj-|svcacct-|admin-|ant-[a-z0-9]{2,12}-)?[A-Za-z0-9_-]{20,256}`
/// and nine more alternatives, each a literal prefix and a run of one class (`rules.rs`). No two
/// alternatives match at the same position (their prefixes differ), and nothing follows a run,
/// so at a position the match is its alternative's prefix and greedy run. Starts are found from
/// the `-` or `_` that every prefix holds within its first seven bytes, and from the `A` that
/// starts the AWS and Google prefixes.
pub(super) fn provider_key(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    let mut q = at;
    while let Some(found) = b
        .get(q..)
        .and_then(|rest| memchr::memchr2(b'-', b'_', rest))
    {
        let sep = q + found;
        // A separator more than six bytes past the best start cannot give an earlier one.
        if best.is_some_and(|(s, _)| sep > s + 6) {
            break;
        }
        for s in sep.saturating_sub(6).max(at)..sep.saturating_sub(1) {
            if best.is_some_and(|(b, _)| s >= b) {
                break;
            }
            if let Some(e) = key_at(b, s) {
                best = Some((s, e));
                break;
            }
        }
        q = sep + 1;
    }
    let mut a = at;
    while let Some(found) = b.get(a..).and_then(|rest| memchr::memchr(b'A', rest)) {
        let s = a + found;
        if best.is_some_and(|(b, _)| s >= b) {
            break;
        }
        if let Some(e) = key_at(b, s) {
            return Some((s, e));
        }
        a = s + 1;
    }
    best
}

/// The end of a provider key starting at `s`, if one does.
fn key_at(b: &[u8], s: usize) -> Option<usize> {
    let rest = b.get(s..)?;
    let at = |i: usize| rest.get(i).copied().unwrap_or(0);
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let dash_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let dash_alnum = |c: u8| c.is_ascii_alphanumeric() || c == b'-';
    let upper_digit = |c: u8| c.is_ascii_uppercase() || c.is_ascii_digit();
    let lower_digit = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let count = |p: usize, class: &dyn Fn(u8) -> bool| super::run_len(b, p, class);
    // A run of `class` from `p` of at least `min`, taking at most `max`.
    let run = |p: usize, class: &dyn Fn(u8) -> bool, min: usize, max: usize| {
        let n = count(p, class).min(max);
        (n >= min).then_some(p + n)
    };
    let after = |prefix: &[u8]| rest.starts_with(prefix).then_some(s + prefix.len());
    match at(0) {
        b's' if at(2) == b'-' => {
            let p = after(b"sk-")?;
            let group = [&b"proj-"[..], b"svcacct-", b"admin-"]
                .iter()
                .find(|g| b.get(p..).is_some_and(|r| r.starts_with(g)))
                .map(|g| p + g.len())
                .or_else(|| {
                    let q = p + 4;
                    let n = count(q, &lower_digit);
                    (b.get(p..).is_some_and(|r| r.starts_with(b"ant-"))
                        && (2..=12).contains(&n)
                        && b.get(q + n) == Some(&b'-'))
                    .then_some(q + n + 1)
                });
            group
                .and_then(|g| run(g, &dash_word, 20, 256))
                .or_else(|| run(p, &dash_word, 20, 256))
        }
        b's' | b'r' => {
            let p = [&b"sk_live_"[..], b"sk_test_", b"rk_live_", b"rk_test_"]
                .iter()
                .find_map(|x| after(x))?;
            run(p, &alnum, 16, 247)
        }
        b'A' => {
            if let Some(p) = after(b"AIza") {
                return run(p, &dash_word, 35, 35);
            }
            let p = [&b"AKIA"[..], b"ASIA", b"ABIA", b"ACCA"]
                .iter()
                .find_map(|x| after(x))?;
            run(p, &upper_digit, 16, 16)
        }
        b'g' => {
            if let Some(p) = after(b"github_pat_") {
                return run(p, &word, 22, 243);
            }
            if let Some(p) = after(b"glpat-") {
                return run(p, &dash_word, 20, 64);
            }
            let shaped = at(1) == b'h' && b"pousr".contains(&at(2)) && at(3) == b'_';
            shaped.then_some(())?;
            run(s + 4, &alnum, 36, 251)
        }
        b'x' => {
            let shaped = rest.starts_with(b"xox") && b"abposr".contains(&at(3)) && at(4) == b'-';
            shaped.then_some(())?;
            run(s + 5, &dash_alnum, 10, 200)
        }
        b'h' => run(after(b"hf_")?, &alnum, 30, 64),
        b'a' => run(after(b"asc_")?, &alnum, 38, 38),
        _ => None,
    }
}

/// `-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY-----`: a word of the group can be `PRIVATE`
/// itself, so the group takes as many words as it can and gives them back one by one until the
/// literal tail follows.
pub(super) fn private_key(b: &[u8], at: usize) -> Option<(usize, usize)> {
    const HEAD: &[u8] = b"-----BEGIN ";
    const TAIL: &[u8] = b"PRIVATE KEY-----";
    let finder = memchr::memmem::Finder::new(HEAD);
    let mut from = at;
    loop {
        let s = from + finder.find(b.get(from..)?)?;
        // Where the tail may start: after 0, 1, 2 or 3 words.
        let mut starts = vec![s + HEAD.len()];
        while starts.len() < 4 {
            let p = starts.last().copied().unwrap_or_default();
            let n = super::run_len(b, p, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
            if !(1..=16).contains(&n) || b.get(p + n) != Some(&b' ') {
                break;
            }
            starts.push(p + n + 1);
        }
        let tail_at = starts
            .iter()
            .rev()
            .find(|&&p| b.get(p..).is_some_and(|r| r.starts_with(TAIL)));
        if let Some(&p) = tail_at {
            return Some((s, p + TAIL.len()));
        }
        from = s + 1;
    }
}

/// `eyJ[A-Za-z0-9_-]{8,1024}\.eyJ[A-Za-z0-9_-]{8,2048}\.[A-Za-z0-9_-]{8,1024}`: the class holds
/// no `.`, so each part is the whole run before its dot.
pub(super) fn jwt(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let class = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let part = |p: usize, max: usize| {
        b.get(p..).map_or(0, |r| {
            r.iter().take(max + 1).take_while(|&&c| class(c)).count()
        })
    };
    let finder = memchr::memmem::Finder::new(b"eyJ");
    let mut from = at;
    loop {
        let s = from + finder.find(b.get(from..)?)?;
        let p1 = s + 3;
        let n1 = part(p1, 1024);
        let p2 = p1 + n1 + 1;
        if (8..=1024).contains(&n1)
            && b.get(p1 + n1) == Some(&b'.')
            && b.get(p2..).is_some_and(|r| r.starts_with(b"eyJ"))
        {
            let n2 = part(p2 + 3, 2048);
            let p3 = p2 + 3 + n2 + 1;
            if (8..=2048).contains(&n2) && b.get(p3 - 1) == Some(&b'.') {
                let n3 = part(p3, 1024).min(1024);
                if n3 >= 8 {
                    return Some((s, p3 + n3));
                }
            }
        }
        from = s + 1;
    }
}
