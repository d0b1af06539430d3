"""A real headless Chromium for end-to-end tests, driven over the Chrome DevTools Protocol.

    with chromium() as browser:
        page = browser.new_page(width=1280, height=900)
        page.set_cookie("name", "value", "http://127.0.0.1:8000")
        page.navigate("http://127.0.0.1:8000/dashboard")
        page.wait_for("document.querySelectorAll('path.series').length > 0")
        png = page.screenshot()
        image = decode_png(png)

Chromium is Debian's ``chromium`` package (``/usr/bin/chromium``). When it is missing and we are
root it is installed with apt-get, as CI does; when it still is missing the test is skipped — or
fails when ``CI=true``. It runs with the flags a closed network needs (no background
networking, no component updates, no sync, no QUIC) in a fresh profile, on a DevTools port
chosen by Chromium (``--remote-debugging-port=0``, read back from ``DevToolsActivePort``), and
its whole process group is killed on exit, whatever happened.

Also here: a small PNG decoder (8-bit greyscale/RGB/RGBA, non-interlaced — what Chromium's
screenshots are), so tests can count pixels without an imaging library.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

CANDIDATES = ("chromium", "chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
    "--force-device-scale-factor=1",
    "--remote-debugging-port=0",
)
START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 30.0
INSTALL_TIMEOUT = 900.0


def _find() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def find_chromium() -> str:
    """Path of the Chromium binary; installs Debian's package when missing and root."""
    found = _find()
    if found is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            subprocess.run(
                command,
                env=env,
                check=False,
                timeout=INSTALL_TIMEOUT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        found = _find()
    if found is None:
        reason = (
            "Chromium is not installed (looked for chromium and chromium-browser on PATH; "
            "install Debian's package with: apt-get install chromium)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " — required when CI=true")
        pytest.skip(reason)
    return found


class CDPError(RuntimeError):
    pass


class Browser:
    """A connection to the browser target; pages are attached sessions on it (flat mode)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> dict[str, Any]:
        """Send one command and wait (bounded) for its answer; events meanwhile are kept."""
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"{method}: no answer within {timeout} s")
            raw = self.ws.recv(timeout=left)
            reply: dict[str, Any] = json.loads(raw)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)

    def new_page(self, width: int = 1280, height: int = 900) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Network", "Log"):
            page.send(f"{domain}.enable")
        page.resize(width, height)
        return page


class Page:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def send(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = COMMAND_TIMEOUT
    ) -> dict[str, Any]:
        return self.browser.send(method, params, self.session, timeout)

    def events(self, method: str) -> list[dict[str, Any]]:
        """Params of the events of this page named ``method`` received so far."""
        return [
            e.get("params", {})
            for e in self.browser.events
            if e.get("sessionId") == self.session and e.get("method") == method
        ]

    def errors(self) -> list[str]:
        """Uncaught script exceptions, console errors and dialogs (alert, confirm, …) so far."""
        found = [
            str(
                e.get("exceptionDetails", {}).get("exception", {}).get("description")
                or e.get("exceptionDetails", {}).get("text")
            )
            for e in self.events("Runtime.exceptionThrown")
        ]
        found += [
            "console.error: " + json.dumps(e.get("args"))
            for e in self.events("Runtime.consoleAPICalled")
            if e.get("type") == "error"
        ]
        found += ["dialog: " + str(e.get("message")) for e in self.events("Page.javascriptDialogOpening")]
        return found

    def log_entries(self) -> list[dict[str, Any]]:
        """Browser log entries (network errors, CSP violations, …)."""
        return [e.get("entry", {}) for e in self.events("Log.entryAdded")]

    def resize(self, width: int, height: int) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def set_cookie(self, name: str, value: str, url: str) -> None:
        result = self.send(
            "Network.setCookie", {"name": name, "value": value, "url": url, "path": "/", "sameSite": "Strict"}
        )
        if not result.get("success", True):
            raise CDPError(f"Network.setCookie refused {name}")

    def clear_cookies(self) -> None:
        self.send("Network.clearBrowserCookies")

    def navigate(self, url: str, timeout: float = 20.0) -> None:
        """Load ``url`` and wait (bounded) until the new document has loaded."""
        self.evaluate("window.__leftBehind = true")  # marks the old document
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CDPError(f"navigation to {url} failed: {result['errorText']}")
        self.wait_for("window.__leftBehind === undefined && document.readyState === 'complete'", timeout)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (promises are awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(
                f"{expression!r} threw: {details.get('exception', {}).get('description') or details.get('text')}"
            )
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 15.0, interval: float = 0.05) -> Any:
        """Poll ``expression`` until it is truthy (bounded); its value, else AssertionError."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while True:
            with suppress(CDPError):  # e.g. the context is replaced while navigating
                value = self.evaluate(expression)
                if value:
                    return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {expression!r} "
                    f"(last value {value!r}; page errors: {self.errors()})"
                )
            time.sleep(interval)

    def screenshot(self, clip: dict[str, float] | None = None, full_page: bool = False) -> bytes:
        """A PNG of the viewport, of ``clip`` (CSS pixels: x, y, width, height) or of the whole page."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            clip = {"x": 0, "y": 0, "width": size[0], "height": size[1]}
            params["captureBeyondViewport"] = True
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", params)["data"])


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Terminate Chromium's whole process group (it forks renderers and zygotes), then reap it."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with suppress(ProcessLookupError):  # stragglers of the group that outlived the leader
        os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """Start a headless Chromium in a fresh profile; yield the connected :class:`Browser`."""
    binary = find_chromium()
    profile = Path(tempfile.mkdtemp(prefix="unigate-chromium-"))
    log_path = profile.parent / (profile.name + ".log")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [binary, *FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        lines: list[str] = []
        while len(lines) < 2:
            if proc.poll() is not None or time.monotonic() > deadline:
                output = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Chromium did not open its DevTools port (exit {proc.poll()}):\n{output}")
            with suppress(FileNotFoundError):
                lines = port_file.read_text().split()
            time.sleep(0.05)
        with connect(
            f"ws://127.0.0.1:{lines[0]}{lines[1]}",
            proxy=None,
            max_size=None,
            open_timeout=START_TIMEOUT,
            close_timeout=2,
            compression=None,
        ) as ws:
            yield Browser(ws)
    finally:
        _kill(proc)
        shutil.rmtree(profile, ignore_errors=True)
        with suppress(FileNotFoundError):
            log_path.unlink()


# ---- PNG ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    pixels: bytes
    """Rows top to bottom, ``channels`` bytes per pixel."""

    def rgb(self, x: int, y: int) -> tuple[int, int, int]:
        i = (y * self.width + x) * self.channels
        if self.channels < 3:
            return (self.pixels[i],) * 3
        return self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]

    def colours(self) -> dict[tuple[int, int, int], int]:
        """How many pixels have each RGB colour."""
        counts: dict[tuple[int, int, int], int] = {}
        for y in range(self.height):
            for x in range(self.width):
                c = self.rgb(x, y)
                counts[c] = counts.get(c, 0) + 1
        return counts


_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type → samples per pixel (palette images are not supported)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(data: bytes) -> Image:
    """Decode an 8-bit, non-interlaced greyscale/RGB/RGBA PNG (what Chromium captures)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos = 8
    header: tuple[int, ...] | None = None
    idat = bytearray()
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunk = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(chunk + body) != crc:
            raise ValueError(f"bad CRC in {chunk!r} chunk")
        if chunk == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif chunk == b"IDAT":
            idat += body
        elif chunk == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace != 0:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    bpp = _CHANNELS[colour]
    stride = width * bpp
    raw = zlib.decompress(bytes(idat))
    if len(raw) != height * (stride + 1):
        raise ValueError("PNG data has the wrong size")
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for row in range(height):
        start = row * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((x + y) & 0xFF for x, y in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                upleft = prev[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, prev[i], upleft)) & 0xFF
        elif kind != 0:
            raise ValueError(f"unknown PNG filter {kind}")
        out[row * stride : (row + 1) * stride] = line
        prev = line
    return Image(width, height, bpp, bytes(out))
