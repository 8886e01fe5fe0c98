"""Namespaces and the policy that decides what a principal may read and write.

A namespace is ``<scope>:<id>[:<more>...]`` with scope one of ``app``, ``user``,
``project``, ``session``, ``temp``. Each call acts for one principal (app, user, project),
passed with the call; by default it may:

- read and write ``user:<own user>:…``, ``project:<own project>:…``, ``temp:…`` and
  ``session:<id>:…`` of sessions it owns;
- read ``app:<own app>:…``;
- nothing else. An admin principal may do anything.
"""

from __future__ import annotations

import functools
import re
from enum import Enum
from typing import Any

from abathur_memory.core.principal import SCOPES, Principal
from abathur_memory.core.values import visible_text
from abathur_memory.errors import InvalidInput

MAX_NAMESPACE_LENGTH = 512
# A segment: anything printable except ':' and whitespace (so '%' and '_' are plain text).
_SEGMENT = re.compile(r"^[^\s:\x00-\x1f\x7f]+$")


class Access(Enum):
    READ = "read"
    WRITE = "write"


@functools.lru_cache(maxsize=4096)
def _parse_cached(namespace: str) -> tuple[str, ...]:
    return tuple(_parse(namespace))


def parse(namespace: str) -> list[str]:
    """Validate ``namespace`` and return its segments; raise InvalidInput with the reason."""
    if not isinstance(namespace, str):
        return _parse(namespace)
    return list(_parse_cached(namespace))


def clean(namespace: Any) -> str:
    """``namespace`` checked and in NFC (as stored): what services use from the caller."""
    if isinstance(namespace, str):
        namespace = visible_text(namespace, what="namespace")
    parse(namespace)
    return namespace


def _parse(namespace: str) -> list[str]:
    if not isinstance(namespace, str) or not namespace:
        raise InvalidInput("namespace must be a non-empty string like 'user:alice:prefs'")
    if len(namespace) > MAX_NAMESPACE_LENGTH:
        raise InvalidInput(f"namespace is longer than {MAX_NAMESPACE_LENGTH} characters")
    segments = namespace.split(":")
    scope = segments[0]
    if scope not in SCOPES:
        raise InvalidInput(
            f"namespace {namespace!r} must start with one of {', '.join(s + ':' for s in SCOPES)}"
        )
    if len(segments) < 2:
        raise InvalidInput(f"namespace {namespace!r} needs an id after '{scope}:'")
    for segment in segments[1:]:
        if not _SEGMENT.match(segment):
            raise InvalidInput(
                f"namespace {namespace!r} has an empty segment or one with spaces or "
                "control characters"
            )
    return segments


def validate_prefix(prefix: str) -> list[str]:
    """A listing prefix: a namespace, or a bare scope such as ``temp``."""
    if isinstance(prefix, str) and prefix in SCOPES:
        return [prefix]
    return parse(prefix)


def rule_for(
    principal: Principal,
    segments: list[str],
    access: Access,
    *,
    owns_session: bool | None = None,
) -> str | None:
    """None if ``principal`` may have ``access``, else the name of the rule that denies it.
    A ``session:<id>`` namespace needs ``owns_session`` (who owns a session is stored)."""
    p = principal
    if p.admin:
        return None
    scope, ident = segments[0], segments[1] if len(segments) > 1 else None
    if scope == "temp":
        return None
    if scope == "user":
        return None if ident == p.user else "other users' namespaces are private"
    if scope == "project":
        if p.project is None:
            return "no project is configured for this principal (set ABATHUR_PROJECT)"
        return None if ident == p.project else "only the principal's own project is accessible"
    if scope == "session":
        if ident is None:
            return "listing all sessions' memories needs admin"
        return None if owns_session else "session namespaces belong to the session's owner"
    if scope == "app":
        if ident != p.app:
            return "only the principal's own app namespace is readable"
        return None if access is Access.READ else "app namespaces are read-only (admin only)"
    return "unknown scope"  # pragma: no cover - parse() rejects it first


def session_id_of(principal: Principal, segments: list[str]) -> str | None:
    """The session id a ``session:`` namespace names, when its owner decides (not admin)."""
    if segments[0] == "session" and len(segments) > 1 and not principal.admin:
        return segments[1]
    return None
