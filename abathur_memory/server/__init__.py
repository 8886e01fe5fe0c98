"""The MCP server: lifespan-held services, typed tools, resources."""
