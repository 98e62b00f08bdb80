//! The alert sweep, on the request plane's cron (`[triggers]` in wrangler.toml, every minute):
//! delivers the alerts that no request carried (a tenant without traffic since a delivery
//! failed, or an isolate that died holding a claim). A tenant ledger that holds such an alert
//! marks itself in the config store (`objects/ledger.rs`: a marker `alerts-due:<ledger>` and the
//! flag `alerts-due`); the sweep reads the flag, and only when it is set lists the markers and
//! delivers each ledger's due alerts with the tenant's webhook secrets, which only this Worker
//! holds. The flag and each marker are removed before what they announce is delivered: an alert
//! that fails again is due again after its backoff, and its ledger marks itself again then; a
//! marker the listing did not show yet is put again by its ledger within 5 minutes.

use asc_core::host::Host;
use asc_core::ledger::LedgerId;
use wasm_bindgen::prelude::*;

use crate::host::{WorkerHost, ALERT_SWEEP_FLAG, ALERT_SWEEP_PREFIX, CONFIG_KV};
use crate::{bootstrap, js};

/// Markers one run lists (KV's largest page).
const LISTED_PER_RUN: u32 = 1_000;
/// A run starts no ledger after this long (each may wait on its webhooks, 10 s a call): what it
/// leaves keeps its marker, and the flag is put back for the next run.
const RUN_BUDGET_MS: u64 = 25_000;

fn log_kv_failure(what: &str, e: &JsValue) {
    js::log_error(&format!(
        "asc: alert sweep: {what} failed: {}",
        js::describe(e)
    ));
}

/// One run of the sweep (the Worker's `scheduled` handler). Failures are logged, never thrown:
/// what was not delivered stays due in its ledger.
#[wasm_bindgen]
pub async fn sweep_alerts(env: JsValue, ctx: JsValue) {
    let (gw, jurisdiction) = match bootstrap::gateway(&env) {
        Ok(found) => found,
        Err(why) => return crate::log_misconfigured(&why),
    };
    match js::wait(js::kv_get(&env, CONFIG_KV, ALERT_SWEEP_FLAG)).await {
        Ok(flag) if flag.is_undefined() => return,
        Ok(_) => {}
        Err(e) => return log_kv_failure("reading its flag", &e),
    }
    // Taken before the listing: a ledger that marks itself from here on puts it back.
    if let Err(e) = js::wait(js::kv_delete(&env, CONFIG_KV, ALERT_SWEEP_FLAG)).await {
        return log_kv_failure("taking its flag", &e);
    }
    let listed = match js::wait(js::kv_list(
        &env,
        CONFIG_KV,
        ALERT_SWEEP_PREFIX,
        LISTED_PER_RUN,
    ))
    .await
    {
        Ok(names) => names.as_string().unwrap_or_default(),
        Err(e) => {
            log_kv_failure("listing the marked ledgers", &e);
            let _ = js::wait(js::kv_put(&env, CONFIG_KV, ALERT_SWEEP_FLAG, "1")).await;
            return;
        }
    };
    let host = WorkerHost::new(env.clone(), ctx, jurisdiction);
    let until = host.now().millis() + RUN_BUDGET_MS;
    let keys: Vec<&str> = listed.split('\0').filter(|k| !k.is_empty()).collect();
    let mut left = keys.len() >= LISTED_PER_RUN as usize;
    for key in keys {
        let Some(ledger) = key.strip_prefix(ALERT_SWEEP_PREFIX) else {
            continue;
        };
        if host.now().millis() > until {
            left = true;
            break;
        }
        if let Err(e) = js::wait(js::kv_delete(&env, CONFIG_KV, key)).await {
            log_kv_failure(&format!("taking the marker of ledger {ledger}"), &e);
            left = true;
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
    if left {
        if let Err(e) = js::wait(js::kv_put(&env, CONFIG_KV, ALERT_SWEEP_FLAG, "1")).await {
            log_kv_failure("putting its flag back", &e);
        }
    }
}
