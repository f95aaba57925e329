"""The serving scenario: an engine's own OpenAI-compatible server under a load generator."""
