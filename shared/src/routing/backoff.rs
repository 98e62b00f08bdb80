//! How long to wait before attempt `n` on the same target: exponential backoff with jitter,
//! never sooner than the target's `Retry-After`.

use crate::config::routes::RetryPolicy;

/// The wait before retry number `retry` (1 = the first retry) of one target, or `None` when the
/// target's `Retry-After` is longer than the policy is willing to wait. "Equal jitter": half the
/// exponential step is fixed, half random, so retries spread without collapsing to zero.
pub fn delay_ms(
    policy: &RetryPolicy,
    retry: u32,
    random: u64,
    retry_after_ms: Option<u64>,
) -> Option<u64> {
    let shift = retry.saturating_sub(1).min(20);
    let step = policy
        .base_backoff_ms
        .saturating_mul(1 << shift)
        .min(policy.max_backoff_ms);
    let half = step / 2;
    let jittered = half + random % (step - half + 1);
    match retry_after_ms {
        Some(wait) if wait > policy.max_retry_after_ms => None,
        Some(wait) => Some(jittered.max(wait)),
        None => Some(jittered),
    }
}

/// `Retry-After` as milliseconds: delay-seconds (the providers ASC fronts send those; an
/// HTTP-date is not used by them and is ignored).
pub fn parse_retry_after_ms(value: &str) -> Option<u64> {
    let s: f64 = value.trim().parse().ok()?;
    (s.is_finite() && s >= 0.0).then(|| (s * 1000.0).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        base_backoff_ms: 100,
        max_backoff_ms: 1_000,
        max_retry_after_ms: 5_000,
    };

    #[test]
    fn grows_exponentially_within_jitter_and_caps() {
        for random in [0, 1, 77, u64::MAX] {
            let d1 = delay_ms(&P, 1, random, None).expect("delay");
            let d3 = delay_ms(&P, 3, random, None).expect("delay");
            let d9 = delay_ms(&P, 9, random, None).expect("delay");
            assert!((50..=100).contains(&d1), "{d1}");
            assert!((200..=400).contains(&d3), "{d3}");
            assert!((500..=1_000).contains(&d9), "{d9}");
        }
    }

    #[test]
    fn retry_after_is_a_floor_and_too_long_gives_up() {
        assert_eq!(delay_ms(&P, 1, 0, Some(2_000)), Some(2_000));
        assert_eq!(delay_ms(&P, 1, 0, Some(5_001)), None);
        assert_eq!(parse_retry_after_ms("1.5"), Some(1_500));
        assert_eq!(parse_retry_after_ms("soon"), None);
    }
}
