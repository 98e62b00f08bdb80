//! The Spin component: `Platform` with spin-sdk (key-value, SQLite, variables, outbound HTTP,
//! WASI clocks and randomness) and the HTTP handler. Request in, core's reply out.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;

use asc_core::host::{ByteSource, HostError, UpstreamResponse};
use asc_core::pipeline::http::{Inbound, ReplyBody};
use asc_core::pipeline::{AfterResponse, Handled};
use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{FromResponse, IntoResponse, Request, Response};
use spin_sdk::wasip3::clocks::{monotonic_clock, system_clock};
use spin_sdk::wasip3::http::types;
use spin_sdk::wasip3::wit_bindgen::{FutureReader, StreamReader};
use spin_sdk::wasip3::{wit_future, wit_stream};
use spin_sdk::{key_value, sqlite, variables};

use crate::app;
use crate::pacing::{self, InstancePacing};
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

/// The stores one request uses. A request takes an idle pair of this instance (Spin reuses an
/// instance for many requests, several at a time) and gives it back when its work after the
/// response is done: opening the database and setting the connection up on every request cost
/// more than the gateway's own work (`scripts/bench`, the Spin rows).
struct Stores {
    kv: key_value::Store,
    db: sqlite::Connection,
}

/// At most this many idle connections are kept per instance (Spin's default is 16 requests in
/// flight per instance).
const IDLE_MAX: usize = 16;

thread_local! {
    static IDLE: RefCell<Vec<Stores>> = const { RefCell::new(Vec::new()) };
    /// The deployment's settings, read once per instance and again after `SETTINGS_FOR_MS`.
    static SETTINGS: RefCell<Option<(u64, app::Settings)>> = const { RefCell::new(None) };
    /// This instance's pacing of the work after responses (forwarding, looking for a due flush).
    static PACING: Rc<InstancePacing> = Rc::new(InstancePacing::default());
}

/// Settings (variables) are re-read this often by a long-lived instance, as key records are.
const SETTINGS_FOR_MS: u64 = 10_000;

pub struct Spin {
    stores: Option<Stores>,
    /// A transaction is open on the connection (between `BEGIN` and its `COMMIT`/`ROLLBACK`):
    /// such a connection is closed, not reused, if its request ends there (cancelled).
    in_transaction: Cell<bool>,
}

impl Drop for Spin {
    fn drop(&mut self) {
        if let Some(stores) = self.stores.take() {
            if !self.in_transaction.get() {
                IDLE.with(|idle| {
                    let mut idle = idle.borrow_mut();
                    if idle.len() < IDLE_MAX {
                        idle.push(stores);
                    }
                });
            }
        }
    }
}

impl Spin {
    /// The request's stores (taken only by `drop`, so always here while the request runs).
    fn stores(&self) -> Result<&Stores, HostError> {
        self.stores
            .as_ref()
            .ok_or_else(|| HostError::Store("the request's stores were released".into()))
    }

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
        let begins = statement.starts_with("BEGIN");
        if begins {
            self.in_transaction.set(true);
        }
        let result = self.stores()?.db.execute(statement, params).await;
        if begins && result.is_err() {
            self.in_transaction.set(false);
        }
        let result = result.map_err(|e| store_error(STATE_DB, e))?;
        let rows = result
            .collect()
            .await
            .map_err(|e| store_error(STATE_DB, e))?;
        if statement == "COMMIT" || statement == "ROLLBACK" {
            self.in_transaction.set(false);
        }
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
        self.stores()?
            .kv
            .get(key)
            .await
            .map_err(|e| store_error(CONFIG_STORE, e))
    }

    async fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), HostError> {
        self.stores()?
            .kv
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
        let timeout_ms = req.timeout_ms;
        let (request, mut body_write) = wasi_request(req)?;
        // Before the request goes to Spin: see `start_write`.
        if !start_write(&mut body_write).await {
            spin_sdk::wasip3::spawn(body_write);
        }
        let sending = Box::pin(spin_sdk::wasip3::http::client::send(request));
        let deadline = Box::pin(monotonic_clock::wait_for(
            timeout_ms.saturating_mul(1_000_000),
        ));
        match futures::future::select(sending, deadline).await {
            futures::future::Either::Left((Ok(resp), _)) => {
                let resp = Response::from_response(resp).map_err(|e| fail(format!("{e:?}")))?;
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

/// Writing a complete body into its WASI stream.
type BodyWrite = Pin<Box<dyn Future<Output = ()>>>;
/// A WASI HTTP message's trailers, as its constructor takes them.
type Trailers = Result<Option<types::Trailers>, types::ErrorCode>;

/// The upstream request as WASI HTTP's, with the write of its body (then its trailers: none),
/// not yet started.
fn wasi_request(req: Outbound) -> Result<(types::Request, BodyWrite), HostError> {
    let invalid = |what: &str| HostError::Unreachable(format!("upstream request: invalid {what}"));
    let uri: http::Uri = req.url.parse().map_err(|_| invalid("URL"))?;
    let method = http::Method::from_bytes(req.method.as_bytes()).map_err(|_| invalid("method"))?;
    let mut header_map = http::HeaderMap::with_capacity(req.headers.len());
    for (name, value) in &req.headers {
        // The authority comes from the URL (wasi-http refuses a `Host` header).
        if name.eq_ignore_ascii_case("host") {
            continue;
        }
        let name =
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid("header name"))?;
        let value = http::HeaderValue::from_str(value).map_err(|_| invalid("header value"))?;
        header_map.append(name, value);
    }
    // A declared length lets Spin's client send the body as it is, complete once its bytes are
    // out. Chunked, its closing chunk waited for the stream's end and often left as a small write
    // of its own, held by Nagle's algorithm like a late body.
    if !req.body.is_empty() || !matches!(method, http::Method::GET | http::Method::HEAD) {
        header_map.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(req.body.len()),
        );
    }
    let fields = types::Fields::try_from(header_map).map_err(|_| invalid("headers"))?;
    let (body_rx, trailers_rx, write) = whole_body(req.body);
    let (request, _transmitted) = types::Request::new(fields, Some(body_rx), trailers_rx, None);
    request
        .set_method(&types::Method::from(method))
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(uri.scheme().map(types::Scheme::from).as_ref())
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(uri.authority().map(|a| a.as_str()))
        .map_err(|()| invalid("authority"))?;
    request
        .set_path_with_query(uri.path_and_query().map(|pq| pq.as_str()))
        .map_err(|()| invalid("path"))?;
    Ok((request, write))
}

/// A complete body as WASI HTTP carries it: the stream and the trailers (none) for the message,
/// and the write that fills them, not yet started.
fn whole_body(bytes: Vec<u8>) -> (StreamReader<u8>, FutureReader<Trailers>, BodyWrite) {
    let (mut body_tx, body_rx) = wit_stream::new::<u8>();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let write = async move {
        // Whatever the host does not read (a message it gave up on) is dropped with the stream.
        body_tx.write_all(bytes).await;
        drop(body_tx);
        let _ = trailers_tx.write(Ok(None)).await;
    };
    (body_rx, trailers_rx, Box::pin(write))
}

/// Starts a body's write: the host holds it from then on, and reads it as soon as it asks for
/// the body. Spin's HTTP client and server write a message's head and then poll its body: a body
/// already waiting leaves in the same write as the head. A body written later (spin-sdk spawns
/// the write) goes in a second, small write that Nagle's algorithm (on in Spin) holds until the
/// peer's delayed ACK: up to 40 ms. Returns whether the write has already finished.
async fn start_write(write: &mut BodyWrite) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx).is_ready())).await
}

/// A complete reply as WASI HTTP's response, with the write of its body not yet started.
fn wasi_response(
    status: u16,
    headers: &[(String, String)],
    bytes: Vec<u8>,
) -> anyhow::Result<(types::Response, BodyWrite)> {
    let (head, ()) = respond(status, headers, (), Some(bytes.len()))?.into_parts();
    let fields = types::Fields::try_from(head.headers)
        .map_err(|e| anyhow::anyhow!("reply headers: {e:?}"))?;
    let (body_rx, trailers_rx, write) = whole_body(bytes);
    let (response, _transmitted) = types::Response::new(fields, Some(body_rx), trailers_rx);
    response
        .set_status_code(status)
        .map_err(|()| anyhow::anyhow!("reply status {status}"))?;
    Ok((response, write))
}

/// A response as WASI HTTP's (spin-sdk's conversion: its body is written by a task of its own).
fn into_wasi<B>(response: anyhow::Result<http::Response<B>>) -> anyhow::Result<types::Response>
where
    http::Response<B>: IntoResponse,
{
    response?
        .into_response()
        .map_err(|e| anyhow::anyhow!("response: {e:?}"))
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

/// The response head. A complete body (`length`) is declared with `content-length`: a body of
/// unknown length goes out chunked, and its last chunk (`0\r\n\r\n`) is a write of its own, which
/// the runtime's socket (Nagle's algorithm on, as `spin up` leaves it) holds back until the
/// client acknowledges the first, up to the client's delayed-ACK timer: 40 ms per reply on
/// Linux, measured with `scripts/bench`.
fn respond<B>(
    status: u16,
    headers: &[(String, String)],
    body: B,
    length: Option<usize>,
) -> anyhow::Result<http::Response<B>> {
    let mut builder = http::Response::builder().status(status);
    for (n, v) in headers {
        builder = builder.header(n.as_str(), v.as_str());
    }
    if let Some(length) = length {
        if !headers.iter().any(|(n, _)| n == "content-type") {
            builder = builder.header("content-type", "application/json");
        }
        if !headers.iter().any(|(n, _)| n == "content-length") {
            builder = builder.header("content-length", length);
        }
    }
    Ok(builder.body(body)?)
}

#[spin_sdk::http_service]
async fn handle(req: Request) -> anyhow::Result<types::Response> {
    let (mut tx, body) = spin_sdk::http::body::stream::<Bytes>();
    let platform = match open().await {
        Ok(p) => p,
        Err(why) => return into_wasi(misconfigured(why, tx, body).await),
    };
    let settings = match settings(&platform).await {
        Ok(settings) => settings,
        Err(why) => return into_wasi(misconfigured(why, tx, body).await),
    };
    let prepared = match app::prepare_with(platform, settings).await {
        Ok(ready) => ready,
        Err(why) => return into_wasi(misconfigured(why, tx, body).await),
    };
    let inbound = inbound(req);
    if app::is_flush(&inbound) {
        let (status, bytes) = app::flush_endpoint(&prepared, &inbound).await;
        let length = bytes.len();
        tx.send(Bytes::from(bytes)).await?;
        return into_wasi(respond(status, &[], body, Some(length)));
    }
    if app::is_admin(&inbound) {
        let (status, headers, bytes, refusals_due) = app::admin(&prepared, inbound).await;
        let length = bytes.len();
        tx.send(Bytes::from(bytes)).await?;
        drop(tx);
        // The admin record went to the tenant's ledger, a refusal before a token was verified
        // goes to the region's (after the reply): forward it now (and flush if due); admin
        // requests are rare, so they skip the instance's pacing.
        spin_sdk::wasip3::spawn(async move {
            if let Some(at_ms) = refusals_due {
                for why in prepared.gateway.send_refusals(&prepared.host, at_ms).await {
                    eprintln!("asc: after the admin response: {why}");
                }
            }
            for why in app::after_response(&prepared, AfterResponse::default()).await {
                eprintln!("asc: after the response: {why}");
            }
        });
        return into_wasi(respond(status, &headers, body, Some(length)));
    }
    let Handled { reply, after } = prepared.gateway.handle(&prepared.host, inbound).await;
    if let Some(line) = reply.failure_log_line() {
        eprintln!("{line}");
    }
    let (status, headers) = (reply.status, reply.headers);
    // The body, then the work after the response (the commit, forwarding the ledger's records,
    // a due audit flush), is done by a task that outlives this call.
    let mut relay = match reply.body {
        ReplyBody::Full(bytes) => {
            // A reply Spin cannot carry still has its request's work done after it.
            let (response, mut write) = match wasi_response(status, &headers, bytes) {
                Ok((response, write)) => (Ok(response), Some(write)),
                Err(e) => (Err(e), None),
            };
            let written = match write.as_mut() {
                Some(write) => start_write(write).await,
                None => true,
            };
            spin_sdk::wasip3::spawn(async move {
                if let (false, Some(write)) = (written, write) {
                    write.await;
                }
                for why in after_response(&prepared, after).await {
                    eprintln!("asc: after the response: {why}");
                }
            });
            return response;
        }
        ReplyBody::Stream(relay) => relay,
    };
    spin_sdk::wasip3::spawn(async move {
        while let Some(chunk) = relay.next_timed(&prepared.host).await {
            if tx.send(Bytes::from(chunk)).await.is_err() {
                break;
            }
        }
        drop(tx);
        if let Err(e) = relay.finish(&prepared.gateway, &prepared.host).await {
            eprintln!("asc: ending a stream failed: {e}");
        }
        for why in after_response(&prepared, after).await {
            eprintln!("asc: after the response: {why}");
        }
    });
    into_wasi(respond(status, &headers, body, None))
}

/// This instance's stores for one request: an idle pair, else newly opened and set up.
async fn open() -> Result<Spin, String> {
    if let Some(stores) = IDLE.with(|idle| idle.borrow_mut().pop()) {
        return Ok(Spin {
            stores: Some(stores),
            in_transaction: Cell::new(false),
        });
    }
    let kv = key_value::Store::open(CONFIG_STORE)
        .await
        .map_err(|e| format!("key-value store {CONFIG_STORE}: {e:?}"))?;
    let db = sqlite::Connection::open(STATE_DB)
        .await
        .map_err(|e| format!("sqlite database {STATE_DB}: {e:?}"))?;
    let spin = Spin {
        stores: Some(Stores { kv, db }),
        in_transaction: Cell::new(false),
    };
    app::configure_connection(&spin).await;
    Ok(spin)
}

/// The deployment's settings: this instance's copy, read again after `SETTINGS_FOR_MS`. A
/// misconfiguration is not kept (the next request reads again).
async fn settings(spin: &Spin) -> Result<app::Settings, String> {
    let now = spin.now_ms();
    let kept = SETTINGS.with(|s| {
        s.borrow()
            .as_ref()
            .filter(|(read_at, _)| now.saturating_sub(*read_at) < SETTINGS_FOR_MS)
            .map(|(_, settings)| settings.clone())
    });
    if let Some(settings) = kept {
        return Ok(settings);
    }
    let settings = app::read_settings(spin).await?;
    SETTINGS.with(|s| *s.borrow_mut() = Some((now, settings.clone())));
    Ok(settings)
}

/// The work after a response, paced across this instance's requests and every instance
/// (`pacing::after_response`).
async fn after_response(prepared: &app::Prepared<Spin>, after: AfterResponse) -> Vec<String> {
    let instance = PACING.with(Rc::clone);
    pacing::after_response(prepared, after, &instance).await
}

async fn misconfigured<B>(
    why: String,
    mut tx: futures::channel::mpsc::Sender<Bytes>,
    body: B,
) -> anyhow::Result<http::Response<B>> {
    // Fail closed: without a valid region and stores nothing is served.
    eprintln!("asc: deployment misconfigured: {why}");
    let (status, bytes) = app::misconfigured();
    let length = bytes.len();
    tx.send(Bytes::from(bytes)).await?;
    respond(status, &[], body, Some(length))
}
