//! Tool-call ids for Mistral: exactly 9 characters, each an ASCII letter or digit. Clients send
//! back the ids they were given (`call_...` from OpenAI, `toolu_...` from Anthropic, or ids
//! another upstream made), so every id in a request that breaks the rule is rewritten:
//!
//! - deterministically (a hash of the id), so the same conversation sent again gets the same ids;
//! - consistently: the assistant's `tool_calls[].id` and the tool message's `tool_call_id` name the
//!   same call, so they map through one table built for the whole request;
//! - without collisions: ids that already follow the rule are kept and reserved first, and a
//!   rewritten id that would clash with a reserved or earlier one is hashed again with a counter.
//!
//! Ids Mistral generated already follow the rule, so they come back unchanged.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use crate::ids::base62_digit;

pub(super) const ID_LEN: usize = 9;

/// Whether Mistral accepts `id` as it is.
pub(super) fn is_valid(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The rewrite table for one request.
#[derive(Debug, Default)]
pub(super) struct ToolCallIds {
    map: HashMap<String, String>,
}

impl ToolCallIds {
    /// Builds the table from every id the request holds, in order of appearance.
    pub(super) fn new<'a>(ids: impl IntoIterator<Item = &'a str> + Clone) -> Self {
        let mut used: HashSet<String> = ids
            .clone()
            .into_iter()
            .filter(|id| is_valid(id))
            .map(str::to_string)
            .collect();
        let mut map = HashMap::new();
        for id in ids {
            if is_valid(id) || map.contains_key(id) {
                continue;
            }
            let mut round = 0u32;
            let new_id = loop {
                let candidate = hashed(id, round);
                if used.insert(candidate.clone()) {
                    break candidate;
                }
                round += 1;
            };
            map.insert(id.to_string(), new_id);
        }
        ToolCallIds { map }
    }

    /// The id to send Mistral for a client's id.
    pub(super) fn get<'a>(&'a self, id: &'a str) -> &'a str {
        self.map.get(id).map(String::as_str).unwrap_or(id)
    }
}

/// 9 base-62 characters from SHA-256(round || id).
fn hashed(id: &str, round: u32) -> String {
    let mut h = Sha256::new();
    h.update(round.to_be_bytes());
    h.update(id.as_bytes());
    let [b0, b1, b2, b3, b4, b5, b6, b7, ..]: [u8; 32] = h.finalize().into();
    // 8 bytes give 64 bits; 62^9 is about 2^53.6, so the reduction keeps nearly all of them.
    let mut n = u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
    let mut out = ['0'; ID_LEN];
    for slot in out.iter_mut() {
        *slot = base62_digit(n);
        n /= 62;
    }
    out.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_are_kept_and_others_rewritten() {
        let ids = ["gSIMJiOkT", "call_abc123", "toolu_01A09q90qw90lq917835lq9"];
        let t = ToolCallIds::new(ids);
        assert_eq!(t.get("gSIMJiOkT"), "gSIMJiOkT");
        for id in &ids[1..] {
            let new = t.get(id);
            assert!(is_valid(new), "{new}");
            assert_ne!(new, *id);
        }
        assert_ne!(t.get(ids[1]), t.get(ids[2]));
    }

    #[test]
    fn the_rule_is_nine_ascii_alphanumerics() {
        assert!(is_valid("abc123XYZ"));
        assert!(!is_valid("abc123XY"));
        assert!(!is_valid("abc123XYZ0"));
        assert!(!is_valid("abc_23XYZ"));
        assert!(!is_valid("abc-23XYZ"));
        assert!(!is_valid("abcé23XY"));
    }

    #[test]
    fn the_same_id_maps_the_same_way_in_another_request() {
        let a = ToolCallIds::new(["call_1", "call_2"]);
        let b = ToolCallIds::new(["call_2"]);
        assert_eq!(a.get("call_2"), b.get("call_2"));
    }

    #[test]
    fn a_rewritten_id_never_takes_a_kept_one() {
        // Reserve exactly the id `call_x` would hash to: the rewrite must move on.
        let first = hashed("call_x", 0);
        let t = ToolCallIds::new([first.as_str(), "call_x"]);
        assert_eq!(t.get(&first), first);
        assert_ne!(t.get("call_x"), first);
        assert!(is_valid(t.get("call_x")));
    }
}
