//! Models the gateway knows exist, so that a tenant asking for a real model it has not approved
//! hears "not approved" (403), and a typo hears "not found" (404), as OpenAI answers it.

/// Model ids published by the providers ASC fronts (from their models pages; extend freely).
const KNOWN_MODELS: &[&str] = &[
    // OpenAI
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "o3",
    "o3-mini",
    "o4-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    // Anthropic
    "claude-opus-4-1",
    "claude-opus-4-0",
    "claude-sonnet-4-5",
    "claude-sonnet-4-0",
    "claude-3-7-sonnet-latest",
    "claude-3-5-haiku-latest",
    "claude-haiku-4-5",
    // Mistral
    "mistral-large-latest",
    "mistral-medium-latest",
    "mistral-small-latest",
    "codestral-latest",
    "open-mistral-nemo",
    "mistral-embed",
];

pub fn is_known_model(model: &str) -> bool {
    KNOWN_MODELS.contains(&model)
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_and_unknown() {
        assert!(super::is_known_model("gpt-4o-mini"));
        assert!(super::is_known_model("claude-sonnet-4-5"));
        assert!(!super::is_known_model("gpt-4o-mni"));
    }
}
