"""The web console at /ui (issue 16): sign-in with a token (cookie + CSRF, or Bearer), every
page read through the services for the signed-in principal, the writes (restore a version,
revoke a token, link/unlink, consolidation's dry run, accept and undo) allowed and audited like
the tools, and its security: no page
without a live token, revocation at once, Host/Origin checks, escaped stored strings.
Both backends; the browser-driven tests are in test_console_browser.py."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from backends import sync_sql
from cli_helpers import run_cli
from web_helpers import SCRIPT, make_token, revoke_token, seed, serving

from abathur_memory.cli.ui import is_loopback, may_open_browser

PAGES = (
    "/ui",
    "/ui/memories",
    "/ui/memories?ns=user:alice:notes",
    "/ui/memories?q=editor",
    "/ui/memory?namespace=user:alice:notes&key=editor",
    "/ui/sessions",
    "/ui/tasks",
    "/ui/documents",
    "/ui/audit",
)


def _client(port: int, token: str | None = None, **kw: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers=headers, follow_redirects=False, **kw
    )


def _signed_in(port: int, token: str) -> tuple[httpx.Client, str]:
    """A browser-like client with the session cookie, and the page's CSRF token."""
    client = _client(port)
    answer = client.post("/ui/sign-in", data={"token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    page = client.get("/ui/audit")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert csrf
    return client, csrf.group(1)


def _memory_versions(db_url: str) -> list[int]:
    with sync_sql(db_url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT version FROM memory_entries WHERE namespace = 'user:alice:notes'"
                " AND key = 'editor' ORDER BY version"
            ).fetchall()
        ]


def test_every_page_answers_for_a_token_and_none_without(db_url):
    seed(db_url)
    alice = make_token(db_url, "alice", project="website")
    with serving(db_url) as port:
        anonymous = _client(port)
        for page in PAGES:
            answer = anonymous.get(page)
            assert answer.status_code == 303, page  # a browser is sent to sign in
            assert answer.headers["location"] == "/ui/sign-in"
            assert "helix" not in answer.text and "editor" not in answer.text
            assert _client(port, "abm_not-a-token").get(page).status_code == 401, page
        assert anonymous.get("/ui/sign-in").status_code == 200  # only the sign-in form
        assert anonymous.post("/ui/sign-in", data={"token": "abm_wrong"}).status_code == 401
        scripted = _client(port, alice)
        for page in PAGES:
            answer = scripted.get(page)
            assert answer.status_code == 200, (page, answer.text[-600:])
            assert "user:alice" in answer.text
            policy = answer.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert scripted.get("/ui/static/console.css").status_code == 200


def test_pages_show_what_the_principal_may_read_and_nothing_else(db_url):
    seed(db_url)
    alice = make_token(db_url, "alice", project="website")
    with serving(db_url) as port:
        client = _client(port, alice)
        tree = client.get("/ui/memories").text
        assert "notes" in tree and "facts" in tree
        assert "bob" not in tree and "secret" not in tree
        found = client.get("/ui/memories", params={"q": "editor"}).text
        assert "user:alice:notes/editor" in found and "project:website:facts/db" in found
        assert "bob" not in found
        refused = client.get("/ui/memory", params={"namespace": "user:bob:secret", "key": "plan"})
        assert refused.status_code == 403 and "bob&#39;s editor plan" not in refused.text
        audit = client.get("/ui/audit").text
        assert "<td>user:bob</td>" not in audit  # alice sees her own rows only
        assert "<td>user:alice</td>" in audit
        other = client.get("/ui/audit", params={"actor": "user:bob"})
        assert other.status_code == 403
        assert client.get("/ui/tokens").status_code == 403  # tokens are for admins


def test_a_search_replay_shows_each_hits_ranks_and_the_fused_order(db_url):
    seed(db_url)
    alice = make_token(db_url, "alice", project="website")
    with serving(db_url) as port:
        page = _client(port, alice).get("/ui/memories", params={"q": "editor", "mode": "hybrid"})
        assert page.status_code == 200
        replay = page.text[page.text.index('id="replay"') :]
        assert "keyword rank" in replay and "vector rank" in replay and "fused score" in replay
        assert 'id="arm-keyword"' in replay and 'id="arm-semantic"' in replay
        for arm in ("keyword", "semantic"):
            listed = replay[replay.index(f'id="arm-{arm}"') :].split("</ol>")[0]
            ranks = [int(v) for v in re.findall(r'<li value="(\d+)">', listed)]
            assert ranks and ranks == sorted(ranks), arm  # each list's own order
        rows = re.findall(r"<tr><td>(\d+)</td><td><a [^>]*>([^<]+)</a></td>", replay)
        assert [int(n) for n, _ in rows] == list(range(1, len(rows) + 1))
        assert {name for _, name in rows} >= {"user:alice:notes/editor"}


def test_a_memory_shows_its_versions_with_diffs_an_as_of_view_and_its_audit(db_url):
    seed(db_url)
    alice = make_token(db_url, "alice", project="website")
    with serving(db_url) as port:
        client = _client(port, alice)
        page = client.get("/ui/memory", params={"namespace": "user:alice:notes", "key": "editor"})
        text = page.text
        assert 'id="v2"' in text and 'id="v1"' in text
        assert '<span class="del">-  &#34;name&#34;: &#34;vim&#34;' in text
        assert '<span class="add">+  &#34;name&#34;: &#34;helix&#34;' in text
        assert 'id="trail"' in text and text.count("user:alice") >= 2
        before = client.get(
            "/ui/memory",
            params={"namespace": "user:alice:notes", "key": "editor", "as_of": "2000-01-01T00:00"},
        )
        assert "it did not exist yet" in before.text
        now = client.get(
            "/ui/memory",
            params={"namespace": "user:alice:notes", "key": "editor", "as_of": "2999-01-01T00:00"},
        )
        assert "As of 2999-01-01T00:00: version 2" in now.text


def test_stored_script_is_shown_as_text(db_url):
    seed(db_url)
    alice = make_token(db_url, "alice", project="website")
    with serving(db_url) as port:
        client = _client(port, alice)
        for page in (
            "/ui/memory?namespace=user:alice:notes&key=editor",
            "/ui/memories?ns=user:alice:notes",
        ):
            text = client.get(page).text
            assert SCRIPT not in text, page
            assert "&lt;script&gt;" in text or "\\u003cscript\\u003e" in text, page


def test_restoring_a_version_needs_the_csrf_token_and_is_a_versioned_audited_write(db_url):
    seed(db_url)
    alice = make_token(db_url, "alice", project="website")
    form = {"namespace": "user:alice:notes", "key": "editor", "version": "1", "current": "2"}
    with serving(db_url) as port:
        client, csrf = _signed_in(port, alice)
        forged = client.post("/ui/memory/restore", data=form)
        assert forged.status_code == 403 and "CSRF" in forged.text
        wrong = client.post("/ui/memory/restore", data={**form, "csrf": "0" * 64})
        assert wrong.status_code == 403
        assert _memory_versions(db_url) == [1, 2]
        done = client.post("/ui/memory/restore", data={**form, "csrf": csrf})
        assert done.status_code == 303, done.text
        assert _memory_versions(db_url) == [1, 2, 3]
        page = client.get(done.headers["location"])
        assert "Restored: version 1-&gt;3" in page.text
        stale = client.post("/ui/memory/restore", data={**form, "csrf": csrf})
        assert stale.status_code == 409  # version 2 is no longer the latest
    with sync_sql(db_url) as conn:
        value = conn.scalar(
            "SELECT value FROM memory_entries WHERE namespace = 'user:alice:notes'"
            " AND key = 'editor' AND version = 3"
        )
        assert "vim" in str(value)
        assert (
            conn.scalar(
                "SELECT count(*) FROM audit WHERE memory_namespace = 'user:alice:notes'"
                " AND actor = 'user:alice' AND memory_operation_type = 'update'"
            )
            >= 2
        )


def test_a_restore_outside_the_principals_namespaces_is_refused(db_url):
    seed(db_url)
    alice = make_token(db_url, "alice", project="website")
    with serving(db_url) as port:
        refused = _client(port, alice).post(
            "/ui/memory/restore",
            data={"namespace": "user:bob:secret", "key": "plan", "version": "1", "current": "1"},
        )
        assert refused.status_code == 403


def test_revoking_a_token_is_for_admins_and_stops_it_at_once(db_url):
    seed(db_url)
    alice = make_token(db_url, "alice", project="website")
    ops = make_token(db_url, "ops", user="ops", admin=True)
    with serving(db_url) as port:
        browser, csrf = _signed_in(port, alice)
        refused = browser.post("/ui/tokens/revoke", data={"token_id": "ops", "csrf": csrf})
        assert refused.status_code == 403 and "only an admin" in refused.text
        admin = _client(port, ops)
        listed = admin.get("/ui/tokens").text
        token_id = re.search(r'name="token_id" value="(tok_[0-9a-f]+)"', listed)
        assert token_id
        alice_id = re.search(r"<td>(tok_[0-9a-f]+)</td><td>alice</td>", listed).group(1)  # type: ignore[union-attr]
        done = admin.post("/ui/tokens/revoke", data={"token_id": alice_id})
        assert done.status_code == 303  # a Bearer request needs no CSRF token
        after = browser.get("/ui/memories")
        assert after.status_code == 303 and after.headers["location"] == "/ui/sign-in"
        assert _client(port, alice).get("/ui").status_code == 401
    with sync_sql(db_url) as conn:
        rows = conn.execute(
            "SELECT actor, action_type, result FROM audit"
            " WHERE action_type IN ('token_revoke', 'console_denied') ORDER BY id"
        ).fetchall()
    # Denials are written in batches off the request path, so their row ids do not follow
    # the order of the requests: compare the rows, not their order.
    assert sorted(tuple(r) for r in rows) == [
        ("user:alice", "console_denied", "denied"),
        ("user:ops", "token_revoke", "ok"),
    ]


def test_a_token_revoked_elsewhere_stops_the_console_at_once(db_url):
    alice = make_token(db_url, "alice", project="website")
    with serving(db_url) as port:
        browser, _ = _signed_in(port, alice)
        assert browser.get("/ui").status_code == 200
        revoke_token(db_url, "alice")
        assert browser.get("/ui").status_code == 303


def test_foreign_host_and_origin_are_refused(db_url):
    alice = make_token(db_url, "alice", project="website")
    with serving(db_url) as port:
        client = _client(port, alice)
        assert client.get("/ui", headers={"Host": f"evil.example:{port}"}).status_code == 421
        assert client.get("/ui/sign-in", headers={"Host": "evil.example"}).status_code == 421
        foreign = client.post(
            "/ui/sign-in", data={"token": alice}, headers={"Origin": "http://evil.example"}
        )
        assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
        own = client.get("/ui", headers={"Origin": f"http://localhost:{port}"})
        assert own.status_code == 200


def test_console_pages_are_measured(db_url):
    alice = make_token(db_url, "alice", project="website")
    with serving(db_url) as port:
        _client(port, alice).get("/ui/audit")
        text = _client(port, alice).get("/metrics").text
        assert 'abathur_calls_total{tool="ui:audit",outcome="ok"} 1' in text


def test_the_ui_command_refuses_another_address_without_tokens(tmp_path, capsys):
    db = str(tmp_path / "ui.db")
    assert run_cli(capsys, "init", "--db", db).code == 0
    refused = run_cli(capsys, "ui", "--db", db, "--host", "0.0.0.0", "--no-browser")
    assert refused.code == 1 and "no token exists" in refused.err


def test_the_ui_command_opens_no_browser_in_ci_or_without_a_display():
    assert not may_open_browser({"CI": "true", "DISPLAY": ":0"}, "linux")
    assert not may_open_browser({}, "linux")
    assert may_open_browser({"DISPLAY": ":0"}, "linux")
    assert may_open_browser({"CI": "false"}, "darwin")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")


@pytest.mark.parametrize("window", ["1h", "7d"])
def test_the_overview_plots_are_svg_drawn_on_the_server(db_url, window):
    ops = make_token(db_url, "ops", user="ops", admin=True)
    with serving(db_url) as port:
        client = _client(port, ops)
        client.get("/ui/audit")
        page = client.get("/ui", params={"window": window}).text
        assert page.count("<svg") == 3 and ("<polyline" in page or "<circle" in page)
        assert 'id="facts"' in page  # an admin sees the database's facts
        assert client.get("/ui", params={"window": "1y"}).status_code == 400


def _wait_listening(proc: subprocess.Popen[Any], port: int) -> None:
    import socket
    import time

    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline, "the console never listened"
        time.sleep(0.05)


def _loopback_only(port: int) -> bool:
    """Whether every listening socket on ``port`` is bound to 127.0.0.1 (Linux's table)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = [r.split()[1] for r in rows if r.split()[3] == "0A"]  # LISTEN
    mine = [addr for addr in local if int(addr.split(":")[1], 16) == port]
    return bool(mine) and all(addr.split(":")[0] == "0100007F" for addr in mine)


@pytest.mark.slow
@pytest.mark.parametrize("ci", ["true", ""])
def test_the_ui_command_serves_the_console_on_loopback_and_opens_a_browser_unless_ci(tmp_path, ci):
    import os
    import socket
    import subprocess
    import sys

    db = tmp_path / "ui.db"
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "ABATHUR_EMBEDDER": "fake",
        "CI": ci,
        "DISPLAY": ":99",
        "BROWSER": str(browser),
    }
    subprocess.run(
        [sys.executable, "-m", "abathur_memory", "init", "--db", str(db)], check=True, env=env
    )
    token = make_token(db, "alice")
    proc = subprocess.Popen(
        [sys.executable, "-m", "abathur_memory", "ui", "--db", str(db), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _wait_listening(proc, port)
        if Path("/proc/net/tcp").exists():
            assert _loopback_only(port)
        client = _client(port, token)
        assert client.get("/ui").status_code == 200
        assert _client(port).get("/ui").status_code == 303
        assert _client(port).get("/mcp").status_code == 404  # the console alone
    finally:
        proc.terminate()
        proc.wait(30)
    if ci:
        assert not opened.exists()
    else:
        assert opened.read_text().strip() == f"http://127.0.0.1:{port}/ui"


def test_long_lists_are_paged(db_url):
    import asyncio

    from conftest import settings_for

    from abathur_memory.core.principal import Principal
    from abathur_memory.runtime import open_runtime

    async def fill() -> None:
        async with open_runtime(settings_for(db_url)) as rt:
            alice = Principal(user="alice", app="abathur", project="website")
            for n in range(60):
                await rt.tasks.create(alice, prompt=f"task number {n:02d}")
                await rt.memories.put(alice, "user:alice:many", f"k{n:02d}", n)

    asyncio.run(fill())
    alice = make_token(db_url, "alice", project="website")
    with serving(db_url) as port:
        client = _client(port, alice)
        board = client.get("/ui/tasks").text
        assert board.count('<article class="card">') == 50
        more = re.search(r'href="(/ui/tasks\?status=pending&amp;cursor=[^"]+)"', board)
        assert more
        rest = client.get(more.group(1).replace("&amp;", "&")).text
        assert rest.count('<article class="card">') == 10
        assert "task number 00" in rest and "task number 59" in board
        audit = client.get("/ui/audit").text
        assert audit.count("<tr class=") == 50
        older = re.search(r'href="(/ui/audit\?before=\d+)"', audit)
        assert older
        assert client.get(older.group(1)).text.count("<tr class=") == 10


# -- links and consolidation (issue 15's writes, in the console) -------------------------

EDITOR = {"namespace": "user:alice:notes", "key": "editor"}
DB_FACT = {"namespace": "project:website:facts", "key": "db"}


def _put(db_url: Path | str, memories: Sequence[tuple[str, str, object]], **principal: Any) -> None:
    """Write memories as ``principal`` (an admin unless told), through the services."""
    import asyncio

    from conftest import settings_for

    from abathur_memory.core.principal import Principal
    from abathur_memory.runtime import open_runtime

    async def fill() -> None:
        async with open_runtime(settings_for(db_url)) as rt:
            who = Principal(**(principal or {"user": "root", "app": "abathur", "admin": True}))
            for namespace, key, value in memories:
                await rt.memories.put(who, namespace, key, value)

    asyncio.run(fill())


def _links(db_url: Path | str) -> list[tuple[Any, ...]]:
    with sync_sql(db_url) as conn:
        return [
            tuple(r)
            for r in conn.execute(
                "SELECT id, link_type, from_namespace, from_key, to_namespace, to_key,"
                " removed_at IS NOT NULL FROM memory_links ORDER BY id"
            ).fetchall()
        ]


def _counts(db_url: Path | str) -> tuple[int, int, int]:
    """(memory versions, live memory versions, links)."""
    with sync_sql(db_url) as conn:
        return (
            int(conn.scalar("SELECT count(*) FROM memory_entries")),
            int(conn.scalar("SELECT count(*) FROM memory_entries WHERE is_deleted = FALSE")),
            int(conn.scalar("SELECT count(*) FROM memory_links")),
        )


def _link_row(page: str, link_id: int) -> str:
    start = page.index(f'id="link-{link_id}"')
    return page[start : page.index("</tr>", start)]


def test_linking_and_unlinking_in_the_console_show_on_both_pages_and_in_the_audit(db_url):
    seed(db_url)
    alice = make_token(db_url, "alice", project="website")
    form = {
        **EDITOR,
        "link_type": "related",
        "to_namespace": DB_FACT["namespace"],
        "to_key": DB_FACT["key"],
        "reason": "<b>same editor</b>",
    }
    with serving(db_url) as port:
        client, csrf = _signed_in(port, alice)
        page = client.get("/ui/memory", params=EDITOR).text
        assert 'id="link-form"' in page and "No links." in page
        done = client.post("/ui/memory/link", data={**form, "csrf": csrf})
        assert done.status_code == 303, done.text
        [(link_id, *rest)] = _links(db_url)
        assert rest == ["related", *EDITOR.values(), *DB_FACT.values(), False]
        here = client.get(done.headers["location"]).text
        assert f"Linked: link {link_id}." in here
        row = _link_row(here, link_id)
        assert "this → other" in row and "/ui/memory?namespace=project%3Awebsite%3Afacts" in row
        assert "&lt;b&gt;same editor&lt;/b&gt;" in row and "<b>same" not in row
        assert "user:alice" in row and f'id="unlink-{link_id}"' in row
        there = _link_row(client.get("/ui/memory", params=DB_FACT).text, link_id)
        assert "other → this" in there and "user:alice:notes/editor" in there
        assert f'id="unlink-{link_id}"' in there

        gone = client.post(
            "/ui/memory/unlink", data={**DB_FACT, "link_id": str(link_id), "csrf": csrf}
        )
        assert gone.status_code == 303, gone.text
        assert gone.headers["location"].startswith("/ui/memory?namespace=project%3Awebsite")
        assert _links(db_url)[0][-1] == 1  # stamped removed, still there
        for where in (EDITOR, DB_FACT):
            row = _link_row(client.get("/ui/memory", params=where).text, link_id)
            assert 'class="removed"' in row and "removed " in row and "by user:alice" in row
            assert f'id="unlink-{link_id}"' not in row  # a removed link has no button
        again = client.post(
            "/ui/memory/unlink", data={**EDITOR, "link_id": str(link_id), "csrf": csrf}
        )
        assert again.status_code == 404
        audit = client.get("/ui/audit", params={"action": "memory_link"}).text
        assert "memory_link" in audit and "related" in audit
        assert "memory_unlink" in client.get("/ui/audit", params={"action": "memory_unlink"}).text
    with sync_sql(db_url) as conn:
        for action in ("memory_link", "memory_unlink"):
            assert (
                conn.scalar(
                    "SELECT count(*) FROM audit WHERE action_type = ? AND actor = 'user:alice'",
                    (action,),
                )
                == 1
            ), action


def test_a_link_or_unlink_without_write_access_to_the_other_end_is_refused(db_url):
    seed(db_url)
    _put(db_url, [("app:abathur:guide", "style", "tabs, not spaces")])
    alice = make_token(db_url, "alice", project="website")
    root = make_token(db_url, "root", user="root", admin=True)
    guide = {"namespace": "app:abathur:guide", "key": "style"}
    with serving(db_url) as port:
        client, csrf = _signed_in(port, alice)
        refused = client.post(
            "/ui/memory/link",
            data={
                **EDITOR,
                "csrf": csrf,
                "link_type": "related",
                "to_namespace": guide["namespace"],
                "to_key": guide["key"],
            },
        )
        assert refused.status_code == 403 and "read-only" in refused.text
        assert 'class="error"' in refused.text or "forbidden" in refused.text
        assert _links(db_url) == []
        # a link the admin made: alice reads both ends but may not remove it
        admin = _client(port, root)
        made = admin.post(
            "/ui/memory/link",
            data={
                **EDITOR,
                "link_type": "related",
                "to_namespace": guide["namespace"],
                "to_key": guide["key"],
            },
        )
        assert made.status_code == 303, made.text
        [(link_id, *_)] = _links(db_url)
        page = client.get("/ui/memory", params=EDITOR).text
        assert f'id="link-{link_id}"' in page and f'id="unlink-{link_id}"' not in page
        assert 'id="link-form"' in page  # alice may still link her own memory elsewhere
        assert 'id="link-form"' not in client.get("/ui/memory", params=guide).text
        refused = client.post(
            "/ui/memory/unlink", data={**EDITOR, "link_id": str(link_id), "csrf": csrf}
        )
        assert refused.status_code == 403
        assert _links(db_url)[0][-1] == 0
    with sync_sql(db_url) as conn:
        assert (
            conn.scalar(
                "SELECT count(*) FROM audit WHERE actor = 'user:alice' AND result = 'denied'"
                " AND action_type = 'memory_denied'"
            )
            >= 2
        )


@pytest.mark.parametrize(
    "path",
    [
        "/ui/memory/link",
        "/ui/memory/unlink",
        "/ui/consolidation/propose",
        "/ui/consolidation/apply",
        "/ui/consolidation/undo",
    ],
)
def test_the_link_and_consolidation_forms_need_the_csrf_token(db_url, path):
    seed(db_url)
    alice = make_token(db_url, "alice", project="website")
    form = {
        **EDITOR,
        "link_type": "related",
        "to_namespace": DB_FACT["namespace"],
        "to_key": DB_FACT["key"],
        "link_id": "1",
        "prefix": "user:alice",
        "proposal": "x",
        "run_id": "x",
    }
    before = _counts(db_url)
    with serving(db_url) as port:
        client, _ = _signed_in(port, alice)
        for csrf in (None, "0" * 64):
            data = form if csrf is None else {**form, "csrf": csrf}
            forged = client.post(path, data=data)
            assert forged.status_code == 403 and "CSRF" in forged.text, path
    assert _counts(db_url) == before and _links(db_url) == []
    with sync_sql(db_url) as conn:
        assert conn.scalar("SELECT count(*) FROM consolidation_runs") == 0


DUPLICATES = [
    ("user:alice:prefs", "theme", "Alice prefers the dark theme."),
    ("user:alice:prefs", "theme_again", "alice prefers the  DARK theme"),
]


def _proposal_ids(page: str) -> list[str]:
    return re.findall(r'name="proposal" value="([^"]+)"', page)


def test_a_consolidation_dry_run_proposes_and_writes_nothing(db_url):
    seed(db_url)
    _put(db_url, DUPLICATES, user="alice", app="abathur", project="website")
    alice = make_token(db_url, "alice", project="website")
    before = _counts(db_url)
    with serving(db_url) as port:
        client, csrf = _signed_in(port, alice)
        page = client.get("/ui/consolidation", params={"prefix": "user:alice"})
        assert page.status_code == 200 and "no runs yet" in page.text
        dry = client.post("/ui/consolidation/propose", data={"prefix": "user:alice", "csrf": csrf})
        assert dry.status_code == 200, dry.text
        proposals = dry.text[dry.text.index('id="proposals"') :]
        assert "exact_duplicate" in proposals and "user:alice:prefs/theme" in proposals
        assert "user:alice:prefs/theme_again" in proposals and "duplicates" in proposals
        assert re.search(r"<td>(0\.\d{3}|1\.000)</td>", proposals)  # the confidence
        assert "&#34;" in proposals  # the evidence, as escaped JSON
        assert len(_proposal_ids(proposals)) == 1
        runs = client.get("/ui/consolidation", params={"prefix": "user:alice"}).text
        assert "<td>propose</td>" in runs and 'id="undo-' not in runs
    assert _counts(db_url) == before and _links(db_url) == []


def test_accepting_a_proposal_writes_links_only_and_undo_takes_it_back(db_url):
    seed(db_url)
    _put(db_url, DUPLICATES, user="alice", app="abathur", project="website")
    alice = make_token(db_url, "alice", project="website")
    versions, live, _ = _counts(db_url)
    with serving(db_url) as port:
        client, csrf = _signed_in(port, alice)
        dry = client.post("/ui/consolidation/propose", data={"prefix": "user:alice", "csrf": csrf})
        [chosen] = _proposal_ids(dry.text)
        none = client.post("/ui/consolidation/apply", data={"prefix": "user:alice", "csrf": csrf})
        assert none.status_code == 400 and "choose at least one" in none.text
        done = client.post(
            "/ui/consolidation/apply",
            data={"prefix": "user:alice", "csrf": csrf, "proposal": chosen},
        )
        assert done.status_code == 303, done.text
        applied = re.search(r"applied=([0-9a-f]+)", done.headers["location"])
        assert applied is not None, done.headers["location"]
        run_id = applied.group(1)
        assert _counts(db_url) == (versions, live, 1)  # one link, no memory touched
        [(link_id, kind, *ends, removed)] = _links(db_url)
        assert kind == "duplicates" and not removed
        assert ends == ["user:alice:prefs", "theme_again", "user:alice:prefs", "theme"]
        page = client.get(done.headers["location"]).text
        assert f"Applied in run {run_id}." in page and f'id="undo-{run_id}"' in page
        memory = client.get("/ui/memory", params={"namespace": "user:alice:prefs", "key": "theme"})
        assert f"(run {run_id})" in _link_row(memory.text, link_id)

        undone = client.post(
            "/ui/consolidation/undo", data={"prefix": "user:alice", "csrf": csrf, "run_id": run_id}
        )
        assert undone.status_code == 303, undone.text
        assert _links(db_url)[0][-1] == 1 and _counts(db_url) == (versions, live, 1)
        page = client.get(undone.headers["location"]).text
        assert "Undone by run" in page and f'id="undo-{run_id}"' not in page
        assert "undone by" in page
        twice = client.post(
            "/ui/consolidation/undo", data={"prefix": "user:alice", "csrf": csrf, "run_id": run_id}
        )
        assert twice.status_code == 409
    with sync_sql(db_url) as conn:
        actions = [
            r[0]
            for r in conn.execute(
                "SELECT action_type FROM audit WHERE actor = 'user:alice'"
                " AND memory_operation_type = 'consolidate' ORDER BY id"
            ).fetchall()
        ]
        assert actions == ["memory_link", "memory_unlink"]


def test_consolidation_writes_are_refused_where_the_principal_may_only_read(db_url):
    seed(db_url)
    _put(db_url, [(n.replace("user:alice", "app:abathur"), k, v) for n, k, v in DUPLICATES])
    alice = make_token(db_url, "alice", project="website")
    before = _counts(db_url)
    with serving(db_url) as port:
        client, csrf = _signed_in(port, alice)
        dry = client.post("/ui/consolidation/propose", data={"prefix": "app:abathur", "csrf": csrf})
        assert dry.status_code == 200 and "exact_duplicate" in dry.text
        assert _proposal_ids(dry.text) == [] and 'id="accept"' not in dry.text  # read only
        proposal = re.search(r'id="proposal-([^"]+)"', dry.text)
        assert proposal is not None, dry.text
        chosen = proposal.group(1)
        refused = client.post(
            "/ui/consolidation/apply",
            data={"prefix": "app:abathur", "csrf": csrf, "proposal": chosen},
        )
        assert refused.status_code == 403
        hidden = client.post("/ui/consolidation/propose", data={"prefix": "user:bob", "csrf": csrf})
        assert hidden.status_code == 403
        assert client.get("/ui/consolidation", params={"prefix": "user:bob"}).status_code == 403
    assert _counts(db_url) == before and _links(db_url) == []
