"""A tiny headless-Chromium driver over the DevTools protocol (websockets; no extra package).

Enough for UI tests: open a URL, wait until the page shows some text, click a button by its
label (e.g. to dismiss a first-visit dialog), take a PNG screenshot.
"""

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


class Page:
    def __init__(self, ws):
        self._ws = ws
        self._ids = itertools.count(1)

    def send(self, method: str, **params) -> dict:
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._ws.recv(timeout=60))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        return result.get("result", {}).get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def wait_for_text(self, *texts: str, timeout: float = 60.0) -> None:
        """Until every `text` appears in the page's visible text."""
        deadline = time.monotonic() + timeout
        probe = " && ".join(f"document.body.innerText.includes({json.dumps(t)})" for t in texts)
        while time.monotonic() < deadline:
            if self.evaluate(f"!!document.body && ({probe})"):
                return
            time.sleep(0.5)
        body = self.evaluate("document.body ? document.body.innerText.slice(0, 2000) : ''")
        raise AssertionError(f"page never showed {texts}; it shows:\n{body}")

    def click_button(self, label: str) -> bool:
        return bool(self.evaluate(
            "(() => { const b = [...document.querySelectorAll('button')]"
            f".find(e => e.innerText.trim() === {json.dumps(label)});"
            " if (b) { b.click(); return true; } return false; })()"
        ))

    def click_label(self, label: str) -> bool:
        """Click the first button whose aria-label is `label` (icon-only buttons)."""
        return bool(self.evaluate(
            f"(() => {{ const b = document.querySelector('button[aria-label={json.dumps(label)}]');"
            " if (b) { b.click(); return true; } return false; })()"
        ))

    def click_text(self, text: str) -> bool:
        """Click the innermost element whose visible text is exactly `text`."""
        return bool(self.evaluate(
            "(() => { const all = [...document.querySelectorAll('body *')]"
            f".filter(e => e.innerText && e.innerText.trim() === {json.dumps(text)});"
            " const e = all[all.length - 1]; if (e) { e.click(); return true; } return false; })()"
        ))

    def wheel(self, x: int, y: int, delta_y: float, times: int = 1, ctrl: bool = False) -> None:
        """Mouse-wheel at (x, y); with ctrl, graph views zoom (out on positive delta)."""
        for _ in range(times):
            self.send("Input.dispatchMouseEvent", type="mouseWheel", x=x, y=y, deltaX=0,
                      deltaY=delta_y, modifiers=2 if ctrl else 0)
            time.sleep(0.2)

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data


@contextlib.contextmanager
def chromium(profile: Path, width: int = 1600, height: int = 1000) -> Iterator[Page]:
    """A headless Chromium with a fresh profile; yields its first page."""
    from websockets.sync.client import connect

    binary = find_chromium()
    assert binary, "chromium not installed"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "DevToolsActivePort").unlink(missing_ok=True)  # a stale one from a reused profile
    proc = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            assert proc.poll() is None, f"chromium exited with {proc.returncode}"
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.load(resp)
        page_ws = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        with connect(page_ws, max_size=None, open_timeout=30) as ws:
            page = Page(ws)
            page.send("Page.enable")
            page.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
            yield page
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
