"""The sync inspector in a real headless browser (Debian's chromium over CDP, `tests/cdp.py`),
against a real server with data: the page refuses without the credential (the sign-in form),
the browser signs in with the inspector token, the page shows users, bundles with their rows,
sessions, retention floors and a watch subscriber, the session cookie is out of JavaScript's
reach (HttpOnly), and a full-page screenshot lands in tests/artifacts/inspector.png (not
committed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdp import Browser
from inspector_support import INSPECTOR_TOKEN, open_watch, populate, start_inspected_server
from serverproc import REPO_ROOT

SCREENSHOT = REPO_ROOT / "tests" / "artifacts" / "inspector.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _text(browser: Browser, section: str) -> str:
    value = browser.evaluate(f"document.querySelector('section#{section}').innerText")
    assert isinstance(value, str), section
    return value


@pytest.mark.timeout(180)
def test_inspector_in_a_headless_browser(database_url: str, tmp_path: Path) -> None:
    server = start_inspected_server(database_url, tmp_path)
    try:
        state = populate(server)
        with open_watch(server, "ada", "dev-a"), Browser.launch(tmp_path / "chromium") as browser:
            browser.navigate(f"{server.base_url}/inspector")
            assert browser.evaluate("document.title") == "Sign in: sync inspector"
            assert browser.evaluate("document.querySelector('section#users')") is None

            token = json.dumps(INSPECTOR_TOKEN)
            browser.submit(
                f"document.querySelector('#token').value = {token};"
                " document.querySelector('form.login').submit()"
            )
            assert browser.evaluate("location.pathname") == "/inspector"
            assert "sync inspector" in browser.evaluate("document.title")
            assert "oversync_inspector" not in browser.evaluate("document.cookie")  # HttpOnly

            users = _text(browser, "users")
            assert "ada" in users and "bob" in users and "initialized" in users
            bundles = _text(browser, "bundles")
            assert "bundle 3" in bundles and "Ada-0" in bundles and "INSERT" in bundles
            assert state.push_id in _text(browser, "push-sessions")
            assert state.snapshot_id in _text(browser, "snapshot-sessions")
            assert "retained_bundles_per_user" in _text(browser, "retention")
            watch = _text(browser, "watch")
            assert "ada" in watch and "1" in watch
            figures = _text(browser, "figures")
            assert "open push sessions" in figures and "watch streams (this process)" in figures

            path = browser.screenshot(SCREENSHOT)
            assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 20_000

            browser.navigate(f"{server.base_url}/inspector?user=ada&bundle=3")
            one = _text(browser, "bundles")
            assert all(name in one for name in state.names)
            browser.screenshot(SCREENSHOT.with_name("inspector-bundle.png"))

            browser.submit("document.querySelector('header form').submit()")  # sign out
            assert browser.evaluate("document.title") == "Sign in: sync inspector"
    finally:
        server.stop()
