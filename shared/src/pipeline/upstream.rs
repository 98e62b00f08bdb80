//! How an upstream's failure reaches the client: with a status the client can act on, never one
//! that blames the client for the gateway's credentials.

use crate::error::{ErrorKind, GatewayError};
use crate::host::HostError;
use crate::providers::{Dialect, Provider};

pub(super) fn host_error(e: &HostError) -> GatewayError {
    match e {
        HostError::Timeout => GatewayError::new(
            ErrorKind::UpstreamTimeout,
            "The upstream provider did not answer in time.",
        ),
        HostError::Unreachable(_) | HostError::Store(_) => GatewayError::new(
            ErrorKind::UpstreamUnreachable,
            "The upstream provider could not be reached.",
        ),
    }
}

/// A full upstream reply body, up to the gateway's limit.
pub(super) async fn read_reply<B: crate::host::ByteSource>(
    body: &mut B,
    limit: u64,
) -> Result<Vec<u8>, GatewayError> {
    match crate::host::read_limited(body, limit).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(GatewayError::new(
            ErrorKind::UpstreamBadResponse,
            "The upstream response was larger than the gateway accepts.",
        )),
        Err(e) => Err(host_error(&e)),
    }
}

/// What to send the client for a non-2xx upstream status. `Ok` carries a body to pass through
/// unchanged (an OpenAI upstream's error, to an OpenAI client, for a problem in its request).
pub(super) fn status_error(
    status: u16,
    body: &[u8],
    retry_after: Option<&str>,
    provider: Provider,
    dialect: Dialect,
) -> Result<(u16, Vec<u8>), GatewayError> {
    let same_dialect = provider == Provider::OpenAi && dialect == Dialect::OpenAi;
    match status {
        // The client's request was wrong: its own error, in OpenAI's shape, tells it what to fix.
        400 | 409 | 413 | 422 if same_dialect && is_openai_error(body) => {
            Ok((status, body.to_vec()))
        }
        // Another provider's words for the client's mistake, in the client's dialect.
        400 | 409 | 413 | 422 => {
            let kind = if status == 413 {
                ErrorKind::BodyTooLarge
            } else {
                ErrorKind::InvalidRequest
            };
            Err(match super::provider::parse_error(provider, body) {
                Some((_, message)) => GatewayError::new(
                    kind,
                    format!(
                        "The upstream provider ({}) rejected the request: {message}",
                        provider.as_str()
                    ),
                ),
                None => GatewayError::new(
                    kind,
                    format!("The upstream provider rejected the request (status {status})."),
                ),
            })
        }
        // Our credential, not the client's key: never answer 401/403 for it.
        401 | 403 => Err(GatewayError::new(
            ErrorKind::UpstreamAuth,
            "The gateway's credential for this model was refused by the provider; the platform team must fix it.",
        )),
        429 => {
            let err = GatewayError::new(
                ErrorKind::UpstreamRateLimited,
                "The upstream provider is rate limiting this model; retry later.",
            );
            Err(match retry_after.and_then(parse_retry_after) {
                Some(s) => err.with_retry_after(s),
                None => err,
            })
        }
        408 | 504 => Err(GatewayError::new(
            ErrorKind::UpstreamTimeout,
            format!("The upstream provider timed out (status {status})."),
        )),
        _ => Err(GatewayError::new(
            ErrorKind::UpstreamError,
            format!("The upstream provider failed (status {status})."),
        )),
    }
}

fn is_openai_error(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v.get("error").is_some_and(|e| e.is_object()))
        .unwrap_or(false)
}

/// `Retry-After` in seconds; HTTP dates are not used by the providers ASC fronts.
fn parse_retry_after(v: &str) -> Option<u64> {
    let s: f64 = v.trim().parse().ok()?;
    (s.is_finite() && s >= 0.0).then(|| s.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OA: Provider = Provider::OpenAi;
    const OA_D: Dialect = Dialect::OpenAi;

    #[test]
    fn upstream_credentials_failures_are_not_the_clients_401() {
        let e = status_error(401, b"{}", None, OA, OA_D).expect_err("error");
        assert_eq!(e.status(), 502);
        assert_eq!(e.code(), "upstream_auth_failed");
    }

    #[test]
    fn client_errors_pass_through_in_openai_shape() {
        let body = br#"{"error":{"message":"bad temperature","type":"invalid_request_error","param":"temperature","code":null}}"#;
        assert_eq!(
            status_error(400, body, None, OA, OA_D),
            Ok((400, body.to_vec()))
        );
        assert_eq!(
            status_error(400, b"oops", None, OA, OA_D).map_err(|e| e.status()),
            Err(400)
        );
    }

    #[test]
    fn rate_limits_keep_retry_after_and_5xx_become_502() {
        let e = status_error(429, b"{}", Some("2"), OA, OA_D).expect_err("error");
        assert_eq!((e.status(), e.retry_after_s), (429, Some(2)));
        assert_eq!(
            status_error(500, b"{}", None, OA, OA_D).map_err(|e| e.status()),
            Err(502)
        );
        assert_eq!(
            status_error(503, b"{}", None, OA, OA_D).map_err(|e| e.status()),
            Err(502)
        );
        assert_eq!(
            status_error(504, b"{}", None, OA, OA_D).map_err(|e| e.status()),
            Err(504)
        );
    }
}
