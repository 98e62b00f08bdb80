//! The records one digest describes: its range, its batch object, each line and the chain.

use serde_json::Value;

use super::problem::{Problem, ProblemKind as K};
use super::stream::{ChainPosition, ParsedDigest, StreamCheck};
use super::{CheckedRecord, StreamObjects};
use crate::audit::batch::{self, BatchError};
use crate::audit::batch_key;
use crate::audit::canonical::{canonical_json, sha256_hex};
use crate::audit::digest::DigestKind;
use crate::audit::entry::{hashed_bytes, line_bytes};

impl StreamCheck<'_> {
    /// Pass 2: the records one digest describes, continuing the chain from `chain`.
    pub(super) fn check_records(
        &mut self,
        parsed: &ParsedDigest,
        objects: &StreamObjects,
        chain: &mut ChainPosition,
    ) {
        let (d, key) = (&parsed.digest, parsed.key.as_str());
        let range_ok = d
            .last_sequence
            .checked_add(1)
            .and_then(|n| n.checked_sub(d.first_sequence))
            == Some(d.count);
        let kind_ok = match d.kind {
            DigestKind::Batch => d.count >= 1 && d.batch_sha256.is_some(),
            DigestKind::Heartbeat => d.count == 0 && d.batch_sha256.is_none(),
        };
        if !range_ok || !kind_ok {
            self.report(
                Problem::new(
                    K::RangeMismatch,
                    format!(
                        "inconsistent {:?} digest: first {}, last {}, count {}, batch_sha256 {}",
                        d.kind,
                        d.first_sequence,
                        d.last_sequence,
                        d.count,
                        if d.batch_sha256.is_some() {
                            "set"
                        } else {
                            "null"
                        }
                    ),
                )
                .object(key),
            );
        }
        if d.first_sequence != chain.next_sequence {
            let message = if d.first_sequence > chain.next_sequence {
                format!(
                    "records {}..={} are in no digest",
                    chain.next_sequence,
                    d.first_sequence - 1
                )
            } else {
                "the range overlaps records of earlier digests".to_string()
            };
            self.report(
                Problem::new(K::RangeMismatch, message)
                    .object(key)
                    .expected_found(
                        format!("first_sequence {}", chain.next_sequence),
                        d.first_sequence,
                    ),
            );
        }
        match d.kind {
            DigestKind::Heartbeat => {
                if d.chain_head != chain.head {
                    self.report(
                        Problem::new(
                            K::ChainHeadMismatch,
                            "chain_head is not the hash of the last record before it",
                        )
                        .object(key)
                        .expected_found(&chain.head, &d.chain_head),
                    );
                }
            }
            DigestKind::Batch => self.check_batch(parsed, objects, chain),
        }
        // Continue from what the (signed) digest states, so one fault is reported once.
        chain.next_sequence = d.last_sequence.saturating_add(1);
        chain.head = d.chain_head.clone();
    }

    fn check_batch(
        &mut self,
        parsed: &ParsedDigest,
        objects: &StreamObjects,
        chain: &ChainPosition,
    ) {
        let d = &parsed.digest;
        let name = batch_key(self.stream, d.first_sequence, d.last_sequence);
        let Some(&(key, bytes)) = objects.batches.get(&(d.first_sequence, d.last_sequence)) else {
            self.report(
                Problem::new(K::MissingBatch, format!("described by {}", parsed.key)).object(&name),
            );
            return;
        };
        self.summary.batches += 1;
        let sha = sha256_hex(bytes);
        let mut batch_ok = parsed.trusted;
        if d.batch_sha256.as_deref() != Some(sha.as_str()) {
            batch_ok = false;
            self.report(
                Problem::new(
                    K::BatchHashMismatch,
                    format!("SHA-256 differs from batch_sha256 in {}", parsed.key),
                )
                .object(key)
                .expected_found(d.batch_sha256.as_deref().unwrap_or("null"), &sha),
            );
        }
        let text = match batch::gunzip(bytes, self.options.max_batch_bytes) {
            Ok(text) => text,
            Err(e) => {
                let message = match e {
                    BatchError::TooLarge { .. } => format!("{e}"),
                    _ => format!("cannot be read: {e}"),
                };
                self.report(Problem::new(K::Malformed, message).object(key));
                return;
            }
        };
        let mut position = ChainPosition {
            next_sequence: chain.next_sequence,
            head: chain.head.clone(),
        };
        let lines = self.check_lines(key, &text, &mut position, batch_ok);
        if lines != d.count {
            self.report(
                Problem::new(
                    K::CountMismatch,
                    format!("{} says count {}", parsed.key, d.count),
                )
                .object(key)
                .expected_found(format!("{} records", d.count), lines),
            );
        }
        if position.head != d.chain_head {
            self.report(
                Problem::new(
                    K::ChainHeadMismatch,
                    "chain_head is not the hash of the batch's last record",
                )
                .object(&parsed.key)
                .expected_found(&position.head, &d.chain_head),
            );
        }
    }

    /// Checks each line; returns how many records the batch holds.
    fn check_lines(
        &mut self,
        key: &str,
        text: &[u8],
        chain: &mut ChainPosition,
        batch_ok: bool,
    ) -> u64 {
        let mut lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        match lines.pop() {
            Some([]) => {}
            _ => self.report(
                Problem::new(K::Malformed, "the last line does not end with a newline")
                    .object(key)
                    .line(lines.len() as u64 + 1),
            ),
        }
        for (i, line) in lines.iter().enumerate() {
            let number = i as u64 + 1;
            match self.check_line(key, number, line, chain) {
                Some((record, line_ok)) => self.records.push(CheckedRecord {
                    verified: line_ok && batch_ok,
                    ..record
                }),
                None => continue,
            }
        }
        self.summary.records += lines.len() as u64;
        lines.len() as u64
    }

    /// One line. Returns the record (if it could be read) and whether every check passed.
    fn check_line(
        &mut self,
        key: &str,
        number: u64,
        line: &[u8],
        chain: &mut ChainPosition,
    ) -> Option<(CheckedRecord, bool)> {
        let at = |p: Problem| p.object(key).line(number);
        let value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => {
                self.report(at(Problem::new(K::Malformed, format!("not JSON: {e}"))));
                return None;
            }
        };
        let fields = value.as_object().and_then(|o| {
            let extra = o.keys().any(|k| {
                !["stream", "sequence", "prev_hash", "hash", "record"].contains(&k.as_str())
            });
            Some((
                o.get("stream")?.as_str()?,
                o.get("sequence")?.as_u64()?,
                o.get("prev_hash")?.as_str()?,
                o.get("hash")?.as_str()?,
                o.get("record")?,
                extra,
            ))
        });
        let Some((stream, sequence, prev_hash, hash, record, extra)) = fields else {
            self.report(at(Problem::new(
                K::Malformed,
                "not an entry {stream, sequence, prev_hash, hash, record}",
            )));
            return None;
        };
        let mut ok = true;
        let mut fail = |me: &mut Self, p: Problem| {
            ok = false;
            me.report(at(p.sequence(sequence)));
        };
        if extra {
            fail(
                self,
                Problem::new(K::Malformed, "fields outside the entry format"),
            );
        }
        let composed = canonical_json(record)
            .and_then(|rec| hashed_bytes(stream, sequence, prev_hash, &rec))
            .and_then(|hashed| Ok((line_bytes(hash, &hashed)?, hashed)));
        let (canonical_line, hashed) = match composed {
            Ok(bytes) => bytes,
            Err(e) => {
                fail(self, Problem::new(K::Malformed, e.to_string()));
                (Vec::new(), Vec::new())
            }
        };
        if !extra && !canonical_line.is_empty() && canonical_line != line {
            fail(
                self,
                Problem::new(K::NotCanonical, "not in canonical JSON form"),
            );
        }
        if stream != self.stream {
            fail(
                self,
                Problem::new(K::NameMismatch, "the record names another stream")
                    .expected_found(self.stream, stream),
            );
        }
        if sequence != chain.next_sequence {
            fail(
                self,
                Problem::new(K::SequenceMismatch, "not the next sequence")
                    .expected_found(chain.next_sequence, sequence),
            );
        }
        if prev_hash != chain.head {
            fail(
                self,
                Problem::new(
                    K::ChainBroken,
                    "prev_hash is not the previous record's hash",
                )
                .expected_found(&chain.head, prev_hash),
            );
        }
        if !hashed.is_empty() {
            let computed = sha256_hex(&hashed);
            if computed != hash {
                fail(
                    self,
                    Problem::new(K::HashMismatch, "hash is not the hash of the entry")
                        .expected_found(computed, hash),
                );
            }
        }
        // Continue from what the line states, so one fault is reported once.
        chain.next_sequence = sequence.saturating_add(1);
        chain.head = hash.to_string();
        let checked = CheckedRecord {
            stream: stream.to_string(),
            sequence,
            hash: hash.to_string(),
            object: key.to_string(),
            line: number,
            verified: ok,
            record: record.clone(),
        };
        Some((checked, ok))
    }
}
