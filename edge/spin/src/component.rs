//! The Spin component: `Platform` with spin-sdk (key-value, SQLite, variables, outbound HTTP,
//! WASI clocks and randomness) and the HTTP handler. Request in, core's reply out.

use std::pin::Pin;

use asc_core::host::{ByteSource, HostError, UpstreamResponse};
use asc_core::pipeline::http::{Inbound, ReplyBody};
use asc_core::pipeline::{AfterResponse, Handled};
use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{FullBody, IntoResponse, Request};
use spin_sdk::wasip3::clocks::{monotonic_clock, system_clock};
use spin_sdk::{key_value, sqlite, variables};

use crate::app;
use crate::platform::{Outbound, Platform, SqlValue};
use crate::settings::{CONFIG_STORE, STATE_DB};

type Chunks = Pin<Box<dyn Stream<Item = Result<Bytes, String>>>>;

/// A request or response body, chunk by chunk.
pub struct SpinBody(Option<Chunks>);

impl SpinBody {
    fn new<S, E>(stream: S) -> Self
    where
        S: Stream<Item = Result<Bytes, E>> + 'static,
        E: std::fmt::Debug,
    {
        SpinBody(Some(Box::pin(
            stream.map(|r| r.map_err(|e| format!("{e:?}"))),
        )))
    }
}

impl ByteSource for SpinBody {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        let Some(stream) = self.0.as_mut() else {
            return Ok(None);
        };
        match stream.next().await {
            Some(Ok(chunk)) => Ok(Some(chunk.to_vec())),
            Some(Err(e)) => Err(HostError::Unreachable(e)),
            None => {
                self.0 = None;
                Ok(None)
            }
        }
    }
}

pub struct Spin {
    kv: key_value::Store,
    db: sqlite::Connection,
}

impl Spin {
    async fn sql_once(
        &self,
        statement: &str,
        params: &[SqlValue],
    ) -> Result<Vec<Vec<SqlValue>>, HostError> {
        let params = params.iter().map(|p| match p {
            SqlValue::Null => sqlite::Value::Null,
            SqlValue::Integer(i) => sqlite::Value::Integer(*i),
            SqlValue::Text(s) => sqlite::Value::Text(s.clone()),
        });
        let result = self
            .db
            .execute(statement, params)
            .await
            .map_err(|e| store_error(STATE_DB, e))?;
        let rows = result
            .collect()
            .await
            .map_err(|e| store_error(STATE_DB, e))?;
        Ok(rows
            .into_iter()
            .map(|row| {
                row.values
                    .into_iter()
                    .map(|v| match v {
                        sqlite::Value::Integer(i) => SqlValue::Integer(i),
                        sqlite::Value::Text(s) => SqlValue::Text(s),
                        sqlite::Value::Blob(b) => {
                            SqlValue::Text(String::from_utf8_lossy(&b).into_owned())
                        }
                        _ => SqlValue::Null,
                    })
                    .collect()
            })
            .collect())
    }
}

fn store_error(what: &str, e: impl std::fmt::Debug) -> HostError {
    HostError::Store(format!("{what}: {e:?}"))
}

impl Platform for Spin {
    async fn sleep(&self, ms: u64) {
        monotonic_clock::wait_for(ms.saturating_mul(1_000_000)).await;
    }

    type Body = SpinBody;

    fn now_ms(&self) -> u64 {
        let now = system_clock::now();
        u64::try_from(now.seconds).unwrap_or(0) * 1000 + u64::from(now.nanoseconds / 1_000_000)
    }

    fn fill_random(&self, buf: &mut [u8]) {
        let bytes = spin_sdk::wasip3::random::random::get_random_bytes(buf.len() as u64);
        for (b, r) in buf.iter_mut().zip(bytes) {
            *b = r;
        }
    }

    async fn variable(&self, name: &str) -> Result<Option<String>, HostError> {
        match variables::get(name).await {
            Ok(value) => Ok(Some(value)),
            Err(variables::Error::Undefined(_)) => Ok(None),
            Err(e) => Err(store_error("variables", e)),
        }
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.kv
            .get(key)
            .await
            .map_err(|e| store_error(CONFIG_STORE, e))
    }

    async fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), HostError> {
        self.kv
            .set(key, value)
            .await
            .map_err(|e| store_error(CONFIG_STORE, e))
    }

    async fn sql(
        &self,
        statement: &str,
        params: &[SqlValue],
    ) -> Result<Vec<Vec<SqlValue>>, HostError> {
        crate::platform::retry_busy(
            || self.sql_once(statement, params),
            |ms| monotonic_clock::wait_for(ms.saturating_mul(1_000_000)),
        )
        .await
    }

    async fn send(&self, req: Outbound) -> Result<UpstreamResponse<SpinBody>, HostError> {
        let fail = |e: String| HostError::Unreachable(e);
        let mut builder = http::Request::builder()
            .method(req.method.as_str())
            .uri(req.url.as_str());
        for (name, value) in &req.headers {
            // The authority comes from the URL (wasi-http refuses a `Host` header).
            if !name.eq_ignore_ascii_case("host") {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        let request = builder
            .body(FullBody::new(Bytes::from(req.body)))
            .map_err(|e| fail(e.to_string()))?;
        let sending = Box::pin(spin_sdk::http::send(request));
        let deadline = Box::pin(monotonic_clock::wait_for(
            req.timeout_ms.saturating_mul(1_000_000),
        ));
        match futures::future::select(sending, deadline).await {
            futures::future::Either::Left((Ok(resp), _)) => {
                let status = resp.status().as_u16();
                let headers = resp
                    .headers()
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_ascii_lowercase(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                Ok(UpstreamResponse {
                    status,
                    headers,
                    body: SpinBody::new(resp.into_body().stream()),
                })
            }
            futures::future::Either::Left((Err(e), _)) => Err(fail(format!("{e:?}"))),
            futures::future::Either::Right(_) => Err(HostError::Timeout),
        }
    }
}

fn inbound(req: Request) -> Inbound<SpinBody> {
    let mut headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // wasi-http carries the authority outside the headers; the core checks it against the region.
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        if let Some(authority) = req.uri().authority() {
            headers.push(("host".into(), authority.as_str().to_string()));
        }
    }
    let method = req.method().as_str().to_string();
    // The admin plane reads query strings (analytics, alerts); the gateway's paths never do.
    let path = match req.uri().path_and_query() {
        Some(pq) if pq.path().starts_with("/admin/") => pq.as_str().to_string(),
        _ => req.uri().path().to_string(),
    };
    Inbound {
        method,
        path,
        headers,
        body: SpinBody::new(req.into_body().stream()),
    }
}

fn respond<B>(
    status: u16,
    headers: &[(String, String)],
    body: B,
    full: bool,
) -> anyhow::Result<http::Response<B>> {
    let mut builder = http::Response::builder().status(status);
    for (n, v) in headers {
        builder = builder.header(n.as_str(), v.as_str());
    }
    if full && !headers.iter().any(|(n, _)| n == "content-type") {
        builder = builder.header("content-type", "application/json");
    }
    Ok(builder.body(body)?)
}

#[spin_sdk::http_service]
async fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let (mut tx, body) = spin_sdk::http::body::stream::<Bytes>();
    let platform = match open().await {
        Ok(p) => p,
        Err(why) => return misconfigured(why, tx, body).await,
    };
    let prepared = match app::prepare(platform).await {
        Ok(ready) => ready,
        Err(why) => return misconfigured(why, tx, body).await,
    };
    let inbound = inbound(req);
    if app::is_flush(&inbound) {
        let (status, bytes) = app::flush_endpoint(&prepared, &inbound).await;
        tx.send(Bytes::from(bytes)).await?;
        return respond(status, &[], body, true);
    }
    if app::is_admin(&inbound) {
        let (status, headers, bytes) = app::admin(&prepared, inbound).await;
        tx.send(Bytes::from(bytes)).await?;
        drop(tx);
        // The admin record went to the tenant's ledger: forward it (and flush if due).
        spin_sdk::wasip3::spawn(async move {
            for why in app::after_response(&prepared, AfterResponse::default()).await {
                eprintln!("asc: after the response: {why}");
            }
        });
        return respond(status, &headers, body, true);
    }
    let Handled { reply, after } = prepared.gateway.handle(&prepared.host, inbound).await;
    if let Some(line) = reply.failure_log_line() {
        eprintln!("{line}");
    }
    let (status, headers) = (reply.status, reply.headers);
    let full = matches!(reply.body, ReplyBody::Full(_));
    // The body, then the work after the response (the commit, forwarding the ledger's records,
    // a due audit flush), is done by a task that outlives this call.
    spin_sdk::wasip3::spawn(async move {
        match reply.body {
            ReplyBody::Full(bytes) => {
                let _ = tx.send(Bytes::from(bytes)).await;
            }
            ReplyBody::Stream(mut relay) => {
                while let Some(chunk) = relay.next_timed(&prepared.host).await {
                    if tx.send(Bytes::from(chunk)).await.is_err() {
                        break;
                    }
                }
                drop(tx);
                if let Err(e) = relay.finish(&prepared.gateway, &prepared.host).await {
                    eprintln!("asc: ending a stream failed: {e}");
                }
                for why in app::after_response(&prepared, after).await {
                    eprintln!("asc: after the response: {why}");
                }
                return;
            }
        }
        drop(tx);
        for why in app::after_response(&prepared, after).await {
            eprintln!("asc: after the response: {why}");
        }
    });
    respond(status, &headers, body, full)
}

async fn open() -> Result<Spin, String> {
    let kv = key_value::Store::open(CONFIG_STORE)
        .await
        .map_err(|e| format!("key-value store {CONFIG_STORE}: {e:?}"))?;
    let db = sqlite::Connection::open(STATE_DB)
        .await
        .map_err(|e| format!("sqlite database {STATE_DB}: {e:?}"))?;
    Ok(Spin { kv, db })
}

async fn misconfigured<B>(
    why: String,
    mut tx: futures::channel::mpsc::Sender<Bytes>,
    body: B,
) -> anyhow::Result<http::Response<B>> {
    // Fail closed: without a valid region and stores nothing is served.
    eprintln!("asc: deployment misconfigured: {why}");
    let (status, bytes) = app::misconfigured();
    tx.send(Bytes::from(bytes)).await?;
    respond(status, &[], body, true)
}
