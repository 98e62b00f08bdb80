//! The `budgets` list of a tenant config: dollar budgets per tenant, per key and per tag.
//!
//! ```json
//! "budgets": [
//!   {"id": "monthly", "applies_to": "tenant", "limit_usd_micros": 500000000,
//!    "period": "monthly", "mode": "hard", "alert_at_percent": [80, 95]},
//!   {"id": "per-key", "applies_to": "each_key", "limit_usd_micros": 5000000, "period": "daily"},
//!   {"id": "research", "applies_to": {"tag": "bu:research"}, "limit_usd_micros": 100000000,
//!    "period": {"rolling_ms": 604800000}, "mode": "soft"}
//! ]
//! ```

use serde_json::Value;

use crate::budget::{BudgetLine, Mode, Period};
use crate::ids::{is_valid_id, KeyId};
use crate::validate::{field_path, integer, object, required, string, ConfigErrors};

pub const BUDGET_FIELDS: &[&str] = &[
    "id",
    "applies_to",
    "limit_usd_micros",
    "period",
    "mode",
    "alert_at_percent",
];

/// Whose requests a budget counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppliesTo {
    /// All of the tenant's requests, in one pot.
    Tenant,
    /// Every key separately, each with the full limit.
    EachKey,
    /// One key.
    Key(KeyId),
    /// All keys carrying this tag (a business unit), in one pot.
    Tag(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub id: String,
    pub applies_to: AppliesTo,
    pub limit_micros: u64,
    pub period: Period,
    pub mode: Mode,
    pub alert_percents: Vec<u8>,
}

impl Budget {
    /// This budget as a ledger line for a request by `key_id` with `tags`, if it applies.
    pub fn line_for(&self, key_id: &KeyId, tags: &[String]) -> Option<BudgetLine> {
        let key = match &self.applies_to {
            AppliesTo::Tenant => self.id.clone(),
            AppliesTo::EachKey => format!("{}/{key_id}", self.id),
            AppliesTo::Key(k) if k == key_id => self.id.clone(),
            AppliesTo::Tag(t) if tags.contains(t) => self.id.clone(),
            _ => return None,
        };
        Some(BudgetLine {
            key,
            budget_id: self.id.clone(),
            limit_micros: self.limit_micros,
            period: self.period,
            mode: self.mode,
            alert_percents: self.alert_percents.clone(),
        })
    }
}

pub fn budgets(value: &Value, errs: &mut ConfigErrors) -> Option<Vec<Budget>> {
    let Some(items) = value.as_array() else {
        errs.push("budgets", "must be an array of budgets");
        return None;
    };
    let before = errs.0.len();
    let mut out: Vec<Budget> = Vec::new();
    let mut ids: Vec<&str> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("budgets[{i}]");
        if let Some(id) = item.get("id").and_then(Value::as_str) {
            if ids.contains(&id) {
                errs.push(
                    field_path(&path, "id"),
                    format!("duplicates budget id {id:?}"),
                );
            }
            ids.push(id);
        }
        if let Some(b) = budget(item, &path, errs) {
            out.push(b);
        }
    }
    (errs.0.len() == before).then_some(out)
}

fn budget(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<Budget> {
    let map = object(value, path, BUDGET_FIELDS, errs)?;
    let id = required(map, path, "id", errs)
        .and_then(|v| string(v, &field_path(path, "id"), errs))
        .and_then(|s| {
            if is_valid_id(s) {
                Some(s.to_string())
            } else {
                errs.push(field_path(path, "id"), "must be 1-64 of [a-z0-9_-]");
                None
            }
        });
    let applies_to = required(map, path, "applies_to", errs)
        .and_then(|v| applies_to(v, &field_path(path, "applies_to"), errs));
    let limit = required(map, path, "limit_usd_micros", errs).and_then(|v| {
        integer(
            v,
            &field_path(path, "limit_usd_micros"),
            0,
            u64::MAX / 4,
            errs,
        )
    });
    let period = required(map, path, "period", errs)
        .and_then(|v| period(v, &field_path(path, "period"), errs));
    let mode = match map.get("mode") {
        None => Some(Mode::Hard),
        Some(v) => {
            let p = field_path(path, "mode");
            match string(v, &p, errs) {
                Some("hard") => Some(Mode::Hard),
                Some("soft") => Some(Mode::Soft),
                Some(other) => {
                    errs.push(p, format!("must be \"hard\" or \"soft\", found {other:?}"));
                    None
                }
                None => None,
            }
        }
    };
    let alerts = match map.get("alert_at_percent") {
        None => Some(vec![80]),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for (i, v) in items.iter().enumerate() {
                if let Some(n) = integer(
                    v,
                    &format!("{}[{i}]", field_path(path, "alert_at_percent")),
                    1,
                    100,
                    errs,
                ) {
                    out.push(n as u8);
                }
            }
            (out.len() == items.len()).then_some(out)
        }
        Some(_) => {
            errs.push(
                field_path(path, "alert_at_percent"),
                "must be an array of percentages",
            );
            None
        }
    };
    Some(Budget {
        id: id?,
        applies_to: applies_to?,
        limit_micros: limit?,
        period: period?,
        mode: mode?,
        alert_percents: alerts?,
    })
}

fn applies_to(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<AppliesTo> {
    match value {
        Value::String(s) if s == "tenant" => Some(AppliesTo::Tenant),
        Value::String(s) if s == "each_key" => Some(AppliesTo::EachKey),
        Value::Object(_) => {
            let map = object(value, path, &["key", "tag"], errs)?;
            match (map.get("key"), map.get("tag")) {
                (Some(k), None) => string(k, &field_path(path, "key"), errs)
                    .map(|k| AppliesTo::Key(KeyId(k.to_string()))),
                (None, Some(t)) => string(t, &field_path(path, "tag"), errs).and_then(|t| {
                    if t.is_empty() || t.len() > 64 {
                        errs.push(field_path(path, "tag"), "must be 1-64 characters");
                        None
                    } else {
                        Some(AppliesTo::Tag(t.to_string()))
                    }
                }),
                _ => {
                    errs.push(path, "must name exactly one of key or tag");
                    None
                }
            }
        }
        _ => {
            errs.push(
                path,
                "must be \"tenant\", \"each_key\", {\"key\": KEY_ID} or {\"tag\": TAG}",
            );
            None
        }
    }
}

fn period(value: &Value, path: &str, errs: &mut ConfigErrors) -> Option<Period> {
    match value {
        Value::String(s) => {
            match s.as_str() {
                "daily" => Some(Period::Daily),
                "weekly" => Some(Period::Weekly),
                "monthly" => Some(Period::Monthly),
                other => {
                    errs.push(path, format!("must be daily, weekly, monthly or {{\"rolling_ms\": N}}, found {other:?}"));
                    None
                }
            }
        }
        Value::Object(_) => {
            let map = object(value, path, &["rolling_ms"], errs)?;
            required(map, path, "rolling_ms", errs)
                .and_then(|v| {
                    integer(
                        v,
                        &field_path(path, "rolling_ms"),
                        60_000,
                        366 * 86_400_000,
                        errs,
                    )
                })
                .map(|window_ms| Period::Rolling { window_ms })
        }
        _ => {
            errs.push(
                path,
                "must be daily, weekly, monthly or {\"rolling_ms\": N}",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn budgets_validate_with_paths() {
        let mut errs = ConfigErrors::default();
        let v = json!([
            {"id": "m", "applies_to": "tenant", "limit_usd_micros": 100, "period": "monthly"},
            {"id": "m", "applies_to": {"team": "x"}, "limit_usd_micros": -1, "period": "yearly", "mode": "strict"},
            {"id": "r", "applies_to": {"tag": "bu:x"}, "limit_usd_micros": 1, "period": {"rolling_ms": 10}, "alert_at_percent": [0]}
        ]);
        assert!(budgets(&v, &mut errs).is_none());
        let paths = errs.paths();
        for p in [
            "budgets[1].id",
            "budgets[1].applies_to.team",
            "budgets[1].limit_usd_micros",
            "budgets[1].period",
            "budgets[1].mode",
            "budgets[2].period.rolling_ms",
            "budgets[2].alert_at_percent[0]",
        ] {
            assert!(paths.contains(&p), "missing {p}: {errs}");
        }
    }

    #[test]
    fn lines_apply_by_scope() {
        let mut errs = ConfigErrors::default();
        let v = json!([
            {"id": "t", "applies_to": "tenant", "limit_usd_micros": 1, "period": "daily"},
            {"id": "each", "applies_to": "each_key", "limit_usd_micros": 1, "period": "daily"},
            {"id": "one", "applies_to": {"key": "k_1"}, "limit_usd_micros": 1, "period": "daily"},
            {"id": "bu", "applies_to": {"tag": "bu:research"}, "limit_usd_micros": 1, "period": "daily"}
        ]);
        let all = budgets(&v, &mut errs).expect("valid");
        let keys = |key: &str, tags: &[&str]| -> Vec<String> {
            let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
            all.iter()
                .filter_map(|b| b.line_for(&KeyId(key.into()), &tags))
                .map(|l| l.key)
                .collect()
        };
        assert_eq!(
            keys("k_1", &["bu:research"]),
            ["t", "each/k_1", "one", "bu"]
        );
        assert_eq!(keys("k_2", &[]), ["t", "each/k_2"]);
    }
}
