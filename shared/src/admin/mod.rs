//! The admin plane: `/admin/v1/...` on the same deployment as the gateway, for people signed in
//! with the company's identity provider. Each request carries an OIDC ID or access token (JWT),
//! verified here ([`jose`], [`issuer`]) against keys fetched from the issuer's JWKS through the
//! region's egress gate and cached per isolate; its groups map to roles ([`rbac`]) checked on
//! every endpoint ([`api`]). Config versions and key records live in each tenant's admin store
//! ([`crate::tenant_store`], through `Host::tenant_store`), and every action is an audit record
//! in the tenant's ledger, so it joins the same signed trail as requests.

pub mod api;
pub mod dashboard;
pub mod diff;
pub mod issuer;
pub mod jose;
mod keys;
pub mod rbac;
mod record;
mod route_view;
mod routes;
pub mod search;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::error::{ErrorKind, GatewayError};
use crate::host::{read_limited, EgressApproved, Host};
use crate::region::Region;
use issuer::{check_claims, claimed_issuer, parse_issuers, Issuer, Principal, ADMIN_ISSUERS_VAR};
use jose::{parse_jwks, Alg, Jws, PublicJwk};

/// How long fetched signing keys are used before they are fetched again.
pub const JWKS_TTL_MS: u64 = 10 * 60 * 1000;
/// A token with an unknown `kid` refetches the keys at most this often per issuer, so made-up
/// kids cannot make the gateway hammer the identity provider.
pub const JWKS_MIN_REFETCH_MS: u64 = 5 * 1000;
const JWKS_TIMEOUT_MS: u64 = 5_000;
const JWKS_MAX_BYTES: u64 = 256 * 1024;
const ALL_ALGS: &[Alg] = &[Alg::Rs256, Alg::Es256, Alg::EdDsa];

struct CachedKeys {
    keys: Rc<Vec<PublicJwk>>,
    fetched_ms: u64,
}

/// The admin plane of one deployment (one per isolate: its key cache is per isolate).
pub struct AdminPlane {
    issuers: Vec<Issuer>,
    jwks: RefCell<HashMap<String, CachedKeys>>,
    /// The region's audit streams, which the audit search reads.
    audit_streams: Vec<String>,
}

fn unauthorized(why: impl Into<String>) -> GatewayError {
    GatewayError::new(
        ErrorKind::InvalidAdminToken,
        format!("The admin token was refused: {}.", why.into()),
    )
}

impl AdminPlane {
    pub fn new(issuers: Vec<Issuer>) -> Self {
        AdminPlane {
            issuers,
            jwks: RefCell::new(HashMap::new()),
            audit_streams: Vec::new(),
        }
    }

    /// The region's audit streams (`AuditStreams::all`), for the audit search.
    pub fn with_audit_streams(mut self, streams: Vec<String>) -> Self {
        self.audit_streams = streams;
        self
    }

    pub fn audit_streams(&self) -> &[String] {
        &self.audit_streams
    }

    /// Reads `ADMIN_ISSUERS` through `var`. `Ok(None)`: not set, so no admin plane is served.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, Vec<String>> {
        match var(ADMIN_ISSUERS_VAR) {
            None => Ok(None),
            Some(text) => parse_issuers(&text).map(|i| Some(AdminPlane::new(i))),
        }
    }

    pub fn issuers(&self) -> &[Issuer] {
        &self.issuers
    }

    /// The token of an admin request: `Authorization: Bearer`, or Cloudflare Access's
    /// `Cf-Access-Jwt-Assertion`.
    pub fn presented_token<'h>(
        authorization: Option<&'h str>,
        access_assertion: Option<&'h str>,
    ) -> Result<&'h str, GatewayError> {
        if let Some(value) = authorization.map(str::trim) {
            let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
                return Ok(token.trim());
            }
            return Err(unauthorized(
                "the Authorization header must be 'Bearer <token>'",
            ));
        }
        match access_assertion.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => Ok(t),
            None => Err(GatewayError::new(
                ErrorKind::MissingAdminToken,
                "Admin requests need a token from your identity provider: 'Authorization: Bearer <token>' (asc login prints one).",
            )),
        }
    }

    /// Verifies `token` (signature with the issuer's keys, then the claims) and returns who it
    /// names. Every refusal is a 401 that says what failed, never echoing the token.
    pub async fn authenticate<H: Host>(
        &self,
        host: &H,
        region: &Region,
        token: &str,
    ) -> Result<Principal, GatewayError> {
        let unverified = Jws::parse(token, ALL_ALGS).map_err(|e| unauthorized(e.0))?;
        let claimed = claimed_issuer(&unverified.payload)
            .ok_or_else(|| unauthorized("the token names no issuer (iss)"))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.issuer == claimed)
            .ok_or_else(|| unauthorized("the token's issuer is not trusted here"))?;
        let jws = Jws::parse(token, &issuer.algorithms).map_err(|e| unauthorized(e.0))?;
        let keys = self
            .keys_for(host, region, issuer, jws.kid.as_deref())
            .await?;
        let verified = keys
            .iter()
            .filter(|k| jws.kid.is_none() || k.kid == jws.kid)
            .any(|k| jws.verify(k).is_ok());
        if !verified {
            return Err(unauthorized(
                "its signature does not verify with the issuer's keys",
            ));
        }
        check_claims(issuer, &jws.payload, host.now().millis() / 1000).map_err(unauthorized)
    }

    /// The issuer's keys: cached for [`JWKS_TTL_MS`], fetched again (at most every
    /// [`JWKS_MIN_REFETCH_MS`]) when a token names a `kid` the cache does not hold. If a fetch
    /// fails, keys fetched earlier are still used.
    async fn keys_for<H: Host>(
        &self,
        host: &H,
        region: &Region,
        issuer: &Issuer,
        kid: Option<&str>,
    ) -> Result<Rc<Vec<PublicJwk>>, GatewayError> {
        let now = host.now().millis();
        let (cached, age) = match self.jwks.borrow().get(&issuer.issuer) {
            Some(c) => (Some(c.keys.clone()), now.saturating_sub(c.fetched_ms)),
            None => (None, u64::MAX),
        };
        let known = |keys: &Rc<Vec<PublicJwk>>| {
            kid.is_none_or(|k| keys.iter().any(|key| key.kid.as_deref() == Some(k)))
        };
        if let Some(keys) = &cached {
            if age < JWKS_TTL_MS && (known(keys) || age < JWKS_MIN_REFETCH_MS) {
                return Ok(keys.clone());
            }
        }
        match fetch_jwks(host, region, issuer).await {
            Ok(keys) => {
                let keys = Rc::new(keys);
                self.jwks.borrow_mut().insert(
                    issuer.issuer.clone(),
                    CachedKeys {
                        keys: keys.clone(),
                        fetched_ms: now,
                    },
                );
                Ok(keys)
            }
            Err(e) => match cached {
                Some(keys) => Ok(keys),
                None => Err(e),
            },
        }
    }
}

async fn fetch_jwks<H: Host>(
    host: &H,
    region: &Region,
    issuer: &Issuer,
) -> Result<Vec<PublicJwk>, GatewayError> {
    let unavailable = |why: String| {
        let mut e = GatewayError::new(
            ErrorKind::IdentityProviderUnavailable,
            format!(
                "The identity provider's signing keys could not be fetched from {}; retry shortly.",
                issuer.jwks_uri
            ),
        );
        e.diagnostic = Some(why);
        e
    };
    let req = EgressApproved::check_admin(region, issuer.jwks_uri.clone(), JWKS_TIMEOUT_MS)
        .map_err(|e| unavailable(e.message))?;
    let mut resp = host
        .send(req)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if resp.status != 200 {
        return Err(unavailable(format!("JWKS answered {}", resp.status)));
    }
    let body = read_limited(&mut resp.body, JWKS_MAX_BYTES)
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .map_err(|_| unavailable("JWKS too large".into()))?;
    parse_jwks(&body).map_err(|e| unavailable(e.0))
}
