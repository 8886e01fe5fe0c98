"""abathur-memory: a local-first memory and document-search server for AI agents (MCP)."""

__version__ = "0.1.0"
