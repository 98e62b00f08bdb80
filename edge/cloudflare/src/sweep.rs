//! The alert sweep, on the request plane's cron (`[triggers]` in wrangler.toml, every minute):
//! delivers the alerts that no request carried (a tenant without traffic since a delivery
//! failed, or an isolate that died holding a claim). A tenant ledger that holds such an alert
//! marks itself in the config store (`objects/ledger.rs`); the sweep takes each marker and
//! delivers that ledger's due alerts with the tenant's webhook secrets, which only this Worker
//! holds. A marker is removed before its delivery: an alert that fails again is due again after
//! its backoff, and its ledger marks itself again then.

use asc_core::ledger::LedgerId;
use wasm_bindgen::prelude::*;

use crate::host::{WorkerHost, ALERT_SWEEP_PREFIX, CONFIG_KV};
use crate::{bootstrap, js};

/// Ledgers one run sweeps at most (each may wait on webhooks); the rest wait a minute.
const LEDGERS_PER_RUN: u32 = 50;

/// One run of the sweep (the Worker's `scheduled` handler). Failures are logged, never thrown:
/// what was not delivered stays due in its ledger.
#[wasm_bindgen]
pub async fn sweep_alerts(env: JsValue, ctx: JsValue) {
    let (gw, jurisdiction) = match bootstrap::gateway(&env) {
        Ok(found) => found,
        Err(why) => return crate::log_misconfigured(&why),
    };
    let listed = match js::wait(js::kv_list(
        &env,
        CONFIG_KV,
        ALERT_SWEEP_PREFIX,
        LEDGERS_PER_RUN,
    ))
    .await
    {
        Ok(names) => names.as_string().unwrap_or_default(),
        Err(e) => {
            js::log_error(&format!(
                "asc: alert sweep: listing the marked ledgers failed: {}",
                js::describe(&e)
            ));
            return;
        }
    };
    let host = WorkerHost::new(env.clone(), ctx, jurisdiction);
    for key in listed.split('\0').filter(|k| !k.is_empty()) {
        let Some(ledger) = key.strip_prefix(ALERT_SWEEP_PREFIX) else {
            continue;
        };
        if let Err(e) = js::wait(js::kv_delete(&env, CONFIG_KV, key)).await {
            js::log_error(&format!(
                "asc: alert sweep: taking the marker of ledger {ledger} failed: {}",
                js::describe(&e)
            ));
            continue;
        }
        match gw
            .deliver_swept_alerts(&host, &LedgerId(ledger.to_string()))
            .await
        {
            Ok((claimed, failures)) => {
                for e in failures {
                    js::log_error(&format!("asc: alert sweep: ledger {ledger}: {e}"));
                }
                if claimed > 0 {
                    js::log_error(&format!(
                        "asc: alert sweep: ledger {ledger}: sent {claimed} alert(s) no request carried"
                    ));
                }
            }
            Err(e) => js::log_error(&format!("asc: alert sweep: ledger {ledger}: {e}")),
        }
    }
}
