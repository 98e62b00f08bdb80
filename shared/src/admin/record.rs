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
use crate::ledger::{LedgerId, LedgerOp, RecordAsk};
use crate::pipeline::Gateway;

/// What an action changed, for its audit record.
#[derive(Default)]
pub(super) struct Effect {
    pub(super) before: Option<(u64, Option<String>)>,
    pub(super) after: Option<(u64, String)>,
    pub(super) changes: Vec<Change>,
    pub(super) key_id: Option<String>,
}

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

    /// Stores the record in the tenant's ledger before the reply goes out.
    pub(super) async fn store<H: Host>(mut self, host: &H) -> Result<(), GatewayError> {
        let now_ms = host.now().millis();
        self.event.record.latency_ms = now_ms.saturating_sub(self.event.record.timestamp_ms);
        let ledger = LedgerId::new(self.tenant.as_str(), 0, 1);
        let op = LedgerOp::Record(RecordAsk {
            now_ms,
            record: self.event,
        });
        host.ledger(&ledger, op).await.map(|_| ()).map_err(|e| {
            GatewayError::internal(
                ErrorKind::AuditUnavailable,
                "The audit log is unavailable; the action could not be recorded (a change already stored stays stored). Retry shortly.",
                &e,
            )
        })
    }
}
