//! The difference between two config versions, field by field, with paths written like config
//! errors' (`budgets[0].limit_usd_micros`).

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                side_by_side(&join(path, k), x.get(k), y.get(k), out);
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                side_by_side(&format!("{path}[{i}]"), x.get(i), y.get(i), out);
            }
        }
        _ if a != b => out.push(Change {
            path: path.to_string(),
            change: "changed",
            before: Some(a.clone()),
            after: Some(b.clone()),
        }),
        _ => {}
    }
}

/// One member of an object or array on either side: compared, removed or added.
fn side_by_side(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<Change>) {
    match (a, b) {
        (Some(va), Some(vb)) => walk(path, va, vb, out),
        (Some(va), None) => out.push(Change {
            path: path.to_string(),
            change: "removed",
            before: Some(va.clone()),
            after: None,
        }),
        (None, Some(vb)) => out.push(Change {
            path: path.to_string(),
            change: "added",
            before: None,
            after: Some(vb.clone()),
        }),
        (None, None) => {}
    }
}

/// The changes from `before` to `after` (both JSON), in path order.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_each_changed_field_by_path() {
        let a = json!({"budgets": [{"id": "m", "limit_usd_micros": 100}], "models": {"x": {}}, "gone": 1});
        let b = json!({"budgets": [{"id": "m", "limit_usd_micros": 250}, {"id": "n"}], "models": {"x": {}}, "new": true});
        let d = diff(&a, &b);
        let summary: Vec<(&str, &str)> = d.iter().map(|c| (c.path.as_str(), c.change)).collect();
        assert_eq!(
            summary,
            [
                ("budgets[0].limit_usd_micros", "changed"),
                ("budgets[1]", "added"),
                ("gone", "removed"),
                ("new", "added"),
            ]
        );
        assert_eq!(d[0].before, Some(json!(100)));
        assert_eq!(d[0].after, Some(json!(250)));
        assert!(diff(&a, &a).is_empty());
        // A type change is one change at that path.
        assert_eq!(diff(&json!({"a": [1]}), &json!({"a": 1}))[0].path, "a");
    }
}
