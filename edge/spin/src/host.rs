//! `Host` on Spin: key-value for tenant config and key records, SQLite for ledgers and the audit
//! sequencer, variables for secrets, outbound HTTP for upstream calls. The ledger and audit logic
//! is the core's (`budget::stored`, `trail::drive`); this maps it onto the platform.

use std::collections::HashMap;

use asc_core::audit::AuditEvent;
use asc_core::budget::stored::{apply_stored, apply_versioned};
use asc_core::budget::{LedgerId, LedgerOp, LedgerReply};
use asc_core::host::{AuditReceipt, EgressApproved, Host, HostError, UpstreamResponse};
use asc_core::ids::TenantId;
use asc_core::routing::circuit::{CircuitBoard, CircuitOp, CircuitReply};
use asc_core::secret::{Secret, SecretRef};
use asc_core::time::Timestamp;
use asc_core::trail::drive::{self, DriveError};

use crate::platform::{Outbound, Platform};
use crate::sql_ledger::SqlLedgers;
use crate::sql_trail::SqlTrail;

pub struct SpinHost<P> {
    platform: P,
    secrets: HashMap<String, Secret>,
}

fn store(e: DriveError) -> HostError {
    match e {
        DriveError::Host(e) => e,
        other => HostError::Store(format!("audit: {other}")),
    }
}

impl<P: Platform> SpinHost<P> {
    pub fn new(platform: P, secrets: HashMap<String, Secret>) -> Self {
        SpinHost { platform, secrets }
    }

    pub fn platform(&self) -> &P {
        &self.platform
    }
}

/// One sequencer (one gap-free, hash-chained stream) per region, named as on the Worker.
pub fn audit_stream(region: &str) -> String {
    format!("audit-{region}")
}

impl<P: Platform> Host for SpinHost<P> {
    type Body = P::Body;

    fn now(&self) -> Timestamp {
        Timestamp(self.platform.now_ms())
    }

    fn fill_random(&self, buf: &mut [u8]) {
        self.platform.fill_random(buf);
    }

    fn secret(&self, name: &SecretRef) -> Option<Secret> {
        self.secrets.get(name.name()).cloned()
    }

    async fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        self.platform.kv_get(key).await
    }

    async fn send(&self, req: EgressApproved) -> Result<UpstreamResponse<P::Body>, HostError> {
        self.platform
            .send(Outbound {
                method: req.method().to_string(),
                url: req.url().to_string(),
                headers: req.headers().to_vec(),
                body: req.body().to_vec(),
                timeout_ms: req.timeout_ms(),
            })
            .await
    }

    async fn ledger(&self, ledger: &LedgerId, op: &LedgerOp) -> Result<LedgerReply, HostError> {
        apply_stored(&SqlLedgers(&self.platform), ledger, op).await
    }

    async fn append_audit(&self, event: &AuditEvent) -> Result<AuditReceipt, HostError> {
        let stream = audit_stream(&event.record.region);
        let now = self.platform.now_ms();
        let sequence = drive::append(&SqlTrail(&self.platform), &stream, event, now)
            .await
            .map_err(store)?;
        Ok(AuditReceipt { sequence })
    }

    async fn open_audit(&self, event: &AuditEvent, expires_ms: u64) -> Result<(), HostError> {
        let stream = audit_stream(&event.record.region);
        drive::open(&SqlTrail(&self.platform), &stream, event, expires_ms)
            .await
            .map_err(store)
    }

    /// A tenant's circuit board: one versioned row in the ledger table (`circuits/<tenant>` can
    /// never be a ledger id: tenant ids have no `/`), updated by the same compare-and-swap.
    async fn circuits(&self, tenant: &TenantId, op: &CircuitOp) -> Result<CircuitReply, HostError> {
        let id = LedgerId(format!("circuits/{tenant}"));
        apply_versioned(
            &SqlLedgers(&self.platform),
            &id,
            |board: &mut CircuitBoard| board.apply(op),
        )
        .await
    }

    async fn sleep(&self, ms: u64) {
        self.platform.sleep(ms).await;
    }
}
