//! `Host` on Workers: KV for tenant config and key records, Durable Objects for region-wide rate
//! counters and audit sequencing, fetch (with an abort on timeout) for upstream calls.

use std::time::Duration;

use asc_core::audit::AuditEvent;
use asc_core::budget::{LedgerId, LedgerOp, LedgerReply};
use asc_core::host::{AuditReceipt, EgressApproved, Host, HostError, UpstreamResponse};
use asc_core::ids::TenantId;
use asc_core::routing::circuit::{CircuitOp, CircuitReply};

use asc_core::secret::{Secret, SecretRef};
use asc_core::time::Timestamp;
use futures_util::future::{select, Either};
use worker::js_sys::{Function, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::{
    AbortController, Date, Delay, Env, Fetch, Headers, Method, ObjectNamespace, Request,
    RequestInit, Stub,
};

use crate::body::WorkerBody;

pub const CONFIG_KV: &str = "ASC_CONFIG";
pub const LEDGER_DO: &str = "TENANT_LEDGERS";
pub const AUDIT_DO: &str = "AUDIT_SEQUENCER";
pub const CIRCUIT_DO: &str = "CIRCUIT_BOARDS";

pub struct WorkerHost {
    env: Env,
    /// Where this region's Durable Objects must live (`eu`, `us`, ...), if pinned.
    jurisdiction: Option<String>,
}

impl WorkerHost {
    pub fn new(env: Env, jurisdiction: Option<String>) -> Self {
        WorkerHost { env, jurisdiction }
    }

    /// A stub for the named object, created in the region's jurisdiction when it has one.
    /// workers-rs has no jurisdiction-scoped `id_from_name`, so this calls the JS API
    /// (`namespace.jurisdiction("eu")`) directly; a runtime without it fails closed.
    fn stub(&self, binding: &str, name: &str) -> Result<Stub, HostError> {
        let store = |e: worker::Error| HostError::Store(format!("{binding}: {e}"));
        let namespace = self.env.durable_object(binding).map_err(store)?;
        let namespace = match &self.jurisdiction {
            None => namespace,
            Some(jd) => {
                let js =
                    |e: JsValue| HostError::Store(format!("{binding}: jurisdiction({jd}): {e:?}"));
                let method: Function =
                    Reflect::get(namespace.as_ref(), &JsValue::from_str("jurisdiction"))
                        .map_err(js)?
                        .dyn_into()
                        .map_err(js)?;
                let scoped = method
                    .call1(namespace.as_ref(), &JsValue::from_str(jd))
                    .map_err(js)?;
                scoped.unchecked_into::<ObjectNamespace>()
            }
        };
        namespace
            .id_from_name(name)
            .and_then(|id| id.get_stub())
            .map_err(store)
    }

    async fn call_object<T: serde::de::DeserializeOwned>(
        &self,
        binding: &str,
        name: &str,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, HostError> {
        let store = |e: worker::Error| HostError::Store(format!("{binding}: {e}"));
        let stub = self.stub(binding, name)?;
        let json = serde_json::to_string(body).map_err(|e| HostError::Store(e.to_string()))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(JsValue::from_str(&json)));
        let req =
            Request::new_with_init(&format!("https://do.internal{path}"), &init).map_err(store)?;
        let mut resp = stub.fetch_with_request(req).await.map_err(store)?;
        if resp.status_code() != 200 {
            let text = resp.text().await.unwrap_or_default();
            return Err(HostError::Store(format!(
                "{binding} answered {}: {text}",
                resp.status_code()
            )));
        }
        resp.json().await.map_err(store)
    }
}

impl Host for WorkerHost {
    type Body = WorkerBody;

    fn now(&self) -> Timestamp {
        Timestamp(Date::now().as_millis())
    }

    fn fill_random(&self, buf: &mut [u8]) {
        // crypto.getRandomValues: cannot fail on workerd.
        getrandom::getrandom(buf).expect("crypto.getRandomValues is available on workerd");
    }

    fn secret(&self, name: &SecretRef) -> Option<Secret> {
        self.env
            .secret(name.name())
            .ok()
            .map(|s| Secret::new(s.to_string()))
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        let kv = self
            .env
            .kv(CONFIG_KV)
            .map_err(|e| HostError::Store(format!("{CONFIG_KV}: {e}")))?;
        kv.get(key)
            .bytes()
            .await
            .map_err(|e| HostError::Store(format!("{CONFIG_KV}: {e}")))
    }

    async fn send(&self, req: EgressApproved) -> Result<UpstreamResponse<WorkerBody>, HostError> {
        let fail = |e: worker::Error| HostError::Unreachable(e.to_string());
        let headers = Headers::new();
        for (name, value) in req.headers() {
            headers.set(name, value).map_err(fail)?;
        }
        let method = match req.method() {
            "GET" => Method::Get,
            _ => Method::Post,
        };
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers);
        if !req.body().is_empty() {
            init.with_body(Some(Uint8Array::from(req.body()).into()));
        }
        let request = Request::new_with_init(req.url().as_str(), &init).map_err(fail)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(request);
        let sending = Box::pin(fetch.send_with_signal(&signal));
        let deadline = Delay::from(Duration::from_millis(req.timeout_ms()));
        let outcome = select(sending, deadline).await;
        match outcome {
            Either::Left((Ok(resp), _)) => {
                let headers = resp
                    .headers()
                    .entries()
                    .map(|(n, v)| (n.to_ascii_lowercase(), v))
                    .collect();
                Ok(UpstreamResponse {
                    status: resp.status_code(),
                    headers,
                    body: WorkerBody::from_response(resp),
                })
            }
            Either::Left((Err(e), _)) => Err(fail(e)),
            Either::Right(_) => {
                controller.abort();
                Err(HostError::Timeout)
            }
        }
    }

    async fn ledger(&self, ledger: &LedgerId, op: &LedgerOp) -> Result<LedgerReply, HostError> {
        self.call_object(LEDGER_DO, ledger.as_str(), "/ledger", op)
            .await
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditReceipt, HostError> {
        let stream = audit_stream(event);
        let ask = crate::audit_object::AppendAsk {
            stream: stream.clone(),
            event: event.clone(),
        };
        let receipt: crate::audit_object::Appended =
            self.call_object(AUDIT_DO, &stream, "/append", &ask).await?;
        Ok(AuditReceipt {
            sequence: receipt.sequence,
        })
    }

    async fn open_audit(&self, event: &AuditEvent, expires_ms: u64) -> Result<(), HostError> {
        let stream = audit_stream(event);
        let ask = crate::audit_object::OpenAsk {
            stream: stream.clone(),
            event: event.clone(),
            expires_ms,
        };
        let _: crate::audit_object::Appended =
            self.call_object(AUDIT_DO, &stream, "/open", &ask).await?;
        Ok(())
    }

    async fn circuits(&self, tenant: &TenantId, op: &CircuitOp) -> Result<CircuitReply, HostError> {
        self.call_object(CIRCUIT_DO, tenant.as_str(), "/circuits", op)
            .await
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await;
    }
}

/// One sequencer (and so one gap-free, hash-chained stream) per region.
fn audit_stream(event: &AuditEvent) -> String {
    format!("audit-{}", event.record.region)
}
