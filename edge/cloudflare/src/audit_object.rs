//! The audit sequencer of one region stream, as a Durable Object. It stores and ships; the
//! sequencing, hash chain, batching and signing are `asc_core::trail::Sequencer`'s.
//!
//! Storage (values are JSON strings, so 64-bit numbers survive): the sequencer head, one key per
//! buffered entry, one key per open (streaming, not yet finished) record. Every change of the
//! head and its entries is one `put_multiple`, so they commit together.

use std::cell::RefCell;

use asc_core::audit::inflight::{due, inflight_storage_key, OpenRecord, INFLIGHT_PREFIX};
use asc_core::audit::AuditEvent;
use asc_core::secret::Secret;
use asc_core::trail::{
    entry_storage_key, Buffered, Sequencer, SequencerHead, ShipPolicy, SigningKeyring,
    HEAD_STORAGE_KEY,
};
use serde::{Deserialize, Serialize};
use worker::js_sys::{Date as JsDate, Object, Reflect};
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, durable_object, Date, DurableObject, Env, HttpMetadata, ListOptions, Request,
    Response, Result, ScheduledTime, State, Storage,
};

pub const AUDIT_BUCKET: &str = "AUDIT_BUCKET";
pub const SIGNING_KEYS_SECRET: &str = "AUDIT_SIGNING_KEYS";

#[derive(Debug, Serialize, Deserialize)]
pub struct Appended {
    pub sequence: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AppendAsk {
    pub stream: String,
    pub event: AuditEvent,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OpenAsk {
    pub stream: String,
    pub event: AuditEvent,
    pub expires_ms: u64,
}

#[durable_object]
pub struct AuditSequencer {
    state: State,
    env: Env,
    /// The sequencer, loaded from storage on first use and kept in step with it.
    sequencer: RefCell<Option<Sequencer>>,
}

fn err(e: impl std::fmt::Display) -> worker::Error {
    worker::Error::RustError(e.to_string())
}

fn json<T: Serialize>(value: &T) -> Result<JsValue> {
    Ok(JsValue::from_str(
        &serde_json::to_string(value).map_err(err)?,
    ))
}

async fn get_json<T: serde::de::DeserializeOwned>(
    storage: &Storage,
    key: &str,
) -> Result<Option<T>> {
    match storage.get::<String>(key).await? {
        Some(text) => Ok(Some(serde_json::from_str(&text).map_err(err)?)),
        None => Ok(None),
    }
}

/// All values under `prefix`, parsed.
async fn list_json<T: serde::de::DeserializeOwned>(
    storage: &Storage,
    prefix: &str,
) -> Result<Vec<T>> {
    let map = storage
        .list_with_options(ListOptions::new().prefix(prefix))
        .await?;
    let mut out = Vec::new();
    for value in map.values() {
        let value = value.map_err(|e| err(format!("{e:?}")))?;
        let text = value
            .as_string()
            .ok_or_else(|| err("a stored value is not a string"))?;
        out.push(serde_json::from_str(&text).map_err(err)?);
    }
    Ok(out)
}

fn policy(env: &Env) -> ShipPolicy {
    let num = |name: &str, default: u64| {
        env.var(name)
            .ok()
            .and_then(|v| v.to_string().parse::<u64>().ok())
            .unwrap_or(default)
    };
    let d = ShipPolicy::default();
    ShipPolicy {
        max_records: num("AUDIT_BATCH_MAX_RECORDS", d.max_records as u64) as usize,
        max_age_ms: num("AUDIT_BATCH_MAX_AGE_MS", d.max_age_ms),
        heartbeat_ms: num("AUDIT_HEARTBEAT_MS", d.heartbeat_ms),
    }
}

impl AuditSequencer {
    /// The sequencer for `stream`, restored from storage if this object has one.
    async fn ensure(&self, stream: &str) -> Result<()> {
        if self.sequencer.borrow().is_some() {
            return Ok(());
        }
        let storage = self.state.storage();
        let head: Option<SequencerHead> = get_json(&storage, HEAD_STORAGE_KEY).await?;
        let sequencer = match head {
            Some(head) => {
                let entries: Vec<Buffered> = list_json(&storage, "entry:").await?;
                Sequencer::restore(head, entries).map_err(err)?
            }
            None => Sequencer::new(stream, Date::now().as_millis()).map_err(err)?,
        };
        *self.sequencer.borrow_mut() = Some(sequencer);
        Ok(())
    }

    /// Chains `event`; returns the writes that make it durable (head + entry).
    fn append(&self, event: &AuditEvent) -> Result<(u64, Object)> {
        let now = Date::now().as_millis();
        let mut guard = self.sequencer.borrow_mut();
        let sequencer = guard.as_mut().ok_or_else(|| err("sequencer not loaded"))?;
        let buffered = sequencer.append(event, now).map_err(err)?;
        let writes = Object::new();
        Reflect::set(&writes, &HEAD_STORAGE_KEY.into(), &json(sequencer.head())?)?;
        Reflect::set(
            &writes,
            &entry_storage_key(buffered.entry.sequence).into(),
            &json(&buffered)?,
        )?;
        Ok((buffered.entry.sequence, writes))
    }

    async fn commit(&self, writes: Object) -> Result<()> {
        let storage = self.state.storage();
        if let Err(e) = storage.put_multiple_raw(writes).await {
            // Memory ran ahead of storage: reload from storage on the next call.
            *self.sequencer.borrow_mut() = None;
            return Err(e);
        }
        Ok(())
    }

    async fn schedule(&self) -> Result<()> {
        let storage = self.state.storage();
        let policy = policy(&self.env);
        let mut at = self
            .sequencer
            .borrow()
            .as_ref()
            .map(|s| s.alarm_at(&policy));
        let open: Vec<OpenRecord> = list_json(&storage, INFLIGHT_PREFIX).await?;
        if let Some(first) = open.iter().map(|o| o.expires_ms).min() {
            at = Some(at.map_or(first, |a| a.min(first)));
        }
        if let Some(at) = at {
            let current = storage.get_alarm().await?;
            if current.is_none_or(|c| c > at as i64) {
                storage
                    .set_alarm(ScheduledTime::new(JsDate::new(&JsValue::from_f64(
                        at as f64,
                    ))))
                    .await?;
            }
        }
        Ok(())
    }

    /// Uploads every due shipment (batch, then digest) and confirms it. A failed upload leaves
    /// the shipment pending; the next alarm re-produces it byte for byte.
    async fn ship(&self) -> Result<()> {
        let secret = self
            .env
            .secret(SIGNING_KEYS_SECRET)
            .map_err(|_| err(format!("secret {SIGNING_KEYS_SECRET} is not set")))?;
        let keyring = SigningKeyring::from_secret(&Secret::new(secret.to_string())).map_err(err)?;
        let policy = policy(&self.env);
        let bucket = self.env.bucket(AUDIT_BUCKET)?;
        let storage = self.state.storage();
        loop {
            let shipment = {
                let mut guard = self.sequencer.borrow_mut();
                let sequencer = guard.as_mut().ok_or_else(|| err("sequencer not loaded"))?;
                sequencer
                    .next_shipment(Date::now().as_millis(), &policy, &keyring)
                    .map_err(err)?
            };
            let Some(shipment) = shipment else { break };
            let head = self.head()?;
            storage
                .put(HEAD_STORAGE_KEY, serde_json::to_string(&head).map_err(err)?)
                .await?;
            for object in shipment.objects() {
                bucket
                    .put(object.key.clone(), object.bytes.clone())
                    .http_metadata(HttpMetadata {
                        content_type: Some(object.content_type.to_string()),
                        ..HttpMetadata::default()
                    })
                    .execute()
                    .await?;
            }
            let confirmed = {
                let mut guard = self.sequencer.borrow_mut();
                let sequencer = guard.as_mut().ok_or_else(|| err("sequencer not loaded"))?;
                sequencer.confirm(shipment.id).map_err(err)?
            };
            let head = self.head()?;
            let writes = Object::new();
            Reflect::set(&writes, &HEAD_STORAGE_KEY.into(), &json(&head)?)?;
            self.commit(writes).await?;
            let removed: Vec<String> = confirmed.removed().map(entry_storage_key).collect();
            for chunk in removed.chunks(128) {
                storage.delete_multiple(chunk.to_vec()).await?;
            }
        }
        Ok(())
    }

    fn head(&self) -> Result<SequencerHead> {
        self.sequencer
            .borrow()
            .as_ref()
            .map(|s| s.head().clone())
            .ok_or_else(|| err("sequencer not loaded"))
    }

    /// Chains the open records of streams that never finished, as partial.
    async fn chain_abandoned(&self) -> Result<()> {
        let storage = self.state.storage();
        let open: Vec<OpenRecord> = list_json(&storage, INFLIGHT_PREFIX).await?;
        for record in due(open, Date::now().as_millis()) {
            let key = inflight_storage_key(&record.event.record.request_id);
            let event = record.abandoned(Date::now().as_millis());
            let (_, writes) = self.append(&event)?;
            self.commit(writes).await?;
            storage.delete(&key).await?;
        }
        Ok(())
    }
}

impl DurableObject for AuditSequencer {
    fn new(state: State, env: Env) -> Self {
        AuditSequencer {
            state,
            env,
            sequencer: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match req.path().as_str() {
            // A finished request: chain its record (closing its open record, if it had one).
            "/append" => {
                let ask: AppendAsk = req.json().await?;
                self.ensure(&ask.stream).await?;
                let (sequence, writes) = self.append(&ask.event)?;
                self.commit(writes).await?;
                let key = inflight_storage_key(&ask.event.record.request_id);
                self.state.storage().delete(&key).await?;
                self.schedule().await?;
                Response::from_json(&Appended { sequence })
            }
            // A stream about to start: keep its record until it finishes or is abandoned.
            "/open" => {
                let ask: OpenAsk = req.json().await?;
                self.ensure(&ask.stream).await?;
                let key = inflight_storage_key(&ask.event.record.request_id);
                let open = OpenRecord::new(ask.event, ask.expires_ms);
                self.state
                    .storage()
                    .put(&key, serde_json::to_string(&open).map_err(err)?)
                    .await?;
                self.schedule().await?;
                Response::from_json(&Appended { sequence: 0 })
            }
            other => Response::error(format!("no such audit operation {other}"), 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        let storage = self.state.storage();
        let head: Option<SequencerHead> = get_json(&storage, HEAD_STORAGE_KEY).await?;
        let Some(head) = head else {
            return Response::ok("empty");
        };
        self.ensure(&head.stream).await?;
        if let Err(e) = self.chain_abandoned().await {
            console_error!("asc: audit: chaining abandoned streams failed: {e}");
        }
        let shipped = self.ship().await;
        // Always wake again: heartbeats are due even without traffic.
        self.schedule().await?;
        if let Err(e) = shipped {
            console_error!("asc: audit: shipment failed, will retry: {e}");
        }
        Response::ok("ok")
    }
}
