"""Issue 16 defect 1 in real Chromium: every kind of navigation goes through the URL policy."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from agentcorp.errors import PolicyViolation
from agentcorp.policy.urls import UrlPolicy
from agentcorp.sandbox.browser import BrowserComputer, SharedChromium


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Site:
    port: int
    hits: list[str] = field(default_factory=list)
    pages: dict[str, str] = field(default_factory=dict)
    server: http.server.ThreadingHTTPServer | None = None


def _serve(site: _Site) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            site.hits.append(f"{self.command} {self.path}")
            path = self.path.split("?")[0]
            if path.startswith("/redirect-to/"):
                self.send_response(302)
                self.send_header("Location", "http://" + path[len("/redirect-to/") :])
                self.end_headers()
                return
            body = site.pages.get(path, "<p>hello</p>").encode()
            self.send_response(200)
            if path.endswith(".js"):
                self.send_header("Content-Type", "text/javascript")
                self.send_header("Cache-Control", "max-age=3600")
            else:
                self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", site.port), Handler)
    site.server = server
    threading.Thread(target=server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[_Site, _Site]]:
    good, evil = _Site(_port()), _Site(_port())
    _serve(good)
    _serve(evil)
    yield good, evil
    for s in (good, evil):
        assert s.server is not None
        s.server.shutdown()
        s.server.server_close()


def test_query_string_never_matches_a_host_glob() -> None:
    policy = UrlPolicy(["http://*.localhost:8799/*"])
    assert policy.allows("http://app.localhost:8799/x?y=1")
    assert not policy.allows("http://127.0.0.1:8798/evil?x=.localhost:8799/")
    assert not policy.allows("http://127.0.0.1:8798/evil#.localhost:8799/")
    assert not policy.allows("data:text/html,<b>hi</b>")
    assert not policy.allows("blob:http://app.localhost:8799/0b1d")


def test_every_navigation_kind_is_refused_audited_and_leaves_the_page(
    sites: tuple[_Site, _Site],
) -> None:
    good, evil = sites
    bad = f"http://127.0.0.1:{evil.port}/evil?x=.localhost:{good.port}/"
    home = f"http://app.localhost:{good.port}/home"
    style = "font-size:40px;display:block"
    good.pages["/home"] = (
        f'<a id="link" style="{style}" href="{bad}">link</a>'
        f'<a id="redirect" style="{style}" href="/redirect-to/127.0.0.1:{evil.port}/r">redir</a>'
        f'<form method="post" action="{bad}"><button id="post" style="{style}">post</button></form>'
        f'<button id="open" style="{style}" onclick="window.open(\'{bad}\')">open</button>'
        f'<button id="loc" style="{style}" onclick="location=\'{bad}\'">loc</button>'
        f'<a id="dl" style="{style}" href="{bad}&dl=1" download>download</a>'
        f'<a id="data" style="{style}" href="data:text/html,<b>x</b>">data</a>'
    )
    good.pages["/frame"] = f'<iframe src="{bad}&frame=1"></iframe><p>framed</p>'
    seen: list[tuple[str, bool, str | None]] = []
    with BrowserComputer(
        start_url=home,
        allow_urls=[f"http://*.localhost:{good.port}/*"],
        on_navigation=lambda u, ok, why: seen.append((u, ok, why)),
        capture="png",
    ) as b:
        for element in ("link", "redirect", "post", "open", "loc", "dl"):
            box = b._page.locator(f"#{element}").bounding_box()
            assert box is not None
            with pytest.raises(PolicyViolation, match="blocked"):
                b.click(int(box["x"] + 5), int(box["y"] + 5))
                b.settle(timeout=3.0)
                b._page.wait_for_timeout(300)
                b.screenshot()
                b.move(1, 1)
            assert b.url == home, (element, b.url)
        b.goto(f"http://app.localhost:{good.port}/frame")
        b._page.wait_for_timeout(500)
        assert b.url.endswith("/frame")
        with pytest.raises(PolicyViolation):
            b.goto(bad)
        assert b.url.endswith("/frame")
        assert any(u.startswith(f"http://127.0.0.1:{evil.port}/") for u in b.blocked)
    assert evil.hits == [], evil.hits
    refused = [u for u, ok, _ in seen if not ok]
    assert bad in refused and f"{bad}&frame=1" in refused
    assert f"http://127.0.0.1:{evil.port}/r" in refused  # the redirect's hop, audited
    assert all(why for u, ok, why in seen if not ok)
    assert (home, True, None) in seen


def test_a_redirect_inside_the_allowed_urls_is_followed(sites: tuple[_Site, _Site]) -> None:
    good, _ = sites
    with BrowserComputer(
        start_url=f"http://app.localhost:{good.port}/redirect-to/app.localhost:{good.port}/there",
        allow_urls=[f"http://*.localhost:{good.port}/*"],
        capture="png",
    ) as b:
        assert b.url == f"http://app.localhost:{good.port}/there"


def test_pages_keep_the_http_cache_while_every_request_is_judged(
    sites: tuple[_Site, _Site],
) -> None:
    """Playwright's routes turned the cache off: each page load fetched its scripts again."""
    good, evil = sites
    good.pages["/cached"] = '<script src="/app.js"></script><p>cached</p>'
    good.pages["/app.js"] = "window.loaded = (window.loaded || 0) + 1;"
    good.pages["/leaky"] = f'<img src="http://127.0.0.1:{evil.port}/pixel.gif"><p>leaky</p>'
    before = len(evil.hits)
    with BrowserComputer(
        start_url=f"http://app.localhost:{good.port}/cached",
        allow_urls=[f"http://*.localhost:{good.port}/*"],
        capture="png",
    ) as b:
        for _ in range(3):
            b.goto(f"http://app.localhost:{good.port}/cached")
            assert b.js_eval("window.loaded") == 1
        b.goto(f"http://app.localhost:{good.port}/leaky")
        b.settle(timeout=3.0)
        assert f"http://127.0.0.1:{evil.port}/pixel.gif" in b.blocked
    assert good.hits.count("GET /app.js") == 1, good.hits
    assert len(evil.hits) == before, evil.hits


def test_two_sessions_on_one_shared_chromium_each_keep_their_own_policy(
    sites: tuple[_Site, _Site],
) -> None:
    good, evil = sites
    shared = SharedChromium()
    good_url = f"http://app.localhost:{good.port}/mine"
    evil_url = f"http://127.0.0.1:{evil.port}/theirs"
    try:
        with (
            BrowserComputer(allow_urls=[f"http://*.localhost:{good.port}/*"], shared=shared) as a,
            BrowserComputer(allow_urls=[f"http://127.0.0.1:{evil.port}/*"], shared=shared) as b,
        ):
            a.goto(good_url)
            b.goto(evil_url)
            assert (a.url, b.url) == (good_url, evil_url)
            with pytest.raises(PolicyViolation):
                a.goto(evil_url)
            with pytest.raises(PolicyViolation):
                b.goto(good_url)
            assert (a.url, b.url) == (good_url, evil_url)
        # The first session's judge left with it: a new one has only its own policy.
        with BrowserComputer(allow_urls=[f"http://127.0.0.1:{evil.port}/*"], shared=shared) as c:
            c.goto(evil_url)
            assert c.url == evil_url
    finally:
        shared.close()


class _Sockets:
    """A raw TCP listener that records the first line of every connection it gets."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.lines: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                self.lines.append(conn.recv(200).split(b"\r\n")[0].decode())

    def close(self) -> None:
        self.sock.close()


def test_a_websocket_to_a_host_not_allowed_never_connects(sites: tuple[_Site, _Site]) -> None:
    """Fetch interception never sees a WebSocket: a page and its worker reached any host."""
    good, _ = sites
    evil = _Sockets()
    try:
        bad = f"ws://127.0.0.1:{evil.port}"
        good.pages["/ws"] = (
            f"<p>sockets</p><script>new WebSocket('{bad}/page');"
            f"new WebSocket('ws://app.localhost:{good.port}/own');"
            f"new Worker(URL.createObjectURL(new Blob([\"new WebSocket('{bad}/worker')\"])));"
            "</script>"
        )
        heard: list[tuple[str, str]] = []
        b = BrowserComputer(
            start_url=f"http://app.localhost:{good.port}/ws",
            allow_urls=[f"http://*.localhost:{good.port}/*"],
            on_connection=lambda target, why: heard.append((target, why)),
            capture="png",
        )
        try:
            b._page.wait_for_timeout(1500)
            refused = b.refused_connections
        finally:
            b.close()
        assert evil.lines == [], evil.lines
        assert "GET /own" in " ".join(good.hits)  # its own host and port: reached directly
        assert refused.count(f"127.0.0.1:{evil.port}") == 2, refused  # the page's and the worker's
        assert (f"127.0.0.1:{evil.port}", heard[0][1]) in heard and "allow_urls" in heard[0][1]
    finally:
        evil.close()


def test_an_unrestricted_browser_keeps_its_websockets(sites: tuple[_Site, _Site]) -> None:
    good, _ = sites
    other = _Sockets()
    try:
        good.pages["/ws-free"] = f"<script>new WebSocket('ws://127.0.0.1:{other.port}/x')</script>"
        with BrowserComputer(start_url=f"http://127.0.0.1:{good.port}/ws-free", capture="png") as b:
            b._page.wait_for_timeout(1000)
        assert other.lines and other.lines[0].startswith("GET /x"), other.lines
    finally:
        other.close()


def test_bypass_rules_name_only_what_the_patterns_allow() -> None:
    from agentcorp.sandbox._guard import bypass_rules

    policy = UrlPolicy(
        [
            "http://127.0.0.1:8765/*",
            "https://*.example.com/app/*",
            "localhost:*",
            "ws://chat.example.org",
            "http://[::1]:8000/",
            "http://[a-c].example.net/*",  # a glob Chromium cannot say: left out (refused)
            "http://x.example.net:80*/",  # a partial port glob: left out
            "data:image/*",
        ]
    )
    assert bypass_rules(policy) == [
        "127.0.0.1:8765",
        "*.example.com:443",
        "localhost",
        "chat.example.org:80",
        "[::1]:8000",
    ]
