"""Optional chat models (off by default): Ollama's chat API and OpenAI-compatible endpoints."""
