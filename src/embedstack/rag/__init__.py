"""Answers with citations: retrieval, a token-budgeted prompt, a local or remote LLM."""
