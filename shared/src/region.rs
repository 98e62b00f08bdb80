//! Regions: where a deployment may serve from and send to. A deployment serves exactly one region
//! and fails closed: `Region::check_egress` is the one gate every outbound request passes.

use serde::Deserialize;
use url::Url;

use crate::error::{ErrorKind, GatewayError};

/// One `regions/<id>.toml` file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionFile {
    id: String,
    display_name: String,
    hostnames: Vec<String>,
    allowed_upstream_hosts: Vec<String>,
    storage_jurisdiction: Option<String>,
    #[serde(default)]
    allow_plain_http: bool,
    /// Identity providers' hosts the admin plane may fetch signing keys (JWKS) from, beside the
    /// upstream allowlist. Only JWKS fetches may use them, never a model request.
    #[serde(default)]
    admin_allowed_hosts: Vec<String>,
    /// OpenTelemetry collector hosts the deployment may export to (`OTLP_ENDPOINT`).
    #[serde(default)]
    telemetry_hosts: Vec<String>,
    /// Hosts tenants' alert webhooks may be sent to.
    #[serde(default)]
    webhook_hosts: Vec<String>,
}

/// A validated region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub id: String,
    pub display_name: String,
    /// Geo-bound hostnames this deployment answers on (lowercase, no port).
    pub hostnames: Vec<String>,
    /// Upstream hosts requests may be sent to (lowercase, exact match; any port).
    pub allowed_upstream_hosts: Vec<String>,
    /// Where Durable Objects and buckets are pinned (`eu`, `us`, `fedramp`), if anywhere.
    pub storage_jurisdiction: Option<String>,
    /// Only for the loopback development region: `http://` upstreams are accepted.
    pub allow_plain_http: bool,
    /// Identity-provider hosts for the admin plane's JWKS fetches only.
    pub admin_allowed_hosts: Vec<String>,
    /// Collector hosts for telemetry exports only (any port).
    pub telemetry_hosts: Vec<String>,
    /// Hosts for tenants' alert webhooks only (any port).
    pub webhook_hosts: Vec<String>,
}

impl Region {
    /// Parses and validates a region file, naming every problem with its field.
    pub fn from_toml(text: &str) -> Result<Region, Vec<String>> {
        let file: RegionFile = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        Region::validate(file)
    }

    /// The same from the region file's JSON form (what the gateway compiles in).
    pub fn from_json(text: &str) -> Result<Region, Vec<String>> {
        let file: RegionFile = serde_json::from_str(text).map_err(|e| vec![e.to_string()])?;
        Region::validate(file)
    }

    fn validate(file: RegionFile) -> Result<Region, Vec<String>> {
        let mut errors = Vec::new();
        if !crate::ids::is_valid_id(&file.id) {
            errors.push(format!("id: {:?} must be 1-64 of [a-z0-9_-]", file.id));
        }
        if file.hostnames.is_empty() {
            errors.push("hostnames: must name at least one hostname".to_string());
        }
        for (i, h) in file.hostnames.iter().enumerate() {
            if !is_plain_host(h) {
                errors.push(format!("hostnames[{i}]: {h:?} must be a lowercase hostname without scheme, port or path"));
            }
        }
        for (i, h) in file.allowed_upstream_hosts.iter().enumerate() {
            if !is_plain_host(h) {
                errors.push(format!("allowed_upstream_hosts[{i}]: {h:?} must be a lowercase hostname without scheme, port or path"));
            }
        }
        for (i, h) in file.admin_allowed_hosts.iter().enumerate() {
            if !is_plain_host(h) {
                errors.push(format!("admin_allowed_hosts[{i}]: {h:?} must be a lowercase hostname without scheme, port or path"));
            }
        }
        for (field, hosts) in [
            ("telemetry_hosts", &file.telemetry_hosts),
            ("webhook_hosts", &file.webhook_hosts),
        ] {
            for (i, h) in hosts.iter().enumerate() {
                if !is_plain_host(h) {
                    errors.push(format!("{field}[{i}]: {h:?} must be a lowercase hostname without scheme, port or path"));
                } else if file.allow_plain_http && !is_loopback(h) {
                    errors.push(format!("{field}[{i}]: {h:?}: a region that allows http may only name loopback hosts"));
                }
            }
        }
        if let Some(j) = &file.storage_jurisdiction {
            if !matches!(j.as_str(), "eu" | "us" | "fedramp") {
                errors.push(format!(
                    "storage_jurisdiction: {j:?} must be one of eu, us, fedramp (or omitted)"
                ));
            }
        }
        if file.allow_plain_http && !file.allowed_upstream_hosts.iter().all(|h| is_loopback(h)) {
            errors.push(
                "allow_plain_http: only a region whose upstreams are all loopback may allow http"
                    .to_string(),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Region {
            id: file.id,
            display_name: file.display_name,
            hostnames: file.hostnames,
            allowed_upstream_hosts: file.allowed_upstream_hosts,
            storage_jurisdiction: file.storage_jurisdiction,
            allow_plain_http: file.allow_plain_http,
            admin_allowed_hosts: file.admin_allowed_hosts,
            telemetry_hosts: file.telemetry_hosts,
            webhook_hosts: file.webhook_hosts,
        })
    }

    /// Whether a request's `Host` header names this region (port ignored, case-insensitive).
    pub fn serves_host(&self, host_header: &str) -> bool {
        let host = strip_port(host_header).to_ascii_lowercase();
        self.hostnames.contains(&host)
    }

    /// The one egress gate: `Ok` only for an http(s) URL whose host is on this region's allowlist,
    /// with no credentials embedded, over https unless this is the loopback development region.
    pub fn check_egress(&self, url: &Url) -> Result<(), GatewayError> {
        self.check_egress_to(url, &[])
    }

    /// The same gate for the admin plane's JWKS fetches: the upstream allowlist and the
    /// region's `admin_allowed_hosts`.
    pub fn check_admin_egress(&self, url: &Url) -> Result<(), GatewayError> {
        self.check_egress_to(url, &self.admin_allowed_hosts)
    }

    /// The gate for telemetry exports: the region's `telemetry_hosts` only, any port.
    pub fn check_telemetry_egress(&self, url: &Url) -> Result<(), GatewayError> {
        self.check_egress_only(url, &self.telemetry_hosts, "telemetry_hosts")
    }

    /// The gate for alert webhooks: the region's `webhook_hosts` only, any port.
    pub fn check_webhook_egress(&self, url: &Url) -> Result<(), GatewayError> {
        self.check_egress_only(url, &self.webhook_hosts, "webhook_hosts")
    }

    fn check_egress_only(
        &self,
        url: &Url,
        hosts: &[String],
        field: &str,
    ) -> Result<(), GatewayError> {
        let host = self.checked_host(url)?;
        if !hosts.contains(&host) {
            return Err(self.deny(format!("host {host} is not in the region's {field}")));
        }
        Ok(())
    }

    fn deny(&self, why: String) -> GatewayError {
        GatewayError::new(
            ErrorKind::EgressDenied,
            format!("Refused to send outside region {}: {why}.", self.id),
        )
    }

    /// What every gate checks first: a host, an allowed scheme, no embedded credentials.
    /// Returns the host, lowercase, without IPv6 brackets.
    fn checked_host(&self, url: &Url) -> Result<String, GatewayError> {
        let host = match url.host_str() {
            Some(h) => h
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            None => return Err(self.deny("the URL has no host".into())),
        };
        match url.scheme() {
            "https" => {}
            "http" if self.allow_plain_http => {}
            other => return Err(self.deny(format!("scheme {other} is not allowed"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.deny("URLs may not embed credentials".into()));
        }
        Ok(host)
    }

    fn check_egress_to(&self, url: &Url, also: &[String]) -> Result<(), GatewayError> {
        let deny = |why: String| self.deny(why);
        let host = self.checked_host(url)?;
        // An allowlisted name on another port is another service: only the scheme's default
        // port (`url` drops an explicit :443), except in the loopback development region.
        if url.port().is_some() && !self.allow_plain_http {
            return Err(deny("upstream URLs may not name a port".into()));
        }
        if !self.allowed_upstream_hosts.contains(&host) && !also.contains(&host) {
            return Err(deny(format!(
                "host {host} is not on the region's upstream allowlist"
            )));
        }
        Ok(())
    }
}

/// All regions this build knows, so a misrouted tenant can be told where to go.
#[derive(Debug, Clone)]
pub struct RegionCatalog {
    regions: Vec<Region>,
}

impl RegionCatalog {
    pub fn new(regions: Vec<Region>) -> Self {
        RegionCatalog { regions }
    }

    pub fn get(&self, id: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.regions.iter().map(|r| r.id.as_str())
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [::1]:8787
        return host.split(']').next().map(|h| &h[1..]).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

fn is_plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-' || b == b':'
        })
}

fn is_loopback(h: &str) -> bool {
    h == "localhost" || h == "::1" || h.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eu() -> Region {
        Region::from_toml(
            r#"
            id = "eu"
            display_name = "EU"
            hostnames = ["eu.asc.example.com"]
            allowed_upstream_hosts = ["eu.api.openai.com", "api.mistral.ai"]
            storage_jurisdiction = "eu"
            "#,
        )
        .expect("valid region")
    }

    fn egress(region: &Region, url: &str) -> Result<(), ErrorKind> {
        let url = Url::parse(url).expect("url");
        region.check_egress(&url).map_err(|e| e.kind)
    }

    #[test]
    fn telemetry_and_webhooks_go_only_to_their_own_hosts() {
        let r = Region::from_toml(
            "id = \"x\"\ndisplay_name = \"x\"\nhostnames = [\"x.example\"]\n\
             allowed_upstream_hosts = [\"api.example.com\"]\n\
             telemetry_hosts = [\"otel.example.com\"]\nwebhook_hosts = [\"hooks.example.com\"]",
        )
        .expect("region");
        let url = |u: &str| Url::parse(u).expect("url");
        // A collector commonly listens on 4318: any port is fine for its own host.
        assert!(r
            .check_telemetry_egress(&url("https://otel.example.com:4318/"))
            .is_ok());
        assert!(r
            .check_webhook_egress(&url("https://hooks.example.com/asc"))
            .is_ok());
        for (gate, bad) in [
            ("telemetry", "https://api.example.com/"), // an upstream is not a collector
            ("telemetry", "https://hooks.example.com/"), // nor a webhook host
            ("telemetry", "http://otel.example.com/"), // plain http outside the local region
            ("webhook", "https://otel.example.com/"),
            ("webhook", "https://u:p@hooks.example.com/"),
        ] {
            let result = match gate {
                "telemetry" => r.check_telemetry_egress(&url(bad)),
                _ => r.check_webhook_egress(&url(bad)),
            };
            assert_eq!(
                result.map_err(|e| e.code()),
                Err("egress_denied"),
                "{gate} {bad}"
            );
        }
        // Model traffic cannot use them either.
        assert!(r.check_egress(&url("https://otel.example.com/")).is_err());
        let loopback_only = Region::from_toml(
            "id = \"l\"\ndisplay_name = \"l\"\nhostnames = [\"127.0.0.1\"]\n\
             allowed_upstream_hosts = [\"127.0.0.1\"]\nallow_plain_http = true\n\
             telemetry_hosts = [\"otel.example.com\"]",
        )
        .expect_err("an http region names loopback collectors only");
        assert!(
            loopback_only[0].starts_with("telemetry_hosts[0]"),
            "{loopback_only:?}"
        );
    }

    #[test]
    fn egress_allows_only_listed_https_hosts() {
        let r = eu();
        assert_eq!(
            egress(&r, "https://eu.api.openai.com/v1/chat/completions"),
            Ok(())
        );
        assert_eq!(egress(&r, "https://EU.API.OPENAI.COM/v1"), Ok(()));
        let denied = Err(ErrorKind::EgressDenied);
        assert_eq!(egress(&r, "https://api.openai.com/v1"), denied);
        assert_eq!(egress(&r, "http://eu.api.openai.com/v1"), denied);
        assert_eq!(
            egress(&r, "https://eu.api.openai.com.evil.example/v1"),
            denied
        );
        assert_eq!(egress(&r, "https://user:pw@eu.api.openai.com/v1"), denied);
        assert_eq!(egress(&r, "https://127.0.0.1/v1"), denied);
        assert_eq!(egress(&r, "ftp://eu.api.openai.com/"), denied);
        // Bypass attempts: a trailing dot names the same host to DNS but is not on the list, so
        // it fails closed; userinfo in any form; a non-default port; IPv6 and numeric IPv4
        // literals; look-alike Unicode (IDNA turns it into punycode, not on the list).
        for bypass in [
            "https://eu.api.openai.com./v1",
            "https://x@eu.api.openai.com/v1",
            "https://:pw@eu.api.openai.com/v1",
            "https://evil.example@eu.api.openai.com/v1",
            "https://eu.api.openai.com:8443/v1",
            "https://eu.api.openai.com:80/v1",
            "https://[::1]/v1",
            "https://[::ffff:7f00:1]/v1",
            "https://2130706433/v1",
            "https://0x7f.1/v1",
            "https://eu.api.openai.com%2eevil.example/v1",
            "https://eu.api.\u{43e}penai.com/v1",
            "https://eu.api.openai.com\u{3002}evil.example/v1",
            "file:///etc/passwd",
            "data:text/plain,x",
        ] {
            // Some do not even parse (then the tenant config naming them is refused).
            if Url::parse(bypass).is_ok() {
                assert_eq!(egress(&r, bypass), denied, "{bypass}");
            }
        }
        // Mixed case and an explicit default port are the same allowlisted origin.
        assert_eq!(egress(&r, "https://Eu.Api.OpenAI.com:443/v1"), Ok(()));
        // The loopback region (plain http, any port) still takes only its listed hosts.
        let local = crate::builtin_regions()
            .expect("regions")
            .get("local")
            .expect("local")
            .clone();
        assert_eq!(egress(&local, "http://127.0.0.1:9100/v1"), Ok(()));
        assert_eq!(egress(&local, "http://[::2]:9100/v1"), denied);
    }

    #[test]
    fn admin_hosts_open_only_the_admin_gate() {
        let r = Region::from_toml(
            r#"
            id = "eu"
            display_name = "EU"
            hostnames = ["eu.asc.example.com"]
            allowed_upstream_hosts = ["api.mistral.ai"]
            admin_allowed_hosts = ["login.example.com"]
            "#,
        )
        .expect("valid region");
        let idp = Url::parse("https://login.example.com/jwks").expect("url");
        assert!(r.check_admin_egress(&idp).is_ok());
        assert_eq!(
            r.check_egress(&idp).map_err(|e| e.kind),
            Err(ErrorKind::EgressDenied)
        );
        let up = Url::parse("https://api.mistral.ai/v1").expect("url");
        assert!(r.check_admin_egress(&up).is_ok());
        let plain = Url::parse("http://login.example.com/jwks").expect("url");
        assert!(r.check_admin_egress(&plain).is_err());
        assert!(Region::from_toml(
            "id = \"x\"\ndisplay_name = \"x\"\nhostnames = [\"x.example\"]\nallowed_upstream_hosts = []\nadmin_allowed_hosts = [\"https://a\"]"
        )
        .is_err());
    }

    #[test]
    fn host_header_matching_ignores_port_and_case() {
        let r = eu();
        assert!(r.serves_host("eu.asc.example.com"));
        assert!(r.serves_host("EU.asc.example.com:443"));
        assert!(!r.serves_host("us.asc.example.com"));
        assert!(!r.serves_host("eu.asc.example.com.evil.example"));
    }

    #[test]
    fn region_errors_name_their_fields() {
        let errs = Region::from_toml(
            r#"
            id = "EU"
            display_name = "x"
            hostnames = ["https://eu.example.com"]
            allowed_upstream_hosts = ["api.openai.com"]
            storage_jurisdiction = "mars"
            allow_plain_http = true
            "#,
        )
        .expect_err("invalid");
        let all = errs.join("\n");
        for field in [
            "id:",
            "hostnames[0]:",
            "storage_jurisdiction:",
            "allow_plain_http:",
        ] {
            assert!(all.contains(field), "missing {field} in {all}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let errs = Region::from_toml(
            "id = \"eu\"\ndisplay_name = \"x\"\nhostnames = [\"a.b\"]\nallowed_upstream_hosts = []\nhostname = \"typo\"\n",
        )
        .expect_err("unknown field");
        assert!(errs[0].contains("hostname"), "{errs:?}");
    }

    #[test]
    fn strip_port_handles_ipv6() {
        assert_eq!(strip_port("[::1]:8787"), "::1");
        assert_eq!(strip_port("127.0.0.1:8787"), "127.0.0.1");
        assert_eq!(strip_port("example.com"), "example.com");
    }
}
