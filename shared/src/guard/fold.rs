//! Folding text written to slip past the detectors: what a user types so a card number or an
//! address no longer looks like one to an ASCII pattern, while a model still reads it as one.
//! `４１１１ １１１１ …` (full-width digits), `٤١١١…` (Arabic-Indic digits), `4\u{200b}1\u{200b}1…`
//! (zero-width characters between digits), `4111\u{a0}1111…` (no-break spaces), `jane＠example.com`.
//!
//! The request path scans the folded text too, and when that finds something the folded text is
//! what goes on (redacted) or what is refused. Text with nothing to find is never changed, so
//! scripts that use these characters legitimately (Persian ZWNJ, emoji ZWJ sequences, CJK
//! full-width punctuation) pass untouched.

/// The text folded, or `None` when folding changes nothing.
pub(crate) fn fold(text: &str) -> Option<String> {
    if text.is_ascii() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if is_invisible(c) {
            // Dropped only between ASCII characters (after folding): a ZWJ between emoji or a
            // ZWNJ between Persian letters is part of the writing.
            let before = out
                .chars()
                .next_back()
                .is_some_and(|p| p.is_ascii_graphic());
            let after = chars
                .clone()
                .find(|n| !is_invisible(*n))
                .and_then(folded)
                .is_some_and(|n| n.is_ascii_graphic());
            if before && after {
                changed = true;
                continue;
            }
            out.push(c);
            continue;
        }
        match folded(c) {
            Some(f) if f != c => {
                changed = true;
                out.push(f);
            }
            _ => out.push(c),
        }
    }
    changed.then_some(out)
}

/// The ASCII character `c` stands for, if it is a look-alike the detectors must see through.
fn folded(c: char) -> Option<char> {
    let u = u32::from(c);
    let digit = |zero: u32| char::from_digit((u - zero) % 10, 10);
    match u {
        0x00..=0x7f => Some(c),
        // Full-width ASCII forms (NFKC maps them to ASCII).
        0xff01..=0xff5e => char::from_u32(u - 0xfee0),
        // Decimal digits of other scripts: Arabic-Indic, extended Arabic-Indic, Devanagari,
        // Bengali, Thai, and the mathematical digit styles.
        0x0660..=0x0669 => digit(0x0660),
        0x06f0..=0x06f9 => digit(0x06f0),
        0x0966..=0x096f => digit(0x0966),
        0x09e6..=0x09ef => digit(0x09e6),
        0x0e50..=0x0e59 => digit(0x0e50),
        0x1d7ce..=0x1d7ff => digit(0x1d7ce),
        // Spaces and dashes that separate digit groups as well as ASCII ones do.
        0xa0 | 0x2000..=0x200a | 0x202f | 0x205f | 0x3000 => Some(' '),
        0x2010..=0x2015 | 0x2212 | 0xfe63 => Some('-'),
        _ => None,
    }
}

/// Characters that render as nothing: zero-width space, non-joiner, joiner, word joiner, BOM,
/// soft hyphen, Mongolian vowel separator.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{2060}' | '\u{feff}' | '\u{ad}' | '\u{180e}'
    )
}

#[cfg(test)]
mod tests {
    use super::fold;
    use proptest::prelude::*;

    proptest! {
        /// Any text, mixing the characters folding looks at: never a panic, a fold is final
        /// (folding again changes nothing), and it never grows the text.
        #[test]
        fn folding_is_final_and_never_grows(text in "[a-z0-9@. \u{200b}\u{200d}\u{a0}\u{ff10}-\u{ff5e}\u{660}-\u{669}\u{1f468}\u{645}\u{2013}]{0,40}") {
            if let Some(folded) = fold(&text) {
                prop_assert_ne!(&folded, &text);
                prop_assert!(folded.len() <= text.len());
                prop_assert_eq!(fold(&folded), None);
            }
        }
    }

    #[test]
    fn look_alike_digits_spaces_and_invisibles_fold_to_ascii() {
        let cases = [
            ("４１１１ １１１１", "4111 1111"),
            ("٤١١١-١١١١", "4111-1111"),
            ("۴۱۱۱", "4111"),
            ("४१११", "4111"),
            (
                "4\u{200b}1\u{200c}1\u{200d}1\u{2060}1\u{feff}1\u{ad}1",
                "4111111",
            ),
            (
                "4111\u{a0}1111\u{2009}1111\u{3000}1111",
                "4111 1111 1111 1111",
            ),
            ("4111\u{2013}1111", "4111-1111"),
            ("jane＠example．com", "jane@example.com"),
            ("\u{1d7d2}\u{1d7cf}", "41"),
        ];
        for (input, want) in cases {
            assert_eq!(fold(input).as_deref(), Some(want), "{input:?}");
        }
    }

    #[test]
    fn writing_that_needs_these_characters_is_left_alone() {
        for text in [
            "plain ascii 4111",
            // A family emoji is three emoji joined by ZWJ.
            "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}",
            // Persian: ZWNJ between letters.
            "\u{645}\u{6cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}",
            "日本語の文章です。",
        ] {
            assert_eq!(fold(text), None, "{text:?}");
        }
    }
}
