"""``Sandboxes``: browser sessions of one sandbox share a Chromium but nothing a page keeps."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agentcorp.app.sandboxes import Sandboxes
from agentcorp.spec import load_company_text

PAGE = b"<!doctype html><html><head><title>Shop</title></head><body><p>Shop</p></body></html>"


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def _company(port: int) -> Any:
    text = f"""\
version: 1
company: c
roles:
  r: {{title: R, sandbox: web}}
sandboxes:
  web: {{kind: browser, start_url: "http://127.0.0.1:{port}/"}}
tasks:
  - {{id: t, role: r, description: "Do it"}}
"""
    return load_company_text(text, "c.yaml")


def _leave_traces(computer: Any) -> None:
    computer.js_eval(
        "document.cookie = 'sid=row1; path=/'; localStorage.setItem('cart', 'row1');"
        "sessionStorage.setItem('step', 'row1'); 1"
    )
    assert computer.js_eval("document.cookie") == "sid=row1"


def test_rows_share_one_chromium_and_nothing_a_page_kept(port: int) -> None:
    boxes = Sandboxes(_company(port), {})
    try:
        with boxes.session("web") as (first, _):
            _leave_traces(first)
            browser = first._context.browser
        with boxes.session("web") as (second, _):
            # One process for both rows: the second session is a context in the same browser.
            assert second._context.browser is browser
            assert browser.contexts == [second._context]
            assert second.js_eval("document.cookie") == ""
            assert second.js_eval("localStorage.getItem('cart')") is None
            assert second.js_eval("sessionStorage.getItem('step')") is None
            assert second.title() == "Shop"
        assert first._closed and second._closed
    finally:
        boxes.close()
    assert not browser.is_connected()


def test_a_dead_chromium_is_started_again_for_the_next_row(port: int) -> None:
    boxes = Sandboxes(_company(port), {})
    try:
        with boxes.session("web") as (first, _):
            browser = first._context.browser
        browser.close()  # as if Chromium had crashed between two rows
        with boxes.session("web") as (second, _):
            assert second._context.browser is not browser
            assert second.title() == "Shop"
    finally:
        boxes.close()


def test_a_session_on_another_thread_gets_its_own_chromium(port: int) -> None:
    boxes = Sandboxes(_company(port), {})
    got: dict[str, Any] = {}

    def other() -> None:
        try:
            with boxes.session("web") as (computer, _):
                got["title"] = computer.title()
                got["private"] = computer._browser is not None
        except Exception as exc:  # reported below: the assertion names it
            got["error"] = exc

    try:
        with boxes.session("web") as (mine, _):
            _leave_traces(mine)
        worker = threading.Thread(target=other)
        worker.start()
        worker.join(60)
        assert "error" not in got, got.get("error")
        assert got == {"title": "Shop", "private": True}
    finally:
        boxes.close()
