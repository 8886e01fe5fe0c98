"""The console driven in a real browser (issue 16): headless Chromium (Debian's ``chromium``
and ``chromium-driver``, which .ci/run installs) through Selenium, on both backends: sign-in,
every page, a search replay, a version diff and restore, refused writes, links on a memory's
page, and a consolidation dry run accepted and undone. A screenshot of each
page is saved under tests/artifacts/console/<backend>/ (ignored by git; docs/ holds two).

Without Chromium the tests skip, except under CI (CI set), where a missing browser fails."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from web_helpers import SCRIPT, make_token, seed, serving

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).parent / "artifacts" / "console"


def _absent() -> str | None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return f"headless Chromium is not installed ({', '.join(missing)} missing)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    reason = _absent()
    if reason is not None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs it)")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI containers run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


class Console:
    """A served database with seeded data, and helpers to drive the browser through it."""

    def __init__(self, driver: WebDriver, port: int, backend: str, tokens: dict[str, str]) -> None:
        self.driver, self.port, self.tokens = driver, port, tokens
        self.shots = ARTIFACTS / backend
        self.shots.mkdir(parents=True, exist_ok=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def go(self, path: str) -> None:
        self.driver.get(self.url(path))

    def css(self, selector: str) -> WebElement:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[WebElement]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def text(self) -> str:
        return self.css("body").text

    def shot(self, name: str) -> Path:
        height = self.driver.execute_script("return document.body.scrollHeight")
        self.driver.set_window_size(1280, max(800, min(int(height) + 40, 4000)))
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1280, 1000)
        assert path.stat().st_size > 5000  # a rendered page, not a blank one
        return path

    def sign_in(self, who: str) -> None:
        self.driver.delete_all_cookies()
        self.go("/ui/sign-in")
        self.css("#token").send_keys(self.tokens[who])
        self.css("#sign-in").click()
        self.wait_for(lambda d: d.current_url == self.url("/ui"))
        assert self.css("#principal").text.startswith(f"user:{who}")

    def wait_for(self, condition: Callable[[WebDriver], object]) -> None:
        from selenium.webdriver.support.wait import WebDriverWait

        WebDriverWait(self.driver, 30).until(condition)


@pytest.fixture
def console(browser: WebDriver, db_url: str, backend: str) -> Iterator[Console]:
    seed(db_url)
    tokens = {
        "alice": make_token(db_url, "alice", project="website"),
        "ops": make_token(db_url, "ops", user="ops", admin=True),
    }
    with serving(db_url) as port:
        yield Console(browser, port, backend, tokens)
        with contextlib.suppress(Exception):
            browser.delete_all_cookies()


def test_sign_in_and_every_page(console):
    console.go("/ui/memories")
    assert console.driver.current_url == console.url("/ui/sign-in")  # no page without a token
    console.shot("00-sign-in")
    console.css("#token").send_keys("abm_not-a-token")
    console.css("#sign-in").click()
    console.wait_for(lambda d: d.find_elements("css selector", "#error"))
    assert "that token is not valid" in console.css("#error").text
    console.sign_in("alice")
    pages = {
        "01-overview": ("/ui", "Per tool"),
        "02-memories": ("/ui/memories?ns=user:alice:notes", "editor"),
        "03-memory": ("/ui/memory?namespace=user:alice:notes&key=editor", "Versions"),
        "04-sessions": ("/ui/sessions", "alice"),
        "05-tasks": ("/ui/tasks", "index the docs"),
        "06-documents": ("/ui/documents", "Documents"),
        "07-audit": ("/ui/audit", "memory_put"),
    }
    for name, (path, expected) in pages.items():
        console.go(path)
        assert expected in console.text(), name
        assert "internal_error" not in console.text()
        console.shot(name)
    # A session's timeline and its state at an earlier event.
    console.go("/ui/sessions")
    console.all("#sessions a")[0].click()
    console.all("#events a")[0].click()  # event 1
    assert '"step": 1' in console.css("#state-at").text
    console.shot("08-session")
    # Stored markup is text: the script neither ran nor became an element.
    console.go("/ui/memory?namespace=user:alice:notes&key=editor")
    assert SCRIPT in console.text()
    assert console.driver.title != "owned"
    assert console.driver.execute_script("return document.scripts.length") == 1  # ours only
    # An admin also sees the database and the tokens.
    console.sign_in("ops")
    assert "memories" in console.css("#facts").text
    console.shot("09-overview-admin")
    console.go("/ui/tokens")
    assert "alice" in console.css("#tokens").text
    console.shot("10-tokens")


def test_a_search_replay(console):
    console.sign_in("alice")
    console.go("/ui/memories")
    console.css("#q").send_keys("editor")
    console.css("#search").click()
    console.wait_for(lambda d: "q=editor" in d.current_url)
    replay = console.css("#replay")
    assert "keyword rank" in replay.text and "vector rank" in replay.text
    rows = console.all("#replay table.replay tbody tr")
    assert len(rows) >= 2
    assert rows[0].find_elements("css selector", "td")[0].text == "1"
    assert console.css("#arm-keyword").text and console.css("#arm-semantic").text
    assert "bob" not in replay.text
    console.shot("11-search-replay")


def test_a_version_diff_and_a_restore(console):
    console.sign_in("alice")
    console.go("/ui/memory?namespace=user:alice:notes&key=editor")
    removed = [e.text for e in console.all("#v2 pre.diff .del")]
    added = [e.text for e in console.all("#v2 pre.diff .add")]
    assert any('"name": "vim"' in line for line in removed)
    assert any('"name": "helix"' in line for line in added)
    console.shot("12-version-diff")
    console.css("#restore-1").click()
    console.driver.switch_to.alert.accept()  # the form asks first
    console.wait_for(lambda d: "restored=" in d.current_url)
    assert "Restored: version 1->3" in console.css("#restored").text
    assert console.all("#v3")
    # As of long ago, it did not exist.
    console.driver.execute_script("document.querySelector('#as-of').value = '1999-01-01T00:00:00'")
    console.css("#show-as-of").click()
    console.wait_for(lambda d: "as_of=" in d.current_url)
    assert "did not exist yet" in console.css("#as-of-view").text


def test_refused_writes(console):
    console.sign_in("alice")
    console.go("/ui/memory?namespace=user:alice:notes&key=editor")
    # A forged form (its CSRF token replaced) is refused and changes nothing.
    console.driver.execute_script(
        "document.querySelector('form[action=\"/ui/memory/restore\"] input[name=csrf]')"
        ".value = 'f'.repeat(64)"
    )
    console.css("#restore-1").click()
    console.driver.switch_to.alert.accept()
    console.wait_for(lambda d: d.current_url.endswith("/ui/memory/restore"))
    assert "CSRF" in console.css("#error").text  # a forged form is refused
    console.shot("13-refused-csrf")
    console.go("/ui/memory?namespace=user:alice:notes&key=editor")
    assert not console.all("#v3")
    # A stale page: the version it showed as latest is no longer the latest.
    console.driver.execute_script(
        "document.querySelector('#restore-1').form.querySelector('[name=current]').value = '1'"
    )
    console.css("#restore-1").click()
    console.driver.switch_to.alert.accept()
    console.wait_for(lambda d: d.current_url.endswith("/ui/memory/restore"))
    assert "conflict" in console.css("#error").text
    # Only an admin may see and revoke tokens.
    console.go("/ui/tokens")
    assert "forbidden" in console.css("#error").text
    console.shot("14-refused-tokens")


def _put_as_alice(db_url: str, memories: list[tuple[str, str, str]]) -> None:
    import asyncio

    from conftest import settings_for

    from abathur_memory.core.principal import Principal
    from abathur_memory.runtime import open_runtime

    async def fill() -> None:
        async with open_runtime(settings_for(db_url)) as rt:
            alice = Principal(user="alice", app="abathur", project="website")
            for namespace, key, value in memories:
                await rt.memories.put(alice, namespace, key, value)

    asyncio.run(fill())


def test_links_on_a_memory_page(console):
    console.sign_in("alice")
    console.go("/ui/memory?namespace=user:alice:notes&key=editor")
    console.css("#link-to-namespace").send_keys("project:website:facts")
    console.css("#link-to-key").send_keys("db")
    console.css("#link-reason").send_keys("<i>same editor</i>")
    console.css("#link-submit").click()
    console.wait_for(lambda d: "linked=" in d.current_url)
    row = console.css("#links tbody tr").text
    assert "related" in row and "project:website:facts/db" in row  # related unless chosen
    assert "<i>same editor</i>" in row  # shown as text
    console.shot("15-memory-links")
    console.all("#links a[href*='project%3Awebsite%3Afacts']")[0].click()
    console.wait_for(lambda d: "key=db" in d.current_url)
    assert "user:alice:notes/editor" in console.css("#links").text
    console.all("#links button[id^=unlink-]")[0].click()
    console.driver.switch_to.alert.accept()
    console.wait_for(lambda d: "unlinked=" in d.current_url)
    assert console.all("#links tr.removed") and not console.all("#links button[id^=unlink-]")


def test_a_consolidation_dry_run_accept_and_undo(console, db_url):
    _put_as_alice(
        db_url,
        [
            ("user:alice:prefs", "theme", "Alice prefers the dark theme."),
            ("user:alice:prefs", "theme_again", "alice prefers the  DARK theme"),
        ],
    )
    console.sign_in("alice")
    console.go("/ui/consolidation")
    console.css("#consolidation-prefix").send_keys("user:alice")
    console.css("#show-runs").click()
    console.wait_for(lambda d: "prefix=user" in d.current_url)
    console.css("#dry-run").click()
    console.wait_for(lambda d: d.find_elements("css selector", "#proposals"))
    assert "exact_duplicate" in console.css("#proposals").text
    console.shot("16-consolidation")
    console.all("#proposals input[name=proposal]")[0].click()
    console.css("#accept").click()
    console.driver.switch_to.alert.accept()
    console.wait_for(lambda d: "applied=" in d.current_url)
    assert "Applied in run" in console.css("#applied").text
    console.all("#runs button[id^=undo-]")[0].click()
    console.driver.switch_to.alert.accept()
    console.wait_for(lambda d: "undone=" in d.current_url)
    assert "undone by" in console.css("#runs").text
    assert not console.all("#runs button[id^=undo-]")
