//! The built-in rules' shapes: each rule's longest match (bytes) and the characters a match can
//! hold, as their patterns (`rules.rs`) give them. Derived ahead so the request plane parses no
//! pattern; `shapes_tests.rs` derives them again from the patterns and fails on any difference
//! (`cargo test -p asc-core shapes -- --ignored` rewrites this table).

use super::charset::CharSet;
use super::Detector;

/// `(detector, rule index, longest match, character ranges)`; the prompt-injection rule is
/// index 0 of its detector.
type Shape = (&'static str, usize, usize, &'static [(char, char)]);

// @generated table start
const SHAPES: &[Shape] = &[
    (
        "secret",
        0,
        276,
        &[('-', '-'), ('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')],
    ),
    (
        "secret",
        1,
        78,
        &[(' ', ' '), ('-', '-'), ('0', '9'), ('A', 'Z')],
    ),
    (
        "secret",
        2,
        4104,
        &[('-', '.'), ('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')],
    ),
    (
        "secret",
        3,
        512,
        &[
            ('+', '+'),
            ('-', '-'),
            ('/', '9'),
            ('=', '='),
            ('A', 'Z'),
            ('_', '_'),
            ('a', 'z'),
        ],
    ),
    ("credit_card", 0, 23, &[(' ', ' '), ('-', '-'), ('0', '9')]),
    (
        "iban",
        0,
        64,
        &[(' ', ' '), ('0', '9'), ('A', 'Z'), ('a', 'z')],
    ),
    ("us_ssn", 0, 11, &[(' ', ' '), ('-', '-'), ('0', '9')]),
    (
        "email",
        0,
        409,
        &[
            ('%', '%'),
            ('+', '+'),
            ('-', '.'),
            ('0', '9'),
            ('@', 'Z'),
            ('_', '_'),
            ('a', 'z'),
        ],
    ),
    (
        "phone",
        0,
        47,
        &[(' ', ' '), ('(', ')'), ('+', '+'), ('-', '.'), ('0', '9')],
    ),
    ("ip_address", 0, 15, &[('.', '.'), ('0', '9')]),
    (
        "ip_address",
        1,
        51,
        &[('.', '.'), ('0', ':'), ('A', 'F'), ('a', 'f')],
    ),
    (
        "prompt_injection",
        0,
        54,
        &[
            ('\t', '\r'),
            (' ', ' '),
            ('A', 'P'),
            ('R', 'Y'),
            ('a', 'p'),
            ('r', 'y'),
        ],
    ),
];
// @generated table end

/// Rule `index` of `d`'s shape.
pub(crate) fn of(d: Detector, index: usize) -> Result<(usize, CharSet), String> {
    SHAPES
        .iter()
        .find(|s| s.0 == d.name() && s.1 == index)
        .map(|s| (s.2, CharSet::from_ranges(s.3.to_vec())))
        .ok_or_else(|| format!("built-in rule {index} has no shape"))
}

#[cfg(test)]
#[path = "shapes_tests.rs"]
mod tests;
