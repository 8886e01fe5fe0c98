"""PostgreSQL errors as the project's typed errors: callers never see a psycopg exception.

Which errors are worth a retry lives here too: a serialization failure, a deadlock or a
lock wait past ``lock_timeout`` is about timing, so running the transaction again helps.
"""

from __future__ import annotations

import psycopg
from psycopg import errors
from psycopg_pool import PoolClosed, PoolTimeout

from abathur_memory.errors import (
    AbathurError,
    Conflict,
    InvalidInput,
    NotFound,
    ReadOnly,
    Unavailable,
)

RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected, errors.LockNotAvailable)
# The server going away: admin_shutdown, crash_shutdown, cannot_connect_now.
_SERVER_GONE = ("57P01", "57P02", "57P03")


def lost_the_server(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection to the server failed, rather than a statement
    (a timeout, a lock, bad data): the circuit breaker then checks on the server."""
    if isinstance(exc, PoolClosed):
        return False  # closed by us
    if isinstance(exc, PoolTimeout | psycopg.InterfaceError):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    sqlstate = exc.sqlstate
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _SERVER_GONE


def message_of(exc: BaseException) -> str:
    """The server's one-line message (psycopg's text adds DETAIL and CONTEXT lines)."""
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        return exc.diag.message_primary
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def translate(exc: Exception, label: str) -> AbathurError:
    """The typed error for a failure on the database ``label`` (a URL without password)."""
    text = message_of(exc)
    if isinstance(exc, PoolClosed):
        return Unavailable("the database is closed")
    if isinstance(exc, PoolTimeout):
        return Unavailable(
            f"no connection to PostgreSQL at {label} became available in time "
            "(the server is unreachable or every pooled connection is busy); try again"
        )
    if isinstance(exc, errors.QueryCanceled):
        return Unavailable(
            f"a statement on {label} ran longer than its statement_timeout and was "
            "cancelled; try again"
        )
    if isinstance(exc, RETRYABLE):
        return Unavailable(
            f"the database {label} is busy: other transactions kept the rows locked ({text}); "
            "try again"
        )
    if isinstance(exc, errors.ReadOnlySqlTransaction):
        return ReadOnly(f"the database {label} is read-only (a standby?): {text}")
    if isinstance(exc, errors.UniqueViolation):
        return Conflict(f"that already exists ({text}); re-read and retry")
    if isinstance(exc, errors.ForeignKeyViolation):
        detail = exc.diag.message_detail or text
        return NotFound(f"a referenced row does not exist: {detail}")
    if isinstance(exc, errors.UntranslatableCharacter):
        return InvalidInput(
            f"PostgreSQL cannot store that text ({text}): JSON text there cannot hold the "
            "character U+0000; remove it"
        )
    if isinstance(exc, psycopg.IntegrityError | psycopg.DataError):
        return InvalidInput(f"PostgreSQL refused the value: {text}")
    if isinstance(exc, errors.InsufficientPrivilege):
        return Unavailable(f"the PostgreSQL user of {label} lacks a privilege: {text}")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return Unavailable(f"lost the connection to PostgreSQL at {label}: {text}")
    if isinstance(exc, UnicodeEncodeError):
        return InvalidInput("text must be valid Unicode (a lone surrogate cannot be stored)")
    sqlstate = getattr(exc, "sqlstate", None)
    suffix = f" (SQLSTATE {sqlstate})" if sqlstate else ""
    return Unavailable(f"PostgreSQL at {label} failed: {text}{suffix}")
