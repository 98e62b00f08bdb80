//! The web dashboard at `/admin`: static files (built from `dashboard/` by
//! `scripts/build-dashboard`) that the adapters serve from their asset store, with the headers
//! chosen here, and the sign-in settings the page reads before anyone is signed in
//! (`GET /admin/v1/login`). Everything the page shows comes from the `/admin/v1` endpoints,
//! under the caller's own token and roles.

use serde_json::{json, Value};
use url::Url;

use super::issuer::Issuer;

/// Whether `path` is one of the dashboard's files (`/admin`, `/admin/`, `/admin/assets/...`),
/// as opposed to the admin API (`/admin/v1/...`).
pub fn is_dashboard_path(path: &str) -> bool {
    // Adapters pass admin paths with their query string.
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    if path == "/admin" {
        return true;
    }
    match path.strip_prefix("/admin/") {
        Some(rest) => rest != "v1" && !rest.starts_with("v1/"),
        None => false,
    }
}

/// The origins the page may talk to besides its own: each issuer that signs people in to the
/// dashboard (OIDC discovery and the token endpoint are called from the page).
fn issuer_origins(issuers: &[Issuer]) -> Vec<String> {
    let mut out: Vec<String> = issuers
        .iter()
        .filter(|i| i.dashboard_client_id.is_some())
        .filter_map(|i| Url::parse(&i.issuer).ok())
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The Content-Security-Policy of the dashboard: its own scripts and styles only (no inline
/// code, no `eval`), no frames, no plugins; fetches to itself and to the sign-in issuers.
pub fn content_security_policy(issuers: &[Issuer]) -> String {
    let mut connect = String::from("'self'");
    for o in issuer_origins(issuers) {
        connect.push(' ');
        connect.push_str(&o);
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         font-src 'self'; connect-src {connect}; manifest-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'; object-src 'none'"
    )
}

/// Headers added to every dashboard file.
pub fn security_headers(issuers: &[Issuer]) -> Vec<(String, String)> {
    [
        ("content-security-policy", content_security_policy(issuers)),
        ("x-content-type-options", "nosniff".into()),
        ("x-frame-options", "DENY".into()),
        ("referrer-policy", "no-referrer".into()),
        ("cross-origin-opener-policy", "same-origin".into()),
        ("cross-origin-resource-policy", "same-origin".into()),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), payment=(), usb=()".into(),
        ),
        (
            "strict-transport-security",
            "max-age=31536000; includeSubDomains".into(),
        ),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v))
    .collect()
}

/// `GET /admin/v1/login`: the issuers people can sign in to the dashboard with (public: the
/// page needs it before it has a token; it names no roles, groups or tenants).
pub fn login_settings(issuers: &[Issuer]) -> Value {
    let list: Vec<Value> = issuers
        .iter()
        .filter_map(|i| {
            i.dashboard_client_id
                .as_ref()
                .map(|c| json!({"issuer": i.issuer, "client_id": c}))
        })
        .collect();
    json!({"object": "admin_login", "issuers": list})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::issuer::parse_issuers;

    #[test]
    fn only_the_dashboard_files_are_dashboard_paths() {
        for p in [
            "/admin",
            "/admin/",
            "/admin/?code=x&state=y",
            "/admin/assets/app.js",
            "/admin/v1x",
        ] {
            assert!(is_dashboard_path(p), "{p}");
        }
        for p in [
            "/admin/v1",
            "/admin/v1/me",
            "/admin/v1/tenants/a/audit?limit=1",
            "/administrator",
            "/v1/models",
            "/",
        ] {
            assert!(!is_dashboard_path(p), "{p}");
        }
    }

    #[test]
    fn the_policy_allows_no_inline_code_and_only_the_sign_in_issuers() {
        let issuers = parse_issuers(
            r#"[{"issuer": "https://login.example.com/tenant/", "audience": ["asc-admin", "dash"],
                 "jwks_uri": "https://login.example.com/jwks", "dashboard_client_id": "dash"},
                {"issuer": "https://other.example.com", "audience": "asc-admin",
                 "jwks_uri": "https://other.example.com/jwks"}]"#,
        )
        .expect("valid");
        let csp = content_security_policy(&issuers);
        assert!(
            csp.contains("connect-src 'self' https://login.example.com;"),
            "{csp}"
        );
        assert!(!csp.contains("other.example.com"));
        assert!(!csp.contains("unsafe"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("script-src 'self';"));
        let login = login_settings(&issuers);
        assert_eq!(login["issuers"].as_array().map(Vec::len), Some(1));
        assert_eq!(login["issuers"][0]["client_id"], "dash");
    }

    #[test]
    fn a_dashboard_client_must_be_an_accepted_audience() {
        let errs = parse_issuers(
            r#"[{"issuer": "https://l.example.com", "audience": "asc-admin",
                 "jwks_uri": "https://l.example.com/jwks", "dashboard_client_id": "dash"}]"#,
        )
        .expect_err("dash is not an audience");
        assert!(errs[0].contains("dashboard_client_id"), "{errs:?}");
    }
}
