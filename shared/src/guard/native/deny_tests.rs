//! The deny-term matcher against its specification, the regex of `rules::deny_pattern`: case
//! classes and word characters for every Unicode character, matches from every position of
//! generated texts, and the characters and lengths a stream holds back.

use proptest::prelude::*;
use regex::Regex;
use regex_syntax::hir::{ClassUnicode, ClassUnicodeRange};

use super::{is_word_char, DenyTerms};
use crate::guard::charset::CharSet;
use crate::guard::rules;

/// The trie of `terms`, case classes compiled in this build.
fn deny(terms: &[String]) -> DenyTerms {
    DenyTerms::new(terms, &crate::guard::CompiledGuard::local()).expect("compiles")
}

fn all_chars() -> impl Iterator<Item = char> {
    (0..=u32::from(char::MAX)).filter_map(char::from_u32)
}

/// The characters regex's `(?i)` treats as `c`: its simple case folding class.
fn regex_class(c: char) -> Vec<char> {
    let mut class = ClassUnicode::new([ClassUnicodeRange::new(c, c)]);
    class.try_case_fold_simple().expect("case folding tables");
    class
        .ranges()
        .iter()
        .flat_map(|r| r.start()..=r.end())
        .collect()
}

/// Every character with case partners, each a one-character term, against every character up
/// to U+20000 (all cased letters lie below): each is found exactly where regex's `(?i)` finds it.
#[test]
fn case_classes_are_regex_simple_case_folding() {
    let cased: Vec<String> = all_chars()
        .filter(|&c| u32::from(c) < 0x20000 && regex_class(c).len() > 1)
        .map(String::from)
        .collect();
    assert!(cased.len() > 2000, "{}", cased.len());
    let mut buf = [0; 4];
    for chunk in cased.chunks(700) {
        let native = deny(chunk);
        let regex = regex_of(chunk);
        for c in all_chars().filter(|&c| u32::from(c) < 0x20000) {
            let hay = c.encode_utf8(&mut buf);
            assert_eq!(
                native.find_at(hay, 0),
                regex.find(hay).map(|m| (m.start(), m.end())),
                "{c:?}"
            );
        }
    }
}

#[test]
fn word_characters_are_regex_unicode_word_characters() {
    let word = Regex::new(r"^\w$").expect("compiles");
    let mut buf = [0; 4];
    for c in all_chars() {
        assert_eq!(
            is_word_char(c),
            word.is_match(c.encode_utf8(&mut buf)),
            "{c:?}"
        );
    }
}

/// Characters where case folding, word boundaries and whitespace differ most.
const ALPHABET: &[char] = &[
    'a', 'A', 'k', 'K', '\u{212A}', 's', 'S', '\u{17F}', 'ß', '\u{1E9E}', 'i', 'I', '\u{131}',
    '\u{130}', 'é', 'É', 'σ', 'Σ', 'ς', 'ü', 'Ü', '\u{301}', '1', '_', '+', '#', '-', '.', ' ',
    ' ', '\t', '\n', '\u{a0}', '\u{3000}', '\u{2028}', '日',
];

fn word() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 1..4).prop_map(|w| {
        w.into_iter()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
    })
}

fn term() -> impl Strategy<Value = String> {
    prop::collection::vec(word(), 1..4)
        .prop_map(|words| words.join(" "))
        .prop_filter("not blank", |t| !t.trim().is_empty())
}

fn terms() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(term(), 1..6)
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ALPHABET), 0..40)
        .prop_map(|cs| cs.into_iter().collect())
}

fn regex_of(terms: &[String]) -> Regex {
    Regex::new(&rules::deny_pattern(terms)).expect("compiles")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn deny_terms_find_what_their_regex_finds(terms in terms(), hay in text()) {
        let native = deny(&terms);
        let regex = regex_of(&terms);
        for at in (0..=hay.len()).filter(|&i| hay.is_char_boundary(i)) {
            prop_assert_eq!(
                native.find_at(&hay, at),
                regex.find_at(&hay, at).map(|m| (m.start(), m.end())),
                "{:?} from {} in {:?}", terms, at, hay
            );
        }
    }

    /// A term written in other cases or with other whitespace is still found where it stands alone.
    #[test]
    fn a_term_is_found_in_any_case(terms in terms(), pick in any::<prop::sample::Index>(), upper in any::<bool>()) {
        let term = pick.get(&terms);
        let written: String = if upper { term.to_uppercase() } else { term.to_lowercase() };
        let hay = format!("({written})");
        let native = deny(&terms);
        prop_assert_eq!(
            native.find_at(&hay, 0),
            regex_of(&terms).find_at(&hay, 0).map(|m| (m.start(), m.end()))
        );
    }

    #[test]
    fn a_stream_holds_back_what_the_regex_can_match(terms in terms()) {
        let native = deny(&terms);
        let hir = regex_syntax::parse(&rules::deny_pattern(&terms)).expect("parses");
        let class = CharSet::of(&hir);
        for &c in ALPHABET.iter().chain(&['b', 'z', '!', '\u{2126}', 'ω', '\u{3c9}']) {
            prop_assert_eq!(native.holds(c), class.contains(c), "{:?}", c);
        }
        let longest = hir.properties().maximum_len().expect("bounded");
        prop_assert!(native.max_len() >= longest, "{} < {}", native.max_len(), longest);
    }
}

#[test]
fn the_stream_classes_match_for_every_character() {
    let terms = vec![
        "Straße kelvin".to_string(),
        "σοφία".to_string(),
        "c++".to_string(),
    ];
    let native = deny(&terms);
    let class = CharSet::of(&regex_syntax::parse(&rules::deny_pattern(&terms)).expect("parses"));
    for c in all_chars() {
        assert_eq!(native.holds(c), class.contains(c), "{c:?}");
    }
}

#[test]
fn written_out_cases() {
    let native = deny(&[
        "project x".into(),
        "Über".into(),
        "c++".into(),
        "foo".into(),
        "foo bar".into(),
        "kelvin".into(),
    ]);
    let find = |hay: &str| native.find_at(hay, 0).map(|(s, e)| hay[s..e].to_string());
    assert_eq!(
        find("About PROJECT \u{3000}X today"),
        Some("PROJECT \u{3000}X".into())
    );
    assert_eq!(find("ÜBER alles"), Some("ÜBER".into()));
    // The longer term wins where both fit; where it does not, the shorter one.
    assert_eq!(find("foo\tbar."), Some("foo\tbar".into()));
    assert_eq!(find("foo barn"), Some("foo".into()));
    // Nine spaces are more than one gap holds.
    assert_eq!(find("project         x"), None);
    // Inside a longer word (Unicode letters and marks count) there is no match.
    assert_eq!(find("überprojekt, übera, subproject x, foo\u{301}"), None);
    assert_eq!(find("c++ and abc++"), Some("c++".into()));
    // The Kelvin sign folds with k.
    assert_eq!(find("\u{212A}ELVIN"), Some("\u{212A}ELVIN".into()));
    // A word character before `at` still counts for the start boundary.
    let hay = "xfoo foo";
    assert_eq!(native.find_at(hay, 1), Some((5, 8)));
}

#[test]
fn a_short_list_skips_to_the_bytes_its_matches_start_with() {
    // One term: `k`, `K` and the Kelvin sign's leading byte.
    let native = deny(&["kelvin".into()]);
    assert_eq!(native.start_bytes.as_deref(), Some(&[b'K', b'k', 0xE2][..]));
    for (hay, found) in [
        ("0 \u{212A}elvin, 1 KELVIN", Some((2, 10))),
        ("€ kelvinx (kelvin)", Some((13, 19))),
        ("xkelvin kelvin_ \u{212A}elvins", None),
    ] {
        assert_eq!(native.find_at(hay, 0), found, "{hay:?}");
        assert_eq!(
            native.find_at(hay, 0),
            regex_of(&["kelvin".into()])
                .find(hay)
                .map(|m| (m.start(), m.end())),
        );
    }
    // Terms starting with more than nine distinct bytes are walked byte by byte.
    let many: Vec<String> = "abcdefghij".chars().map(String::from).collect();
    assert_eq!(deny(&many).start_bytes, None);
}
