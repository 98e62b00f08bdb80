//! Compiles a custom pattern into the DFAs the request plane runs (`automaton.rs`): the pattern is
//! parsed and checked (bounded, non-empty, no whole-text anchors), its word boundaries made ASCII
//! (a DFA cannot see Unicode word characters), and regex-automata's dense DFAs (forward
//! leftmost-first, reverse anchored, as `regex_automata::dfa::regex` builds them) are copied into
//! tables. Only builds with the `compile-patterns` feature carry this: the control plane's Worker,
//! Spin, the CLI and the tests; the request plane's Worker asks the control plane.

use std::collections::{HashMap, VecDeque};

use regex_automata::dfa::{dense, Automaton, StartKind};
use regex_automata::nfa::thompson;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::{self, Hir, HirKind, Look};

use super::automaton::{
    Accel, Parts, PatternAutomaton, TableDfa, ACCEL_BYTES, FLAG_ACCEL, FLAG_DEAD, FLAG_MATCH,
    STARTS,
};
use super::scanner::{analyse, parse};

/// Most bytes one direction's DFA may take while it is built and once built. A pattern past it is
/// refused at validation with what to change.
const DFA_SIZE_LIMIT: usize = 4 << 20;

/// Every character `(?i)` treats as `c` (regex's simple case-folding tables), `c` included.
pub(crate) fn case_class(c: char) -> Vec<char> {
    let mut class = hir::ClassUnicode::new([hir::ClassUnicodeRange::new(c, c)]);
    // Without the case tables regex itself refuses `(?i)`; the class then is `c` alone.
    let _ = class.try_case_fold_simple();
    class
        .ranges()
        .iter()
        .flat_map(|r| r.start()..=r.end())
        .collect()
}

/// Compiles `pattern`; the error says why a tenant's pattern cannot be used.
pub(crate) fn compile_pattern(pattern: &str) -> Result<PatternAutomaton, String> {
    let hir = parse(pattern)?;
    let (max_len, class) = analyse(&hir)?;
    let hir = ascii_word_boundaries(hir);
    let forward = build(&hir, false)?;
    let reverse = build(&hir, true)?;
    Ok(PatternAutomaton {
        max_len,
        class,
        forward,
        reverse,
    })
}

fn build(hir: &Hir, reverse: bool) -> Result<TableDfa, String> {
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .reverse(reverse)
                .which_captures(thompson::WhichCaptures::None),
        )
        .build_from_hir(hir)
        .map_err(|e| format!("invalid regex: {e}"))?;
    let config = dense::Config::new()
        .dfa_size_limit(Some(DFA_SIZE_LIMIT))
        .determinize_size_limit(Some(DFA_SIZE_LIMIT))
        .specialize_start_states(false)
        .accelerate(false);
    let config = if reverse {
        config
            .start_kind(StartKind::Anchored)
            .match_kind(MatchKind::All)
    } else {
        config
            .start_kind(StartKind::Unanchored)
            .match_kind(MatchKind::LeftmostFirst)
    };
    let dfa = dense::Builder::new()
        .configure(config)
        .build_from_nfa(&nfa)
        .map_err(|e| {
            if e.is_size_limit_exceeded() {
                format!(
                    "compiles to more than {} MiB of automaton; use ASCII classes (e.g. [A-Za-z0-9] or (?-u:\\w) for \\w) or shorter repetitions",
                    DFA_SIZE_LIMIT >> 20
                )
            } else {
                format!("cannot be compiled: {e}")
            }
        })?;
    table(&dfa, reverse)
}

/// Copies the states reachable from `dfa`'s start states into a table: flagged states (dead,
/// match, and, forward, those at most nine bytes leave) numbered first.
#[allow(
    clippy::indexing_slicing,
    reason = "state numbers are the ones this function assigned (each below the count it \
              found) and classes index rows of one cell per class: in bounds by construction"
)]
fn table(dfa: &dense::DFA<Vec<u32>>, reverse: bool) -> Result<TableDfa, String> {
    let mut classes = [0u8; 256];
    let mut representative: Vec<u8> = Vec::new();
    for (b, class) in (0..=255u8).zip(classes.iter_mut()) {
        let c = dfa.byte_classes().get(b);
        *class = c;
        if usize::from(c) == representative.len() {
            representative.push(b);
        }
    }
    let anchored = if reverse { Anchored::Yes } else { Anchored::No };
    let mut index: HashMap<StateID, usize> = HashMap::new();
    let mut order: Vec<StateID> = Vec::new();
    let mut queue: VecDeque<StateID> = VecDeque::new();
    let mut visit = |sid: StateID, queue: &mut VecDeque<StateID>| -> usize {
        *index.entry(sid).or_insert_with(|| {
            order.push(sid);
            queue.push_back(sid);
            order.len() - 1
        })
    };
    let mut starts = Vec::with_capacity(STARTS);
    for before in (0..=255u8).map(Some).chain([None]) {
        let config = start::Config::new().anchored(anchored).look_behind(before);
        let sid = dfa
            .start_state(&config)
            .map_err(|e| format!("cannot be compiled: {e}"))?;
        starts.push(visit(sid, &mut queue));
    }
    let mut rows: Vec<Vec<usize>> = Vec::new();
    while let Some(sid) = queue.pop_front() {
        let mut row: Vec<usize> = representative
            .iter()
            .map(|&b| visit(dfa.next_state(sid, b), &mut queue))
            .collect();
        row.push(visit(dfa.next_eoi_state(sid), &mut queue));
        rows.push(row);
    }
    if order.iter().any(|&s| dfa.is_quit_state(s)) {
        return Err("cannot be compiled: its automaton gives up on some input".into());
    }
    let marks: Vec<(u8, Accel)> = order
        .iter()
        .zip(&rows)
        .enumerate()
        .map(|(i, (&sid, row))| {
            if dfa.is_match_state(sid) {
                (FLAG_MATCH, [0; ACCEL_BYTES + 1])
            } else if dfa.is_dead_state(sid) {
                (FLAG_DEAD, [0; ACCEL_BYTES + 1])
            } else if reverse {
                (0, [0; ACCEL_BYTES + 1])
            } else {
                accelerator(&classes, row, i)
            }
        })
        .collect();
    // Flagged states first, in the order found; `new_index[old]` renumbers.
    let mut renumbered: Vec<usize> = (0..order.len()).collect();
    renumbered.sort_by_key(|&i| marks[i].0 == 0);
    let special = marks.iter().filter(|m| m.0 != 0).count();
    let mut new_index = vec![0u32; order.len()];
    for (new, &old) in renumbered.iter().enumerate() {
        new_index[old] = u32::try_from(new).map_err(|_| "too many states")?;
    }
    let parts = Parts {
        classes,
        starts: starts.iter().map(|&i| new_index[i]).collect(),
        special,
        flags: renumbered.iter().map(|&i| marks[i].0).collect(),
        accel: renumbered.iter().map(|&i| marks[i].1).collect(),
        rows: renumbered
            .iter()
            .flat_map(|&i| rows[i].iter().map(|&s| new_index[s]))
            .collect(),
    };
    TableDfa::from_parts(parts).map_err(|e| format!("cannot be compiled: {e}"))
}

/// State `i`'s accelerator, when at most nine bytes leave it (every other byte loops back).
#[allow(
    clippy::indexing_slicing,
    reason = "classes index rows of one cell per class, and the bytes fill at most the \
              accelerator's nine slots: in bounds by construction"
)]
fn accelerator(classes: &[u8; 256], row: &[usize], i: usize) -> (u8, Accel) {
    let leaving: Vec<u8> = (0..=255u8)
        .zip(classes)
        .filter(|&(_, &c)| row[usize::from(c)] != i)
        .map(|(b, _)| b)
        .take(ACCEL_BYTES + 1)
        .collect();
    let mut accel: Accel = [0; ACCEL_BYTES + 1];
    let Ok(count) = u8::try_from(leaving.len()) else {
        return (0, accel);
    };
    if leaving.is_empty() || leaving.len() > ACCEL_BYTES {
        return (0, accel);
    }
    accel[0] = count;
    accel[1..=leaving.len()].copy_from_slice(&leaving);
    (FLAG_ACCEL, accel)
}

/// `hir` with Unicode word boundaries (`\b`, `\B`, `\b{start}`, ...) replaced by their ASCII
/// forms: a non-ASCII letter counts as a non-word character beside them.
fn ascii_word_boundaries(hir: Hir) -> Hir {
    match hir.into_kind() {
        HirKind::Look(look) => Hir::look(match look {
            Look::WordUnicode => Look::WordAscii,
            Look::WordUnicodeNegate => Look::WordAsciiNegate,
            Look::WordStartUnicode => Look::WordStartAscii,
            Look::WordEndUnicode => Look::WordEndAscii,
            Look::WordStartHalfUnicode => Look::WordStartHalfAscii,
            Look::WordEndHalfUnicode => Look::WordEndHalfAscii,
            other => other,
        }),
        HirKind::Repetition(r) => Hir::repetition(hir::Repetition {
            sub: Box::new(ascii_word_boundaries(*r.sub)),
            ..r
        }),
        HirKind::Capture(c) => Hir::capture(hir::Capture {
            sub: Box::new(ascii_word_boundaries(*c.sub)),
            ..c
        }),
        HirKind::Concat(v) => Hir::concat(v.into_iter().map(ascii_word_boundaries).collect()),
        HirKind::Alternation(v) => {
            Hir::alternation(v.into_iter().map(ascii_word_boundaries).collect())
        }
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(l) => Hir::literal(l.0),
        HirKind::Class(c) => Hir::class(c),
    }
}
