//! The audit record of an admin action: who (subject, issuer, roles), what (versions before and
//! after, the change's digest and paths, the key acted on), allowed or refused, stored in the
//! tenant's ledger like a request's record.

use super::diff::Change;
use super::issuer::Principal;
use super::rbac::Action;
use crate::audit::{canonical_sha256, AdminNote, AuditEvent, AuditRecord, Outcome};
use crate::error::{ErrorKind, GatewayError};
use crate::host::Host;
use crate::ids::TenantId;
use crate::ledger::{LedgerId, LedgerOp, OpenAsk, RecordAsk};
use crate::pipeline::Gateway;

/// What an action changed, for its audit record.
#[derive(Default)]
pub(super) struct Effect {
    pub(super) before: Option<(u64, Option<String>)>,
    pub(super) after: Option<(u64, String)>,
    pub(super) changes: Vec<Change>,
    pub(super) key_id: Option<String>,
}

/// How long an admin action's write-ahead record waits for its final one before the ledger
/// chains it as partial: far longer than a change takes.
const OPEN_FOR_MS: u64 = 60_000;

/// The audit record of one admin action.
pub(super) struct AdminRecord {
    pub(super) event: AuditEvent,
    pub(super) tenant: TenantId,
}

impl AdminRecord {
    pub(super) fn new(
        gw: &Gateway,
        p: &Principal,
        tenant: &TenantId,
        action: Action,
        request_id: &str,
        trace_id: &str,
        at_ms: u64,
    ) -> Self {
        let mut record = AuditRecord::started(
            request_id,
            at_ms,
            &gw.region().id,
            format!("admin.{}", action.name()),
            trace_id,
        );
        record.tenant_id = Some(tenant.to_string());
        let mut event = AuditEvent::from(record);
        event.detail.actor = Some(format!("operator:{}", p.subject));
        event.detail.admin = Some(AdminNote {
            subject: p.subject.clone(),
            issuer: p.issuer.clone(),
            roles: p.role_names(),
            version_before: None,
            version_after: None,
            config_sha256_before: None,
            config_sha256_after: None,
            change_sha256: None,
            changed_paths: Vec::new(),
            target_key_id: None,
        });
        AdminRecord {
            event,
            tenant: tenant.clone(),
        }
    }

    pub(super) fn effect(&mut self, e: Effect) {
        let Some(note) = self.event.detail.admin.as_mut() else {
            return;
        };
        if let Some((v, sha)) = e.before {
            note.version_before = Some(v);
            note.config_sha256_before = sha;
        }
        if let Some((v, sha)) = e.after {
            note.version_after = Some(v);
            self.event.record.policy_version = Some(sha.clone());
            note.config_sha256_after = Some(sha);
            note.change_sha256 = serde_json::to_value(&e.changes)
                .ok()
                .and_then(|v| canonical_sha256(&v).ok());
            note.changed_paths = e.changes.iter().map(|c| c.path.clone()).collect();
        }
        note.target_key_id = e.key_id;
    }

    pub(super) fn fail(&mut self, err: &GatewayError) {
        let r = &mut self.event.record;
        r.outcome = if err.status() < 500 {
            Outcome::Refused
        } else {
            Outcome::Error
        };
        r.status = err.status();
        r.error_code = Some(err.code().to_string());
    }

    /// Stores this record write-ahead in the tenant's ledger, before a change: if the change is
    /// made but its final record (`store`) never reaches the ledger, the ledger chains this one
    /// as partial at expiry, so no change is ever missing from the trail. Fails (and nothing
    /// may be changed) when the ledger cannot be reached.
    pub(super) async fn open<H: Host>(&self, host: &H) -> Result<(), GatewayError> {
        let now_ms = host.now().millis();
        let op = LedgerOp::Open(OpenAsk {
            now_ms,
            expires_ms: now_ms.saturating_add(OPEN_FOR_MS),
            record: self.event.clone(),
        });
        host.ledger(&self.ledger(), op)
            .await
            .map(|_| ())
            .map_err(|e| {
                GatewayError::internal(
                    ErrorKind::AuditUnavailable,
                    "The audit log is unavailable, so nothing was changed. Retry shortly.",
                    &e,
                )
            })
    }

    fn ledger(&self) -> LedgerId {
        LedgerId::new(self.tenant.as_str(), 0, 1)
    }

    /// Stores the final record in the tenant's ledger before the reply goes out. `opened`:
    /// whether `open` stored it write-ahead (a change), which this record now replaces.
    pub(super) async fn store<H: Host>(
        mut self,
        host: &H,
        opened: bool,
    ) -> Result<(), GatewayError> {
        let now_ms = host.now().millis();
        self.event.record.latency_ms = now_ms.saturating_sub(self.event.record.timestamp_ms);
        let ledger = self.ledger();
        let op = LedgerOp::Record(RecordAsk {
            now_ms,
            record: self.event,
        });
        host.ledger(&ledger, op).await.map(|_| ()).map_err(|e| {
            let message = if opened {
                "The audit log did not confirm this action's record. A change already made stays made, and its record, kept by the audit log since before the change, enters the trail as unfinished within a minute. Check the tenant's history before retrying."
            } else {
                "The audit log is unavailable; the action could not be recorded. Retry shortly."
            };
            GatewayError::internal(ErrorKind::AuditUnavailable, message, &e)
        })
    }
}
