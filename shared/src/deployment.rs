//! A deployment's settings, read once per isolate from the platform's variables (Worker vars,
//! Spin variables) and validated strictly: a variable that is set must be valid, or nothing is
//! served (fail closed, with a message naming the variable). Both hosts bootstrap through here.

use crate::audit::{AuditStreams, ShipPolicy};
use crate::region::{Region, RegionCatalog};

/// The variables, by their Worker names (Spin uses the same names in lowercase).
pub const REGION_VAR: &str = "ASC_REGION";
pub const AUDIT_SHARDS_VAR: &str = "AUDIT_SHARDS";
pub const BATCH_MAX_RECORDS_VAR: &str = "AUDIT_BATCH_MAX_RECORDS";
pub const BATCH_MAX_AGE_VAR: &str = "AUDIT_BATCH_MAX_AGE_MS";
pub const HEARTBEAT_VAR: &str = "AUDIT_HEARTBEAT_MS";
pub const FORWARD_VAR: &str = "AUDIT_FORWARD_MS";
pub const OTLP_ENDPOINT_VAR: &str = "OTLP_ENDPOINT";
pub const OTLP_FLUSH_VAR: &str = "OTLP_FLUSH_MS";
pub const OTLP_BATCH_VAR: &str = "OTLP_MAX_BATCH";

/// How long a ledger collects finished records before forwarding them to its audit stream, by
/// default: long enough that a busy ledger sends many per call, short next to a batch's age.
pub const DEFAULT_FORWARD_MS: u64 = 200;

#[derive(Debug, Clone)]
pub struct Deployment {
    pub region: Region,
    pub regions: RegionCatalog,
    pub audit_streams: AuditStreams,
    pub ship_policy: ShipPolicy,
    pub forward_delay_ms: u64,
    /// The OpenTelemetry collector, when `OTLP_ENDPOINT` is set.
    pub collector: Option<crate::telemetry::Collector>,
}

impl Deployment {
    /// Reads every setting through `var` (a variable's value, `None` when unset); collects every
    /// problem, each naming its variable.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Deployment, Vec<String>> {
        let mut errs = Vec::new();
        let regions = match crate::builtin_regions() {
            Ok(r) => Some(r),
            Err(e) => {
                errs.push(e);
                None
            }
        };
        let region = match (var(REGION_VAR), &regions) {
            (None, _) => {
                errs.push(format!(
                    "{REGION_VAR} is not set (a file in regions/, e.g. eu)"
                ));
                None
            }
            (Some(id), Some(regions)) => match regions.get(id.trim()) {
                Some(r) => Some(r.clone()),
                None => {
                    errs.push(format!("{REGION_VAR}={id:?} names no file in regions/"));
                    None
                }
            },
            (Some(_), None) => None,
        };
        let mut number = |name: &str, default: u64, min: u64, max: u64| -> u64 {
            match var(name) {
                None => default,
                Some(text) => match text.trim().parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => n,
                    _ => {
                        errs.push(format!(
                            "{name}={text:?} must be an integer from {min} to {max}"
                        ));
                        default
                    }
                },
            }
        };
        let defaults = ShipPolicy::default();
        let shards = number(
            AUDIT_SHARDS_VAR,
            1,
            1,
            u64::from(crate::audit::streams::MAX_SHARDS),
        );
        let ship_policy = ShipPolicy {
            max_records: number(
                BATCH_MAX_RECORDS_VAR,
                defaults.max_records as u64,
                1,
                100_000,
            ) as usize,
            max_age_ms: number(BATCH_MAX_AGE_VAR, defaults.max_age_ms, 1, 3_600_000),
            heartbeat_ms: number(HEARTBEAT_VAR, defaults.heartbeat_ms, 100, 86_400_000),
        };
        let forward_delay_ms = number(FORWARD_VAR, DEFAULT_FORWARD_MS, 0, 60_000);
        let flush_ms = number(OTLP_FLUSH_VAR, 1_000, 0, 60_000);
        let max_batch = number(OTLP_BATCH_VAR, 256, 1, 4_096) as usize;
        let (Some(region), Some(regions)) = (region, regions) else {
            return Err(errs);
        };
        let audit_streams = match AuditStreams::new(&region.id, shards as u32) {
            Ok(s) => s,
            Err(e) => {
                errs.push(format!("{AUDIT_SHARDS_VAR}: {e}"));
                return Err(errs);
            }
        };
        // The collector must be inside the region, like every other egress: refused here, at
        // start-up, rather than on the first export.
        let collector = match var(OTLP_ENDPOINT_VAR).filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(text) => match url::Url::parse(text.trim()) {
                Ok(url) => match region.check_telemetry_egress(&url) {
                    Ok(()) => Some(crate::telemetry::Collector {
                        flush_ms,
                        max_batch,
                        ..crate::telemetry::Collector::new(url)
                    }),
                    Err(e) => {
                        errs.push(format!("{OTLP_ENDPOINT_VAR}={text:?}: {}", e.message));
                        None
                    }
                },
                Err(e) => {
                    errs.push(format!("{OTLP_ENDPOINT_VAR}={text:?} is not a URL: {e}"));
                    None
                }
            },
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Deployment {
            collector,
            region,
            regions,
            audit_streams,
            ship_policy,
            forward_delay_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<Deployment, Vec<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Deployment::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_apply_to_unset_variables() {
        let d = read(&[("ASC_REGION", "eu")]).expect("valid");
        assert_eq!(d.region.id, "eu");
        assert_eq!(d.ship_policy, ShipPolicy::default());
        assert_eq!(d.audit_streams.all(), vec!["audit-eu"]);
        assert_eq!(d.forward_delay_ms, DEFAULT_FORWARD_MS);
        let d = read(&[("ASC_REGION", "us"), ("AUDIT_SHARDS", "16")]).expect("valid");
        assert_eq!(d.audit_streams.shards(), 16);
        assert!(d.collector.is_none());
    }

    #[test]
    fn a_collector_outside_the_region_is_refused_at_start() {
        let errs = read(&[
            ("ASC_REGION", "local"),
            ("OTLP_ENDPOINT", "https://otel.example.com:4318"),
        ])
        .expect_err("outside the region");
        assert!(
            errs[0].starts_with("OTLP_ENDPOINT=") && errs[0].contains("telemetry_hosts"),
            "{errs:?}"
        );
        // eu names no collector host at all: nothing may be exported from it until one is added.
        assert!(read(&[
            ("ASC_REGION", "eu"),
            ("OTLP_ENDPOINT", "https://127.0.0.1:4318")
        ])
        .is_err());
        let d = read(&[
            ("ASC_REGION", "local"),
            ("OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTLP_FLUSH_MS", "50"),
        ])
        .expect("loopback collector in the local region");
        let c = d.collector.expect("collector");
        assert_eq!(c.flush_ms, 50);
        assert_eq!(
            c.url("traces").expect("url").as_str(),
            "http://127.0.0.1:4318/v1/traces"
        );
    }

    #[test]
    fn a_set_but_invalid_variable_fails_closed_naming_it() {
        let errs = read(&[
            ("ASC_REGION", "eu"),
            ("AUDIT_BATCH_MAX_RECORDS", "5OO"),
            ("AUDIT_SHARDS", "0"),
            ("AUDIT_HEARTBEAT_MS", "-1"),
        ])
        .expect_err("invalid");
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs
            .iter()
            .any(|e| e.starts_with("AUDIT_BATCH_MAX_RECORDS=\"5OO\"")));
        assert!(errs.iter().any(|e| e.starts_with("AUDIT_SHARDS=\"0\"")));
        assert!(errs
            .iter()
            .any(|e| e.starts_with("AUDIT_HEARTBEAT_MS=\"-1\"")));
        let errs = read(&[]).expect_err("no region");
        assert!(errs[0].contains("ASC_REGION is not set"));
        let errs = read(&[("ASC_REGION", "mars")]).expect_err("unknown region");
        assert!(errs[0].contains("names no file"));
    }
}
