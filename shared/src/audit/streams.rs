//! The audit streams of a region. One stream is one gap-free, hash-chained, signed sequence fed
//! by one sequencer; a region runs `shards` of them side by side so its audited throughput is not
//! bounded by one object. Each tenant ledger forwards to one stream, chosen from its id.
//!
//! Names: `audit-<region>` for a single stream (the name every deployment had before sharding),
//! `audit-<region>-<k>-of-<n>` for shard `k` of `n`. The name of each stream says how many
//! there are, so a verifier that finds one stream of a set knows which others must exist: a
//! stream deleted whole is detected too.

use crate::ids::is_valid_id;

/// The most shards a region may run.
pub const MAX_SHARDS: u32 = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditStreams {
    region: String,
    shards: u32,
}

impl AuditStreams {
    pub fn new(region: &str, shards: u32) -> Result<Self, String> {
        if !(1..=MAX_SHARDS).contains(&shards) {
            return Err(format!(
                "the number of audit shards must be 1 to {MAX_SHARDS}, not {shards}"
            ));
        }
        let streams = AuditStreams {
            region: region.to_string(),
            shards,
        };
        for name in [streams.name(0), streams.name(shards - 1)] {
            if !is_valid_id(&name) {
                return Err(format!("{name:?} is not a valid audit stream name"));
            }
        }
        Ok(streams)
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The name of shard `k`.
    pub fn name(&self, k: u32) -> String {
        if self.shards == 1 {
            format!("audit-{}", self.region)
        } else {
            format!("audit-{}-{k}-of-{}", self.region, self.shards)
        }
    }

    /// The stream a ledger's records go to (always the same one for a given shard count).
    pub fn for_ledger(&self, ledger: &str) -> String {
        self.name(crc32fast::hash(ledger.as_bytes()) % self.shards)
    }

    pub fn all(&self) -> Vec<String> {
        (0..self.shards).map(|k| self.name(k)).collect()
    }
}

/// For a shard's name `<base>-<k>-of-<n>`: `(base, k, n)`. `None` for a single stream's name.
pub fn shard_of_name(stream: &str) -> Option<(&str, u32, u32)> {
    let (rest, n) = stream.rsplit_once("-of-")?;
    let (base, k) = rest.rsplit_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(k) || !digits(n) || base.is_empty() {
        return None;
    }
    let (k, n) = (k.parse().ok()?, n.parse().ok()?);
    (k < n && n > 1).then_some((base, k, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stream_keeps_the_region_name_and_shards_say_how_many() {
        let one = AuditStreams::new("eu", 1).expect("valid");
        assert_eq!(one.all(), vec!["audit-eu"]);
        assert_eq!(one.for_ledger("acme"), "audit-eu");
        assert_eq!(shard_of_name("audit-eu"), None);

        let four = AuditStreams::new("eu", 4).expect("valid");
        assert_eq!(
            four.all(),
            vec![
                "audit-eu-0-of-4",
                "audit-eu-1-of-4",
                "audit-eu-2-of-4",
                "audit-eu-3-of-4"
            ]
        );
        for name in four.all() {
            let (base, k, n) = shard_of_name(&name).expect("a shard name");
            assert_eq!((base, n), ("audit-eu", 4));
            assert_eq!(four.name(k), name);
        }
        assert_eq!(shard_of_name("audit-eu-4-of-4"), None, "k must be below n");
        assert_eq!(shard_of_name("audit-eu-x-of-4"), None);
        assert!(AuditStreams::new("eu", 0).is_err());
        assert!(AuditStreams::new("eu", MAX_SHARDS + 1).is_err());
    }

    #[test]
    fn ledgers_spread_over_the_shards_and_each_keeps_its_stream() {
        let streams = AuditStreams::new("us", 16).expect("valid");
        let mut used = std::collections::BTreeSet::new();
        for t in 0..2_000 {
            let id = format!("tenant-{t}");
            let s = streams.for_ledger(&id);
            assert_eq!(s, streams.for_ledger(&id));
            used.insert(s);
        }
        assert_eq!(used.len(), 16, "2,000 ledgers reach every shard");
    }
}
