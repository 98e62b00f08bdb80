//! The request flow around the core's gateway: build the host for a request, answer the audit
//! flush endpoint, and piggyback a flush on a request when one is due. Written against
//! `Platform`, so the native tests run exactly this.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use asc_core::host::{ByteSource, HostError};
use asc_core::http::Inbound;
use asc_core::trail::drive;
use asc_core::{builtin_regions, ErrorKind, Gateway, GatewayError, Settings};
use subtle::ConstantTimeEq;

use crate::host::{audit_stream, SpinHost};
use crate::platform::Platform;
use crate::s3::BucketSink;
use crate::settings;
use crate::{sql_ledger, sql_trail};

/// `POST` here with `Authorization: Bearer <audit_flush_token>` ships whatever is due (and a
/// heartbeat digest when the trail is idle). Point a scheduler (cron, a Kubernetes CronJob) at it
/// at least once per `audit_heartbeat_ms`.
pub const FLUSH_PATH: &str = "/__asc/audit/flush";

thread_local! {
    /// One gateway per instance: its caches of tenant configs and key records live as long as it.
    static GATEWAY: RefCell<Option<Rc<Gateway>>> = const { RefCell::new(None) };
    static SCHEMA_READY: Cell<bool> = const { Cell::new(false) };
}

/// The gateway for `region_id`, built once per instance.
pub fn gateway(region_id: &str) -> Result<Rc<Gateway>, String> {
    if let Some(gw) = GATEWAY.with(|g| g.borrow().clone()) {
        if gw.region().id == region_id {
            return Ok(gw);
        }
    }
    let regions = builtin_regions()?;
    let region = regions
        .get(region_id)
        .cloned()
        .ok_or_else(|| format!("asc_region={region_id:?} names no file in regions/"))?;
    let gw = Rc::new(Gateway::new(region, regions, Settings::default()));
    GATEWAY.with(|g| *g.borrow_mut() = Some(gw.clone()));
    Ok(gw)
}

/// Creates the tables and triggers once per instance (every statement is `IF NOT EXISTS`).
pub async fn ensure_schema<P: Platform>(p: &P) -> Result<(), HostError> {
    if SCHEMA_READY.with(Cell::get) {
        return Ok(());
    }
    for statement in sql_ledger::SCHEMA.iter().chain(sql_trail::SCHEMA) {
        p.sql(statement, &[]).await?;
    }
    SCHEMA_READY.with(|r| r.set(true));
    Ok(())
}

/// The gateway and the host for one request; an error means the deployment is misconfigured.
pub async fn prepare<P: Platform>(platform: P) -> Result<(Rc<Gateway>, SpinHost<P>), String> {
    let region = settings::optional(&platform, settings::REGION)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("variable {} is not set", settings::REGION))?;
    let gw = gateway(&region)?;
    ensure_schema(&platform)
        .await
        .map_err(|e| format!("sqlite: {e}"))?;
    let secrets = settings::secrets(&platform)
        .await
        .map_err(|e| e.to_string())?;
    Ok((gw, SpinHost::new(platform, secrets)))
}

/// The reply to a misconfigured deployment: fail closed, say nothing about why.
pub fn misconfigured() -> (u16, Vec<u8>) {
    let err = GatewayError::new(
        ErrorKind::Internal,
        "The gateway deployment is misconfigured.",
    );
    (err.status(), err.body())
}

/// Ships what is due for the gateway's region now. Returns the number of shipments confirmed.
pub async fn flush<P: Platform>(gw: &Gateway, host: &SpinHost<P>) -> Result<usize, String> {
    let p = host.platform();
    let policy = settings::ship_policy(p).await;
    let keyring = settings::keyring(p).await?;
    let bucket = settings::bucket(p).await?;
    // Audit records leave the region only to its bucket, and only over TLS (plain http is for the
    // loopback development region).
    if bucket.endpoint.scheme() != "https" && !gw.region().allow_plain_http {
        return Err(format!(
            "{} must be https in region {}",
            settings::BUCKET_ENDPOINT,
            gw.region().id
        ));
    }
    let sink = BucketSink {
        platform: p,
        bucket: &bucket,
    };
    let stream = audit_stream(&gw.region().id);
    let trail = sql_trail::SqlTrail(p);
    drive::flush(&trail, &sink, &stream, p.now_ms(), &policy, &keyring)
        .await
        .map_err(|e| e.to_string())
}

/// Flushes if a batch, a digest or an abandoned stream is due (two small reads otherwise).
pub async fn flush_if_due<P: Platform>(
    gw: &Gateway,
    host: &SpinHost<P>,
) -> Result<Option<usize>, String> {
    let p = host.platform();
    let policy = settings::ship_policy(p).await;
    let stream = audit_stream(&gw.region().id);
    let due = drive::needs_flush(&sql_trail::SqlTrail(p), &stream, p.now_ms(), &policy)
        .await
        .map_err(|e| e.to_string())?;
    if !due {
        return Ok(None);
    }
    flush(gw, host).await.map(Some)
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
    gw: &Gateway,
    host: &SpinHost<P>,
    req: &Inbound<B>,
) -> (u16, Vec<u8>) {
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
    match flush(gw, host).await {
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
