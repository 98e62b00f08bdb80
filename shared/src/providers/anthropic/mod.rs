//! Anthropic's Messages API, both as an inbound dialect and as an upstream provider.
