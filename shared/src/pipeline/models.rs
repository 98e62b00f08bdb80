//! `GET /v1/models`: the tenant's approved models, in OpenAI's list shape.

use serde_json::json;

use super::json_reply;
use crate::config::TenantConfig;
use crate::host::ByteSource;
use crate::pipeline::http::Reply;

pub(super) fn list<S: ByteSource>(tenant: &TenantConfig) -> Reply<S> {
    let data: Vec<_> = tenant
        .models
        .iter()
        .map(|(name, target)| {
            json!({
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": target.provider.as_str(),
            })
        })
        .collect();
    let body = json!({ "object": "list", "data": data });
    json_reply(200, crate::json_view::value_bytes(&body))
}
