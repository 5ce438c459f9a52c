"""The headless-Chromium page check (tests/browser.py), on small hand-written pages: each kind of
problem it must catch is shown to fail a page, and a clean page to pass."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import Chromium, check_page, require_chromium

require_chromium()  # skips this module, with the reason, where Chromium is not installed

# A valid 1x1 PNG.
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
         "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    """One browser for the module: starting Chromium costs more than checking a small page."""
    with Chromium(timeout=30) as chromium:
        yield chromium


def page(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "page.html"
    path.write_text(f"<!doctype html><html><head><title>Page</title></head>{body}</html>")
    return path


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_clean_page_passes_and_is_screenshot_at_the_requested_size(tmp_path: Path) -> None:
    shot = tmp_path / "shots" / "clean.png"
    report = check_page(page(tmp_path, f'<h1 id="top">Report</h1><img src="{PIXEL}">'), shot,
                        width=640, height=480, expect_visible="#top")
    assert report.problems() == []
    assert (report.title, report.visible, report.screenshot) == ("Page", True, shot)
    assert png_size(shot) == (640, 480)
    assert [p.name for p in shot.parent.iterdir()] == ["clean.png"]  # no partial file left


@pytest.mark.parametrize("script, message", [
    ('console.error("x marks the spot")', "x marks the spot"),
    ('console.assert(1 === 2, "one is two")', "one is two"),
    ('throw new Error("boom")', "Error: boom"),
    ('setTimeout(() => { throw new TypeError("late boom"); }, 100)', "TypeError: late boom"),
])
def test_console_errors_fail_the_page(browser: Chromium, tmp_path: Path, script: str,
                                      message: str) -> None:
    report = browser.check(page(tmp_path, f"<script>{script}</script>"), tmp_path / "shot.png")
    assert any(message in e for e in report.console_errors), report.console_errors
    assert report.problems() and not report.network_requests


def test_network_requests_are_reported_and_never_leave(browser: Chromium, tmp_path: Path) -> None:
    # A listener on loopback, the one address a request could reach here: it must get nothing,
    # which shows that requests go to the dead proxy rather than to their host.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        local = f"http://127.0.0.1:{listener.getsockname()[1]}/data.json"
        body = (f'<img src="http://example.invalid/a.png">'
                f'<script>fetch("https://example.com/"); fetch("{local}");'
                f'new WebSocket("wss://example.com/live");</script>')
        report = browser.check(page(tmp_path, body), tmp_path / "shot.png")
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert sorted(report.network_requests) == sorted(
        ["http://example.invalid/a.png", "https://example.com/", local, "wss://example.com/live"])
    assert "network request: https://example.com/" in report.problems()
    assert report.broken_images == ["http://example.invalid/a.png"]


def test_broken_embedded_image_fails_the_page(browser: Chromium, tmp_path: Path) -> None:
    body = f'<img src="{PIXEL}"><img src="data:image/png;base64,AAAA">'
    report = browser.check(page(tmp_path, body), tmp_path / "shot.png")
    assert report.broken_images == ["data:image/png;base64,AAAA"]
    assert report.problems() == ["broken image: data:image/png;base64,AAAA"]


@pytest.mark.parametrize("selector, visible", [("#top", True), ("#far", False), ("#none", False)])
def test_expect_visible_means_in_the_first_screen(browser: Chromium, tmp_path: Path,
                                                  selector: str, visible: bool) -> None:
    body = '<p id="top">first</p><p id="far" style="margin-top: 3000px">far down</p>'
    report = browser.check(page(tmp_path, body), tmp_path / "shot.png", expect_visible=selector)
    assert report.visible is visible
    assert bool(report.problems()) is not visible
