//! Trusted identity providers (`ADMIN_ISSUERS`, one JSON array per deployment, so per region)
//! and the claim checks of RFC 7519 §4.1 / OIDC Core §3.1.3.7 on a token one of them signed:
//! issuer, audience, expiry and not-before with a small skew. Roles come from the token's groups
//! through the issuer's mapping, each on one tenant (or, for `platform-admin`, on all).

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::jose::Alg;
use super::rbac::{Grant, Role};
use crate::ids::{is_valid_id, TenantId};

/// The deployment variable holding the issuers.
pub const ADMIN_ISSUERS_VAR: &str = "ADMIN_ISSUERS";
/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const DEFAULT_SKEW_S: u64 = 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssuer {
    issuer: String,
    audience: AudienceList,
    jwks_uri: String,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    groups_claim: Option<String>,
    #[serde(default)]
    skew_seconds: Option<u64>,
    #[serde(default)]
    roles: Vec<RawGrant>,
    /// The dashboard's OAuth client id at this issuer (authorization code + PKCE in the
    /// browser). Unset: the dashboard offers no sign-in with this issuer.
    #[serde(default)]
    dashboard_client_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AudienceList {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    group: String,
    role: String,
    #[serde(default)]
    tenant: Option<String>,
}

/// A group-to-role mapping of one issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupGrant {
    pub group: String,
    pub grant: Grant,
}

/// An identity provider the admin plane trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// Compared exactly with the token's `iss`.
    pub issuer: String,
    /// The token's `aud` must hold one of these.
    pub audiences: Vec<String>,
    /// Fetched through the region's egress gate (`admin_allowed_hosts`).
    pub jwks_uri: Url,
    pub algorithms: Vec<Alg>,
    /// The claim holding the caller's groups (`groups` unless configured).
    pub groups_claim: String,
    pub skew_s: u64,
    pub roles: Vec<GroupGrant>,
    /// The dashboard's public OAuth client at this issuer, if it signs people in with it.
    pub dashboard_client_id: Option<String>,
}

/// Reads `ADMIN_ISSUERS`. Every problem is reported with its path.
pub fn parse_issuers(text: &str) -> Result<Vec<Issuer>, Vec<String>> {
    let raw: Vec<RawIssuer> =
        serde_json::from_str(text).map_err(|e| vec![format!("{ADMIN_ISSUERS_VAR}: {e}")])?;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("{ADMIN_ISSUERS_VAR}[{i}].{field}");
        if r.issuer.trim().is_empty() {
            errors.push(format!("{}: must not be empty", at("issuer")));
        }
        let audiences = match r.audience {
            AudienceList::One(a) => vec![a],
            AudienceList::Many(a) => a,
        };
        if audiences.is_empty() || audiences.iter().any(|a| a.is_empty()) {
            errors.push(format!(
                "{}: must name at least one non-empty audience",
                at("audience")
            ));
        }
        let jwks_uri = match Url::parse(&r.jwks_uri) {
            Ok(u) if matches!(u.scheme(), "https" | "http") => Some(u),
            _ => {
                errors.push(format!(
                    "{}: {:?} is not an http(s) URL",
                    at("jwks_uri"),
                    r.jwks_uri
                ));
                None
            }
        };
        let mut algorithms = Vec::new();
        for (k, name) in r
            .algorithms
            .unwrap_or_else(|| vec!["RS256".into(), "ES256".into(), "EdDSA".into()])
            .iter()
            .enumerate()
        {
            match Alg::parse(name) {
                Some(a) => algorithms.push(a),
                None => errors.push(format!(
                    "{}: {name:?} is not accepted (RS256, ES256, EdDSA)",
                    at(&format!("algorithms[{k}]"))
                )),
            }
        }
        if algorithms.is_empty() {
            errors.push(format!(
                "{}: must name at least one algorithm",
                at("algorithms")
            ));
        }
        let skew_s = r.skew_seconds.unwrap_or(DEFAULT_SKEW_S);
        if skew_s > 300 {
            errors.push(format!("{}: at most 300", at("skew_seconds")));
        }
        let mut roles = Vec::new();
        for (k, g) in r.roles.into_iter().enumerate() {
            let at = |field: &str| at(&format!("roles[{k}].{field}"));
            let Some(role) = Role::parse(&g.role) else {
                errors.push(format!(
                    "{}: {:?} is not a role (platform-admin, tenant-admin, developer, finance, auditor)",
                    at("role"),
                    g.role
                ));
                continue;
            };
            let tenant = match (role, g.tenant) {
                (Role::PlatformAdmin, None) => None,
                (Role::PlatformAdmin, Some(_)) => {
                    errors.push(format!(
                        "{}: platform-admin reaches every tenant; omit tenant",
                        at("tenant")
                    ));
                    continue;
                }
                (_, Some(t)) if is_valid_id(&t) => Some(TenantId(t)),
                (_, Some(t)) => {
                    errors.push(format!(
                        "{}: {t:?} must be 1-64 of [a-z0-9_-]",
                        at("tenant")
                    ));
                    continue;
                }
                (_, None) => {
                    errors.push(format!(
                        "{}: required for role {}",
                        at("tenant"),
                        role.name()
                    ));
                    continue;
                }
            };
            if g.group.is_empty() {
                errors.push(format!("{}: must not be empty", at("group")));
            }
            roles.push(GroupGrant {
                group: g.group,
                grant: Grant { role, tenant },
            });
        }
        let dashboard_client_id = r.dashboard_client_id.filter(|c| !c.trim().is_empty());
        if let Some(c) = &dashboard_client_id {
            if !audiences.contains(c) {
                errors.push(format!(
                    "{}: {c:?} must also be listed in audience (the dashboard sends the ID token issued to it)",
                    at("dashboard_client_id")
                ));
            }
        }
        if let Some(jwks_uri) = jwks_uri {
            out.push(Issuer {
                issuer: r.issuer,
                audiences,
                jwks_uri,
                algorithms,
                groups_claim: r.groups_claim.unwrap_or_else(|| "groups".into()),
                skew_s,
                roles,
                dashboard_client_id,
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Who is calling, once the token checked out. Never holds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub issuer: String,
    pub grants: Vec<Grant>,
}

impl Principal {
    /// The roles as `role` or `role@tenant`, for audit records.
    pub fn role_names(&self) -> Vec<String> {
        self.grants
            .iter()
            .map(|g| match &g.tenant {
                Some(t) => format!("{}@{t}", g.role.name()),
                None => g.role.name().to_string(),
            })
            .collect()
    }
}

/// The `iss` of an unverified payload: only to choose which issuer's keys to check it with.
pub fn claimed_issuer(payload: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    v.get("iss")?.as_str().map(str::to_string)
}

fn numeric_date(claims: &Value, name: &str) -> Result<Option<u64>, String> {
    match claims.get(name) {
        None => Ok(None),
        // RFC 7519 §2: a NumericDate may have a fraction; whole seconds are enough here.
        Some(v) => match v.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
            _ => Err(format!("the token's {name} is not a NumericDate")),
        },
    }
}

/// Checks the claims of a token whose signature `issuer`'s key verified, at `now_s` (seconds
/// since the epoch), and maps its groups to grants.
pub fn check_claims(issuer: &Issuer, payload: &[u8], now_s: u64) -> Result<Principal, String> {
    let claims: Value = serde_json::from_slice(payload)
        .map_err(|_| "the token's claims are not JSON".to_string())?;
    if !claims.is_object() {
        return Err("the token's claims are not a JSON object".into());
    }
    if claims.get("iss").and_then(Value::as_str) != Some(issuer.issuer.as_str()) {
        return Err("the token's issuer is not trusted".into());
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => issuer.audiences.contains(a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| issuer.audiences.iter().any(|want| want == a)),
        _ => false,
    };
    if !aud_ok {
        return Err("the token is not meant for this audience".into());
    }
    let skew = issuer.skew_s;
    let exp = numeric_date(&claims, "exp")?.ok_or("the token has no expiry (exp)")?;
    if now_s >= exp.saturating_add(skew) {
        return Err("the token has expired".into());
    }
    if let Some(nbf) = numeric_date(&claims, "nbf")? {
        if now_s.saturating_add(skew) < nbf {
            return Err("the token is not valid yet (nbf)".into());
        }
    }
    if let Some(iat) = numeric_date(&claims, "iat")? {
        if now_s.saturating_add(skew) < iat {
            return Err("the token was issued in the future (iat)".into());
        }
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("the token has no subject (sub)")?
        .to_string();
    let groups: Vec<&str> = match claims.get(&issuer.groups_claim) {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    };
    let mut grants: Vec<Grant> = Vec::new();
    for g in &issuer.roles {
        if groups.contains(&g.group.as_str()) && !grants.contains(&g.grant) {
            grants.push(g.grant.clone());
        }
    }
    Ok(Principal {
        subject,
        issuer: issuer.issuer.clone(),
        grants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn issuer() -> Issuer {
        parse_issuers(
            &json!([{
                "issuer": "https://idp.example.com",
                "audience": ["asc-admin"],
                "jwks_uri": "https://idp.example.com/jwks",
                "roles": [
                    {"group": "platform", "role": "platform-admin"},
                    {"group": "acme-admins", "role": "tenant-admin", "tenant": "acme"},
                    {"group": "acme-money", "role": "finance", "tenant": "acme"}
                ]
            }])
            .to_string(),
        )
        .expect("valid")
        .remove(0)
    }

    fn claims(extra: Value) -> Vec<u8> {
        let mut c = json!({
            "iss": "https://idp.example.com", "aud": "asc-admin", "sub": "u-1",
            "exp": NOW + 300, "iat": NOW, "groups": ["acme-admins", "other"]
        });
        for (k, v) in extra.as_object().expect("object") {
            if v.is_null() {
                c.as_object_mut().expect("object").remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c.to_string().into_bytes()
    }

    #[test]
    fn a_good_token_maps_groups_to_grants() {
        let p = check_claims(&issuer(), &claims(json!({})), NOW).expect("valid");
        assert_eq!(p.subject, "u-1");
        assert_eq!(p.role_names(), ["tenant-admin@acme"]);
        // aud as an array holding ours among others (RFC 7519 §4.1.3).
        let p = check_claims(
            &issuer(),
            &claims(json!({"aud": ["x", "asc-admin"], "groups": "platform"})),
            NOW,
        )
        .expect("valid");
        assert_eq!(p.role_names(), ["platform-admin"]);
    }

    #[test]
    fn issuer_audience_and_times_are_enforced() {
        let i = issuer();
        let bad =
            |extra: Value, now: u64| check_claims(&i, &claims(extra), now).expect_err("refused");
        assert!(bad(json!({"iss": "https://evil.example.com"}), NOW).contains("issuer"));
        assert!(bad(json!({"aud": "someone-else"}), NOW).contains("audience"));
        assert!(bad(json!({"aud": null}), NOW).contains("audience"));
        assert!(bad(json!({"exp": null}), NOW).contains("exp"));
        // exp with a 60 s skew: valid until exp + 60 (exclusive).
        assert!(check_claims(&i, &claims(json!({"exp": NOW})), NOW + 59).is_ok());
        assert!(bad(json!({"exp": NOW}), NOW + 60).contains("expired"));
        // nbf with the same skew.
        assert!(check_claims(&i, &claims(json!({"nbf": NOW + 60})), NOW).is_ok());
        assert!(bad(json!({"nbf": NOW + 61}), NOW).contains("nbf"));
        assert!(bad(json!({"iat": NOW + 3600}), NOW).contains("iat"));
        assert!(bad(json!({"exp": "tomorrow"}), NOW).contains("NumericDate"));
        assert!(bad(json!({"sub": null}), NOW).contains("sub"));
        assert!(check_claims(&i, b"[1]", NOW).is_err());
    }

    #[test]
    fn config_errors_name_their_paths() {
        let errs = parse_issuers(
            &json!([{
                "issuer": "", "audience": [], "jwks_uri": "ftp://x", "algorithms": ["HS256"],
                "roles": [
                    {"group": "g", "role": "root"},
                    {"group": "g", "role": "tenant-admin"},
                    {"group": "g", "role": "platform-admin", "tenant": "a"}
                ]
            }])
            .to_string(),
        )
        .expect_err("invalid");
        let text = errs.join("\n");
        for path in [
            "ADMIN_ISSUERS[0].issuer",
            "ADMIN_ISSUERS[0].audience",
            "ADMIN_ISSUERS[0].jwks_uri",
            "ADMIN_ISSUERS[0].algorithms[0]",
            "ADMIN_ISSUERS[0].roles[0].role",
            "ADMIN_ISSUERS[0].roles[1].tenant",
            "ADMIN_ISSUERS[0].roles[2].tenant",
        ] {
            assert!(text.contains(path), "{path} missing in:\n{text}");
        }
        assert!(parse_issuers(
            r#"[{"issuer":"x","audience":"a","jwks_uri":"https://x/j","extra":1}]"#
        )
        .is_err());
    }
}
