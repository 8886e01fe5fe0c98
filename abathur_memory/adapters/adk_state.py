"""Where the ADK adapters keep things: principals, session ids, app and user state.

- An ADK ``(app_name, user_id)`` is the principal ``Principal(user=user_id, app=app_name)``
  (with the opening principal's project). The services act as it through
  ``Memory.as_principal``, so an adapter opened by a non-admin principal serves only its
  own user in its own app, and one opened by an admin serves every user, each with the
  access rules of that user.
- An ADK session id is unique per (app, user); abathur-memory session ids are global, so
  the stored id is ``adk:<app>:<user>:<session id>``, each part percent-encoded
  (``adapters/naming.py``).
- ``app:`` state is one memory per key in ``app:<app>:adk:state``, ``user:`` state one
  memory per key in ``user:<user>:adk:<app>:state``: each key has its versions and audit,
  and every session of the app (of the user) reads the same memories. App namespaces are
  read-only to users, so ``app:`` state is written by the opening principal, and only an
  admin may (``forbidden`` otherwise).
- Session-scoped state is the abathur-memory session's state; ``temp:`` state is never
  stored (ADK trims it before the service sees it).
"""

from __future__ import annotations

import uuid
from typing import Any

from abathur_memory.adapters.naming import SESSION_IDS, encode_segment
from abathur_memory.api import Memory
from abathur_memory.errors import Forbidden
from abathur_memory.memory.memories import PutRequest

APP_PREFIX, USER_PREFIX = "app:", "user:"
# ADK's last_update_time (the last event's timestamp), kept in the session state in the
# same transaction as the event, and hidden from ADK.
UPDATED = "abathur:adk_last_update_time"
PAGE = 1000


def acting(base: Memory, app_name: str, user_id: str) -> Memory:
    """The base memory acting for the ADK user of ``app_name``."""
    p = base.principal
    if (p.user, p.app) == (user_id, app_name) and not p.admin:
        return base
    return base.as_principal(user=user_id, app=app_name)


def stored_id(app_name: str, user_id: str, session_id: str) -> str:
    parts = (("app_name", app_name), ("user_id", user_id), ("session_id", session_id))
    # Session ids are UUIDs (what session_create returns): an ADK session's is the UUID named
    # by its app, user and ADK id, so the same ADK session always finds the same session.
    name = ":".join(encode_segment(value, what=what) for what, value in parts)
    return str(uuid.uuid5(SESSION_IDS, f"adk:{name}"))


def adk_id(stored: Any) -> str | None:
    """The ADK session id of a stored session (None: not one this adapter made): the id in
    its metadata, checked against the session's own id."""
    metadata = stored.metadata or {}
    sid = metadata.get("adk_session_id")
    if metadata.get("framework") != "google-adk" or not isinstance(sid, str):
        return None
    return sid if stored_id(stored.app_name, stored.user_id, sid) == stored.id else None


def app_namespace(app_name: str) -> str:
    return f"app:{app_name}:adk:state"


def user_namespace(app_name: str, user_id: str) -> str:
    return f"user:{user_id}:adk:{encode_segment(app_name, what='app_name')}:state"


def split_delta(delta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(app, user, session) parts of an ADK state delta, prefixes removed from app/user."""
    app, user, session = {}, {}, {}
    for key, value in delta.items():
        if key.startswith(APP_PREFIX):
            app[key.removeprefix(APP_PREFIX)] = value
        elif key.startswith(USER_PREFIX):
            user[key.removeprefix(USER_PREFIX)] = value
        elif not key.startswith("temp:") and key != UPDATED:
            session[key] = value
    return app, user, session


async def read_scope(memory: Memory, namespace: str) -> dict[str, Any]:
    """Every key of one state scope (empty if it has none yet)."""
    state: dict[str, Any] = {}
    cursor: str | None = None
    while True:
        page = await memory.memories.list(namespace, None, PAGE, cursor)
        state.update({e.key: e.value for e in page.entries if e.namespace == namespace})
        if page.next_cursor is None:
            return state
        cursor = page.next_cursor


async def merged(
    base: Memory, user: Memory, app_name: str, user_id: str, session_state: dict[str, Any]
) -> dict[str, Any]:
    """What ADK shows as a session's state: its own keys, app: and user: keys."""
    state = {k: v for k, v in session_state.items() if k != UPDATED}
    for key, value in (await read_scope(user, app_namespace(app_name))).items():
        state[APP_PREFIX + key] = value
    for key, value in (await read_scope(user, user_namespace(app_name, user_id))).items():
        state[USER_PREFIX + key] = value
    return state


def check_app_writer(base: Memory, app: dict[str, Any]) -> None:
    """Refuse an app: state change before anything is written, unless the opening
    principal is an admin (app namespaces are read-only to users)."""
    if app and not base.principal.admin:
        raise Forbidden(
            "app: state is written to an app namespace, which is read-only unless admin: "
            "open the ADK services with an admin principal to change app: state"
        )


async def write_scopes(
    base: Memory,
    user: Memory,
    app_name: str,
    user_id: str,
    app: dict[str, Any],
    user_state: dict[str, Any],
) -> None:
    """Write app: state (as the admin that opened the service) and user: state (as the user),
    one memory per key."""
    if app:
        ns = app_namespace(app_name)
        await base.memories.put_many([PutRequest(ns, k, v) for k, v in app.items()])
    if user_state:
        ns = user_namespace(app_name, user_id)
        await user.memories.put_many([PutRequest(ns, k, v) for k, v in user_state.items()])
