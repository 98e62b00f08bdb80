//! Roles and what they may do: the policy is data ([`POLICY`]), printed as a table in the README,
//! and [`authorize`] is the one decision every admin endpoint asks.

use serde::{Deserialize, Serialize};

use crate::ids::TenantId;

/// A role, granted from a token's groups by the issuer's mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything, on every tenant of the region.
    PlatformAdmin,
    /// Everything on its tenant.
    TenantAdmin,
    /// Reads its tenant's config; mints, lists, revokes and rotates the keys it minted.
    Developer,
    /// Reads usage and budgets.
    Finance,
    /// Reads the config, its history, the routes and the audit trail.
    Auditor,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform-admin",
            Role::TenantAdmin => "tenant-admin",
            Role::Developer => "developer",
            Role::Finance => "finance",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        ROLES.iter().copied().find(|r| r.name() == name)
    }
}

pub const ROLES: &[Role] = &[
    Role::PlatformAdmin,
    Role::TenantAdmin,
    Role::Developer,
    Role::Finance,
    Role::Auditor,
];

/// What an admin request does. Its name is also the audit record's operation (`admin.<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    TenantGet,
    TenantValidate,
    TenantPut,
    TenantHistory,
    TenantDiff,
    TenantRollback,
    KeyMint,
    KeyList,
    KeyRevoke,
    KeyRotate,
    UsageRead,
    AlertsRead,
    RouteRead,
    AuditSearch,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::TenantGet => "tenant.get",
            Action::TenantValidate => "tenant.validate",
            Action::TenantPut => "tenant.put",
            Action::TenantHistory => "tenant.history",
            Action::TenantDiff => "tenant.diff",
            Action::TenantRollback => "tenant.rollback",
            Action::KeyMint => "key.mint",
            Action::KeyList => "key.list",
            Action::KeyRevoke => "key.revoke",
            Action::KeyRotate => "key.rotate",
            Action::UsageRead => "usage.read",
            Action::AlertsRead => "alerts.read",
            Action::RouteRead => "route.read",
            Action::AuditSearch => "audit.search",
        }
    }
}

/// How far a grant reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every key of the tenant.
    Tenant,
    /// Only keys the caller minted (developers).
    OwnKeys,
}

use Action::*;
use Role::*;

/// Who may do what. A platform admin may do everything on every tenant; every other role acts
/// only on the tenants it was granted.
pub const POLICY: &[(Action, &[(Role, Reach)])] = &[
    (
        TenantGet,
        &[
            (TenantAdmin, Reach::Tenant),
            (Developer, Reach::Tenant),
            (Finance, Reach::Tenant),
            (Auditor, Reach::Tenant),
        ],
    ),
    (
        TenantValidate,
        &[(TenantAdmin, Reach::Tenant), (Developer, Reach::Tenant)],
    ),
    (TenantPut, &[(TenantAdmin, Reach::Tenant)]),
    (
        TenantHistory,
        &[(TenantAdmin, Reach::Tenant), (Auditor, Reach::Tenant)],
    ),
    (
        TenantDiff,
        &[(TenantAdmin, Reach::Tenant), (Auditor, Reach::Tenant)],
    ),
    (TenantRollback, &[(TenantAdmin, Reach::Tenant)]),
    (
        KeyMint,
        &[(TenantAdmin, Reach::Tenant), (Developer, Reach::OwnKeys)],
    ),
    (
        KeyList,
        &[
            (TenantAdmin, Reach::Tenant),
            (Developer, Reach::OwnKeys),
            (Auditor, Reach::Tenant),
        ],
    ),
    (
        KeyRevoke,
        &[(TenantAdmin, Reach::Tenant), (Developer, Reach::OwnKeys)],
    ),
    (
        KeyRotate,
        &[(TenantAdmin, Reach::Tenant), (Developer, Reach::OwnKeys)],
    ),
    (
        UsageRead,
        &[(TenantAdmin, Reach::Tenant), (Finance, Reach::Tenant)],
    ),
    (
        AlertsRead,
        &[
            (TenantAdmin, Reach::Tenant),
            (Finance, Reach::Tenant),
            (Auditor, Reach::Tenant),
        ],
    ),
    (
        RouteRead,
        &[
            (TenantAdmin, Reach::Tenant),
            (Developer, Reach::Tenant),
            (Auditor, Reach::Tenant),
        ],
    ),
    (
        AuditSearch,
        &[(TenantAdmin, Reach::Tenant), (Auditor, Reach::Tenant)],
    ),
];

/// A role held on one tenant, or (platform admins) on all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub role: Role,
    /// `None` only for platform admins: every tenant.
    pub tenant: Option<TenantId>,
}

/// The widest reach `grants` give for `action` on `tenant`, or `None`: forbidden.
pub fn authorize(grants: &[Grant], action: Action, tenant: &TenantId) -> Option<Reach> {
    let mut best = None;
    for g in grants {
        if g.role == PlatformAdmin {
            return Some(Reach::Tenant);
        }
        if g.tenant.as_ref() != Some(tenant) {
            continue;
        }
        let allowed = POLICY
            .iter()
            .find(|(a, _)| *a == action)
            .and_then(|(_, roles)| roles.iter().find(|(r, _)| *r == g.role));
        match allowed {
            Some((_, Reach::Tenant)) => return Some(Reach::Tenant),
            Some((_, Reach::OwnKeys)) => best = Some(Reach::OwnKeys),
            None => {}
        }
    }
    best
}

/// What `grants` allow, per tenant they name (`*`: every tenant, for platform admins): each
/// allowed action with its reach (`tenant`, or `own_keys` for developers). The dashboard offers
/// only what this allows; every endpoint still asks [`authorize`] for itself.
pub fn permissions(grants: &[Grant]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for grant in grants {
        let (name, tenant) = match &grant.tenant {
            Some(t) => (t.to_string(), t.clone()),
            None => ("*".to_string(), TenantId("*".into())),
        };
        // A tenant's entry sums every grant on it; the `*` entry is the platform grant's own.
        let on = if grant.tenant.is_none() {
            std::slice::from_ref(grant)
        } else {
            grants
        };
        let mut allowed = serde_json::Map::new();
        for (action, _) in POLICY {
            let reach = match authorize(on, *action, &tenant) {
                Some(Reach::Tenant) => "tenant",
                Some(Reach::OwnKeys) => "own_keys",
                None => continue,
            };
            allowed.insert(action.name().into(), reach.into());
        }
        out.insert(name, serde_json::Value::Object(allowed));
    }
    serde_json::Value::Object(out)
}

/// The policy as a Markdown table (one row per action, one column per role): what the README
/// prints, checked by a test so the two never disagree.
pub fn policy_table() -> String {
    let mut out = String::from("| action |");
    for r in ROLES {
        out.push_str(&format!(" `{}` |", r.name()));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(ROLES.len()));
    out.push('\n');
    for (action, roles) in POLICY {
        out.push_str(&format!("| `{}` |", action.name()));
        for r in ROLES {
            let cell = if *r == PlatformAdmin {
                "all tenants"
            } else {
                match roles.iter().find(|(role, _)| role == r) {
                    Some((_, Reach::Tenant)) => "yes",
                    Some((_, Reach::OwnKeys)) => "own keys",
                    None => "",
                }
            };
            out.push_str(&format!(" {cell} |"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: &str) -> TenantId {
        TenantId(id.into())
    }
    fn on(role: Role, tenant: &str) -> Grant {
        Grant {
            role,
            tenant: Some(t(tenant)),
        }
    }

    #[test]
    fn a_tenant_admin_of_a_can_do_nothing_to_b() {
        let grants = [on(TenantAdmin, "a")];
        for (action, _) in POLICY {
            assert_eq!(authorize(&grants, *action, &t("a")), Some(Reach::Tenant));
            assert_eq!(authorize(&grants, *action, &t("b")), None, "{action:?}");
        }
    }

    #[test]
    fn platform_admins_reach_every_tenant() {
        let grants = [Grant {
            role: PlatformAdmin,
            tenant: None,
        }];
        for (action, _) in POLICY {
            assert_eq!(authorize(&grants, *action, &t("any")), Some(Reach::Tenant));
        }
    }

    #[test]
    fn read_roles_cannot_write() {
        for role in [Finance, Auditor] {
            let grants = [on(role, "a")];
            for action in [TenantPut, TenantRollback, KeyMint, KeyRevoke, KeyRotate] {
                assert_eq!(
                    authorize(&grants, action, &t("a")),
                    None,
                    "{role:?} {action:?}"
                );
            }
        }
        assert_eq!(
            authorize(&[on(Finance, "a")], UsageRead, &t("a")),
            Some(Reach::Tenant)
        );
        assert_eq!(authorize(&[on(Auditor, "a")], UsageRead, &t("a")), None);
        assert_eq!(
            authorize(&[on(Auditor, "a")], TenantHistory, &t("a")),
            Some(Reach::Tenant)
        );
        assert_eq!(authorize(&[on(Finance, "a")], TenantHistory, &t("a")), None);
    }

    #[test]
    fn developers_reach_only_their_own_keys_and_never_the_config() {
        let grants = [on(Developer, "a")];
        assert_eq!(authorize(&grants, KeyMint, &t("a")), Some(Reach::OwnKeys));
        assert_eq!(authorize(&grants, KeyRevoke, &t("a")), Some(Reach::OwnKeys));
        assert_eq!(authorize(&grants, TenantPut, &t("a")), None);
        // A second, wider grant on the same tenant wins.
        let both = [on(Developer, "a"), on(TenantAdmin, "a")];
        assert_eq!(authorize(&both, KeyRevoke, &t("a")), Some(Reach::Tenant));
    }

    #[test]
    fn permissions_list_each_tenants_allowed_actions() {
        let p = permissions(&[on(Developer, "a"), on(Auditor, "a"), on(Finance, "b")]);
        assert_eq!(p["a"]["key.mint"], "own_keys");
        assert_eq!(p["a"]["audit.search"], "tenant");
        assert!(p["a"].get("tenant.put").is_none());
        assert_eq!(p["b"]["usage.read"], "tenant");
        assert!(p["b"].get("key.list").is_none());
        let admin = permissions(&[Grant {
            role: PlatformAdmin,
            tenant: None,
        }]);
        assert_eq!(admin["*"].as_object().map(|m| m.len()), Some(POLICY.len()));
    }

    #[test]
    fn every_action_is_in_the_policy_once() {
        let mut seen = std::collections::HashSet::new();
        for (a, _) in POLICY {
            assert!(seen.insert(a.name()), "{a:?} twice");
        }
        assert_eq!(seen.len(), 14);
    }
}

#[cfg(test)]
mod readme {
    #[test]
    fn the_readme_prints_this_policy() {
        let readme = include_str!("../../../README.md");
        let table = super::policy_table();
        assert!(
            readme.contains(&table),
            "README.md's role table differs from rbac::POLICY; it should read:\n{table}"
        );
    }
}
