//! Which admin endpoint a method and path name, the tenant it concerns, and the action the
//! role policy is asked about.

use super::rbac::Action;
use crate::error::{ErrorKind, GatewayError};
use crate::ids::{is_valid_id, KeyId, TenantId};
use crate::tenant_store::{KeyListing, KEY_LIST_MAX};

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
    /// A page of keys; the query string (read once the caller is known: [`key_page`]).
    Keys(String),
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
            Endpoint::Keys(_) => Action::KeyList,
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

/// A listing's page when none is asked for.
pub const KEY_PAGE_DEFAULT: usize = 100;

/// `?limit=` (1 to [`KEY_LIST_MAX`], [`KEY_PAGE_DEFAULT`] if not given) keys past `&after=` (a
/// key id), `&order=desc` (newest first, the default) or `asc` (creation order).
pub(super) fn key_page(query: &str) -> Result<KeyListing, GatewayError> {
    let mut page = KeyListing {
        limit: Some(KEY_PAGE_DEFAULT),
        newest_first: true,
        ..KeyListing::default()
    };
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let bad = |message: String| Err(GatewayError::invalid_request(k.as_ref(), message));
        match (k.as_ref(), v.as_ref()) {
            ("limit", n) => match n.parse::<usize>() {
                Ok(n) if (1..=KEY_LIST_MAX).contains(&n) => page.limit = Some(n),
                _ => {
                    return bad(format!(
                        "limit must be an integer from 1 to {KEY_LIST_MAX}."
                    ))
                }
            },
            ("after", id) if is_valid_id(id) => page.after = Some(KeyId(id.to_string())),
            ("after", _) => return bad("after must be a key id from a listing.".into()),
            ("order", "desc") => page.newest_first = true,
            ("order", "asc") => page.newest_first = false,
            ("order", _) => return bad("order must be asc or desc.".into()),
            _ => return bad("The parameters are limit, after and order.".into()),
        }
    }
    Ok(page)
}

pub(super) fn not_found(what: String) -> GatewayError {
    GatewayError::new(ErrorKind::AdminNotFound, what)
}

pub(super) fn route(
    method: &str,
    path: &str,
) -> Result<(Endpoint, Option<TenantId>), GatewayError> {
    // Adapters pass the query string for admin paths (analytics, alerts, audit and keys read it).
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
        ("GET", ["keys"]) => Endpoint::Keys(query.to_string()),
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
