//! OpenAI's API as an inbound dialect and an upstream provider (the hub's own shape).
