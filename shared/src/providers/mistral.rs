//! Mistral's chat-completions and embeddings API as an upstream provider.
