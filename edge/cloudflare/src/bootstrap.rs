//! The deployment, read once per isolate from the Worker's vars (strictly: see
//! `asc_core::deployment`), and the gateway built from it.

use std::cell::RefCell;
use std::rc::Rc;

#[cfg(feature = "control")]
use asc_core::admin::AdminPlane;
use asc_core::deployment::Deployment;
use asc_core::Gateway;
use wasm_bindgen::JsValue;

use crate::js;

struct Booted {
    deployment: Rc<Deployment>,
    gateway: Rc<Gateway>,
    /// `Err`: `ADMIN_ISSUERS` is set but invalid (the admin plane fails closed; the gateway
    /// still serves). Only the control plane has one.
    #[cfg(feature = "control")]
    admin: Result<Option<Rc<AdminPlane>>, String>,
}

thread_local! {
    static BOOTED: RefCell<Option<Result<Booted, String>>> = const { RefCell::new(None) };
}

fn boot(env: &JsValue) -> Result<Booted, String> {
    let deployment =
        Deployment::from_vars(|name| js::env_string(env, name)).map_err(|errs| errs.join("; "))?;
    // Cloudflare sets CF-Connecting-IP itself; an isolate serves many requests, so refusals
    // before a tenant was known are counted over the default window.
    let gateway = Gateway::for_deployment(&deployment).with_refusals(
        "cf-connecting-ip",
        asc_core::pipeline::Settings::default().refusal_window_ms,
    );
    Ok(Booted {
        #[cfg(feature = "control")]
        admin: AdminPlane::from_vars(|name| js::env_string(env, name))
            .map(|plane| {
                let streams = deployment.audit_streams.all();
                plane.map(|p| Rc::new(p.with_audit_streams(streams)))
            })
            .map_err(|errs| errs.join("; ")),
        deployment: Rc::new(deployment),
        gateway: Rc::new(gateway),
    })
}

fn with<T>(env: &JsValue, f: impl FnOnce(&Booted) -> T) -> Result<T, String> {
    BOOTED.with(|b| {
        let mut b = b.borrow_mut();
        let booted = b.get_or_insert_with(|| boot(env));
        booted.as_ref().map(f).map_err(Clone::clone)
    })
}

/// The isolate's gateway and the jurisdiction its objects live in.
pub fn gateway(env: &JsValue) -> Result<(Rc<Gateway>, Option<String>), String> {
    with(env, |b| {
        (
            b.gateway.clone(),
            b.deployment.region.storage_jurisdiction.clone(),
        )
    })
}

#[cfg(feature = "control")]
pub fn deployment(env: &JsValue) -> Result<Rc<Deployment>, String> {
    with(env, |b| b.deployment.clone())
}

/// The isolate's admin plane: `None` when `ADMIN_ISSUERS` is not set.
#[cfg(feature = "control")]
pub fn admin_plane(env: &JsValue) -> Result<Option<Rc<AdminPlane>>, String> {
    with(env, |b| b.admin.clone())?
}
