//! Durable Object storage in the shapes the objects use: every entry under a prefix at once,
//! single values, and one atomic write of puts and deletes (not awaited).

use wasm_bindgen::JsValue;

use super::fail;
use crate::js;

/// Every `(key, value)` under `prefix` (all keys for `""`), values as stored JSON text.
pub async fn all(storage: &JsValue, prefix: &str) -> Result<Vec<(String, String)>, JsValue> {
    rows(js::wait(js::storage_all(storage, prefix)).await?)
}

/// A tenant admin store's rows: every version's description (`m:<n>`), the newest version in
/// full (`v:<n>`), and the other rows (`adminRows` in `js/objects.js`).
pub async fn admin_rows(storage: &JsValue) -> Result<Vec<(String, String)>, JsValue> {
    rows(js::wait(js::admin_rows(storage)).await?)
}

/// `key NUL value NUL ...` as pairs.
fn rows(flat: JsValue) -> Result<Vec<(String, String)>, JsValue> {
    let flat = flat.as_string().unwrap_or_default();
    let mut out = Vec::new();
    if flat.is_empty() {
        return Ok(out);
    }
    let mut parts = flat.split('\0');
    while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

pub async fn get(storage: &JsValue, key: &str) -> Result<Option<String>, JsValue> {
    Ok(js::wait(js::storage_get(storage, key)).await?.as_string())
}

/// The alarm set, in ms, if any.
pub async fn alarm(storage: &JsValue) -> Result<Option<u64>, JsValue> {
    let at = js::wait(js::storage_get_alarm(storage)).await?;
    Ok(js::integer(&at))
}

/// Puts and deletes in one atomic write; the output gate holds any answer until it is durable.
pub fn write(storage: &JsValue, puts: &[(String, String)], deletes: &[String]) {
    if puts.is_empty() && deletes.is_empty() {
        return;
    }
    let mut p = String::new();
    for (k, v) in puts {
        if !p.is_empty() {
            p.push('\0');
        }
        p.push_str(k);
        p.push('\0');
        p.push_str(v);
    }
    js::storage_write(storage, &p, &deletes.join("\0"));
}

/// Sets the alarm to `at` if none is set for earlier; `set` is what this object last set.
pub fn schedule(storage: &JsValue, set: &std::cell::Cell<Option<u64>>, at: u64) {
    if set.get().is_none_or(|current| at < current) {
        js::storage_set_alarm(storage, js::number(at));
        set.set(Some(at));
    }
}

pub fn json<T: serde::Serialize>(value: &T) -> Result<String, JsValue> {
    asc_core::json_ser::to_string(value).map_err(fail)
}
