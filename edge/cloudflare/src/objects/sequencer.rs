//! An audit stream's sequencer object: one per stream (a region runs `AUDIT_SHARDS` of them). It
//! is the core's shipping loop (`trail::drive`, the same one the Spin host runs) over this
//! object's storage and the region's R2 bucket; it only stores, uploads and sets alarms.
//!
//! Storage: `head` (the sequencer head with its version), `batch:<first seq>` per appended batch
//! (its entries: one write per ledger batch, not per record), `src:<ledger>` per source's
//! watermark. Everything is kept in memory too: the object is the stream's only writer. A
//! stored batch is deleted once all its entries have shipped.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use asc_core::audit::batch::BatchError;
use asc_core::audit::codec::TrailCodec;
use asc_core::audit::drive::{self, ObjectSink, StoredHead, TrailStore, Watermark};
use asc_core::audit::{Buffered, ObjectPut, SequencerHead, SigningKeyring};
use asc_core::host::HostError;
use asc_core::ledger::ForwardBatch;
use asc_core::secret::Secret;
use js_sys::Promise;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::{fail, now_ms, storage};
use crate::{bootstrap, js};

pub const AUDIT_BUCKET: &str = "AUDIT_BUCKET";
pub const SIGNING_KEYS_SECRET: &str = "AUDIT_SIGNING_KEYS";
const HEAD_KEY: &str = "head";
const BATCH_PREFIX: &str = "batch:";
const SOURCE_PREFIX: &str = "src:";
/// After a failed shipment, try again this much later.
const RETRY_MS: u64 = 2_000;

#[derive(Serialize, Deserialize)]
struct StoredHeadJson {
    version: u64,
    head: SequencerHead,
}

/// The stream's state, in memory and in this object's storage.
struct ObjectTrail {
    storage: JsValue,
    loaded: Cell<bool>,
    head: RefCell<Option<StoredHead>>,
    entries: RefCell<BTreeMap<u64, Buffered>>,
    /// Stored batches: first sequence -> last sequence.
    batches: RefCell<BTreeMap<u64, u64>>,
    watermarks: RefCell<HashMap<String, u64>>,
}

fn batch_key(first: u64) -> String {
    format!("{BATCH_PREFIX}{first:020}")
}

fn host_err(e: JsValue) -> HostError {
    HostError::Store(js::describe(&e))
}

impl ObjectTrail {
    async fn load(&self) -> Result<(), HostError> {
        if self.loaded.get() {
            return Ok(());
        }
        if let Some(text) = storage::get(&self.storage, HEAD_KEY)
            .await
            .map_err(host_err)?
        {
            let stored: StoredHeadJson =
                serde_json::from_str(&text).map_err(|e| HostError::Store(e.to_string()))?;
            *self.head.borrow_mut() = Some(StoredHead {
                version: stored.version,
                head: stored.head,
            });
        }
        let mut entries = BTreeMap::new();
        let mut batches = BTreeMap::new();
        for (_, value) in storage::all(&self.storage, BATCH_PREFIX)
            .await
            .map_err(host_err)?
        {
            let batch: Vec<Buffered> =
                serde_json::from_str(&value).map_err(|e| HostError::Store(e.to_string()))?;
            if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
                batches.insert(first.entry.sequence, last.entry.sequence);
            }
            for b in batch {
                entries.insert(b.entry.sequence, b);
            }
        }
        *self.entries.borrow_mut() = entries;
        *self.batches.borrow_mut() = batches;
        self.loaded.set(true);
        Ok(())
    }

    fn put_head(
        &self,
        version: u64,
        head: &SequencerHead,
        extra: Vec<(String, String)>,
    ) -> Result<(), HostError> {
        let json = asc_core::json_ser::to_string(&StoredHeadJson {
            version,
            head: head.clone(),
        })
        .map_err(|e| HostError::Store(e.to_string()))?;
        let mut puts = extra;
        puts.push((HEAD_KEY.to_string(), json));
        storage::write(&self.storage, &puts, &[]);
        *self.head.borrow_mut() = Some(StoredHead {
            version,
            head: head.clone(),
        });
        Ok(())
    }
}

/// workerd's SHA-256 (`node:crypto`, for inputs long enough to pay for the call) and zlib
/// (`node:zlib`): a record's chained bytes are ~1.3 KB, a batch object tens of KB.
struct NativeCodec;

#[wasm_bindgen(module = "/js/trail.js")]
extern "C" {
    #[wasm_bindgen(js_name = gzipBatch, catch)]
    fn gzip_batch(bytes: &[u8]) -> Result<Vec<u8>, JsValue>;
}

impl TrailCodec for NativeCodec {
    fn sha256(&self, bytes: &[u8]) -> [u8; 32] {
        crate::host::sha256(bytes)
    }

    fn gzip(&self, bytes: &[u8]) -> Result<Vec<u8>, BatchError> {
        gzip_batch(bytes).map_err(|e| BatchError::Gzip(js::describe(&e)))
    }
}

impl TrailStore for ObjectTrail {
    fn codec(&self) -> &dyn TrailCodec {
        &NativeCodec
    }

    async fn head(&self, _stream: &str) -> Result<Option<StoredHead>, HostError> {
        self.load().await?;
        Ok(self.head.borrow().clone())
    }

    async fn create(&self, head: &SequencerHead) -> Result<(), HostError> {
        self.load().await?;
        if self.head.borrow().is_none() {
            self.put_head(0, head, Vec::new())?;
        }
        Ok(())
    }

    async fn append(
        &self,
        base_version: u64,
        next: &SequencerHead,
        entries: &[Buffered],
        watermark: &Watermark<'_>,
    ) -> Result<bool, HostError> {
        let version = match &*self.head.borrow() {
            Some(h) if h.version == base_version => h.version + 1,
            _ => return Ok(false),
        };
        let mut puts = Vec::with_capacity(2);
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            puts.push((
                batch_key(first.entry.sequence),
                Buffered::stored_json(entries).map_err(|e| HostError::Store(e.to_string()))?,
            ));
            self.batches
                .borrow_mut()
                .insert(first.entry.sequence, last.entry.sequence);
        }
        // As a string: a JS number would lose precision above 2^53.
        puts.push((
            format!("{SOURCE_PREFIX}{}", watermark.source),
            asc_core::json_ser::to_string(&watermark.through.to_string())
                .map_err(|e| HostError::Store(e.to_string()))?,
        ));
        self.put_head(version, next, puts)?;
        let mut mem = self.entries.borrow_mut();
        for e in entries {
            mem.insert(e.entry.sequence, e.clone());
        }
        self.watermarks
            .borrow_mut()
            .insert(watermark.source.to_string(), watermark.through);
        Ok(true)
    }

    async fn watermark(&self, _stream: &str, source: &str) -> Result<u64, HostError> {
        if let Some(w) = self.watermarks.borrow().get(source) {
            return Ok(*w);
        }
        let key = format!("{SOURCE_PREFIX}{source}");
        let stored = storage::get(&self.storage, &key).await.map_err(host_err)?;
        let w = match stored {
            Some(text) => serde_json::from_str::<String>(&text)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| HostError::Store(format!("{key}: not a watermark")))?,
            None => 0,
        };
        self.watermarks.borrow_mut().insert(source.to_string(), w);
        Ok(w)
    }

    async fn swap_head(&self, base_version: u64, head: &SequencerHead) -> Result<bool, HostError> {
        let version = match &*self.head.borrow() {
            Some(h) if h.version == base_version => h.version + 1,
            _ => return Ok(false),
        };
        self.put_head(version, head, Vec::new())?;
        Ok(true)
    }

    async fn entries(&self, _stream: &str, after: u64) -> Result<Vec<Buffered>, HostError> {
        Ok(self
            .entries
            .borrow()
            .range(after + 1..)
            .map(|(_, b)| b.clone())
            .collect())
    }

    async fn drop_entries(&self, _stream: &str, through: u64) -> Result<(), HostError> {
        let mut mem = self.entries.borrow_mut();
        let gone: Vec<u64> = mem.range(..=through).map(|(s, _)| *s).collect();
        for s in gone {
            mem.remove(&s);
        }
        // A stored batch goes once all of it has shipped (a restore skips shipped entries).
        let mut batches = self.batches.borrow_mut();
        let done: Vec<u64> = batches
            .iter()
            .filter(|(_, last)| **last <= through)
            .map(|(first, _)| *first)
            .collect();
        let keys: Vec<String> = done.iter().map(|f| batch_key(*f)).collect();
        for f in done {
            batches.remove(&f);
        }
        storage::write(&self.storage, &[], &keys);
        Ok(())
    }

    async fn backlog(&self, _stream: &str, after: u64) -> Result<(u64, Option<u64>), HostError> {
        let mem = self.entries.borrow();
        let mut range = mem.range(after + 1..);
        let oldest = range.clone().next().map(|(_, b)| b.appended_ms);
        Ok((range.by_ref().count() as u64, oldest))
    }
}

/// The region's audit bucket.
struct Bucket<'a> {
    env: &'a JsValue,
}

impl ObjectSink for Bucket<'_> {
    async fn put(&self, object: &ObjectPut) -> Result<(), HostError> {
        js::wait(js::bucket_put(
            self.env,
            AUDIT_BUCKET,
            &object.key,
            &object.bytes,
            object.content_type,
        ))
        .await
        .map(|_| ())
        .map_err(|e| HostError::Store(format!("{AUDIT_BUCKET}: {}", js::describe(&e))))
    }
}

struct State {
    storage: JsValue,
    env: JsValue,
    trail: ObjectTrail,
    alarm_at: Cell<Option<u64>>,
    alarm_loaded: Cell<bool>,
    /// Whether this instance has made sure the set's other streams started. Checked on the
    /// first append of every instance, not only the stream's very first: an instance killed
    /// between storing its head and starting its siblings must not leave a shard unstarted.
    siblings_started: Cell<bool>,
}

impl State {
    /// Wakes the object when the stream next has something to ship.
    async fn schedule(&self) -> Result<(), JsValue> {
        if !self.alarm_loaded.get() {
            self.alarm_at.set(storage::alarm(&self.storage).await?);
            self.alarm_loaded.set(true);
        }
        let deployment = bootstrap::deployment(&self.env).map_err(fail)?;
        let Some(stored) = self.trail.head.borrow().clone() else {
            return Ok(());
        };
        let (backlog, oldest) = self
            .trail
            .backlog("", stored.head.shipped_sequence)
            .await
            .map_err(fail)?;
        let at = drive::next_due(&stored.head, backlog, oldest, &deployment.ship_policy);
        storage::schedule(&self.storage, &self.alarm_at, at);
        Ok(())
    }

    async fn append(&self, batch: Vec<u8>) -> Result<JsValue, JsValue> {
        // Read as text: `from_slice` would compile a second copy of the records' reader.
        let batch = std::str::from_utf8(&batch).map_err(fail)?;
        let batch: ForwardBatch = serde_json::from_str(batch).map_err(fail)?;
        self.trail.load().await.map_err(fail)?;
        let ack = drive::append_batch(&self.trail, &batch, now_ms())
            .await
            .map_err(fail)?;
        self.schedule().await?;
        if !self.siblings_started.get() {
            // `ensure` is idempotent: a started sibling only answers.
            let all_started = self.start_siblings(&batch.stream).await;
            self.siblings_started.set(all_started);
        }
        Ok(JsValue::from_str(&storage::json(&ack)?))
    }

    /// Starts this stream (no records yet), so its heartbeats begin.
    async fn ensure(&self, stream: String) -> Result<JsValue, JsValue> {
        self.trail.load().await.map_err(fail)?;
        if self.trail.head.borrow().is_none() {
            drive::ensure(&self.trail, &stream, now_ms())
                .await
                .map_err(fail)?;
            self.schedule().await?;
        }
        Ok(JsValue::UNDEFINED)
    }

    /// The first stream of a set to start starts the others, so every shard heartbeats from
    /// the beginning and a verifier can expect all of them.
    async fn start_siblings(&self, stream: &str) -> bool {
        let Ok(deployment) = bootstrap::deployment(&self.env) else {
            return false;
        };
        let all = deployment.audit_streams.all();
        if !all.iter().any(|s| s == stream) {
            return true;
        }
        let mut all_started = true;
        let jurisdiction = deployment.region.storage_jurisdiction.clone();
        for sibling in all.iter().filter(|s| *s != stream) {
            let started = match js::audit_ensure(&self.env, jurisdiction.clone(), sibling) {
                Ok(p) => js::wait(p).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = started {
                all_started = false;
                js::log_error(&format!(
                    "asc: starting audit stream {sibling} failed: {}",
                    js::describe(&e)
                ));
            }
        }
        all_started
    }

    async fn alarm(&self) -> Result<JsValue, JsValue> {
        self.alarm_at.set(None);
        self.alarm_loaded.set(true);
        self.trail.load().await.map_err(fail)?;
        let Some(stream) = self
            .trail
            .head
            .borrow()
            .as_ref()
            .map(|h| h.head.stream.clone())
        else {
            return Ok(JsValue::UNDEFINED);
        };
        let shipped = self.ship(&stream).await;
        // Always wake again: heartbeats are due even without traffic.
        self.schedule().await?;
        if let Err(why) = shipped {
            js::log_error(&format!(
                "asc: audit {stream}: shipment failed, will retry: {why}"
            ));
            storage::schedule(&self.storage, &self.alarm_at, now_ms() + RETRY_MS);
        }
        Ok(JsValue::UNDEFINED)
    }

    async fn ship(&self, stream: &str) -> Result<usize, String> {
        let deployment = bootstrap::deployment(&self.env)?;
        let secret = js::env_string(&self.env, SIGNING_KEYS_SECRET)
            .ok_or_else(|| format!("secret {SIGNING_KEYS_SECRET} is not set"))?;
        let keyring =
            SigningKeyring::from_secret(&Secret::new(secret)).map_err(|e| e.to_string())?;
        drive::flush(
            &self.trail,
            &Bucket { env: &self.env },
            stream,
            now_ms(),
            &deployment.ship_policy,
            &keyring,
        )
        .await
        .map_err(|e| e.to_string())
    }
}

#[wasm_bindgen]
pub struct SequencerObject {
    state: Rc<State>,
}

#[wasm_bindgen]
impl SequencerObject {
    #[wasm_bindgen(constructor)]
    pub fn new(storage: JsValue, env: JsValue) -> SequencerObject {
        SequencerObject {
            state: Rc::new(State {
                trail: ObjectTrail {
                    storage: storage.clone(),
                    loaded: Cell::new(false),
                    head: RefCell::new(None),
                    entries: RefCell::new(BTreeMap::new()),
                    batches: RefCell::new(BTreeMap::new()),
                    watermarks: RefCell::new(HashMap::new()),
                },
                storage,
                env,
                alarm_at: Cell::new(None),
                alarm_loaded: Cell::new(false),
                siblings_started: Cell::new(false),
            }),
        }
    }

    /// Chains a ledger's batch (UTF-8 JSON; `js/control.mjs` encodes it); answers with how far
    /// that ledger is chained (JSON).
    pub fn append(&self, batch: Vec<u8>) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { state.append(batch).await })
    }

    /// Starts the stream named `stream` if it has not started.
    pub fn ensure(&self, stream: String) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { state.ensure(stream).await })
    }

    pub fn alarm(&self) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { state.alarm().await })
    }
}
