//! The request flow around the core's gateway: build the host for a request, answer the audit
//! flush endpoint, and piggyback a flush on a request when one is due. Written against
//! `Platform`, so the native tests run exactly this.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use asc_core::admin::AdminPlane;
use asc_core::audit::drive;
use asc_core::deployment::Deployment;
use asc_core::host::{ByteSource, HostError};
use asc_core::ids::TenantId;
use asc_core::ledger::insights::SWEEP_AFTER_MS;
use asc_core::ledger::stored::apply_versioned;
use asc_core::ledger::LedgerId;
use asc_core::pipeline::http::Inbound;
use asc_core::pipeline::AfterResponse;
use asc_core::secret::Secret;
use asc_core::tenant_store::TenantStore;
use asc_core::{ErrorKind, Gateway, GatewayError};
use subtle::ConstantTimeEq;

use crate::host::{admin_row, SpinHost, ADMIN_ROW_PREFIX};
use crate::platform::{Platform, SqlValue};
use crate::s3::BucketSink;
use crate::settings;
use crate::{pacing, sql_cache, sql_ledger, sql_trail};

/// `POST` here with `Authorization: Bearer <audit_flush_token>` gives up on expired requests in
/// every ledger, forwards every outbox and ships whatever is due (and a heartbeat digest on each
/// idle stream). Point a scheduler (cron, a Kubernetes CronJob) at it at least once per
/// `audit_heartbeat_ms`.
pub const FLUSH_PATH: &str = "/__asc/audit/flush";

thread_local! {
    /// One gateway per instance: its caches of tenant configs and key records live as long as it.
    static GATEWAY: RefCell<Option<Rc<Gateway>>> = const { RefCell::new(None) };
    /// The admin plane of this instance (its JWKS cache lives as long as it), by its settings.
    static ADMIN: RefCell<Option<(String, Rc<AdminPlane>)>> = const { RefCell::new(None) };
    static SCHEMA_READY: Cell<bool> = const { Cell::new(false) };
}

/// The gateway for `deployment`, built once per instance.
pub fn gateway(deployment: &Deployment) -> Rc<Gateway> {
    if let Some(gw) = GATEWAY.with(|g| g.borrow().clone()) {
        if gw.region().id == deployment.region.id {
            return gw;
        }
    }
    // Spin sets spin-client-addr after any the client sent; an instance may end with its
    // request, so each refusal before a tenant was known is recorded on its own, after its reply.
    let gw = Rc::new(
        Gateway::for_deployment(deployment)
            .without_leases()
            .with_refusals("spin-client-addr", 0),
    );
    GATEWAY.with(|g| *g.borrow_mut() = Some(gw.clone()));
    gw
}

/// Run on every new connection to the region's database. Spin opens a fresh SQLite connection
/// per `Connection::open` (one per request), in rollback-journal mode with rusqlite's 5 s busy
/// timeout: under `spin up` with 32 concurrent requests, readers and writers of the ledger and
/// the audit tables queued behind each other (~12 requests/s) and some gave up with "database is
/// locked" (a 503). Write-ahead logging lets readers run beside the one writer (the mode is kept
/// in the file; setting it again is a no-op), and a longer timeout covers a loaded machine.
/// Statements are single autocommit transactions, so waiting for the lock is always safe.
pub const CONNECTION_SETUP: &[&str] = &["PRAGMA journal_mode = WAL", "PRAGMA busy_timeout = 15000"];

/// Prepares a new connection (see [`CONNECTION_SETUP`]). A backend that refuses a pragma (a
/// database server does its own locking and logging) is used as it is.
pub async fn configure_connection<P: Platform>(p: &P) {
    for statement in CONNECTION_SETUP {
        let _ = p.sql(statement, &[]).await;
    }
}

/// Every table and trigger the component uses, in creation order.
fn schema_statements() -> impl Iterator<Item = &'static str> {
    sql_ledger::SCHEMA
        .iter()
        .chain(sql_trail::SCHEMA)
        .chain(sql_cache::SCHEMA)
        .chain(FLUSH_LEASE_SCHEMA)
        .chain(pacing::SCHEMA)
        .copied()
}

/// The schema's fingerprint (FNV-1a of its statements, as a positive `user_version`): any change
/// to a statement changes it, so a build that adds a table creates it in a database an older build
/// set up.
pub fn schema_version() -> i64 {
    let mut hash: u32 = 0x811c_9dc5;
    for statement in schema_statements() {
        for byte in statement.bytes().chain([0]) {
            hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
    }
    // SQLite's `user_version` is a signed 32-bit integer, 0 in a new database.
    i64::from((hash & 0x7fff_ffff).max(1))
}

/// Creates the tables and triggers once per instance (every statement is `IF NOT EXISTS`), unless
/// the database says it already has this schema (`PRAGMA user_version`): a new instance then reads
/// one pragma instead of running every statement (with an instance per request, on every request).
/// A backend without `user_version` gets the statements every time, as before.
pub async fn ensure_schema<P: Platform>(p: &P) -> Result<(), HostError> {
    if SCHEMA_READY.with(Cell::get) {
        return Ok(());
    }
    let version = schema_version();
    let stored = match p.sql("PRAGMA user_version", &[]).await {
        Ok(rows) => rows.first().and_then(|row| match row.first() {
            Some(SqlValue::Integer(v)) => Some(*v),
            _ => None,
        }),
        Err(_) => None,
    };
    if stored != Some(version) {
        for statement in schema_statements() {
            p.sql(statement, &[]).await?;
        }
        // A pragma takes no parameters; `version` is our own integer.
        let _ = p
            .sql(&format!("PRAGMA user_version = {version}"), &[])
            .await;
    }
    SCHEMA_READY.with(|r| r.set(true));
    Ok(())
}

/// What one request needs: the deployment, its gateway and the host.
pub struct Prepared<P> {
    pub deployment: Deployment,
    pub gateway: Rc<Gateway>,
    pub host: SpinHost<P>,
    /// `settings::FAULT_AFTER_DELAY` (loopback region only), else 0.
    pub after_delay_ms: u64,
}

/// The deployment's settings as read from its variables: what the component keeps per instance
/// instead of reading ~15 variables on every request.
#[derive(Clone)]
pub struct Settings {
    pub deployment: Deployment,
    pub secrets: HashMap<String, Secret>,
    pub after_delay_ms: u64,
    /// `settings::FAULT_PUBLISH_REFUSED` (loopback region only).
    pub publish_refused: bool,
}

/// Reads the deployment's settings; an error means it is misconfigured.
pub async fn read_settings<P: Platform>(p: &P) -> Result<Settings, String> {
    let deployment = settings::deployment(p).await?;
    let secrets = settings::secrets(p).await.map_err(|e| e.to_string())?;
    let after_delay_ms = fault_after_delay_ms(&deployment, p).await;
    let publish_refused = deployment.region.id == "local"
        && settings::optional(p, settings::FAULT_PUBLISH_REFUSED)
            .await
            .is_ok_and(|v| v.as_deref() == Some("1"));
    Ok(Settings {
        deployment,
        secrets,
        after_delay_ms,
        publish_refused,
    })
}

/// The deployment, gateway and host for one request, everything read afresh (a new
/// connection, the settings); an error means it is misconfigured.
pub async fn prepare<P: Platform>(platform: P) -> Result<Prepared<P>, String> {
    configure_connection(&platform).await;
    let settings = read_settings(&platform).await?;
    prepare_with(platform, settings).await
}

/// The gateway and host for one request on a connection already set up, with `settings` read
/// before (the component's per-instance copy).
pub async fn prepare_with<P: Platform>(
    platform: P,
    settings: Settings,
) -> Result<Prepared<P>, String> {
    let gateway = gateway(&settings.deployment);
    ensure_schema(&platform)
        .await
        .map_err(|e| format!("sqlite: {e}"))?;
    Ok(Prepared {
        deployment: settings.deployment,
        gateway,
        host: SpinHost::new(platform, settings.secrets).refusing_publish(settings.publish_refused),
        after_delay_ms: settings.after_delay_ms,
    })
}

/// The reply to a misconfigured deployment: fail closed, say nothing about why.
pub fn misconfigured() -> (u16, Vec<u8>) {
    let err = GatewayError::new(
        ErrorKind::Internal,
        "The gateway deployment is misconfigured.",
    );
    (err.status(), err.body())
}

/// Moves `ledger`'s finished records into its audit stream (giving up on expired requests first).
async fn forward<P: Platform>(
    d: &Deployment,
    host: &SpinHost<P>,
    ledger: &LedgerId,
) -> Result<usize, String> {
    let p = host.platform();
    // Between this instance's calls to the ledger, not beside them (see `ledger_queue`).
    host.holding_ledger(
        ledger,
        asc_core::ledger::stored::forward_ledger(
            &sql_ledger::SqlLedgers(p),
            &sql_trail::SqlTrail(p),
            ledger,
            &d.audit_streams.for_ledger(ledger.as_str()),
            p.now_ms(),
        ),
    )
    .await
    .map_err(|e| e.to_string())
}

/// Ships what is due on every stream of the region now (starting any that has not started, so
/// each heartbeats). Returns the number of shipments confirmed.
pub async fn flush<P: Platform>(d: &Deployment, host: &SpinHost<P>) -> Result<usize, String> {
    flush_streams(d, host, &d.audit_streams.all()).await
}

/// Ships what is due on `streams` now (starting any that has not started).
async fn flush_streams<P: Platform>(
    d: &Deployment,
    host: &SpinHost<P>,
    streams: &[String],
) -> Result<usize, String> {
    let p = host.platform();
    let keyring = settings::keyring(p).await?;
    let bucket = settings::bucket(p).await?;
    // Audit records leave the region only to its bucket, and only over TLS (plain http is for the
    // loopback development region).
    if bucket.endpoint.scheme() != "https" && !d.region.allow_plain_http {
        return Err(format!(
            "{} must be https in region {}",
            settings::BUCKET_ENDPOINT,
            d.region.id
        ));
    }
    let sink = BucketSink {
        platform: p,
        bucket: &bucket,
    };
    let trail = sql_trail::SqlTrail(p);
    let mut shipped = 0;
    for stream in streams {
        drive::ensure(&trail, stream, p.now_ms())
            .await
            .map_err(|e| e.to_string())?;
        shipped += drive::flush(&trail, &sink, stream, p.now_ms(), &d.ship_policy, &keyring)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(shipped)
}

/// The work after a response: the request's deferred work (its commit, circuit reports), then
/// the outboxes of the ledgers it wrote, then a flush if one is due.
pub async fn after_response<P: Platform>(
    prepared: &Prepared<P>,
    after: AfterResponse,
) -> Vec<String> {
    let (deployment, host) = (&prepared.deployment, &prepared.host);
    let mut failures = run_deferred(prepared, after).await;
    failures.extend(forward_ledgers(deployment, host, host.take_touched()).await);
    if let Err(why) = flush_if_due(deployment, host).await {
        failures.push(format!("audit flush: {why}"));
    }
    failures
}

/// The request's deferred work (its commit, circuit reports), after the loopback region's
/// fault delay.
pub async fn run_deferred<P: Platform>(
    prepared: &Prepared<P>,
    after: AfterResponse,
) -> Vec<String> {
    if prepared.after_delay_ms > 0 {
        prepared
            .host
            .platform()
            .sleep(prepared.after_delay_ms)
            .await;
    }
    after
        .run(&prepared.gateway, &prepared.host)
        .await
        .into_iter()
        .map(|e| e.to_string())
        .collect()
}

/// `settings::FAULT_AFTER_DELAY`, in the loopback region only; 0 when unset or unreadable.
async fn fault_after_delay_ms<P: Platform>(d: &Deployment, p: &P) -> u64 {
    if d.region.id != "local" {
        return 0;
    }
    match settings::optional(p, settings::FAULT_AFTER_DELAY).await {
        Ok(Some(v)) => v.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// Forwards the outboxes of `ledgers` (ledgers written by requests) into their audit streams.
pub async fn forward_ledgers<P: Platform>(
    d: &Deployment,
    host: &SpinHost<P>,
    ledgers: impl IntoIterator<Item = LedgerId>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for ledger in ledgers {
        if let Err(why) = forward(d, host, &ledger).await {
            failures.push(format!("forwarding ledger {ledger}: {why}"));
        }
    }
    failures
}

/// The admin stores whose queue for the key-value store is not empty (`TenantStore`'s
/// `unpublished`, its `entries` first). The id range (`'0'` follows `'/'`) reads only the
/// admin rows, through the primary key.
pub const UNPUBLISHED_ADMIN_STORES: &str = "SELECT id FROM asc_ledger
     WHERE id >= 'admin/' AND id < 'admin0' AND state LIKE '%\"unpublished\":{\"entries\":[[%'";

/// Writes what admin changes left queued (the key-value store failed, or the instance that
/// stored them died first) to the key-value store: Spin's stand-in for the Durable Object's
/// retry alarm. Returns how many stores are still not all written (a store that failed is
/// logged, counted and passed over, so it holds up no other).
pub async fn publish_admin_stores<P: Platform>(host: &SpinHost<P>) -> Result<usize, String> {
    let rows = host
        .platform()
        .sql(UNPUBLISHED_ADMIN_STORES, &[])
        .await
        .map_err(|e| e.to_string())?;
    let mut left = 0;
    for row in rows {
        let Some(tenant) = row
            .first()
            .and_then(SqlValue::as_str)
            .and_then(|id| id.strip_prefix(ADMIN_ROW_PREFIX))
        else {
            continue;
        };
        let tenant = TenantId(tenant.to_string());
        let published = async {
            let queue = apply_versioned(
                &sql_ledger::SqlLedgers(host.platform()),
                &admin_row(&tenant),
                |store: &mut TenantStore| store.unpublished().clone(),
            )
            .await?;
            host.publish_admin(&tenant, queue).await
        };
        match published.await {
            Ok(queue) if queue.is_empty() => {}
            Ok(_) => left += 1,
            Err(e) => {
                eprintln!("asc: admin store of {tenant}: publishing its queue failed: {e}");
                left += 1;
            }
        }
    }
    Ok(left)
}

/// Gives up on expired requests and forwards every ledger of the deployment (what a Durable
/// Object's alarm does per ledger; Spin has no alarms, so the flush endpoint's scheduler drives it).
pub async fn sweep<P: Platform>(d: &Deployment, host: &SpinHost<P>) -> Result<usize, String> {
    let rows = host
        .platform()
        .sql(
            "SELECT id FROM asc_ledger WHERE id NOT LIKE 'circuits/%' AND id NOT LIKE 'admin/%'",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut forwarded = 0;
    for row in rows {
        if let Some(id) = row.first().and_then(SqlValue::as_str) {
            forwarded += forward(d, host, &LedgerId(id.to_string())).await?;
        }
    }
    Ok(forwarded)
}

/// Who is flushing after a response: one row, held until `until_ms`.
pub const FLUSH_LEASE_SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS asc_flush_lease (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        until_ms INTEGER NOT NULL
    )"];

/// How long a flush after a response holds the lease: half a heartbeat, within 0.5-10 s. An
/// instance that dies holding it delays the next piggybacked flush by at most this.
fn lease_ms(d: &Deployment) -> u64 {
    (d.ship_policy.heartbeat_ms / 2).clamp(500, 10_000)
}

/// Takes the flush lease if it is free or lapsed; returns the expiry to release it with.
///
/// Without it every response under load started a flush of the same streams at once (seen under
/// `spin up` with 32 concurrent requests): they collided on the audit head ("sequencer state is
/// inconsistent"), uploaded the same objects twice and queued on SQLite's write lock, pushing
/// commits past a 3 s reservation TTL. The lease is an optimisation only: shipping stays correct
/// when two flushes overlap (after a lapse, or with the scheduled flush endpoint, which ignores it).
pub async fn take_flush_lease<P: Platform>(d: &Deployment, p: &P) -> Result<Option<u64>, String> {
    let now = p.now_ms();
    let until = now + lease_ms(d);
    let rows = p
        .sql(
            "INSERT INTO asc_flush_lease (id, until_ms) VALUES (1, ?2)
             ON CONFLICT (id) DO UPDATE SET until_ms = excluded.until_ms
             WHERE asc_flush_lease.until_ms <= ?1 RETURNING until_ms",
            &[now.into(), until.into()],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok((!rows.is_empty()).then_some(until))
}

pub async fn release_flush_lease<P: Platform>(p: &P, until: u64) {
    // Only our own lease: a lapsed one may have been taken since.
    let _ = p
        .sql(
            "UPDATE asc_flush_lease SET until_ms = 0 WHERE id = 1 AND until_ms = ?1",
            &[until.into()],
        )
        .await;
}

/// The ledgers holding a request past its expiry (read from the stored JSON: `open` maps request
/// ids to `{record, expires_ms}`; `the_overdue_query_finds_expired_requests` holds it to the
/// core's format).
pub const OVERDUE_LEDGERS: &str = "SELECT id FROM asc_ledger WHERE id NOT LIKE 'circuits/%'
     AND EXISTS (SELECT 1 FROM json_each(asc_ledger.state, '$.open')
                 WHERE json_extract(json_each.value, '$.expires_ms') <= ?1)";

/// Gives up on every overdue request in the region (charging its reservation in full, as a
/// Durable Object's alarm does) and forwards those ledgers. Spin has no alarms: this runs under
/// the flush lease after a response, and from the scheduled flush endpoint (via `sweep`), so an
/// idle tenant's abandoned request is settled by the next response of any tenant once a batch
/// falls due, or by the next scheduled call, whichever comes first.
pub async fn sweep_overdue<P: Platform>(
    d: &Deployment,
    host: &SpinHost<P>,
) -> Result<usize, String> {
    let p = host.platform();
    let rows = p
        .sql(OVERDUE_LEDGERS, &[p.now_ms().into()])
        .await
        .map_err(|e| e.to_string())?;
    let mut swept = 0;
    for row in rows {
        if let Some(id) = row.first().and_then(SqlValue::as_str) {
            forward(d, host, &LedgerId(id.to_string())).await?;
            swept += 1;
        }
    }
    Ok(swept)
}

/// The ledgers holding an alert that no request carried for [`SWEEP_AFTER_MS`] past its due
/// time (`?1` now, `?2` that wait), read from the stored JSON: `alerts.log` entries with their
/// `status`, `next_at_ms` and `claimed_until_ms`, as `TenantLedger::alerts_sweep_due_ms` reads
/// them (`the_alert_sweep_query_finds_what_the_ledger_would_sweep` holds it to the core).
pub const SWEEP_DUE_ALERT_LEDGERS: &str = "SELECT id FROM asc_ledger
     WHERE id NOT LIKE 'circuits/%' AND id NOT LIKE 'admin/%'
     AND EXISTS (SELECT 1 FROM json_each(asc_ledger.state, '$.alerts.log')
                 WHERE json_extract(json_each.value, '$.status') = 'pending'
                   AND max(json_extract(json_each.value, '$.next_at_ms'),
                           coalesce(json_extract(json_each.value, '$.claimed_until_ms'), 0))
                       + ?2 <= ?1)";

/// The alert sweep starts no ledger after this long, so the flush endpoint answers within its
/// scheduler's timeout (`deploy/spin/`: 25 s) unless a ledger's webhooks are slow (10 s a call
/// at most); what it leaves is found by the next call. A ledger it claimed from is not found
/// again for the claim's 60 s, so a receiver that is down does not starve the others.
const SWEEP_ALERTS_BUDGET_MS: u64 = 5_000;

/// Delivers the alerts no request carried (a tenant without traffic since a webhook delivery
/// failed, or an instance that died holding a claim): what a Durable Object's alarm marks for
/// the Worker's cron; Spin has no alarms, so this query finds them, from the flush endpoint's
/// scheduler (after its flush). Returns how many it claimed.
pub async fn sweep_alerts<P: Platform>(
    d: &Deployment,
    host: &SpinHost<P>,
) -> Result<usize, String> {
    let p = host.platform();
    let rows = p
        .sql(
            SWEEP_DUE_ALERT_LEDGERS,
            &[p.now_ms().into(), SWEEP_AFTER_MS.into()],
        )
        .await
        .map_err(|e| e.to_string())?;
    let gw = gateway(d);
    let until = p.now_ms() + SWEEP_ALERTS_BUDGET_MS;
    let mut claimed = 0;
    for row in rows {
        let Some(id) = row.first().and_then(SqlValue::as_str) else {
            continue;
        };
        if p.now_ms() > until {
            break;
        }
        match gw
            .deliver_swept_alerts(host, &LedgerId(id.to_string()))
            .await
        {
            Ok((n, failures)) => {
                for e in failures {
                    eprintln!("asc: alert sweep: ledger {id}: {e}");
                }
                claimed += n;
            }
            Err(e) => eprintln!("asc: alert sweep: ledger {id}: {e}"),
        }
    }
    Ok(claimed)
}

/// Flushes the streams where a batch or a digest is due (two small reads per stream to find
/// them), unless another instance is flushing after a response. Only the due streams are
/// restored and shipped: restoring a stream reads and parses every record it buffers.
pub async fn flush_if_due<P: Platform>(
    d: &Deployment,
    host: &SpinHost<P>,
) -> Result<Option<usize>, String> {
    let p = host.platform();
    let trail = sql_trail::SqlTrail(p);
    let mut due = Vec::new();
    for stream in d.audit_streams.all() {
        // A stream that has not started is due: it must start heartbeating. `needs_flush` reads
        // the head first and answers false without one.
        let started = drive::has_started(&trail, &stream)
            .await
            .map_err(|e| e.to_string())?;
        let stream_due = !started
            || drive::needs_flush(&trail, &stream, p.now_ms(), &d.ship_policy)
                .await
                .map_err(|e| e.to_string())?;
        if stream_due {
            due.push(stream);
        }
    }
    if due.is_empty() {
        return Ok(None);
    }
    let Some(until) = take_flush_lease(d, p).await? else {
        return Ok(None);
    };
    if let Err(why) = sweep_overdue(d, host).await {
        eprintln!("asc: settling overdue requests failed, will retry: {why}");
    }
    let flushed = flush_streams(d, host, &due).await.map(Some);
    release_flush_lease(p, until).await;
    flushed
}

/// Whether `req` is for the admin plane (`/admin/...`).
pub fn is_admin<B>(req: &Inbound<B>) -> bool {
    req.path.starts_with("/admin/")
}

/// Serves an admin request: status, headers and body. 404 when `admin_issuers` is empty (no
/// admin plane), 500 when it is invalid (fail closed; the reason goes to the log).
/// An admin request's reply, and when to send the refusals counted before a token was verified
/// (`Gateway::send_refusals`, after the reply), when it opened their window.
pub type AdminAnswer = (u16, Vec<(String, String)>, Vec<u8>, Option<u64>);

pub async fn admin<P: Platform, B: ByteSource>(
    prepared: &Prepared<P>,
    req: Inbound<B>,
) -> AdminAnswer {
    let json = vec![("content-type".to_string(), "application/json".to_string())];
    let text = match settings::optional(prepared.host.platform(), settings::ADMIN_ISSUERS).await {
        Ok(Some(text)) => text,
        Ok(None) => {
            let (s, b) = error(
                ErrorKind::UnknownRoute,
                "This deployment has no admin plane.",
            );
            return (s, json, b, None);
        }
        Err(_) => {
            let (s, b) = error(ErrorKind::StoreUnavailable, "Variables are unavailable.");
            return (s, json, b, None);
        }
    };
    let cached = ADMIN.with(|a| {
        a.borrow()
            .as_ref()
            .filter(|(t, _)| *t == text)
            .map(|(_, plane)| plane.clone())
    });
    let plane = match cached {
        Some(plane) => plane,
        None => match asc_core::admin::issuer::parse_issuers(&text) {
            Ok(issuers) => {
                let plane = Rc::new(
                    AdminPlane::new(issuers)
                        .with_audit_streams(prepared.deployment.audit_streams.all()),
                );
                ADMIN.with(|a| *a.borrow_mut() = Some((text, plane.clone())));
                plane
            }
            Err(errs) => {
                eprintln!("asc: admin plane misconfigured: {}", errs.join("; "));
                let (s, b) = error(ErrorKind::Internal, "The admin plane is misconfigured.");
                return (s, json, b, None);
            }
        },
    };
    let handled = plane.handle(&prepared.gateway, &prepared.host, req).await;
    let reply = handled.reply;
    if let Some(d) = &reply.diagnostic {
        eprintln!("asc: admin {}: {d}", reply.status);
    }
    let body = match reply.body {
        asc_core::pipeline::http::ReplyBody::Full(b) => b,
        asc_core::pipeline::http::ReplyBody::Stream(_) => Vec::new(),
    };
    (reply.status, reply.headers, body, handled.refusals_due)
}

/// Whether `req` is for the flush endpoint (any method: the endpoint answers 405 itself).
pub fn is_flush<B>(req: &Inbound<B>) -> bool {
    req.path == FLUSH_PATH
}

fn error(kind: ErrorKind, message: &str) -> (u16, Vec<u8>) {
    let err = GatewayError::new(kind, message);
    (err.status(), err.body())
}

/// Answers the flush endpoint: 405 unless `POST`, 404 if no token is configured (the endpoint is
/// off), 401 without the right bearer token, 503 if shipping failed, else 200 with the count.
pub async fn flush_endpoint<P: Platform, B: ByteSource>(
    prepared: &Prepared<P>,
    req: &Inbound<B>,
) -> (u16, Vec<u8>) {
    let (d, host) = (&prepared.deployment, &prepared.host);
    if req.method != "POST" {
        return error(ErrorKind::MethodNotAllowed, "Use POST.");
    }
    let token = match settings::optional(host.platform(), settings::FLUSH_TOKEN).await {
        Ok(Some(t)) => t,
        Ok(None) => return error(ErrorKind::UnknownRoute, "No such route."),
        Err(_) => return error(ErrorKind::StoreUnavailable, "Variables are unavailable."),
    };
    let given = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        return error(ErrorKind::InvalidApiKey, "Invalid flush token.");
    }
    if let Err(why) = sweep(d, host).await {
        eprintln!("asc: sweeping ledgers failed, will retry: {why}");
    }
    if let Err(why) = publish_admin_stores(host).await {
        eprintln!("asc: publishing admin stores failed, will retry: {why}");
    }
    let flushed = flush(d, host).await;
    // After the flush: a receiver that is down must not hold the audit trail up.
    if let Err(why) = sweep_alerts(d, host).await {
        eprintln!("asc: the alert sweep failed, will retry: {why}");
    }
    match flushed {
        Ok(shipped) => (200, format!("{{\"shipped\":{shipped}}}").into_bytes()),
        Err(why) => {
            eprintln!("asc: audit flush failed, will retry: {why}");
            error(
                ErrorKind::AuditUnavailable,
                "The audit flush failed; retry later.",
            )
        }
    }
}
