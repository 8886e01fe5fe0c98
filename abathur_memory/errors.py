"""Typed errors shared by every layer.

Services raise these; the CLI prints their message on one line and the MCP server turns
them into tool errors. Nothing else should leak to a user (no driver exceptions, no tracebacks).
"""

from __future__ import annotations


class AbathurError(Exception):
    """Base class: `str(err)` is a complete, user-facing sentence."""

    code = "error"


class NotFound(AbathurError):
    """The thing asked for does not exist (or is deleted)."""

    code = "not_found"


class Conflict(AbathurError):
    """A compare-and-set lost, or the state changed under the caller."""

    code = "conflict"


class InvalidInput(AbathurError):
    """The input is malformed or out of range; nothing was changed."""

    code = "invalid_input"


class Forbidden(AbathurError):
    """The namespace policy (or a path rule) denies the operation."""

    code = "forbidden"


class Unavailable(AbathurError):
    """A resource (database lock, embedder, file) is not available right now."""

    code = "unavailable"


class ReadOnly(Unavailable):
    """The database cannot be written (read-only file, folder or mount): retrying cannot
    help, so it has its own kind."""

    code = "read_only"
