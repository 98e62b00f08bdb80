//! The gateway's one error type. Every failure maps to an HTTP status, a stable snake_case `code`
//! (also the metric label) and OpenAI's error body, so clients' SDKs raise the right exception.

use std::fmt;

use serde_json::json;

/// What went wrong, and so which status and code the client sees. The codes are a public contract:
/// add new ones, never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidJson,
    InvalidRequest,
    MissingParameter,
    /// A field the serving provider cannot honour: refused, never dropped silently.
    UnsupportedParameter,
    /// The operation (e.g. embeddings) is not offered by the provider serving the model.
    UnsupportedOperation,
    /// Every target of the route lies outside this deployment's region.
    NoTargetInRegion,
    /// Every in-region target's circuit is open.
    AllTargetsUnavailable,
    BodyTooLarge,
    UnknownRoute,
    MethodNotAllowed,
    MissingApiKey,
    InvalidApiKey,
    RevokedApiKey,
    /// A rotated key past its overlap.
    ExpiredApiKey,
    InsufficientScope,
    TenantNotConfigured,
    TenantConfigInvalid,
    ModelNotFound,
    ModelNotApproved,
    MisdirectedHost,
    WrongRegion,
    EgressDenied,
    RateLimited,
    TokenRateLimited,
    BudgetExceeded,
    PriceUnknown,
    PriceTableInvalid,
    UpstreamError,
    UpstreamAuth,
    UpstreamRateLimited,
    UpstreamUnreachable,
    UpstreamTimeout,
    UpstreamBadResponse,
    AuditUnavailable,
    StoreUnavailable,
    Internal,
    /// A block-mode guardrail matched the request; holds its code, `guardrail_<detector>`.
    GuardrailBlocked(&'static str),
    /// The request's text content is over the tenant's `guardrails.max_input_chars`.
    InputTooLong,
    /// `max_tokens` / `max_completion_tokens` is over the tenant's `guardrails.max_output_tokens`.
    MaxTokensOverLimit,
    /// Admin plane: no token on an admin request.
    MissingAdminToken,
    /// Admin plane: the token failed a check (signature, issuer, audience, algorithm, time).
    InvalidAdminToken,
    /// Admin plane: the caller's roles do not allow this on this tenant.
    AdminForbidden,
    /// Admin plane: a tenant, version or key that does not exist.
    AdminNotFound,
    /// Admin plane: a tenant config that does not validate (every error with its path).
    InvalidTenantConfig,
    /// Admin plane: `If-Match` named another version than the current one.
    VersionMismatch,
    /// Admin plane: a write without `If-Match` (or `If-None-Match: *` to create).
    IfMatchRequired,
    /// Admin plane: the identity provider's keys (JWKS) could not be fetched.
    IdentityProviderUnavailable,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        use ErrorKind::*;
        match self {
            InvalidJson | InvalidRequest | MissingParameter | UnsupportedParameter
            | UnsupportedOperation => 400,
            GuardrailBlocked(_) | InputTooLong | MaxTokensOverLimit => 400,
            MissingApiKey | InvalidApiKey | RevokedApiKey | ExpiredApiKey => 401,
            MissingAdminToken | InvalidAdminToken => 401,
            AdminForbidden => 403,
            AdminNotFound => 404,
            InvalidTenantConfig => 400,
            VersionMismatch => 412,
            IfMatchRequired => 428,
            IdentityProviderUnavailable => 503,
            InsufficientScope | TenantNotConfigured | ModelNotApproved | WrongRegion
            | EgressDenied | NoTargetInRegion => 403,
            UnknownRoute | ModelNotFound => 404,
            MethodNotAllowed => 405,
            BodyTooLarge => 413,
            MisdirectedHost => 421,
            RateLimited | TokenRateLimited | BudgetExceeded | UpstreamRateLimited => 429,
            Internal => 500,
            UpstreamError | UpstreamAuth | UpstreamUnreachable | UpstreamBadResponse => 502,
            TenantConfigInvalid
            | AuditUnavailable
            | StoreUnavailable
            | PriceUnknown
            | PriceTableInvalid
            | AllTargetsUnavailable => 503,
            UpstreamTimeout => 504,
        }
    }

    pub fn code(self) -> &'static str {
        use ErrorKind::*;
        match self {
            InvalidJson => "invalid_json",
            InvalidRequest => "invalid_request",
            MissingParameter => "missing_required_parameter",
            UnsupportedParameter => "unsupported_parameter",
            UnsupportedOperation => "unsupported_operation",
            NoTargetInRegion => "no_target_in_region",
            AllTargetsUnavailable => "all_targets_unavailable",
            BodyTooLarge => "request_too_large",
            UnknownRoute => "unknown_url",
            MethodNotAllowed => "method_not_allowed",
            MissingApiKey => "missing_api_key",
            InvalidApiKey => "invalid_api_key",
            RevokedApiKey => "revoked_api_key",
            ExpiredApiKey => "expired_api_key",
            InsufficientScope => "insufficient_scope",
            TenantNotConfigured => "tenant_not_configured",
            TenantConfigInvalid => "tenant_config_invalid",
            ModelNotFound => "model_not_found",
            ModelNotApproved => "model_not_approved",
            MisdirectedHost => "misdirected_request",
            WrongRegion => "wrong_region",
            EgressDenied => "egress_denied",
            RateLimited => "rate_limit_exceeded",
            TokenRateLimited => "token_rate_limit_exceeded",
            BudgetExceeded => "budget_exceeded",
            PriceUnknown => "price_unknown",
            PriceTableInvalid => "price_table_invalid",
            UpstreamError => "upstream_error",
            UpstreamAuth => "upstream_auth_failed",
            UpstreamRateLimited => "upstream_rate_limited",
            UpstreamUnreachable => "upstream_unreachable",
            UpstreamTimeout => "upstream_timeout",
            UpstreamBadResponse => "upstream_bad_response",
            AuditUnavailable => "audit_unavailable",
            StoreUnavailable => "store_unavailable",
            Internal => "internal_error",
            GuardrailBlocked(code) => code,
            InputTooLong => "input_too_long",
            MaxTokensOverLimit => "max_tokens_over_limit",
            MissingAdminToken => "missing_admin_token",
            InvalidAdminToken => "invalid_admin_token",
            AdminForbidden => "admin_forbidden",
            AdminNotFound => "not_found",
            InvalidTenantConfig => "invalid_tenant_config",
            VersionMismatch => "version_mismatch",
            IfMatchRequired => "if_match_required",
            IdentityProviderUnavailable => "identity_provider_unavailable",
        }
    }

    /// OpenAI's `error.type`, which the official SDKs use alongside the status.
    pub fn error_type(self) -> &'static str {
        use ErrorKind::*;
        match self {
            MissingApiKey | InvalidApiKey | RevokedApiKey | ExpiredApiKey | MissingAdminToken
            | InvalidAdminToken => "authentication_error",
            AdminForbidden => "permission_error",
            AdminNotFound => "not_found_error",
            InvalidTenantConfig | VersionMismatch | IfMatchRequired => "invalid_request_error",
            InsufficientScope | TenantNotConfigured | ModelNotApproved | WrongRegion
            | EgressDenied | NoTargetInRegion => "permission_error",
            RateLimited | TokenRateLimited | BudgetExceeded | UpstreamRateLimited => {
                "rate_limit_error"
            }
            ModelNotFound | UnknownRoute => "not_found_error",
            InvalidJson | InvalidRequest | MissingParameter | UnsupportedParameter
            | UnsupportedOperation | BodyTooLarge | MethodNotAllowed | MisdirectedHost
            | GuardrailBlocked(_) | InputTooLong | MaxTokensOverLimit => "invalid_request_error",
            _ => "api_error",
        }
    }

    /// A failure of the upstream (as opposed to the gateway's own refusal of the request).
    pub fn is_upstream(self) -> bool {
        use ErrorKind::*;
        matches!(
            self,
            UpstreamError
                | UpstreamAuth
                | UpstreamRateLimited
                | UpstreamUnreachable
                | UpstreamTimeout
                | UpstreamBadResponse
        )
    }

    /// Whether trying the same request again (elsewhere or later) may succeed.
    pub fn retryable(self) -> bool {
        use ErrorKind::*;
        matches!(
            self,
            RateLimited
                | TokenRateLimited
                | UpstreamError
                | UpstreamRateLimited
                | UpstreamUnreachable
                | UpstreamTimeout
                | AuditUnavailable
                | StoreUnavailable
                | AllTargetsUnavailable
                | IdentityProviderUnavailable
        )
    }
}

/// A failure on its way to the client. The message says what to change; it never holds a secret,
/// the client's content, or internal detail (that goes to `diagnostic`, for the operator's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub message: String,
    pub param: Option<String>,
    /// Seconds after which the client may retry, sent as `Retry-After`.
    pub retry_after_s: Option<u64>,
    /// What a platform failure said, for the adapter to log with the request id; never sent.
    pub diagnostic: Option<String>,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        GatewayError {
            kind,
            message: message.into(),
            param: None,
            retry_after_s: None,
            diagnostic: None,
        }
    }

    /// 400 `invalid_request`, naming the field.
    pub fn invalid_request(param: impl Into<String>, message: impl Into<String>) -> Self {
        GatewayError::new(ErrorKind::InvalidRequest, message).with_param(param)
    }

    /// 400 `unsupported_parameter`: the serving provider cannot honour the field.
    pub fn unsupported(param: impl Into<String>, message: impl Into<String>) -> Self {
        GatewayError::new(ErrorKind::UnsupportedParameter, message).with_param(param)
    }

    /// 400 `missing_required_parameter`.
    pub fn missing(param: &str) -> Self {
        GatewayError::new(
            ErrorKind::MissingParameter,
            format!("`{param}` is required"),
        )
        .with_param(param)
    }

    /// 502 `upstream_bad_response`: the upstream sent something its API does not allow.
    pub fn bad_upstream(message: impl Into<String>) -> Self {
        GatewayError::new(ErrorKind::UpstreamBadResponse, message)
    }

    /// A platform failure: the client reads `message`; the operator's log gets `detail` too.
    pub fn internal(
        kind: ErrorKind,
        message: impl Into<String>,
        detail: &impl std::fmt::Display,
    ) -> Self {
        let mut err = GatewayError::new(kind, message);
        err.diagnostic = Some(detail.to_string());
        err
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// `{"error":{"message","type","param","code"}}`, as OpenAI sends it.
    pub fn body(&self) -> Vec<u8> {
        let body = json!({
            "error": {
                "message": self.message,
                "type": self.kind.error_type(),
                "param": self.param,
                "code": self.code(),
            }
        });
        crate::json_view::value_bytes(&body)
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code(), self.status(), self.message)
    }
}

impl std::error::Error for GatewayError {}

/// A platform failure, as the core sees it. Messages never hold secrets or content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// The upstream did not answer within the request's timeout.
    Timeout,
    /// The upstream could not be reached (DNS, connect, TLS, reset).
    Unreachable(String),
    /// A platform store (KV, Durable Object, bucket) failed.
    Store(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Timeout => f.write_str("timed out"),
            HostError::Unreachable(why) => write!(f, "unreachable: {why}"),
            HostError::Store(why) => write!(f, "store failed: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openai_shape() {
        let err = GatewayError::new(ErrorKind::ModelNotApproved, "no").with_param("model");
        let v: serde_json::Value = serde_json::from_slice(&err.body()).expect("json");
        assert_eq!(v["error"]["code"], "model_not_approved");
        assert_eq!(v["error"]["type"], "permission_error");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["message"], "no");
        assert_eq!(err.status(), 403);
    }

    #[test]
    fn client_mistakes_are_4xx() {
        for kind in [
            ErrorKind::InvalidJson,
            ErrorKind::InvalidRequest,
            ErrorKind::MissingParameter,
            ErrorKind::BodyTooLarge,
            ErrorKind::MissingApiKey,
            ErrorKind::InvalidApiKey,
            ErrorKind::RevokedApiKey,
            ErrorKind::ModelNotFound,
            ErrorKind::ModelNotApproved,
            ErrorKind::MisdirectedHost,
        ] {
            assert!((400..500).contains(&kind.status()), "{kind:?}");
        }
    }
}
