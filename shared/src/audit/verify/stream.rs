//! The checks of one stream: digests first (form, signature, chain), then the records they
//! describe, then what no digest describes, then the tail.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::problem::{Problem, ProblemKind as K};
use super::{CheckedRecord, StreamObjects, StreamSummary, VerifyOptions};
use crate::audit::canonical::{canonical_json, sha256_hex, GENESIS_HASH};
use crate::audit::digest::{signed_bytes_of_value, Digest, DigestKind, DIGEST_SCHEMA_VERSION};
use crate::audit::digest_key;
use crate::audit::keys::{PublicKeyring, SignatureProblem};

/// A digest that parsed, with what the checks found about it.
pub(super) struct ParsedDigest {
    pub(super) key: String,
    pub(super) digest: Digest,
    /// Signed by a known key, valid at `created_ms`, signature verified.
    pub(super) trusted: bool,
}

pub(super) struct StreamCheck<'a> {
    pub(super) stream: &'a str,
    keys: &'a PublicKeyring,
    pub(super) options: &'a VerifyOptions,
    problems: Vec<Problem>,
    pub(super) records: Vec<CheckedRecord>,
    pub(super) summary: StreamSummary,
}

/// Where the record chain stands: the next sequence expected and the hash it must link to.
pub(super) struct ChainPosition {
    pub(super) next_sequence: u64,
    pub(super) head: String,
}

impl<'a> StreamCheck<'a> {
    pub(super) fn new(
        stream: &'a str,
        keys: &'a PublicKeyring,
        options: &'a VerifyOptions,
    ) -> StreamCheck<'a> {
        StreamCheck {
            stream,
            keys,
            options,
            problems: Vec::new(),
            records: Vec::new(),
            summary: StreamSummary {
                stream: stream.to_string(),
                digests: 0,
                heartbeats: 0,
                batches: 0,
                records: 0,
                last_sequence: 0,
                chain_head: GENESIS_HASH.to_string(),
                newest_digest_ms: None,
            },
        }
    }

    pub(super) fn finish(self) -> (StreamSummary, Vec<Problem>, Vec<CheckedRecord>) {
        (self.summary, self.problems, self.records)
    }

    pub(super) fn report(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    pub(super) fn run(&mut self, objects: &StreamObjects) {
        let digests = self.check_digests(objects);
        let mut referenced = BTreeSet::new();
        let mut chain = ChainPosition {
            next_sequence: 1,
            head: GENESIS_HASH.to_string(),
        };
        for parsed in &digests {
            if parsed.digest.kind == DigestKind::Batch {
                referenced.insert((parsed.digest.first_sequence, parsed.digest.last_sequence));
            }
            self.check_records(parsed, objects, &mut chain);
        }
        for ((first, last), (key, _)) in &objects.batches {
            if !referenced.contains(&(*first, *last)) {
                self.report(
                    Problem::new(
                        K::UnreferencedBatch,
                        format!("no digest describes records {first}..={last}"),
                    )
                    .object(key),
                );
            }
        }
        self.summary.last_sequence = chain.next_sequence - 1;
        self.summary.chain_head = chain.head;
        self.check_tail(digests.last());
    }

    /// Pass 1: each digest on its own, and the digest chain.
    fn check_digests(&mut self, objects: &StreamObjects) -> Vec<ParsedDigest> {
        let mut parsed = Vec::new();
        // The previous digest present: its sequence, object hash and created_ms if it parsed.
        let mut previous: Option<(u64, String, Option<u64>)> = None;
        if objects.digests.is_empty() {
            self.report(
                Problem::new(K::MissingDigest, "the stream has no digests")
                    .object(&digest_key(self.stream, 1)),
            );
        }
        for (&sequence, &(key, bytes)) in &objects.digests {
            if sequence == 0 {
                self.report(
                    Problem::new(K::UnexpectedObject, "digest sequences start at 1").object(key),
                );
                continue;
            }
            let expected_previous = previous.as_ref().map_or(0, |p| p.0) + 1;
            if sequence != expected_previous {
                self.report(
                    Problem::new(
                        K::MissingDigest,
                        format!("digests {expected_previous}..={} are missing", sequence - 1),
                    )
                    .object(&digest_key(self.stream, expected_previous)),
                );
            }
            let sha = sha256_hex(bytes);
            let digest = self.check_digest(key, sequence, bytes);
            if let Some(parsed_digest) = &digest {
                let d = &parsed_digest.digest;
                let prev_sha = match &previous {
                    _ if sequence == 1 => Some(GENESIS_HASH.to_string()),
                    Some((seq, sha, _)) if *seq + 1 == sequence => Some(sha.clone()),
                    _ => None,
                };
                if let Some(prev_sha) = prev_sha {
                    if d.prev_digest_sha256 != prev_sha {
                        self.report(
                            Problem::new(
                                K::DigestChainBroken,
                                "prev_digest_sha256 is not the SHA-256 of the previous digest",
                            )
                            .object(key)
                            .expected_found(prev_sha, &d.prev_digest_sha256),
                        );
                    }
                }
                if let Some((_, _, Some(prev_ms))) = &previous {
                    if d.created_ms < *prev_ms {
                        self.report(
                            Problem::new(K::TimeReversed, "created before the previous digest")
                                .object(key)
                                .expected_found(format!(">= {prev_ms}"), d.created_ms),
                        );
                    }
                }
            }
            let created = digest.as_ref().map(|p| p.digest.created_ms);
            previous = Some((sequence, sha, created));
            parsed.extend(digest);
        }
        parsed
    }

    /// One digest object: JSON, canonical form, fields, name, signature and key validity.
    fn check_digest(&mut self, key: &str, sequence: u64, bytes: &[u8]) -> Option<ParsedDigest> {
        let value: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                self.report(Problem::new(K::Malformed, format!("not JSON: {e}")).object(key));
                return None;
            }
        };
        let Some(object) = value.as_object() else {
            self.report(Problem::new(K::Malformed, "not a JSON object").object(key));
            return None;
        };
        if canonical_json(&value).ok().as_deref() != Some(bytes) {
            self.report(Problem::new(K::NotCanonical, "not in canonical JSON form").object(key));
        }
        let digest: Digest = match serde_json::from_value(value.clone()) {
            Ok(d) => d,
            Err(e) => {
                self.report(Problem::new(K::Malformed, format!("not a digest: {e}")).object(key));
                return None;
            }
        };
        if digest.schema_version != DIGEST_SCHEMA_VERSION {
            self.report(
                Problem::new(K::Malformed, "unsupported digest schema_version")
                    .object(key)
                    .expected_found(DIGEST_SCHEMA_VERSION, digest.schema_version),
            );
        }
        if digest.stream != self.stream {
            self.report(
                Problem::new(K::NameMismatch, "stream differs from the object key")
                    .object(key)
                    .expected_found(self.stream, &digest.stream),
            );
        }
        if digest.digest_sequence != sequence {
            self.report(
                Problem::new(
                    K::NameMismatch,
                    "digest_sequence differs from the object key",
                )
                .object(key)
                .expected_found(sequence, digest.digest_sequence),
            );
        }
        let trusted = self.check_signature(key, &digest, object);
        self.summary.digests += 1;
        if digest.kind == DigestKind::Heartbeat {
            self.summary.heartbeats += 1;
        }
        Some(ParsedDigest {
            key: key.to_string(),
            digest,
            trusted,
        })
    }

    fn check_signature(&mut self, key: &str, digest: &Digest, object: &Map<String, Value>) -> bool {
        let Some(signature) = &digest.signature else {
            self.report(Problem::new(K::BadSignature, "the digest is not signed").object(key));
            return false;
        };
        let Ok(message) = signed_bytes_of_value(object) else {
            self.report(Problem::new(K::Malformed, "no canonical form to verify").object(key));
            return false;
        };
        let id = &digest.key_id;
        let result = self.keys.check(id, digest.created_ms, &message, signature);
        let problem = match result {
            Ok(()) => return true,
            Err(SignatureProblem::UnknownKey) => Problem::new(
                K::UnknownKey,
                format!("signed by key {id:?}, which the key file does not hold"),
            ),
            Err(SignatureProblem::KeyNotValid(v)) => Problem::new(
                K::KeyNotValid,
                format!("key {id:?} was not valid when the digest was created"),
            )
            .expected_found(
                match v.not_after_ms {
                    Some(end) => format!("created_ms in [{}, {end})", v.not_before_ms),
                    None => format!("created_ms >= {}", v.not_before_ms),
                },
                digest.created_ms,
            ),
            Err(SignatureProblem::BadSignature) => Problem::new(
                K::BadSignature,
                format!("the signature does not verify under key {id:?}"),
            ),
        };
        self.report(problem.object(key));
        false
    }

    /// The newest digest must be no older than one heartbeat period plus grace.
    fn check_tail(&mut self, newest: Option<&ParsedDigest>) {
        let limit = self
            .options
            .heartbeat_ms
            .saturating_add(self.options.grace_ms);
        let oldest_allowed = self.options.now_ms.saturating_sub(limit);
        match newest {
            Some(p) => {
                self.summary.newest_digest_ms = Some(p.digest.created_ms);
                if p.digest.created_ms < oldest_allowed {
                    self.report(
                        Problem::new(
                            K::TailStale,
                            format!(
                                "the newest digest is {} ms old, more than heartbeat + grace ({limit} ms): \
                                 later digests and batches may have been deleted",
                                self.options.now_ms - p.digest.created_ms
                            ),
                        )
                        .object(&p.key)
                        .expected_found(format!("created_ms >= {oldest_allowed}"), p.digest.created_ms),
                    );
                }
            }
            None => self.report(
                Problem::new(
                    K::TailStale,
                    "no readable digest: nothing shows the stream's tail",
                )
                .object(&digest_key(self.stream, 1)),
            ),
        }
    }
}
