"""A headless Chromium driven over the Chrome DevTools Protocol (a test helper, ~one page).

    with Browser.launch(tmp_path) as browser:
        browser.navigate("http://127.0.0.1:8080/inspector")
        title = browser.evaluate("document.title")
        browser.screenshot(Path("tests/artifacts/page.png"))

Debian's `chromium` (`.ci/system-packages.txt`) runs with `--remote-debugging-port=0`; the port
it picked is read from `DevToolsActivePort` in its profile folder, and one page target is
driven over its websocket (websocket-client). Commands are synchronous: each waits for its
answer; `navigate` also waits for the page's load event.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import websocket

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class Browser:
    def __init__(self, process: subprocess.Popen[bytes], socket: websocket.WebSocket) -> None:
        self.process = process
        self.socket = socket
        self._ids = itertools.count(1)

    @classmethod
    @contextlib.contextmanager
    def launch(cls, profile: Path, *, width: int = 1400, height: int = 1000) -> Iterator[Browser]:
        binary = chromium_path()
        if binary is None:
            raise RuntimeError("chromium is not installed (bash .ci/system-packages.sh)")
        profile.mkdir(parents=True, exist_ok=True)
        command = [
            binary,
            "--headless",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        log = (profile / "chromium.log").open("wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            port = _debugging_port(profile, process)
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            page = next(t for t in targets if t["type"] == "page")
            socket = websocket.create_connection(
                page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True
            )
            browser = cls(process, socket)
            browser.command("Page.enable")
            browser.command("Runtime.enable")
            yield browser
            socket.close()
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()

    def command(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events seen meanwhile are dropped)."""
        ident = next(self._ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def _wait_event(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if json.loads(self.socket.recv()).get("method") == method:
                return
        raise TimeoutError(f"no {method} within {timeout} s")

    def navigate(self, url: str) -> None:
        self.command("Page.navigate", url=url)
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.command("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def submit(self, expression: str) -> None:
        """Run `expression` (which submits a form) and wait for the next page to load."""
        self.command("Runtime.evaluate", expression=expression)
        self._wait_event("Page.loadEventFired")

    def screenshot(self, path: Path) -> Path:
        """The whole page (beyond the window) as a PNG at `path`."""
        shot = self.command("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


def _debugging_port(profile: Path, process: subprocess.Popen[bytes]) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (profile / "chromium.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"chromium exited early:\n{log}")
        if marker.exists():
            first = marker.read_text().splitlines()[:1]
            if first and first[0].isdigit():
                return int(first[0])
        time.sleep(0.05)
    raise RuntimeError("chromium did not open its debugging port in 30 s")
