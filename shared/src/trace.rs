//! W3C Trace Context (`traceparent`): accepted from the client, propagated upstream as a child span.

/// The trace this request belongs to, and the span id ASC uses for its upstream call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: String,
    pub flags: String,
    /// Whether the trace id came from the client (else ASC started a new trace).
    pub inherited: bool,
    /// The client's span (the parent of ASC's), when it sent one.
    pub parent_id: Option<String>,
}

impl TraceContext {
    /// Continues the client's trace when its `traceparent` is valid, else starts one.
    /// `random` supplies 24 bytes: 16 for a new trace id, 8 for ASC's span id.
    pub fn continue_or_start(traceparent: Option<&str>, random: &[u8; 24]) -> Self {
        let span_id = crate::hexstr::encode(&random[16..]);
        if let Some((trace_id, parent_id, flags)) = traceparent.and_then(parse) {
            return TraceContext {
                trace_id,
                span_id,
                flags,
                inherited: true,
                parent_id: Some(parent_id),
            };
        }
        TraceContext {
            trace_id: crate::hexstr::encode(&random[..16]),
            span_id,
            flags: "01".into(),
            inherited: false,
            parent_id: None,
        }
    }

    /// The `traceparent` to send upstream: same trace, ASC's span as the parent.
    pub fn header(&self) -> String {
        self.header_with_parent(&self.span_id)
    }

    /// The `traceparent` for an upstream attempt whose client span is `span_id`.
    pub fn header_with_parent(&self, span_id: &str) -> String {
        // Joined, not `format!`: once or twice per request, and the formatter costs ~10x more.
        ["00-", &self.trace_id, "-", span_id, "-", &self.flags].concat()
    }
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`; all-zero ids are invalid. Later
/// versions may append fields, which we ignore as the spec asks.
fn parse(value: &str) -> Option<(String, String, String)> {
    let value = value.trim();
    let mut parts = value.split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let parent_id = parts.next()?;
    let flags = parts.next()?;
    let is_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !is_hex(version, 2)
        || version == "ff"
        || !is_hex(trace_id, 32)
        || !is_hex(parent_id, 16)
        || !is_hex(flags, 2)
    {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if trace_id.bytes().all(|b| b == b'0') || parent_id.bytes().all(|b| b == b'0') {
        return None;
    }
    Some((
        trace_id.to_string(),
        parent_id.to_string(),
        flags.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANDOM: [u8; 24] = [0xab; 24];

    #[test]
    fn continues_a_valid_trace_with_a_new_parent() {
        // The example from the W3C Trace Context spec.
        let t = TraceContext::continue_or_start(
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            &RANDOM,
        );
        assert!(t.inherited);
        assert_eq!(t.parent_id.as_deref(), Some("b7ad6b7169203331"));
        assert_eq!(
            t.header(),
            "00-0af7651916cd43dd8448eb211c80319c-abababababababab-01"
        );
    }

    #[test]
    fn starts_a_new_trace_for_invalid_headers() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        ] {
            let t = TraceContext::continue_or_start(Some(bad), &RANDOM);
            assert!(!t.inherited, "{bad}");
            assert_eq!(t.trace_id, "ab".repeat(16));
        }
    }
}
