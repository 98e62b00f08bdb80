//! Keys through the admin API: a new key (its secret shown once, stored as a hash), the reply of
//! a key operation, and the mint request's body.

use serde_json::{json, Value};

use super::api::{json_reply, unexpected, Call, Failure};
use super::routes::not_found;
use crate::apikey::{new_key, ApiKey, KeyRecord, KeyStatus, Scope};
use crate::error::{ErrorKind, GatewayError};
use crate::host::Host;
use crate::ids::KeyId;
use crate::pipeline::http::Reply;
use crate::tenant_store::{KeyEntry, StoreReply};

impl<H: Host> Call<'_, H> {
    pub(super) fn new_key(&self, ask: &MintAsk) -> Result<(String, KeyEntry), GatewayError> {
        let secret = self
            .host
            .secret(&self.gw.settings().key_hash_secret)
            .ok_or_else(|| {
                GatewayError::new(
                    ErrorKind::Internal,
                    "The deployment has no key-hashing secret configured.",
                )
            })?;
        let mut random = [0u8; 32];
        self.host.fill_random(&mut random);
        let key = new_key(&random);
        let hash = ApiKey::parse(&key)?.hash(&secret);
        let key_id = format!("k_{}", hash.get(..12).unwrap_or(&hash));
        let entry = KeyEntry {
            record: KeyRecord {
                schema_version: 1,
                key_id: KeyId(key_id),
                tenant_id: self.tenant.clone(),
                status: KeyStatus::Active,
                scopes: ask.scopes.clone(),
                tags: ask.tags.clone(),
                key_hash: hash,
                label: ask.label.clone(),
                created_ms: Some(self.host.now().millis()),
                expires_ms: None,
            },
            created_by: self.author(),
            rotated_to: None,
        };
        Ok((key, entry))
    }

    pub(super) fn key_reply(
        &self,
        reply: StoreReply,
        secret: Option<String>,
        status: u16,
    ) -> Result<Reply<H::Body>, Box<Failure>> {
        match reply {
            StoreReply::KeyStored {
                key,
                retired,
                publish,
                published,
            } => {
                for (name, _) in &publish {
                    if let Some(hash) = name.strip_prefix("key:") {
                        self.gw.forget_key(hash);
                    }
                }
                let mut body = serde_json::Map::new();
                body.insert("tenant_id".into(), json!(self.tenant));
                body.insert("key".into(), json!(key));
                // As a config write's: false until the request path's store holds the record.
                body.insert("published".into(), json!(published));
                if let Some(r) = retired {
                    body.insert("retired".into(), json!(r));
                }
                if let Some(s) = secret {
                    body.insert("secret".into(), json!(s));
                    body.insert(
                        "note".into(),
                        json!("The secret is shown once; it is stored only as a hash."),
                    );
                }
                let body = Value::Object(body);
                Ok(json_reply(status, &body))
            }
            StoreReply::NotFound => {
                Err(not_found(format!("Tenant {} has no such key.", self.tenant)).into())
            }
            StoreReply::NotOwner => Err(GatewayError::new(
                ErrorKind::AdminForbidden,
                "Developers may act only on keys they minted themselves.",
            )
            .into()),
            StoreReply::Invalid { message } => {
                Err(GatewayError::new(ErrorKind::InvalidRequest, message).into())
            }
            other => Err(unexpected(&other).into()),
        }
    }
}

pub(super) struct MintAsk {
    pub(super) scopes: Vec<Scope>,
    pub(super) tags: Vec<String>,
    pub(super) label: Option<String>,
}

pub(super) fn parse_mint(body: &[u8]) -> Result<MintAsk, GatewayError> {
    let v: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|_| GatewayError::new(ErrorKind::InvalidJson, "The body is not JSON."))?
    };
    let bad = |param: &str, why: &str| {
        GatewayError::new(ErrorKind::InvalidRequest, format!("{param}: {why}")).with_param(param)
    };
    let scopes = match v.get("scopes") {
        None => vec![Scope::Chat, Scope::Models, Scope::Usage],
        Some(list) => serde_json::from_value::<Vec<Scope>>(list.clone())
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("scopes", "a non-empty list of chat, models, usage"))?,
    };
    let tags = match v.get("tags") {
        None => Vec::new(),
        Some(list) => serde_json::from_value::<Vec<String>>(list.clone())
            .ok()
            .filter(|t| t.len() <= 32 && t.iter().all(|s| !s.is_empty() && s.len() <= 64))
            .ok_or_else(|| bad("tags", "at most 32 strings of 1-64 characters"))?,
    };
    let label = match v.get("label") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= 200 => Some(s.clone()),
        Some(_) => return Err(bad("label", "a string of at most 200 characters")),
    };
    if let Some(obj) = v.as_object() {
        if let Some(k) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "scopes" | "tags" | "label"))
        {
            return Err(bad(k, "unknown field (scopes, tags, label)"));
        }
    }
    Ok(MintAsk {
        scopes,
        tags,
        label,
    })
}
