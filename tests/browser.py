"""Open an HTML page in headless Chromium and say what a reader would hit: console errors,
broken images, network requests, and a screenshot of the first screen.

It drives Debian's ``chromium`` over the Chrome DevTools Protocol (CDP) with websocket-client,
which the lock already has (via jupyter-server), so no browser-automation package is needed.
The browser's network is off: every URL, loopback included, goes to a proxy on a port where
nothing listens, and no host resolves (not even an IP literal); either alone stops a request.
A page that reaches out gets nothing back, and each attempt is still recorded, since CDP
reports a request before it is sent."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import websocket

SKIP_REASON = "chromium not installed (apt-get install chromium); CI installs it"
# Schemes a self-contained page may load from without touching any network.
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:")
FLAGS = [
    "--headless=new",
    "--disable-gpu",
    "--remote-debugging-port=0",  # any free port; Chromium writes it to DevToolsActivePort
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",  # Debian's launcher loads its bundled extensions otherwise
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=127.0.0.1:9",  # the discard port: nothing listens there
    "--proxy-bypass-list=<-loopback>",  # send loopback through that proxy too
    "--host-resolver-rules=MAP * ~NOTFOUND",  # IP literals too: 127.0.0.1 fails without proxy
]
# Run in the page after its load: what a reader would see that the CDP events don't show.
# An image that failed has complete && naturalWidth == 0; one not complete after the load event
# never arrived (a loading="lazy" one below the fold would count too: the reports have none).
INSPECT_JS = """(() => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
    .map(i => (i.getAttribute('src') || '(no src)').slice(0, 80));
  const selector = SELECTOR;
  let visible = null;
  if (selector !== null) {
    const el = document.querySelector(selector), r = el && el.getBoundingClientRect();
    visible = !!r && r.width > 0 && r.height > 0 && r.top < innerHeight && r.bottom > 0;
  }
  return {title: document.title, broken, visible};
})()"""


@dataclass
class PageReport:
    """What one page load showed; ``problems()`` lists what should fail a test."""

    url: str
    screenshot: Path
    title: str = ""
    console_errors: list[str] = field(default_factory=list)
    network_requests: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    expect_visible: str | None = None
    visible: bool | None = None  # whether expect_visible's element shows in the first screen

    def problems(self) -> list[str]:
        found = [f"console error: {e}" for e in self.console_errors]
        found += [f"network request: {u}" for u in self.network_requests]
        found += [f"broken image: {s}" for s in self.broken_images]
        if self.visible is False:
            found.append(f"{self.expect_visible!r} is not visible in the first screen")
        return found


def find_chromium() -> str | None:
    """The Chromium (or Chrome) binary on PATH, or None."""
    names = ("chromium", "chromium-browser", "google-chrome")
    return next((p for p in map(shutil.which, names) if p), None)


def require_chromium() -> str:
    """The Chromium binary; skips the calling test (or module, at import) when there is none."""
    binary = find_chromium()
    if binary is None:
        pytest.skip(SKIP_REASON, allow_module_level=True)
    return binary


class _Cdp:
    """One websocket to the browser; page sessions share it (CDP's "flatten" mode)."""

    def __init__(self, port: int, path: str) -> None:
        # Our own socket: websocket-client would go through an http_proxy of the environment
        # unless no_proxy names loopback (its http_no_proxy option is ignored without a proxy
        # host). No Origin header: Chromium checks it against --remote-allow-origins (the one
        # websocket-client would send, http://127.0.0.1:port, passes today; none always does).
        tcp = socket.create_connection(("127.0.0.1", port))
        self._ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", socket=tcp,
                                               suppress_origin=True)
        self._last_id = 0
        self.on_event: Callable[[dict[str, Any]], None] = lambda msg: None

    def call(self, method: str, deadline: float, session: str | None = None, **params: Any) -> Any:
        self._last_id += 1
        msg: dict[str, Any] = {"id": self._last_id, "method": method, "params": params}
        if session is not None:
            msg["sessionId"] = session
        self._ws.send(json.dumps(msg))
        while (reply := self.receive(deadline, method)).get("id") != self._last_id:
            pass
        if "error" in reply:
            raise RuntimeError(f"CDP {method}: {reply['error']}")
        return reply["result"]

    def receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        """The next message; events go to ``on_event`` first."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"chromium: timed out waiting for {waiting_for}")
        self._ws.settimeout(left)
        try:
            msg = json.loads(self._ws.recv())
        except websocket.WebSocketTimeoutException:
            raise TimeoutError(f"chromium: timed out waiting for {waiting_for}") from None
        if "method" in msg:
            self.on_event(msg)
        return msg

    def drain(self, until: float) -> None:
        """Handle events until ``until`` (time.monotonic); a quiet page just runs out the clock."""
        try:
            while True:
                self.receive(until, "events")
        except TimeoutError:
            pass

    def close(self) -> None:
        self._ws.close()


class Chromium:
    """A headless Chromium for checking pages; each ``check`` gets a fresh browser context."""

    def __init__(self, binary: str | None = None, *, timeout: float = 60) -> None:
        found = binary or find_chromium()
        if found is None:
            raise FileNotFoundError(SKIP_REASON)
        self.binary, self.timeout = found, timeout

    def __enter__(self) -> Chromium:
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True)
        self._log = tempfile.TemporaryFile()
        args = [self.binary, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        # Its own process group, so that closing kills the renderer and helper processes too.
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._cdp = _Cdp(*self._devtools_port(time.monotonic() + self.timeout))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _devtools_port(self, deadline: float) -> tuple[int, str]:
        port_file = Path(self._profile.name, "DevToolsActivePort")  # "port\n/devtools/browser/id"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._log.seek(0)
                tail = self._log.read()[-2000:].decode(errors="replace")
                raise RuntimeError(f"chromium exited with {self._proc.returncode}:\n{tail}")
            lines = port_file.read_text().split() if port_file.exists() else []
            if len(lines) == 2:  # else not there or half written yet
                return int(lines[0]), lines[1]
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    def close(self) -> None:
        if hasattr(self, "_cdp"):
            self._cdp.close()
        # SIGKILL is enough: the profile is thrown away, nothing in it needs a clean shutdown.
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._proc.wait()
        self._log.close()
        self._profile.cleanup()

    def check(self, path: Path, screenshot: Path, *, width: int = 1400, height: int = 1000,
              timeout: float | None = None, expect_visible: str | None = None,
              settle: float = 0.5) -> PageReport:
        """Load ``path``, wait for its load event and ``settle`` seconds more (for late requests
        and errors), then inspect it and save a PNG of its first ``width`` x ``height`` screen."""
        url = Path(path).resolve(strict=True).as_uri()
        deadline = time.monotonic() + (timeout or self.timeout)
        report = PageReport(url, Path(screenshot), expect_visible=expect_visible)
        cdp = self._cdp
        context = cdp.call("Target.createBrowserContext", deadline)["browserContextId"]
        try:
            target = cdp.call("Target.createTarget", deadline, url="about:blank",
                              browserContextId=context)["targetId"]
            session = cdp.call("Target.attachToTarget", deadline, targetId=target,
                               flatten=True)["sessionId"]
            loads: list[str] = []  # loaderIds of the documents that fired "load"
            cdp.on_event = lambda msg: _record(msg, session, report, loads)
            for domain in ("Page", "Runtime", "Log", "Network"):
                cdp.call(f"{domain}.enable", deadline, session)
            # Lifecycle events name their document's loader, so a late "load" of the first
            # about:blank cannot be taken for the page's (Page.loadEventFired names none).
            cdp.call("Page.setLifecycleEventsEnabled", deadline, session, enabled=True)
            cdp.call("Emulation.setDeviceMetricsOverride", deadline, session, width=width,
                     height=height, deviceScaleFactor=1, mobile=False)
            nav = cdp.call("Page.navigate", deadline, session, url=url)
            if "errorText" in nav:
                raise RuntimeError(f"chromium could not open {url}: {nav['errorText']}")
            while nav["loaderId"] not in loads:
                cdp.receive(deadline, f"the load event of {url}")
            cdp.drain(min(deadline, time.monotonic() + settle))
            facts = cdp.call("Runtime.evaluate", deadline, session, returnByValue=True,
                             expression=INSPECT_JS.replace("SELECTOR", json.dumps(expect_visible)))
            shot = cdp.call("Page.captureScreenshot", deadline, session, format="png")["data"]
        finally:
            cdp.on_event = lambda msg: None
            # Closes the page too; its own deadline, so that a timed-out check still cleans up.
            cdp.call("Target.disposeBrowserContext", time.monotonic() + 10,
                     browserContextId=context)
        value = facts["result"]["value"]
        report.title, report.broken_images = value["title"], value["broken"]
        report.visible = value["visible"]
        _write_atomically(report.screenshot, base64.b64decode(shot))
        return report


def _record(msg: dict[str, Any], session: str, report: PageReport, loads: list[str]) -> None:
    """Note one CDP event of the page's session in ``report`` (and its loads in ``loads``)."""
    if msg.get("sessionId") != session:
        return
    params = msg.get("params", {})
    match msg["method"]:
        case "Page.lifecycleEvent" if params["name"] == "load":
            loads.append(params["loaderId"])
        case "Network.requestWillBeSent" | "Network.webSocketCreated":
            url = params.get("request", params)["url"]
            if not url.startswith(LOCAL_SCHEMES):
                report.network_requests.append(url)
        case "Runtime.consoleAPICalled" if params["type"] in ("error", "assert"):
            args = (a.get("value", a.get("description", a["type"])) for a in params["args"])
            report.console_errors.append(" ".join(map(str, args)))
        case "Runtime.exceptionThrown":
            details = params["exceptionDetails"]  # "description" has the message and stack
            error = details.get("exception", {}).get("description") or details["text"]
            report.console_errors.append(error)
        case "Log.entryAdded" if params["entry"]["level"] == "error":
            entry = params["entry"]  # e.g. "Failed to load resource: ...", with the resource
            where = f" ({entry['url']})" if entry.get("url") else ""
            report.console_errors.append(entry["text"] + where)


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def check_page(path: Path, screenshot: Path, *, width: int = 1400, height: int = 1000,
               timeout: float = 60, expect_visible: str | None = None) -> PageReport:
    """``Chromium().check`` in a browser of its own, started and killed here."""
    with Chromium(timeout=timeout) as browser:
        return browser.check(path, screenshot, width=width, height=height,
                             expect_visible=expect_visible)
