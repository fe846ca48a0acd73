"""The browser backend: Playwright (sync API) driving Debian's headless Chromium.

Same ``Computer`` contract as the desktop (mouse and keyboard go through Playwright's input
pipeline, coordinates are viewport pixels), plus ``goto``/``url``/``back`` and the DOM helpers
the grounding and safety layers use. Frames come from CDP ``Page.captureScreenshot`` as JPEG,
which on this machine is about 3x faster than ``page.screenshot()`` PNG (see
docs/benchmarks.md). The URL policy (``allow_urls`` globs) is enforced on every request by a
route handler and on every ``goto`` before it leaves. This is the only module that imports
playwright.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

from PIL import Image

from agentcorp.errors import PolicyViolation, SandboxError, SandboxUnavailable
from agentcorp.policy.urls import UrlPolicy
from agentcorp.sandbox._proc import register_cleanup, tune_allocator, unregister_cleanup
from agentcorp.sandbox._settle import settle_frames
from agentcorp.sandbox.base import Button, Computer, Frame, SettleResult, checkpoint
from agentcorp.sandbox.secrets import resolve_secrets
from agentcorp.sandbox.services import Service, ServiceSpec, start_service
from agentcorp.types import Box, Point

__all__ = ["BrowserComputer", "ServiceSpec"]

_CHROMIUM_CANDIDATES = (
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "chromium",
    "chromium-browser",
)
_CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
_TYPE_CHUNK = 64
# What an allowed redirect becomes, so its target is a navigation the route sees.
_REFRESH_PAGE = '<!doctype html><meta http-equiv="refresh" content="0;url={url}">'
# What Chromium shows after a failed load; not a destination, so never a policy violation.
_ERROR_PAGES = ("chrome-error:",)

_KEYS: dict[str, str] = {
    "ctrl": "Control",
    "control": "Control",
    "alt": "Alt",
    "shift": "Shift",
    "super": "Meta",
    "win": "Meta",
    "meta": "Meta",
    "cmd": "Meta",
    "return": "Enter",
    "enter": "Enter",
    "esc": "Escape",
    "escape": "Escape",
    "del": "Delete",
    "delete": "Delete",
    "backspace": "Backspace",
    "bksp": "Backspace",
    "tab": "Tab",
    "space": " ",
    "pgup": "PageUp",
    "pageup": "PageUp",
    "prior": "PageUp",
    "pgdn": "PageDown",
    "pagedown": "PageDown",
    "next": "PageDown",
    "home": "Home",
    "end": "End",
    "up": "ArrowUp",
    "down": "ArrowDown",
    "left": "ArrowLeft",
    "right": "ArrowRight",
    "insert": "Insert",
    "plus": "+",
    "minus": "-",
}
_ROLES: dict[str, tuple[str, ...]] = {
    "button": ("button",),
    "link": ("link",),
    "menu": ("menuitem", "option", "combobox", "tab"),
    "field": ("textbox", "combobox", "spinbutton", "searchbox"),
}


def find_chromium(chromium: str | None = None) -> str:
    """The Chromium executable to use, or ``SandboxUnavailable`` with the install hint."""
    candidates = (chromium,) if chromium else _CHROMIUM_CANDIDATES
    for cand in candidates:
        path = cand if os.sep in cand else shutil.which(cand)
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    where = f" at {chromium}" if chromium else ""
    raise SandboxUnavailable(
        f"Chromium not found{where}: install chromium (apt-get install chromium)"
    )


def url_allowed(url: str, allow_urls: Sequence[str]) -> bool:
    """Whether ``url`` may be visited under ``allow_urls`` (the policy gate's own decision)."""
    return UrlPolicy(allow_urls).allows(url)


NavigationObserver = Callable[[str, bool, "str | None"], None]


class BrowserComputer(Computer):
    """A headless Chromium page the actor drives like a screen.

    ``services`` are started first (``${secrets.NAME}`` in their env resolved from
    ``secrets``), then the browser opens ``start_url``. ``allow_urls`` are the policy's URL
    patterns (``agentcorp.policy.urls``, the same decision as the gate's), applied to every
    request and every navigation hop: a refused sub-resource request is aborted; a refused
    navigation (link, redirect, form post, ``window.open``, script, iframe, download) is
    answered "204 No Content" so the page stays where it was, and a top-level one raises
    ``PolicyViolation`` (from ``goto``, or from the next call after the click that tried
    it). ``on_navigation(url, allowed, reason)`` is called for every navigation decision
    (the run's audit log). ``capture`` picks CDP JPEG (fast, default) or lossless PNG frames.
    """

    def __init__(
        self,
        *,
        screen: tuple[int, int] = (1280, 800),
        start_url: str | None = None,
        allow_urls: Sequence[str] = (),
        services: Sequence[ServiceSpec] = (),
        home: Path | None = None,
        secrets: Mapping[str, str] | None = None,
        chromium: str | None = None,
        capture: Literal["cdp-jpeg", "png"] = "cdp-jpeg",
        capture_quality: int = 90,
        timeout: float = 20.0,
        on_navigation: NavigationObserver | None = None,
    ) -> None:
        w, h = screen
        if w < 1 or h < 1:
            raise SandboxError(f"screen must be positive, got {screen!r}")
        self._screen = (w, h)
        self._allow = tuple(allow_urls)
        self._urls = UrlPolicy(self._allow)
        self._on_navigation = on_navigation
        self._secrets: dict[str, str] = dict(secrets or {})
        self._capture = capture
        self._quality = capture_quality
        self._timeout_ms = timeout * 1000.0
        self._capture_timeout_ms = 5000.0
        self._closed = False
        self._services: list[Service] = []
        self._blocked: list[str] = []
        self._pending_violation: str | None = None
        self._leave_pending = False
        self._hops: set[str] = set()
        self._nav_pending = False
        self._main_frame_id = ""
        self._pw: Any = None
        self._browser: Any = None
        self._own_home = home is None
        self.home: Path = (
            Path(tempfile.mkdtemp(prefix="agentcorp-browser-")) if home is None else home
        )
        self.home.mkdir(parents=True, exist_ok=True)
        exe = find_chromium(chromium)
        tune_allocator()
        register_cleanup(id(self), self.close)
        try:
            for spec in services:
                self._services.append(start_service(spec, self._secrets, self.home))
            self._launch(exe)
            if start_url:
                self.goto(start_url)
        except BaseException:
            self.close()
            raise

    def _launch(self, exe: str) -> None:
        from playwright.sync_api import Error, sync_playwright

        try:
            self._pw = sync_playwright().start()
            self._browser = self._pw.chromium.launch(
                executable_path=exe,
                headless=True,
                args=_CHROMIUM_ARGS,
                timeout=self._timeout_ms,
            )
            self._context = self._browser.new_context(
                viewport={"width": self._screen[0], "height": self._screen[1]},
                device_scale_factor=1,
                accept_downloads=False,
            )
            self._context.set_default_timeout(self._timeout_ms)
            # Every request is routed, restricted or not: file:, chrome: and friends are
            # refused even without an allow list.
            self._context.route("**/*", self._route)
            self._page = self._context.new_page()
            self._page.on("framenavigated", self._on_navigated)
            self._attach_cdp()
        except Error as exc:
            raise SandboxError(f"Chromium did not start: {_one_line(exc)}") from exc

    def _attach_cdp(self) -> None:
        """Open our CDP session on the page and follow main-frame loading through it.

        CDP reports a navigation the moment the renderer starts it (before the click or key
        call returns), which Playwright's request events cannot: settle() uses this to wait
        for a form submission's new page instead of settling on the old one.
        """
        self._cdp = self._context.new_cdp_session(self._page)
        self._cdp.on("Page.frameStartedLoading", self._on_loading)
        self._cdp.on("Page.frameStoppedLoading", self._on_stopped)
        self._cdp.on("Page.domContentEventFired", self._on_stopped)
        self._cdp.send("Page.enable")
        tree = self._cdp.send("Page.getFrameTree")
        self._main_frame_id = str(tree["frameTree"]["frame"]["id"])

    def _on_loading(self, params: dict[str, Any]) -> None:
        if params.get("frameId") == self._main_frame_id:
            self._nav_pending = True

    def _on_stopped(self, params: dict[str, Any]) -> None:
        if "frameId" not in params or params.get("frameId") == self._main_frame_id:
            self._nav_pending = False

    def _route(self, route: Any) -> None:

        request = route.request
        url = request.url
        reason = self._urls.refusal(url)
        navigation = request.is_navigation_request()
        if navigation:
            self._notify(url, reason)
        if reason is None:
            if not navigation:
                route.continue_()
                return
            self._continue_navigation(route, url)
            return
        self._blocked.append(url)
        if not navigation:
            route.abort("blockedbyclient")
            return
        self._block_navigation(route, url, request)

    def _block_navigation(self, route: Any, url: str, request: Any) -> None:
        from playwright.sync_api import Error

        top = True
        with contextlib.suppress(Error):  # a popup's frame may not be known yet
            top = request.frame.parent_frame is None
        if top:
            self._pending_violation = url
        # "No Content" to a navigation leaves the frame on the page it was showing.
        route.fulfill(status=204, body="")

    def _continue_navigation(self, route: Any, url: str) -> None:
        """Let an allowed navigation hop through, turning a redirect into a routed navigation.

        Chromium follows a redirect without asking the route again, so the hop is fetched
        here without following; a redirect is answered with a page that refreshes to its
        target at once (a client redirect, which replaces the history entry), and that
        navigation comes back through ``_route`` like any other.
        """
        from playwright.sync_api import Error

        try:
            response = self._fetch_hop(route, url)
        except Error:
            route.abort("failed")
            return
        location = response.headers.get("location")
        if not (300 <= response.status < 400 and location):
            self._hops.discard(url)
            route.fulfill(response=response)
            return
        target = urljoin(url, location)
        reason = self._urls.refusal(target)
        if reason is not None:
            self._notify(target, reason)
            self._blocked.append(target)
            self._block_navigation(route, target, route.request)
            return
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("location", "content-length", "content-type", "content-encoding")
        }
        self._hops.add(url)
        route.fulfill(
            status=200,
            headers=headers,
            content_type="text/html; charset=utf-8",
            body=_REFRESH_PAGE.format(url=html.escape(target, quote=True)),
        )

    def _fetch_hop(self, route: Any, url: str) -> Any:
        """One hop of a navigation, fetched by the driver without following redirects."""
        from playwright.sync_api import Error

        try:
            return route.fetch(max_redirects=0)
        except Error:
            parts = urlsplit(url)
            host = (parts.hostname or "").rstrip(".")
            if not (host == "localhost" or host.endswith(".localhost")):
                raise
        # Chromium resolves every *.localhost name to loopback (RFC 6761) but the driver's
        # resolver may not: fetch from 127.0.0.1 with the name in Host and the page's cookies.
        headers = dict(route.request.headers)
        headers["host"] = parts.netloc
        cookies = self._context.cookies(url)
        if cookies:
            headers["cookie"] = "; ".join(f"{c['name']}={c['value']}" for c in cookies)
        loop = parts._replace(netloc=f"127.0.0.1:{parts.port}" if parts.port else "127.0.0.1")
        return route.fetch(url=urlunsplit(loop), headers=headers, max_redirects=0)

    def _on_navigated(self, frame: Any) -> None:
        """Catch navigations no request announces (``data:``, ``blob:``, ``about:``)."""
        url = str(frame.url)
        if url.startswith(_ERROR_PAGES) or frame.parent_frame is not None:
            return
        reason = self._urls.refusal(url)
        if reason is not None and url not in self._blocked[-1:]:
            self._blocked.append(url)
            self._notify(url, reason)
            self._pending_violation = url
            self._leave_pending = True

    def _notify(self, url: str, reason: str | None) -> None:
        if self._on_navigation is not None:
            # An observer's failure must not let a navigation through or stall the browser.
            with contextlib.suppress(Exception):
                self._on_navigation(url, reason is None, reason)

    # --- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the browser, stop Playwright and the services. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        unregister_cleanup(id(self))
        if self._browser is not None:
            with contextlib.suppress(Exception):
                self._browser.close()
        if self._pw is not None:
            with contextlib.suppress(Exception):
                self._pw.stop()
        for service in reversed(self._services):
            service.stop()
        self._services.clear()
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the services this browser started (Chromium belongs to Playwright's driver)."""
        return {s.spec.name: s.pid for s in self._services}

    @property
    def blocked(self) -> list[str]:
        """Every URL the policy refused so far, in order."""
        return list(self._blocked)

    # --- navigation --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The current page URL."""
        return str(self._page.url)

    def title(self) -> str:
        """The current page title."""
        return str(self._call("title", self._page.title))

    def goto(self, url: str) -> None:
        """Navigate to ``url``; ``PolicyViolation`` when it is outside ``allow_urls``."""
        self._check()
        reason = self._urls.refusal(url)
        if reason is not None:
            self._blocked.append(url)
            self._notify(url, reason)
            raise PolicyViolation(f"navigation to {url} blocked: {reason}")
        self._call(f"goto {url}", self._page.goto, url, wait_until="domcontentloaded")
        self._follow_hops()
        self._raise_violation()

    def _follow_hops(self) -> None:
        """Wait until a page that only redirects (``_continue_navigation``) has moved on."""
        for _ in range(20):  # browsers stop redirect chains at about 20 hops too
            here = self.url
            if here not in self._hops or self._pending_violation is not None:
                return
            self._call(
                "redirect",
                self._page.wait_for_url,
                lambda u, here=here: u != here,
                wait_until="domcontentloaded",
            )

    def back(self) -> None:
        """Go back one page in history."""
        self._check()
        self._call("back", self._page.go_back, wait_until="domcontentloaded")
        self._raise_violation()

    def _raise_violation(self) -> None:
        url, self._pending_violation = self._pending_violation, None
        if self._leave_pending:
            # A page the route never saw (data:, blob:) committed: go back where we were.
            self._leave_pending = False
            with contextlib.suppress(Exception):
                self._page.go_back(wait_until="domcontentloaded")
        if url is not None:
            raise PolicyViolation(f"navigation to {url} blocked: not in allow_urls")

    def _check(self) -> None:
        if self._closed:
            raise SandboxError("the browser is closed")
        self._raise_violation()

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from playwright.sync_api import Error

        try:
            return fn(*args, **kwargs)
        except Error as exc:
            if self._pending_violation is not None:
                self._raise_violation()
            raise SandboxError(f"browser {what}: {_one_line(exc)}") from exc

    # --- Computer ----------------------------------------------------------------------

    @property
    def size(self) -> Point:
        """Viewport (width, height) in pixels."""
        return self._screen

    def screenshot(self, region: Box | None = None) -> Frame:
        """Capture the viewport (or ``region`` of it) through CDP."""
        if self._closed:
            raise SandboxError("the browser is closed")
        params: dict[str, Any] = {"captureBeyondViewport": False}
        if self._capture == "cdp-jpeg":
            params.update(format="jpeg", quality=self._quality)
        else:
            params.update(format="png")
        if region is not None:
            sw, sh = self._screen
            if (
                region.w <= 0
                or region.h <= 0
                or region.x < 0
                or region.y < 0
                or region.right > sw
                or region.bottom > sh
            ):
                raise SandboxError(f"region {region} is not inside the {sw}x{sh} viewport")
            params["clip"] = {
                "x": region.x,
                "y": region.y,
                "width": region.w,
                "height": region.h,
                "scale": 1,
            }
        t = time.time()
        img = Image.open(io.BytesIO(self._capture_bytes(params))).convert("RGB")
        origin = (region.x, region.y) if region is not None else (0, 0)
        frame = Frame(img.tobytes(), img.width, img.height, origin, t)
        frame._pil = img
        return frame

    def _capture_bytes(self, params: dict[str, Any]) -> bytes:
        from playwright.sync_api import Error

        try:
            data = self._cdp.send(
                "Page.captureScreenshot", params, timeout=self._capture_timeout_ms
            )
            return base64.b64decode(data["data"])
        except Error:
            # A navigation can swap the page's renderer and detach our CDP session: attach
            # a fresh one and retry once, then fall back to Playwright's own capture.
            pass
        try:
            self._attach_cdp()
            data = self._cdp.send(
                "Page.captureScreenshot", params, timeout=self._capture_timeout_ms
            )
            return base64.b64decode(data["data"])
        except Error:
            pass
        clip = params.get("clip")
        kwargs: dict[str, Any] = {"type": "png", "timeout": self._capture_timeout_ms}
        if clip is not None:
            kwargs["clip"] = {k: clip[k] for k in ("x", "y", "width", "height")}
        return bytes(self._call("screenshot", self._page.screenshot, **kwargs))

    def click(self, x: int, y: int, button: Button = "left") -> None:
        """Click at (x, y) with ``button``."""
        self._check()
        self._call("click", self._page.mouse.click, *self._xy(x, y), button=button)

    def double_click(self, x: int, y: int) -> None:
        """Double-click at (x, y)."""
        self._check()
        self._call("double_click", self._page.mouse.dblclick, *self._xy(x, y))

    def move(self, x: int, y: int) -> None:
        """Move the pointer to (x, y)."""
        self._check()
        self._call("move", self._page.mouse.move, *self._xy(x, y))

    def drag(self, path: Sequence[Point]) -> None:
        """Press at ``path[0]``, move through each point, release at the last."""
        self._check()
        pts = [self._xy(int(px), int(py)) for px, py in path]
        if len(pts) < 2:
            raise SandboxError("drag needs at least two points")
        mouse = self._page.mouse
        self._call("drag", mouse.move, *pts[0])
        self._call("drag", mouse.down)
        for p in pts[1:]:
            self._call("drag", mouse.move, *p, steps=4)
        self._call("drag", mouse.up)

    def scroll(self, x: int, y: int, dx: int, dy: int) -> None:
        """Scroll at (x, y) by wheel notches (100 px each): ``dy`` > 0 down."""
        self._check()
        self._call("scroll", self._page.mouse.move, *self._xy(x, y))
        self._call("scroll", self._page.mouse.wheel, dx * 100, dy * 100)

    def type(self, text: str) -> None:
        """Type ``text`` into the focused element; ``${secrets.NAME}`` resolved here."""
        self._check()
        value = resolve_secrets(text, self._secrets)
        lines = value.split("\n")
        for i, line in enumerate(lines):
            # In chunks, so a budget or an abort stops a long text part-way.
            for start in range(0, len(line), _TYPE_CHUNK):
                checkpoint()
                self._call("type", self._page.keyboard.type, line[start : start + _TYPE_CHUNK])
            if i < len(lines) - 1:
                checkpoint()
                self._call("type", self._page.keyboard.press, "Enter")

    def key(self, combo: str) -> None:
        """Press a combination like ``"ctrl+a"``, ``"Return"``, ``"shift+Tab"``."""
        self._check()
        self._call(f"key {combo!r}", self._page.keyboard.press, _playwright_combo(combo))

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass while the page keeps running."""
        self._check()
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            checkpoint()
            self._page.wait_for_timeout(min(left, 0.1) * 1000.0)

    def settle(self, timeout: float = 2.0, since: Frame | None = None) -> SettleResult:
        """Return once a started navigation loaded and two consecutive frames agree.

        Capped by ``timeout``; raises a pending ``PolicyViolation`` for a navigation the last
        action tried.
        """
        from playwright.sync_api import Error

        self._check()
        t0 = time.perf_counter()
        # A Playwright round trip delivers the events an action caused (a form submission's
        # navigation request); a started navigation is waited for by its load event.
        with contextlib.suppress(Error):
            self._page.context.cookies()
        deadline = t0 + timeout
        while True:
            while self._nav_pending and time.perf_counter() < deadline:
                # Lets Playwright deliver events until the new document's DOMContentLoaded.
                self._page.wait_for_timeout(5)
            self._raise_violation()
            left = max(0.0, deadline - time.perf_counter())
            result = settle_frames(self.screenshot, left, since, interval=0.002, quiet=0.15)
            self._raise_violation()
            # A navigation that began while we watched frames (a slow form submission) means
            # the screen is about to change: wait for it and settle again.
            if not self._nav_pending or time.perf_counter() >= deadline:
                break
        self._nav_pending = False
        elapsed = (time.perf_counter() - t0) * 1000.0
        return SettleResult(result.frame, result.changed, elapsed, result.stable)

    def _xy(self, x: int, y: int) -> tuple[float, float]:
        w, h = self._screen
        if not (0 <= x < w and 0 <= y < h):
            raise SandboxError(f"point ({x}, {y}) is outside the {w}x{h} viewport")
        return (float(x), float(y))

    # --- DOM helpers for grounding and safety ------------------------------------------

    def dom_locate(self, target: str, role: str | None = None) -> list[tuple[Box, str]]:
        """Visible elements matching ``target`` (by role name, label or text), as screen boxes.

        ``role`` is one of button/field/link/text/menu; None tries all of them. Exact matches
        come first; at most 20 results.
        """
        self._check()
        if role is not None and role not in (*_ROLES, "text"):
            raise SandboxError(f"dom_locate: unknown role {role!r}")
        page = self._page
        locators: list[Any] = []
        roles = [role] if role else ["button", "field", "link", "menu", "text"]
        for exact in (True, False):
            for r in roles:
                if r == "text":
                    locators.append(page.get_by_text(target, exact=exact))
                    continue
                if r == "field":
                    locators.append(page.get_by_label(target, exact=exact))
                    locators.append(page.get_by_placeholder(target, exact=exact))
                for aria in _ROLES[r]:
                    locators.append(page.get_by_role(aria, name=target, exact=exact))
        found: list[tuple[Box, str]] = []
        seen: set[tuple[int, int, int, int]] = set()
        for loc in locators:
            for el in self._call("dom_locate", loc.all):
                box = self._visible_box(el)
                if box is None or (key := (box.x, box.y, box.w, box.h)) in seen:
                    continue
                seen.add(key)
                found.append((box, self._element_text(el)))
                if len(found) >= 20:
                    return found
        return found

    def _visible_box(self, el: Any) -> Box | None:
        from playwright.sync_api import Error

        try:
            if not el.is_visible():
                return None
            bb = el.bounding_box()
        except Error:
            return None
        if not bb or bb["width"] <= 0 or bb["height"] <= 0:
            return None
        sw, sh = self._screen
        x0, y0 = max(0, int(bb["x"])), max(0, int(bb["y"]))
        x1 = min(sw, int(bb["x"] + bb["width"] + 0.999))
        y1 = min(sh, int(bb["y"] + bb["height"] + 0.999))
        if x1 <= x0 or y1 <= y0:
            return None
        return Box(x0, y0, x1 - x0, y1 - y0)

    def _element_text(self, el: Any) -> str:
        from playwright.sync_api import Error

        try:
            text = el.evaluate(
                "e => (e.innerText || e.value || e.getAttribute('aria-label') || "
                "e.getAttribute('placeholder') || e.textContent || '').trim()"
            )
        except Error:
            return ""
        return " ".join(str(text).split())[:200]

    def focused_field(self) -> tuple[Box, bool] | None:
        """Box of the focused text input and whether it is a password field, or None."""
        self._check()
        info = self._call(
            "focused_field",
            self._page.evaluate,
            """() => {
            const e = document.activeElement;
            if (!e || e === document.body) return null;
            const tag = e.tagName.toLowerCase();
            const editable = tag === 'textarea' || e.isContentEditable ||
                (tag === 'input' && !['button','submit','reset','checkbox','radio','file',
                  'image','hidden','range','color'].includes((e.type || '').toLowerCase()));
            if (!editable) return null;
            const r = e.getBoundingClientRect();
            return {x: r.x, y: r.y, w: r.width, h: r.height,
                    password: tag === 'input' && (e.type || '').toLowerCase() === 'password'};
        }""",
        )
        if not info:
            return None
        box = Box(int(info["x"]), int(info["y"]), max(1, int(info["w"])), max(1, int(info["h"])))
        return box, bool(info["password"])


def _playwright_combo(combo: str) -> str:
    if not isinstance(combo, str) or not combo.strip():
        raise SandboxError(f"empty key combo {combo!r}")
    raw = combo.strip()
    parts = raw.split("+")
    if raw.endswith("+") and len(parts) >= 2:
        parts = [*parts[:-2], "+"]
    out: list[str] = []
    for part in parts:
        name = part.strip()
        if not name:
            raise SandboxError(f"malformed key combo {combo!r}")
        mapped = _KEYS.get(name.lower())
        if mapped is not None:
            out.append(mapped)
        elif len(name) == 1:
            out.append(name)
        elif name[0] in "fF" and name[1:].isdigit():
            out.append(name.upper())
        else:
            out.append(name[0].upper() + name[1:])
    return "+".join(out)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
