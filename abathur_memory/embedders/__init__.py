"""Embedders behind one small protocol: the embedded default, Ollama, and a fake for tests."""
