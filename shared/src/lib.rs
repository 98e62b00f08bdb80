//! ASC core: the gateway's request pipeline and everything it decides, as pure logic.
//!
//! No I/O, no clock, no environment, no platform crate: the adapters in `edge/` implement
//! [`host::Host`] and drive [`pipeline::Gateway`]; the scenario tests drive it with a fake host and
//! a simulated clock. Builds natively and for `wasm32-unknown-unknown` and `wasm32-wasip2`.
//!
//! Every input is a client's or an upstream's, so the code that handles it must not panic: a
//! malformed request or response becomes a [`GatewayError`], never an abort of the Worker or the
//! Spin component. Beyond the workspace's `unwrap_used`, non-test code may not `expect`, `panic!`,
//! `unreachable!` or index without a bound check; the few indexes that are in bounds by
//! construction (and on the guard's hot path) carry an `allow` that says why.
#![cfg_attr(
    not(test),
    deny(
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::indexing_slicing
    )
)]

pub mod admin;
pub mod alerts;
pub mod apikey;
pub mod audit;
pub mod budget;
pub mod cache;
pub mod catalog;
pub mod config;
pub mod deployment;
pub mod error;
pub mod guard;
pub mod headers;
pub mod hexstr;
pub mod host;
pub mod ids;
pub mod json_ser;
mod json_view;
mod json_write;
pub mod ledger;
pub mod pipeline;
pub mod providers;
pub mod ratelimit;
pub mod region;
pub mod response_cache;
pub mod routing;
pub mod secret;
pub mod sse;
pub mod telemetry;
pub mod tenant_store;
pub mod time;
pub mod trace;
pub mod validate;

pub use error::{ErrorKind, GatewayError};
pub use pipeline::{Gateway, Settings};

/// The region files compiled into every build, by id.
pub const REGION_FILES: &[(&str, &str)] = &[
    ("eu", include_str!("../../regions/eu.toml")),
    ("us", include_str!("../../regions/us.toml")),
    ("local", include_str!("../../regions/local.toml")),
];

include!(concat!(env!("OUT_DIR"), "/regions.rs"));

/// Every compiled-in region file, validated (read from the JSON build.rs made of them).
pub fn builtin_regions() -> Result<region::RegionCatalog, String> {
    let mut regions = Vec::new();
    for (id, text) in REGION_JSON {
        let region = region::Region::from_json(text)
            .map_err(|errs| format!("regions/{id}.toml: {}", errs.join("; ")))?;
        if region.id != *id {
            return Err(format!(
                "regions/{id}.toml: id is {:?}, expected {id:?}",
                region.id
            ));
        }
        regions.push(region);
    }
    Ok(region::RegionCatalog::new(regions))
}

#[cfg(test)]
mod tests {
    #[test]
    fn regions_are_valid() {
        let catalog = super::builtin_regions().expect("every region file validates");
        assert_eq!(catalog.ids().collect::<Vec<_>>(), ["eu", "us", "local"]);
        // Only the loopback development region may use plain http.
        for id in ["eu", "us"] {
            let r = catalog.get(id).expect("region");
            assert!(!r.allow_plain_http);
            assert!(r.storage_jurisdiction.is_some());
            assert!(r
                .allowed_upstream_hosts
                .iter()
                .all(|h| !h.starts_with("127.") && h != "localhost"));
        }
    }
}
