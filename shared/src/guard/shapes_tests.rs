use super::*;
use crate::guard::rules;
use crate::guard::scanner::{analyse, parse};

/// `(detector, rule index, longest match, character ranges)`.
type Derived = (String, usize, usize, Vec<(char, char)>);

/// Every built-in rule's shape, derived from its pattern.
fn derived() -> Vec<Derived> {
    let mut out = Vec::new();
    for d in Detector::BUILTIN {
        let patterns: Vec<String> = if d == Detector::PromptInjection {
            vec![rules::injection_pattern()]
        } else {
            rules::builtins(d)
                .iter()
                .map(|b| b.pattern.to_string())
                .collect()
        };
        for (i, p) in patterns.iter().enumerate() {
            let (max_len, class) = analyse(&parse(p).expect("parses")).expect("bounded");
            out.push((d.name().to_string(), i, max_len, class.ranges().to_vec()));
        }
    }
    out
}

fn render(shapes: &[Derived]) -> String {
    let mut s = String::from("const SHAPES: &[Shape] = &[\n");
    for (d, i, max_len, ranges) in shapes {
        s.push_str(&format!(
            "    (\n        {d:?},\n        {i},\n        {max_len},\n        &[\n"
        ));
        for (lo, hi) in ranges {
            s.push_str(&format!("            ({lo:?}, {hi:?}),\n"));
        }
        s.push_str("        ],\n    ),\n");
    }
    s.push_str("];\n");
    s
}

#[test]
fn every_built_in_rules_shape_is_the_one_its_pattern_gives() {
    let derived = derived();
    for (d, i, max_len, ranges) in &derived {
        let detector = Detector::BUILTIN
            .iter()
            .find(|b| b.name() == d)
            .copied()
            .expect("a built-in detector");
        let (len, class) = of(detector, *i).expect("has a shape");
        assert!(
            len == *max_len && class.ranges() == ranges.as_slice(),
            "{d} rule {i}: the table says {len} bytes and {:?}, the pattern gives {max_len} and \
             {ranges:?}; run `cargo test -p asc-core shapes -- --ignored` to rewrite it",
            class.ranges()
        );
    }
    assert_eq!(SHAPES.len(), derived.len(), "no shape without a rule");
}

#[test]
#[ignore = "rewrites shapes.rs from the patterns"]
fn rewrite_the_shapes_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/guard/shapes.rs");
    let text = std::fs::read_to_string(path).expect("reads");
    let start = text
        .find("// @generated table start\n")
        .expect("start marker")
        + "// @generated table start\n".len();
    let end = text.find("// @generated table end").expect("end marker");
    let new = format!("{}{}{}", &text[..start], render(&derived()), &text[end..]);
    std::fs::write(path, new).expect("writes");
}
