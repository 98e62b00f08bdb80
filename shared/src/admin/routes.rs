//! Which admin endpoint a method and path name, the tenant it concerns, and the action the
//! role policy is asked about.

use super::rbac::Action;
use crate::error::{ErrorKind, GatewayError};
use crate::ids::{is_valid_id, KeyId, TenantId};

pub(super) enum Endpoint {
    Me,
    /// The dashboard's sign-in settings: public.
    Login,
    Get(Option<u64>),
    Validate,
    Put,
    History,
    Diff(u64, u64),
    Rollback,
    Keys,
    Mint,
    Revoke(KeyId),
    Rotate(KeyId),
    Usage,
    /// Usage analytics; the query string.
    Analytics(String),
    /// The latest alerts; how many.
    Alerts(usize),
    Routes,
    /// The audit search; the query string.
    Audit(String),
}

impl Endpoint {
    pub(super) fn action(&self) -> Action {
        match self {
            Endpoint::Me | Endpoint::Login | Endpoint::Get(_) => Action::TenantGet,
            Endpoint::Validate => Action::TenantValidate,
            Endpoint::Put => Action::TenantPut,
            Endpoint::History => Action::TenantHistory,
            Endpoint::Diff(..) => Action::TenantDiff,
            Endpoint::Rollback => Action::TenantRollback,
            Endpoint::Keys => Action::KeyList,
            Endpoint::Mint => Action::KeyMint,
            Endpoint::Revoke(_) => Action::KeyRevoke,
            Endpoint::Rotate(_) => Action::KeyRotate,
            Endpoint::Usage | Endpoint::Analytics(_) => Action::UsageRead,
            Endpoint::Alerts(_) => Action::AlertsRead,
            Endpoint::Routes => Action::RouteRead,
            Endpoint::Audit(_) => Action::AuditSearch,
        }
    }

    /// Whether the endpoint changes the tenant's config or keys (its record goes write-ahead).
    pub(super) fn changes_state(&self) -> bool {
        matches!(
            self,
            Endpoint::Put
                | Endpoint::Rollback
                | Endpoint::Mint
                | Endpoint::Revoke(_)
                | Endpoint::Rotate(_)
        )
    }
}

pub(super) fn not_found(what: String) -> GatewayError {
    GatewayError::new(ErrorKind::AdminNotFound, what)
}

pub(super) fn route(
    method: &str,
    path: &str,
) -> Result<(Endpoint, Option<TenantId>), GatewayError> {
    // Adapters pass the query string for admin paths (only analytics and alerts read it).
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let rest = path.strip_prefix("/admin/v1/").unwrap_or("");
    let parts: Vec<&str> = rest.split('/').collect();
    let unknown = || {
        GatewayError::new(
            ErrorKind::UnknownRoute,
            format!("Unknown admin URL: {method} {path}."),
        )
    };
    let number = |s: &str| s.parse::<u64>().map_err(|_| unknown());
    if parts == ["me"] || parts == ["login"] {
        let endpoint = if parts == ["me"] {
            Endpoint::Me
        } else {
            Endpoint::Login
        };
        return match method {
            "GET" => Ok((endpoint, None)),
            _ => Err(method_not_allowed(method, path)),
        };
    }
    let ["tenants", tenant, tail @ ..] = parts.as_slice() else {
        return Err(unknown());
    };
    if !is_valid_id(tenant) {
        return Err(GatewayError::new(
            ErrorKind::InvalidRequest,
            format!("{tenant:?} is not a tenant id (1-64 of [a-z0-9_-])."),
        ));
    }
    let endpoint = match (method, tail) {
        ("GET", []) => Endpoint::Get(None),
        ("PUT", []) => Endpoint::Put,
        ("POST", ["validate"]) => Endpoint::Validate,
        ("GET", ["history"]) => Endpoint::History,
        ("GET", ["versions", n]) => Endpoint::Get(Some(number(n)?)),
        ("GET", ["diff", a, b]) => Endpoint::Diff(number(a)?, number(b)?),
        ("POST", ["rollback"]) => Endpoint::Rollback,
        ("GET", ["keys"]) => Endpoint::Keys,
        ("POST", ["keys"]) => Endpoint::Mint,
        ("POST", ["keys", k, "revoke"]) => Endpoint::Revoke(KeyId((*k).to_string())),
        ("POST", ["keys", k, "rotate"]) => Endpoint::Rotate(KeyId((*k).to_string())),
        ("GET", ["usage"]) => Endpoint::Usage,
        ("GET", ["routes"]) => Endpoint::Routes,
        ("GET", ["audit"]) => Endpoint::Audit(query.to_string()),
        ("GET", ["analytics"]) => Endpoint::Analytics(query.to_string()),
        ("GET", ["alerts"]) => {
            let mut limit = 50;
            for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
                match (k.as_ref(), v.parse::<usize>()) {
                    ("limit", Ok(n)) if (1..=100).contains(&n) => limit = n,
                    _ => {
                        return Err(GatewayError::invalid_request(
                            k.as_ref(),
                            "the only parameter is limit, from 1 to 100",
                        ))
                    }
                }
            }
            Endpoint::Alerts(limit)
        }
        (
            _,
            []
            | ["validate" | "history" | "rollback" | "keys" | "usage" | "analytics" | "alerts"
            | "routes" | "audit"],
        ) => return Err(method_not_allowed(method, path)),
        _ => return Err(unknown()),
    };
    Ok((endpoint, Some(TenantId((*tenant).to_string()))))
}

pub(super) fn method_not_allowed(method: &str, path: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::MethodNotAllowed,
        format!("{method} is not allowed on {path}."),
    )
}
