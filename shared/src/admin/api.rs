//! `/admin/v1/...`: tenants (get, validate, put with `If-Match`, history, versions, diff,
//! rollback), keys (mint, list, revoke, rotate) and usage. Each endpoint authenticates the
//! token, asks [`authorize`] for the action on the tenant, acts through the tenant's admin store
//! and records the action (allowed or refused) in the tenant's ledger.

use serde_json::{json, Value};

use super::diff::{diff, Change};
use super::issuer::Principal;
use super::keys::{parse_mint, MintAsk};
use super::rbac::{authorize, Reach};
use super::record::{AdminRecord, Effect};
use super::routes::{not_found, route, Endpoint};
use super::search::{search, SearchAsk};
use super::AdminPlane;
use crate::config::{tenant_record_name, TenantConfig};
use crate::error::{ErrorKind, GatewayError};
use crate::host::{read_limited, ByteSource, Host};
use crate::ids::TenantId;
use crate::pipeline::http::{Inbound, Reply, ReplyBody};
use crate::pipeline::{Gateway, Unattributed};

/// An admin reply, and when to send the refusals counted before a token was verified
/// ([`Gateway::send_refusals`], after the reply), when this request opened their window.
pub struct AdminHandled<S: ByteSource> {
    pub reply: Reply<S>,
    pub refusals_due: Option<u64>,
}
use crate::tenant_store::{Author, IfMatch, StoreOp, StoreReply, StoredVersion};

/// Largest admin request body (a tenant config).
pub const MAX_ADMIN_BODY: u64 = 1024 * 1024;
/// A rotated key keeps working this long by default, and at most [`MAX_OVERLAP_S`].
pub const DEFAULT_OVERLAP_S: u64 = 24 * 3600;
pub const MAX_OVERLAP_S: u64 = 30 * 24 * 3600;

pub(super) struct Call<'a, H: Host> {
    pub(super) gw: &'a Gateway,
    pub(super) host: &'a H,
    pub(super) principal: &'a Principal,
    pub(super) tenant: &'a TenantId,
    pub(super) reach: Reach,
    pub(super) audit_streams: &'a [String],
}

fn store_error(e: crate::host::HostError) -> GatewayError {
    GatewayError::internal(
        ErrorKind::StoreUnavailable,
        "The tenant's admin store is unavailable; retry shortly.",
        &e,
    )
}

pub(super) fn json_reply<S: ByteSource>(status: u16, body: &Value) -> Reply<S> {
    Reply {
        status,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body: ReplyBody::Full(body.to_string().into_bytes()),
        diagnostic: None,
    }
}

fn error_reply<S: ByteSource>(err: &GatewayError, details: Option<Value>) -> Reply<S> {
    let mut body: Value = serde_json::from_slice(&err.body()).unwrap_or(Value::Null);
    if let (Some(d), Some(e)) = (
        details,
        body.get_mut("error").and_then(Value::as_object_mut),
    ) {
        e.insert("details".into(), d);
    }
    let mut reply = json_reply(err.status(), &body);
    reply
        .headers
        .push((crate::headers::ERROR_CODE.into(), err.code().to_string()));
    reply.diagnostic = err.diagnostic.clone();
    reply
}

/// `If-Match: "<version>"` (or `If-None-Match: *` to create a tenant).
fn precondition<B>(req: &Inbound<B>) -> Result<IfMatch, GatewayError> {
    if let Some(v) = req.header("if-match") {
        let v = v.trim().trim_matches('"');
        return v.parse::<u64>().map(IfMatch).map_err(|_| {
            GatewayError::new(
                ErrorKind::IfMatchRequired,
                "If-Match must hold the version you read (its ETag, e.g. \"3\"); '*' is not accepted.",
            )
        });
    }
    if req.header("if-none-match").map(str::trim) == Some("*") {
        return Ok(IfMatch(0));
    }
    Err(GatewayError::new(
        ErrorKind::IfMatchRequired,
        "Writes need If-Match with the version you read (its ETag), or If-None-Match: * to create the tenant.",
    ))
}

fn version_reply<S: ByteSource>(v: &StoredVersion) -> Reply<S> {
    Reply {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("cache-control".into(), "no-store".into()),
            ("etag".into(), format!("\"{}\"", v.meta.version)),
            ("x-asc-config-version".into(), v.meta.version.to_string()),
            ("x-asc-config-sha256".into(), v.meta.sha256.clone()),
        ],
        body: ReplyBody::Full(v.config.clone().into_bytes()),
        diagnostic: None,
    }
}

impl<H: Host> Call<'_, H> {
    async fn store(&self, op: StoreOp) -> Result<StoreReply, GatewayError> {
        self.host
            .tenant_store(self.tenant, &op)
            .await
            .map_err(store_error)
    }

    pub(super) fn author(&self) -> Author {
        Author {
            subject: self.principal.subject.clone(),
            issuer: self.principal.issuer.clone(),
        }
    }

    /// The current version, adopting the config store's document as version 1 the first time
    /// a tenant configured by hand is seen.
    async fn current(&self) -> Result<Option<StoredVersion>, GatewayError> {
        match self.store(StoreOp::Get { version: None }).await? {
            StoreReply::Version { version } => return Ok(Some(*version)),
            StoreReply::NotFound => {}
            other => return Err(unexpected(&other)),
        }
        let found = self
            .host
            .kv_get(&tenant_record_name(self.tenant))
            .await
            .map_err(store_error)?;
        let Some(bytes) = found else {
            return Ok(None);
        };
        let Ok(config) = String::from_utf8(bytes) else {
            return Ok(None);
        };
        let at_ms = self.host.now().millis();
        match self.store(StoreOp::Import { config, at_ms }).await? {
            StoreReply::Stored { after, .. } => Ok(Some(*after)),
            StoreReply::Conflict { .. } => {
                match self.store(StoreOp::Get { version: None }).await? {
                    StoreReply::Version { version } => Ok(Some(*version)),
                    _ => Ok(None),
                }
            }
            other => Err(unexpected(&other)),
        }
    }

    async fn version(&self, n: u64) -> Result<StoredVersion, GatewayError> {
        self.current().await?;
        match self.store(StoreOp::Get { version: Some(n) }).await? {
            StoreReply::Version { version } => Ok(*version),
            StoreReply::NotFound => Err(not_found(format!(
                "Tenant {} has no config version {n}.",
                self.tenant
            ))),
            other => Err(unexpected(&other)),
        }
    }

    /// Validates a config for this tenant in this region: every error with its path.
    fn validate(&self, bytes: &[u8]) -> Result<TenantConfig, Box<Failure>> {
        let mut errors: Vec<Value> = Vec::new();
        let parsed = TenantConfig::parse(bytes);
        if let Err(errs) = &parsed {
            for e in &errs.0 {
                errors.push(json!({"path": e.path, "message": e.message}));
            }
        }
        // Whether or not the rest is valid: the document must be this tenant's, in this region.
        if let Ok(raw) = serde_json::from_slice::<Value>(bytes) {
            let region = &self.gw.region().id;
            let mut must = |path: &str, want: &str, why: &str| {
                let at = raw.get(path).and_then(Value::as_str);
                if at.is_some() && at != Some(want) {
                    errors
                        .push(json!({"path": path, "message": format!("must be {want:?}: {why}")}));
                }
            };
            must("tenant_id", self.tenant.as_str(), "the tenant in the URL");
            must(
                "residency",
                region,
                "this deployment serves that region only",
            );
        }
        // Webhooks must stay in the region, like every other egress.
        if let Ok(config) = &parsed {
            for (i, hook) in config.alerts.webhooks.iter().enumerate() {
                if let Err(e) = self.gw.region().check_webhook_egress(&hook.url) {
                    errors.push(
                        json!({"path": format!("alerts.webhooks[{i}].url"), "message": e.message}),
                    );
                }
            }
        }
        if let (Ok(config), true) = (parsed, errors.is_empty()) {
            return Ok(config);
        }
        let err = GatewayError::new(
            ErrorKind::InvalidTenantConfig,
            format!(
                "The tenant config has {} error(s); nothing was stored. See error.details.",
                errors.len()
            ),
        );
        Err(Box::new((err, Some(Value::Array(errors)))))
    }
}

pub(super) fn unexpected(reply: &StoreReply) -> GatewayError {
    let mut e = GatewayError::new(
        ErrorKind::StoreUnavailable,
        "The tenant's admin store answered out of turn; retry shortly.",
    );
    e.diagnostic = Some(format!("{reply:?}").chars().take(200).collect());
    e
}

fn changes_between(before: Option<&str>, after: &str) -> Vec<Change> {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    diff(&before.map_or(Value::Null, parse), &parse(after))
}

/// A failure with its details (config errors), or a plain error.
pub(super) type Failure = (GatewayError, Option<Value>);

impl From<GatewayError> for Box<Failure> {
    fn from(e: GatewayError) -> Self {
        Box::new((e, None))
    }
}

impl AdminPlane {
    /// Serves one admin request. Never panics on client input.
    pub async fn handle<H: Host, B: ByteSource>(
        &self,
        gw: &Gateway,
        host: &H,
        mut req: Inbound<B>,
    ) -> AdminHandled<H::Body> {
        let mut random = [0u8; 24];
        host.fill_random(&mut random);
        let request_id = crate::hexstr::prefixed("req_", &random[..12]);
        let trace_id = crate::hexstr::encode(&random[8..24]);
        let started_ms = host.now().millis();
        let mut refusals_due = None;
        let mut signed_in = false;
        let served = self
            .serve(gw, host, &mut req, &request_id, &trace_id, &mut signed_in)
            .await;
        let mut reply = match served {
            Ok(reply) => reply,
            Err(f) => {
                // Refused before a token was verified (none, forged, expired, wrong host): no
                // admin or tenant to record it under, so the region's trail counts it.
                if !signed_in {
                    let client = gw.client_address(&req.headers);
                    let who = Unattributed {
                        operation: "admin",
                        client: client.as_deref(),
                        key_hash_prefix: None,
                        key_id: None,
                        request_id: &request_id,
                        trace_id: &trace_id,
                        started_ms,
                    };
                    refusals_due = gw.count_refusal(host, who, &f.0);
                }
                error_reply(&f.0, f.1)
            }
        };
        reply
            .headers
            .push((crate::headers::REQUEST_ID.into(), request_id));
        reply
            .headers
            .push((crate::headers::REGION.into(), gw.region().id.clone()));
        AdminHandled {
            reply,
            refusals_due,
        }
    }

    /// `signed_in` is set once the request's token is verified.
    async fn serve<H: Host, B: ByteSource>(
        &self,
        gw: &Gateway,
        host: &H,
        req: &mut Inbound<B>,
        request_id: &str,
        trace_id: &str,
        signed_in: &mut bool,
    ) -> Result<Reply<H::Body>, Box<Failure>> {
        let host_header = req.header("host").unwrap_or("");
        if !gw.region().serves_host(host_header) {
            return Err(GatewayError::new(
                ErrorKind::MisdirectedHost,
                format!(
                    "This is the {} deployment; it does not serve host {host_header:?}.",
                    gw.region().id
                ),
            )
            .into());
        }
        let (endpoint, tenant) = route(&req.method, &req.path)?;
        if let Endpoint::Login = endpoint {
            return Ok(json_reply(
                200,
                &super::dashboard::login_settings(&self.issuers),
            ));
        }
        let token = AdminPlane::presented_token(
            req.header("authorization"),
            req.header("cf-access-jwt-assertion"),
        )?;
        let principal = self.authenticate(host, gw.region(), token).await?;
        *signed_in = true;
        let Some(tenant) = tenant else {
            // GET /admin/v1/me: who the token says you are.
            let body = json!({"subject": principal.subject, "issuer": principal.issuer,
                "roles": principal.role_names(), "can": super::rbac::permissions(&principal.grants)});
            return Ok(json_reply(200, &body));
        };
        let action = endpoint.action();
        let started = host.now().millis();
        let Some(reach) = authorize(&principal.grants, action, &tenant) else {
            let err = GatewayError::new(
                ErrorKind::AdminForbidden,
                format!(
                    "Your roles ({}) do not allow {} on tenant {tenant}.",
                    if principal.grants.is_empty() {
                        "none".to_string()
                    } else {
                        principal.role_names().join(", ")
                    },
                    action.name()
                ),
            );
            let mut rec = AdminRecord::new(
                gw, &principal, &tenant, action, request_id, trace_id, started,
            );
            rec.fail(&err);
            rec.store(host, false).await?;
            return Err(err.into());
        };
        let call = Call {
            gw,
            host,
            principal: &principal,
            tenant: &tenant,
            reach,
            audit_streams: &self.audit_streams,
        };
        let body = match endpoint {
            Endpoint::Put
            | Endpoint::Validate
            | Endpoint::Rollback
            | Endpoint::Mint
            | Endpoint::Rotate(_) => read_limited(&mut req.body, MAX_ADMIN_BODY)
                .await
                .map_err(|e| {
                    GatewayError::new(
                        ErrorKind::InvalidRequest,
                        format!("The request body could not be read: {e}."),
                    )
                })?
                .map_err(|_| {
                    GatewayError::new(
                        ErrorKind::BodyTooLarge,
                        format!("Admin request bodies are limited to {MAX_ADMIN_BODY} bytes."),
                    )
                })?,
            _ => Vec::new(),
        };
        let mut rec = AdminRecord::new(
            gw, &principal, &tenant, action, request_id, trace_id, started,
        );
        // A change is recorded write-ahead: no change without its record in the trail.
        let opened = endpoint.changes_state();
        if opened {
            rec.open(host).await?;
        }
        let mut effect = Effect::default();
        let result = call.run(endpoint, req, body, &mut effect).await;
        rec.effect(effect);
        match result {
            Ok(reply) => {
                rec.event.record.status = reply.status;
                rec.store(host, opened).await?;
                Ok(reply)
            }
            Err(failure) => {
                rec.fail(&failure.0);
                rec.store(host, opened).await?;
                Err(failure)
            }
        }
    }
}

impl<H: Host> Call<'_, H> {
    async fn run<B>(
        &self,
        endpoint: Endpoint,
        req: &Inbound<B>,
        body: Vec<u8>,
        effect: &mut Effect,
    ) -> Result<Reply<H::Body>, Box<Failure>> {
        let no_config = || {
            not_found(format!(
                "Tenant {} has no config in this region.",
                self.tenant
            ))
        };
        match endpoint {
            Endpoint::Me | Endpoint::Login => {
                Err(GatewayError::new(ErrorKind::Internal, "unreachable route").into())
            }
            Endpoint::Routes => {
                let v = self.current().await?.ok_or_else(no_config)?;
                let config = match TenantConfig::parse(v.config.as_bytes()) {
                    Ok(config) => config,
                    Err(errs) => {
                        let err = GatewayError::new(
                            ErrorKind::InvalidTenantConfig,
                            format!(
                                "Tenant {}'s stored config no longer validates; fix it first.",
                                self.tenant
                            ),
                        );
                        let details: Vec<Value> = errs
                            .0
                            .iter()
                            .map(|e| json!({"path": e.path, "message": e.message}))
                            .collect();
                        return Err(Box::new((err, Some(Value::Array(details)))));
                    }
                };
                Ok(json_reply(
                    200,
                    &super::route_view::routes_view(self.host, &config).await,
                ))
            }
            Endpoint::Audit(query) => {
                let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .collect();
                let ask = SearchAsk::parse(self.tenant, &pairs)?;
                let mut body = search(self.host, self.audit_streams, &ask).await?;
                if let Some(obj) = body.as_object_mut() {
                    obj.insert("tenant_id".into(), json!(self.tenant));
                    obj.insert("region".into(), json!(self.gw.region().id));
                }
                Ok(json_reply(200, &body))
            }
            Endpoint::Get(None) => {
                let v = self.current().await?.ok_or_else(no_config)?;
                Ok(version_reply(&v))
            }
            Endpoint::Get(Some(n)) => Ok(version_reply(&self.version(n).await?)),
            Endpoint::Validate => {
                let config = self.validate(&body)?;
                Ok(json_reply(
                    200,
                    &json!({"valid": true, "sha256": config.version}),
                ))
            }
            Endpoint::Put => {
                let if_match = precondition(req)?;
                self.validate(&body)?;
                let config = String::from_utf8(body).map_err(|_| {
                    GatewayError::new(ErrorKind::InvalidTenantConfig, "The config is not UTF-8.")
                })?;
                let current = self.current().await?;
                effect.before = Some(
                    current
                        .as_ref()
                        .map_or((0, None), |c| (c.meta.version, Some(c.meta.sha256.clone()))),
                );
                let op = StoreOp::Put {
                    if_match,
                    config,
                    at_ms: self.host.now().millis(),
                    author: self.author(),
                };
                self.write(op, current.as_ref(), effect).await
            }
            Endpoint::Rollback => {
                let if_match = precondition(req)?;
                let to = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("version").and_then(Value::as_u64))
                    .ok_or_else(|| {
                        GatewayError::new(
                            ErrorKind::InvalidRequest,
                            "Send {\"version\": N}: the version to restore.",
                        )
                        .with_param("version")
                    })?;
                let current = self.current().await?.ok_or_else(no_config)?;
                let target = self.version(to).await?;
                // The restored config must still be valid here (validation rules may have tightened).
                self.validate(target.config.as_bytes())?;
                effect.before = Some((current.meta.version, Some(current.meta.sha256.clone())));
                let op = StoreOp::Rollback {
                    if_match,
                    to,
                    at_ms: self.host.now().millis(),
                    author: self.author(),
                };
                self.write(op, Some(&current), effect).await
            }
            Endpoint::History => {
                self.current().await?.ok_or_else(no_config)?;
                match self.store(StoreOp::History).await? {
                    StoreReply::History { versions } => Ok(json_reply(
                        200,
                        &json!({"tenant_id": self.tenant, "versions": versions}),
                    )),
                    other => Err(unexpected(&other).into()),
                }
            }
            Endpoint::Diff(a, b) => {
                let (va, vb) = (self.version(a).await?, self.version(b).await?);
                let changes = changes_between(Some(&va.config), &vb.config);
                Ok(json_reply(
                    200,
                    &json!({"tenant_id": self.tenant, "from": a, "to": b, "changes": changes}),
                ))
            }
            Endpoint::Usage => {
                let mut body = self.gw.tenant_usage(self.host, self.tenant).await?;
                if let Some(obj) = body.as_object_mut() {
                    obj.insert("object".into(), json!("tenant_usage"));
                }
                Ok(json_reply(200, &body))
            }
            Endpoint::Analytics(query) => {
                let ask = crate::pipeline::analytics_ask(&query, self.host.now().millis())?;
                let body = self
                    .gw
                    .tenant_analytics(self.host, self.tenant, ask)
                    .await?;
                Ok(json_reply(200, &body))
            }
            Endpoint::Alerts(limit) => {
                let body = self.gw.tenant_alerts(self.host, self.tenant, limit).await?;
                Ok(json_reply(200, &body))
            }
            Endpoint::Keys(query) => {
                let mut page = super::routes::key_page(&query)?;
                // A developer lists the keys it minted: filtered before paging, so pages are full.
                page.created_by = self.owner();
                match self.store(StoreOp::ListKeys(page)).await? {
                    StoreReply::Keys { keys, has_more } => {
                        let last_id = keys.last().map(|k| k.key_id.clone());
                        Ok(json_reply(
                            200,
                            &json!({"tenant_id": self.tenant, "keys": keys, "has_more": has_more, "last_id": last_id}),
                        ))
                    }
                    StoreReply::Invalid { message } => {
                        Err(GatewayError::invalid_request("after", message).into())
                    }
                    other => Err(unexpected(&other).into()),
                }
            }
            Endpoint::Mint => {
                self.current().await?.ok_or_else(no_config)?;
                let ask: MintAsk = parse_mint(&body)?;
                let (secret, entry) = self.new_key(&ask)?;
                effect.key_id = Some(entry.record.key_id.to_string());
                let reply = self.store(StoreOp::MintKey { entry }).await?;
                self.key_reply(reply, Some(secret), 201)
            }
            Endpoint::Revoke(key_id) => {
                effect.key_id = Some(key_id.to_string());
                let op = StoreOp::RetireKey {
                    key_id,
                    expires_ms: None,
                    replacement: None,
                    owner: self.owner(),
                };
                let reply = self.store(op).await?;
                self.key_reply(reply, None, 200)
            }
            Endpoint::Rotate(key_id) => {
                effect.key_id = Some(key_id.to_string());
                let v: Value = if body.is_empty() {
                    json!({})
                } else {
                    serde_json::from_slice(&body).map_err(|_| {
                        GatewayError::new(ErrorKind::InvalidJson, "The body is not JSON.")
                    })?
                };
                let overlap = match v.get("overlap_seconds") {
                    None => DEFAULT_OVERLAP_S,
                    Some(n) => n.as_u64().filter(|n| *n <= MAX_OVERLAP_S).ok_or_else(|| {
                        GatewayError::new(
                            ErrorKind::InvalidRequest,
                            format!(
                                "overlap_seconds must be an integer from 0 to {MAX_OVERLAP_S}."
                            ),
                        )
                        .with_param("overlap_seconds")
                    })?,
                };
                // The replacement keeps the old key's scopes, tags and label.
                let op = StoreOp::GetKey {
                    key_id: key_id.clone(),
                };
                let old = match self.store(op).await? {
                    StoreReply::Keys { keys, .. } => keys.into_iter().next(),
                    StoreReply::NotFound => None,
                    other => return Err(unexpected(&other).into()),
                }
                .ok_or_else(|| not_found(format!("Tenant {} has no key {key_id}.", self.tenant)))?;
                let ask = MintAsk {
                    scopes: old.scopes.clone(),
                    tags: old.tags.clone(),
                    label: old.label.clone(),
                };
                let (secret, entry) = self.new_key(&ask)?;
                let expires = self.host.now().millis().saturating_add(overlap * 1000);
                let op = StoreOp::RetireKey {
                    key_id,
                    expires_ms: Some(expires),
                    replacement: Some(Box::new(entry)),
                    owner: self.owner(),
                };
                let reply = self.store(op).await?;
                self.key_reply(reply, Some(secret), 201)
            }
        }
    }

    fn owner(&self) -> Option<String> {
        (self.reach == Reach::OwnKeys).then(|| self.principal.subject.clone())
    }

    async fn write(
        &self,
        op: StoreOp,
        current: Option<&StoredVersion>,
        effect: &mut Effect,
    ) -> Result<Reply<H::Body>, Box<Failure>> {
        match self.store(op).await? {
            StoreReply::Stored { after, published, .. } => {
                self.gw.forget_tenant(self.tenant.as_str());
                effect.changes = changes_between(current.map(|c| c.config.as_str()), &after.config);
                effect.after = Some((after.meta.version, after.meta.sha256.clone()));
                // `published: false`: stored and recorded, not yet in the config store the
                // request path reads; the host keeps retrying (docs/ARCHITECTURE.md).
                let mut reply = json_reply(200, &json!({"tenant_id": self.tenant, "version": after.meta, "published": published}));
                reply.headers.push(("etag".into(), format!("\"{}\"", after.meta.version)));
                Ok(reply)
            }
            StoreReply::Conflict { current } => Err(GatewayError::new(
                ErrorKind::VersionMismatch,
                format!("Tenant {} is at version {current}; read it again, reapply your change and send If-Match: \"{current}\".", self.tenant),
            )
            .into()),
            StoreReply::NotFound => Err(not_found("No such version.".into()).into()),
            other => Err(unexpected(&other).into()),
        }
    }
}
