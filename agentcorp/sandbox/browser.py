"""The browser backend: Playwright (sync API) driving Debian's headless Chromium.

Same ``Computer`` contract as the desktop (mouse and keyboard go through Playwright's input
pipeline, coordinates are viewport pixels), plus ``goto``/``url``/``back`` and the DOM helpers
the grounding and safety layers use. Frames come from CDP ``Page.captureScreenshot`` as JPEG,
which on this machine is about 3x faster than ``page.screenshot()`` PNG (see
docs/benchmarks.md). The URL policy (``allow_urls`` globs) is enforced on every request
(every redirect hop, every tab's) by a browser-level CDP ``Fetch`` interception, which keeps
Chromium's HTTP cache on, and on every ``goto`` before it leaves. This is the only module that
imports playwright.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from agentcorp.errors import PolicyViolation, SandboxError, SandboxUnavailable
from agentcorp.policy.urls import UrlPolicy
from agentcorp.sandbox._guard import ConnectionGuard
from agentcorp.sandbox._proc import register_cleanup, tune_allocator, unregister_cleanup
from agentcorp.sandbox._settle import changed_box, settle_frames
from agentcorp.sandbox.base import Button, Computer, Frame, SettleResult, checkpoint
from agentcorp.sandbox.secrets import resolve_secrets
from agentcorp.sandbox.services import Service, ServiceSpec, start_service
from agentcorp.types import Box, Point

__all__ = ["BrowserComputer", "ServiceSpec", "SharedChromium"]

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
# How long typing into a focused file field waits for the chooser its click opened.
_CHOOSER_WAIT_S = 2.0
_CONNECTION_REFUSED = (
    "a connection to a host and port not in allow_urls (a WebSocket, or Chromium's own traffic)"
)
# Notes kept per action (dialogs, tabs, downloads); more are counted, not kept.
_MAX_NOTES = 20
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
#: ``on_dialog(kind, message, answer)``: a dialog the page showed and how it was answered.
DialogObserver = Callable[[str, str, str], None]
DialogAnswer = Literal["accept", "dismiss"]


class SharedChromium:
    """One headless Chromium process that several ``BrowserComputer`` sessions open pages in.

    Starting Chromium costs seconds; a new browser context costs milliseconds and is as
    isolated as a fresh browser (its own cookies, storage, cache and permissions), so a batch
    of tasks on one sandbox shares the process and each session gets its own context.
    Playwright's sync API is bound to the thread that started it: a session asked for from
    another thread gets ``None`` from ``browser()`` and starts a private Chromium instead.
    A Chromium that died is started again on the next ``browser()``.
    """

    def __init__(self, chromium: str | None = None, timeout: float = 20.0) -> None:
        self._exe = find_chromium(chromium)
        self._timeout_ms = timeout * 1000.0
        self._thread = threading.get_ident()
        self._pw: Any = None
        self._browser: Any = None
        self._closed = False
        register_cleanup(id(self), self.close)

    def browser(self) -> Any:
        """The running Playwright ``Browser`` (started on first use), or ``None`` off-thread."""
        if self._closed:
            raise SandboxError("the shared browser is closed")
        if threading.get_ident() != self._thread:
            return None
        if self._browser is not None and self._browser.is_connected():
            return self._browser
        from playwright.sync_api import Error, sync_playwright

        self._stop()
        tune_allocator()
        try:
            self._pw = sync_playwright().start()
            self._browser = self._pw.chromium.launch(
                executable_path=self._exe,
                headless=True,
                args=_CHROMIUM_ARGS,
                timeout=self._timeout_ms,
            )
        except Error as exc:
            self._stop()
            raise SandboxError(f"Chromium did not start: {_one_line(exc)}") from exc
        return self._browser

    def _stop(self) -> None:
        browser, pw, self._browser, self._pw = self._browser, self._pw, None, None
        if browser is not None:
            with contextlib.suppress(Exception):
                browser.close()
        if pw is not None:
            with contextlib.suppress(Exception):
                pw.stop()

    def close(self) -> None:
        """Stop Chromium and its Playwright driver. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        unregister_cleanup(id(self))
        self._stop()


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
    (the run's audit log); ``on_connection(target, reason)`` hears every connection the
    guard refused (``host:port``: WebSockets, which no request interception sees, are held
    to the allowed hosts and ports through a refusing proxy). ``capture`` picks CDP JPEG
    (fast, default) or lossless PNG frames.
    ``shared`` is a ``SharedChromium`` to open this session's own browser context in instead
    of starting a Chromium; ``close`` then closes only that context.

    The page's own dialogs (``alert``, ``confirm``, ``prompt``, ``beforeunload``) are answered
    at once as ``dialogs`` says ("accept": OK, a prompt gets its default value; "dismiss":
    Cancel; an alert has only OK), so none can hang a step; each is told to ``on_dialog`` and
    kept as a note (``take_notes``). A tab the page opens (``target=_blank``,
    ``window.open``) comes to the front, as a person would look at it, and when it closes the
    tab under it is in front again; both are notes too. A new tab whose first page the URL
    policy refuses is closed.
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
        on_connection: Callable[[str, str], None] | None = None,
        shared: SharedChromium | None = None,
        dialogs: DialogAnswer = "accept",
        on_dialog: DialogObserver | None = None,
    ) -> None:
        w, h = screen
        if w < 1 or h < 1:
            raise SandboxError(f"screen must be positive, got {screen!r}")
        self._screen = (w, h)
        self._allow = tuple(allow_urls)
        self._urls = UrlPolicy(self._allow)
        self._on_navigation = on_navigation
        self._on_connection = on_connection
        self._refused_connections: list[str] = []
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
        self._fetch: Any = None  # the browser-level CDP session that judges requests
        self._guard: ConnectionGuard | None = None  # refuses connections Fetch cannot see
        # Page targets Chromium has (tabs of every context): id -> (context id, URL).
        self._targets: dict[str, tuple[str, str]] = {}
        self._context_id = ""
        self._nav_pending = False
        # When the main frame last asked for a navigation that has not started loading yet
        # (0: none). A form submission is requested before its request goes out.
        self._nav_requested = 0.0
        self._main_frame_id = ""
        self._focus_frame: Any = None
        self._inflight: dict[int, float] = {}
        if dialogs not in ("accept", "dismiss"):
            raise SandboxError(f"dialogs must be 'accept' or 'dismiss', got {dialogs!r}")
        self.dialogs: DialogAnswer = dialogs
        #: Hears every dialog the page shows: ``(kind, message, answer)``.
        self.on_dialog = on_dialog
        self._notes: list[str] = []
        self._notes_dropped = 0
        self._opened: list[Any] = []  # tabs the page opened, not yet brought to the front
        self._behind: list[Any] = []  # tabs under the front one, the last one on top
        self._refused_tabs: set[str] = set()  # new tabs (target ids) whose first page was refused
        self._tab_due = 0.0  # until when a tab the page is opening is waited for
        self._chooser: Any = None  # a file chooser the page opened, waiting for a path
        self._downloads: list[Any] = []  # downloads started, not yet saved into the home
        #: Requests younger than this (seconds) hold ``settle``; older ones (long polls,
        #: streams) do not.
        self.request_grace = 1.0
        #: How long a click waits for something covering its target to go away.
        self.cover_wait = 1.0
        #: How long a click waits for its disabled target (a button enabled once the form is
        #: valid, or after a request) to be enabled.
        self.enable_wait = 3.0
        #: How often a line whose text did not land is typed again (slower each time).
        self.type_retries = 2
        self._pw: Any = None
        self._browser: Any = None
        self._context: Any = None
        self._shared = shared
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
            browser = self._shared.browser() if self._shared is not None else None
            if browser is None:
                self._pw = sync_playwright().start()
                self._browser = browser = self._pw.chromium.launch(
                    executable_path=exe,
                    headless=True,
                    args=_CHROMIUM_ARGS,
                    timeout=self._timeout_ms,
                )
            if self._urls.restricted:
                self._guard = ConnectionGuard(self._urls)
            self._context = browser.new_context(
                proxy=self._guard.proxy() if self._guard is not None else None,
                viewport={"width": self._screen[0], "height": self._screen[1]},
                device_scale_factor=1,
                # Saved into the sandbox home (``_save_downloads``); the URL policy decides first.
                accept_downloads=True,
            )
            self._context.set_default_timeout(self._timeout_ms)
            # Every request is judged, restricted or not: file:, chrome: and friends are
            # refused even without an allow list.
            self._intercept(browser)
            self._page = self._context.new_page()
            self._watch(self._page)
            self._context.on("page", self._on_new_tab)
            self._attach_cdp()
        except Error as exc:
            raise SandboxError(f"Chromium did not start: {_one_line(exc)}") from exc

    def _attach_cdp(self) -> None:
        """Open our CDP session on the page and follow main-frame loading through it.

        CDP reports a navigation the moment the renderer starts it (before the click or key
        call returns), which Playwright's request events cannot: settle() uses this to wait
        for a form submission's new page instead of settling on the old one.
        """
        old = getattr(self, "_cdp", None)
        if old is not None:
            # A second session on the page would deliver every event twice.
            with contextlib.suppress(Exception):
                old.detach()
        self._cdp = self._context.new_cdp_session(self._page)
        self._cdp.on("Page.frameRequestedNavigation", self._on_requested)
        self._cdp.on("Page.frameStartedLoading", self._on_loading)
        self._cdp.on("Page.frameStoppedLoading", self._on_stopped)
        self._cdp.on("Page.domContentEventFired", self._on_stopped)
        self._cdp.on("Page.windowOpen", self._on_window_open)
        self._cdp.on("Page.downloadWillBegin", self._on_window_open)
        self._cdp.send("Page.enable")
        tree = self._cdp.send("Page.getFrameTree")
        self._main_frame_id = str(tree["frameTree"]["frame"]["id"])
        if not self._context_id:
            info = self._cdp.send("Target.getTargetInfo")["targetInfo"]
            self._context_id = str(info.get("browserContextId") or "")

    def _intercept(self, browser: Any) -> None:
        """Judge every request through a browser-level CDP session (the Fetch domain).

        Not Playwright's routes: they turn Chromium's HTTP cache off, so every page load
        fetched its scripts and styles again (and each of them took a round trip through
        Python). A browser-level session also sees a new tab's first request and every
        redirect hop (paused again at its target) before anything is sent.
        """
        cdp = browser.new_browser_cdp_session()
        self._fetch = cdp
        cdp.on("Fetch.requestPaused", self._on_paused)
        cdp.on("Target.targetCreated", self._on_target)
        cdp.on("Target.targetInfoChanged", self._on_target)
        cdp.on("Target.targetDestroyed", self._on_target_gone)
        cdp.send("Target.setDiscoverTargets", {"discover": True})
        cdp.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})

    def _on_target(self, params: dict[str, Any]) -> None:
        info = params.get("targetInfo") or {}
        if info.get("type") == "page":
            tid = str(info.get("targetId"))
            self._targets[tid] = (str(info.get("browserContextId") or ""), str(info.get("url")))

    def _on_target_gone(self, params: dict[str, Any]) -> None:
        self._targets.pop(str(params.get("targetId")), None)

    def _fetch_send(self, method: str, params: dict[str, Any]) -> None:
        # A request the page cancelled meanwhile, or a session closing: nothing to answer.
        with contextlib.suppress(Exception):
            self._fetch.send(method, params)

    def _on_paused(self, params: dict[str, Any]) -> None:
        """Decide one paused request: continue it, abort it, or answer a navigation 204."""
        rid = params["requestId"]
        url = str(params["request"]["url"])
        frame = str(params.get("frameId") or "")
        # A tab's main frame has its target's id; a page of another context on a shared
        # Chromium is that session's to judge. A frame no tab owns (an iframe) is ours.
        tab = self._targets.get(frame)
        if tab is not None and self._context_id and tab[0] != self._context_id:
            self._fetch_send("Fetch.continueRequest", {"requestId": rid})
            return
        navigation = params.get("resourceType") == "Document"
        reason = self._urls.refusal(url)
        if navigation:
            self._notify(url, reason)
        if reason is None:
            self._fetch_send("Fetch.continueRequest", {"requestId": rid})
            return
        self._blocked.append(url)
        if not navigation:
            self._fetch_send(
                "Fetch.failRequest", {"requestId": rid, "errorReason": "BlockedByClient"}
            )
            return
        if tab is not None:  # a top-level page, not an iframe
            self._pending_violation = url
            if frame != self._main_frame_id and tab[1] in ("", "about:blank"):
                self._refused_tabs.add(frame)
        # "No Content" to a navigation leaves the frame on the page it was showing.
        self._fetch_send(
            "Fetch.fulfillRequest", {"requestId": rid, "responseCode": 204, "body": ""}
        )

    def _watch(self, page: Any) -> None:
        """Follow one tab's navigations, requests and dialogs."""
        page.on("framenavigated", self._on_navigated)
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_request_done)
        page.on("requestfailed", self._on_request_done)
        page.on("dialog", self._on_dialog)
        page.on("filechooser", self._on_file_chooser)
        page.on("download", self._on_download)

    # --- the page's dialogs and tabs ---------------------------------------------------

    def take_notes(self) -> list[str]:
        """What the page did beyond the action since the last call (dialogs, tabs); cleared.

        The text in them comes from the page (untrusted); secret values are replaced by their
        ``${secrets.NAME}`` placeholders.
        """
        notes, self._notes = self._notes, []
        if self._notes_dropped:
            notes.append(f"(and {self._notes_dropped} more like these)")
            self._notes_dropped = 0
        return notes

    def _note(self, text: str) -> None:
        if len(self._notes) >= _MAX_NOTES:
            # A page that shows alert after alert must not grow the step record without end.
            self._notes_dropped += 1
            return
        for name, value in self._secrets.items():
            if value:
                text = text.replace(value, f"${{secrets.{name}}}")
        self._notes.append(text)

    def _on_dialog(self, dialog: Any) -> None:
        """Answer a dialog the page showed, at once: an unanswered one would hang the page."""
        kind = str(getattr(dialog, "type", "dialog"))
        accept = self.dialogs == "accept" or kind == "alert"
        default = str(getattr(dialog, "default_value", "") or "")
        try:
            if not accept:
                dialog.dismiss()
            elif kind == "prompt":
                dialog.accept(default)
            else:
                dialog.accept()
        except Exception:  # already answered, or its page is gone
            pass
        message = " ".join(str(getattr(dialog, "message", "")).split())
        if len(message) > 200:
            message = message[:199] + "…"
        answer = _dialog_answer(kind, accept, default)
        verb = "said" if kind == "alert" else "asked"
        shown = f" {message!r}" if message else ""  # beforeunload carries no text of its own
        self._note(f"the page {verb} ({kind}){shown}: {answer}")
        if self.on_dialog is not None:
            # An observer's failure must not leave the dialog's page stuck or stop the step.
            with contextlib.suppress(Exception):
                self.on_dialog(kind, message, answer)

    def _on_file_chooser(self, chooser: Any) -> None:
        # Listening keeps Chromium from showing (headless: swallowing) its own chooser.
        self._chooser = chooser
        self._note(
            "the page opened a file chooser: type the path of a file in the sandbox home "
            "(~/name) to choose it"
        )

    def _choose_file(self, text: str) -> bool:
        """Answer the page's open file chooser with ``text`` (paths, one a line), if it waits.

        A chooser whose field no longer has the focus (the agent went on elsewhere) is
        dropped, and the text is typed as usual. Only files inside the sandbox home can be
        chosen.
        """
        from playwright.sync_api import Error

        if self._chooser is None and self._file_field_focused():
            # The click on the field opened the chooser; its event may still be on its way.
            deadline = time.monotonic() + _CHOOSER_WAIT_S
            while self._chooser is None and time.monotonic() < deadline:
                self._pause(50)
        chooser, self._chooser = self._chooser, None
        if chooser is None:
            return False
        try:
            focused = chooser.element.evaluate(
                "e => { const a = e.ownerDocument.activeElement;"
                " return a === e || !a || a === e.ownerDocument.body; }"
            )
        except Error:
            return False
        if not focused:
            return False
        paths = [self._home_file(p.strip()) for p in text.split("\n") if p.strip()]
        if not paths:
            raise SandboxError("type: the file chooser needs a path; nothing was chosen")
        if len(paths) > 1 and not chooser.is_multiple():
            raise SandboxError("type: the file chooser takes one file; nothing was chosen")
        self._call("type", chooser.set_files, [str(p) for p in paths])
        names = ", ".join(f"~/{p.relative_to(self.home.resolve())}" for p in paths)
        self._note(f"chose {names} in the page's file chooser")
        return True

    def _file_field_focused(self) -> bool:
        """Whether the focus is on a file field (``<input type=file>``) of the front page."""
        from playwright.sync_api import Error

        try:
            return bool(
                self._page.evaluate(
                    "() => { const a = document.activeElement;"
                    " return !!a && a.tagName === 'INPUT' && a.type === 'file'; }"
                )
            )
        except Error:
            return False

    def _home_file(self, path: str) -> Path:
        """``path`` (``~/x``, ``x`` or absolute) as a file inside the sandbox home, or why not."""
        home = self.home.resolve()
        rel = path[2:] if path.startswith("~/") else path
        got = (home / rel).resolve()
        if not got.is_relative_to(home):
            raise SandboxError(
                f"type: {path!r} is outside the sandbox home; only its files can be chosen"
            )
        if not got.is_file():
            raise SandboxError(f"type: no file {path!r} in the sandbox home; nothing was chosen")
        return got

    def _on_download(self, download: Any) -> None:
        self._downloads.append(download)
        self._tab_due = 0.0

    def _save_downloads(self) -> None:
        """Save each finished download as ``~/Downloads/NAME`` in the sandbox home (waits)."""
        from playwright.sync_api import Error

        while self._downloads:
            download = self._downloads.pop(0)
            name = _download_name(str(download.suggested_filename))
            folder = self.home / "Downloads"
            folder.mkdir(parents=True, exist_ok=True)
            dest, n = folder / name, 1
            while dest.exists():
                n += 1
                dest = folder / f"{Path(name).stem} ({n}){Path(name).suffix}"
            try:
                download.save_as(dest)
            except Error as exc:
                self._note(f"the page's download of {name!r} failed: {_one_line(exc)}")
                continue
            self._note(f"the page downloaded {name!r} to ~/Downloads/{dest.name}")

    def _on_window_open(self, params: dict[str, Any]) -> None:
        # The renderer is opening a tab or starting a download: Playwright's page or download
        # event follows, and settle waits for it.
        self._tab_due = time.monotonic() + 2.0

    def _on_new_tab(self, page: Any) -> None:
        if page is self._page or page in self._behind:
            return
        self._watch(page)
        self._opened.append(page)
        self._tab_due = 0.0

    def _follow_tabs(self) -> None:
        """Bring a tab the page opened to the front; when the front tab closed, go back."""
        from playwright.sync_api import Error

        if self._refused_tabs:
            self._close_refused_tabs()
        while self._opened:
            page = self._opened.pop(0)
            if page.is_closed():
                continue
            self._behind.append(self._page)
            self._front(page)
            with contextlib.suppress(Error):
                page.wait_for_load_state("domcontentloaded", timeout=min(self._timeout_ms, 5000))
            self._note(f"a new tab opened ({page.url}); it is in front now")
        if not self._page.is_closed():
            return
        while self._behind:
            page = self._behind.pop()
            if not page.is_closed():
                self._front(page)
                self._note(f"the tab in front closed; back to the tab before ({page.url})")
                return

    def _close_refused_tabs(self) -> None:
        """Close the new tabs whose first page the policy refused (they show nothing)."""
        from playwright.sync_api import Error

        refused, self._refused_tabs = self._refused_tabs, set()
        for page in list(self._context.pages):
            if page is self._page:
                continue
            with contextlib.suppress(Error):
                cdp = self._context.new_cdp_session(page)
                tid = cdp.send("Target.getTargetInfo")["targetInfo"]["targetId"]
                cdp.detach()
                if tid in refused:
                    page.close()
                    with contextlib.suppress(ValueError):
                        self._opened.remove(page)

    def _pause(self, ms: float) -> None:
        """Let the page run for ``ms`` milliseconds (its events are delivered meanwhile)."""
        from playwright.sync_api import Error

        try:
            self._page.wait_for_timeout(ms)
        except Error:
            # The front tab closed under us: the next look goes to the tab before it.
            self._follow_tabs()

    def _front(self, page: Any) -> None:
        """Make ``page`` the tab every action, capture and DOM question goes to."""
        from playwright.sync_api import Error

        self._page = page
        self._focus_frame = None
        self._nav_pending = False
        self._nav_requested = 0.0
        with contextlib.suppress(Error):
            page.bring_to_front()
        with contextlib.suppress(Error):
            self._attach_cdp()

    def _on_requested(self, params: dict[str, Any]) -> None:
        if params.get("frameId") == self._main_frame_id:
            self._nav_requested = time.monotonic()

    def _on_loading(self, params: dict[str, Any]) -> None:
        if params.get("frameId") == self._main_frame_id:
            self._nav_pending = True
            self._nav_requested = 0.0

    def _on_stopped(self, params: dict[str, Any]) -> None:
        if "frameId" not in params or params.get("frameId") == self._main_frame_id:
            self._nav_pending = False
            self._nav_requested = 0.0

    def _navigating(self) -> bool:
        """Whether the main frame is loading a new document or has just asked to.

        A requested navigation that never starts loading (cancelled by the page, refused by
        the URL policy) stops counting after ``_REQUESTED_GRACE`` seconds.
        """
        if self._nav_pending:
            return True
        asked = self._nav_requested
        return bool(asked) and time.monotonic() - asked < _REQUESTED_GRACE

    def _on_request(self, request: Any) -> None:
        self._inflight[id(request)] = time.monotonic()

    def _on_request_done(self, request: Any) -> None:
        self._inflight.pop(id(request), None)

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
        with contextlib.suppress(Exception):
            self._save_downloads()  # closing the context deletes what it downloaded
        if self._browser is None and self._context is not None:
            # A context in a shared Chromium: closing it drops its pages, cookies and storage.
            with contextlib.suppress(Exception):
                self._context.close()
        if self._fetch is not None:
            # After the context: none of its requests goes unjudged. On a shared Chromium the
            # next session judges requests with its own policy.
            with contextlib.suppress(Exception):
                self._fetch.send("Fetch.disable")
                self._fetch.detach()
        if self._guard is not None:
            self._guard.close()
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

    @property
    def refused_connections(self) -> list[str]:
        """Every ``host:port`` the connection guard refused so far, in order.

        A page's WebSocket to a host or port no pattern allows, or Chromium's own background
        traffic (autofill queries): the guard cannot tell them apart, so they are kept apart
        from ``blocked``, which only the page's requests and navigations fill.
        """
        self._audit_guard()
        return list(self._refused_connections)

    def _audit_guard(self) -> None:
        if self._guard is None:
            return
        for target in self._guard.refused():
            self._refused_connections.append(target)
            if self._on_connection is not None:
                with contextlib.suppress(Exception):
                    self._on_connection(target, _CONNECTION_REFUSED)

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
        self._raise_violation()

    def back(self) -> None:
        """Go back one page in history."""
        self._check()
        self._call("back", self._page.go_back, wait_until="domcontentloaded")
        self._raise_violation()

    def _raise_violation(self) -> None:
        url, self._pending_violation = self._pending_violation, None
        if self._leave_pending:
            # A page no request announced (data:, blob:) committed: go back where we were.
            self._leave_pending = False
            with contextlib.suppress(Exception):
                self._page.go_back(wait_until="domcontentloaded")
        if url is not None:
            raise PolicyViolation(f"navigation to {url} blocked: not in allow_urls")

    def _check(self) -> None:
        if self._closed:
            raise SandboxError("the browser is closed")
        self._audit_guard()
        self._follow_tabs()
        self._save_downloads()
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
        self._follow_tabs()
        # optimizeForSpeed: Chromium's fast encoder settings take about a quarter off each
        # JPEG capture here (84 -> 60 ms at 1280x800 on a loaded machine).
        params: dict[str, Any] = {"captureBeyondViewport": False, "optimizeForSpeed": True}
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
        img: Image.Image = Image.open(io.BytesIO(self._capture_bytes(params)))
        if img.mode != "RGB":  # JPEG decodes to RGB already: no second copy of the pixels
            img = img.convert("RGB")
        img.load()
        origin = (region.x, region.y) if region is not None else (0, 0)
        frame = Frame(img.tobytes(), img.width, img.height, origin, t)
        frame._pil = img
        return frame

    def _capture_bytes(self, params: dict[str, Any]) -> bytes:
        from playwright.sync_api import Error

        try:
            # A capture sent while a navigation commits can hang until its timeout (seen:
            # every few form submissions, 5 s each), so the first try gives up early.
            first = min(self._capture_timeout_ms, _FIRST_CAPTURE_TIMEOUT_MS)
            data = self._cdp.send("Page.captureScreenshot", params, timeout=first)
            return base64.b64decode(data["data"])
        except Error:
            # A navigation can swap the page's renderer and detach our CDP session: attach
            # a fresh one and retry once, then fall back to Playwright's own capture.
            pass
        try:
            self._until_idle(time.perf_counter() + self._capture_timeout_ms / 1000.0)
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
        """Click at (x, y) with ``button``.

        When (x, y) lies on an element the last ``dom_find`` returned and something else is on
        top of it there (an overlay, an open menu), waits up to ``cover_wait`` seconds for it
        to go, else raises ``SandboxError`` naming what covers the target; nothing is clicked.
        A disabled target (``:disabled``, ``aria-disabled``) is waited for up to
        ``enable_wait`` seconds the same way.
        """
        self._check()
        xy = self._xy(x, y)
        self._wait_uncovered(x, y)
        self._call("click", self._page.mouse.click, *xy, button=button)

    def double_click(self, x: int, y: int) -> None:
        """Double-click at (x, y) (the same covered-target check as ``click``)."""
        self._check()
        xy = self._xy(x, y)
        self._wait_uncovered(x, y)
        self._call("double_click", self._page.mouse.dblclick, *xy)

    def _wait_uncovered(self, x: int, y: int) -> None:
        from playwright.sync_api import Error

        start = time.monotonic()
        while True:
            try:
                cover = self._page.evaluate(_COVER_JS, [x, y])
            except Error:
                return  # a page in the middle of navigating has nothing on top of anything
            if cover is None:
                return
            waited = time.monotonic() - start
            if isinstance(cover, dict):
                if waited >= self.enable_wait:
                    raise SandboxError(
                        f"click at ({x}, {y}) not done: the target {cover.get('disabled')} "
                        f"is disabled (waited {self.enable_wait:g}s for it to be enabled)"
                    )
            elif waited >= self.cover_wait:
                raise SandboxError(
                    f"click at ({x}, {y}) not done: the target is covered by {cover}"
                )
            self._pause(50)

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
        """Type ``text`` into the focused field and check it landed; secrets resolved here.

        The field's value is read back from the DOM after each line: on a mismatch the field
        is restored and the line typed again, slower, up to ``type_retries`` times; then
        ``SandboxError`` says what the field holds (never a secret or a password field's
        content). Typing with no editable element focused raises before any key is sent.
        """
        self._check()
        if self._choose_file(text):
            return
        value = resolve_secrets(text, self._secrets)
        hidden = value != text
        lines = value.split("\n")
        for i, line in enumerate(lines):
            if line:
                self._type_line(line, text.split("\n")[i] if not hidden else None)
            if i < len(lines) - 1:
                checkpoint()
                self._call("type", self._page.keyboard.press, "Enter")

    def _type_line(self, line: str, shown: str | None) -> None:
        """Type one line into the focused field and verify it (``shown``: None hides it)."""
        before = self._focus_state("find")
        if not before.get("editable"):
            raise SandboxError(
                f"type: no text field has the focus (it is on {before.get('desc', '?')}); "
                "nothing was typed"
            )
        hide = shown is None or bool(before.get("password"))
        if before.get("kind") == "select":
            self._choose_option(line, hide)
            return
        for attempt in range(self.type_retries + 1):
            # Pacing grows on each retry: apps that drop keys do so for tens of milliseconds.
            delay = (0.0, 30.0, 90.0, 150.0)[min(attempt, 3)]
            # In chunks, so a budget or an abort stops a long text part-way.
            for start in range(0, len(line), _TYPE_CHUNK):
                checkpoint()
                chunk = line[start : start + _TYPE_CHUNK]
                self._call("type", self._page.keyboard.type, chunk, delay=delay)
            after = self._focus_state("read")
            if _landed(before, after, line):
                return
            if attempt == self.type_retries or not self._restore(before):
                break
        what = "the typed text" if hide else repr(shown)
        if not after.get("editable"):
            raise SandboxError(f"type: {what} went nowhere: the field lost the focus")
        held = "its hidden content" if hide else repr(str(after.get("value", ""))[:80])
        raise SandboxError(
            f"type: {what} did not land in {before.get('desc', 'the field')}: "
            f"it holds {held} after {self.type_retries + 1} tries"
        )

    def _choose_option(self, line: str, hide: bool) -> None:
        """Choose the focused ``<select>``'s option with this text, as a person picks it.

        Keys typed into an open list only move its highlight; the choice is what counts.
        """
        got = self._call("type", self._focus_frame.evaluate, _CHOOSE_JS, line)
        if got.get("ok"):
            return
        what = "the typed text" if hide else repr(line)
        options = ", ".join(repr(o) for o in got.get("options", [])[:8])
        raise SandboxError(f"type: {got.get('desc', 'the list')} has no option {what}: {options}")

    def _focus_state(self, op: Literal["find", "read"]) -> dict[str, Any]:
        frame = self._page.main_frame if op == "find" else self._focus_frame
        state = self._call("type", frame.evaluate, _FOCUS_JS, op)
        if op == "find":
            self._focus_frame = frame
            if isinstance(state, dict) and state.get("frame"):
                # Focus is in a frame of another origin: ask each frame which one has it.
                for child in self._page.frames[1:]:
                    try:
                        if not child.evaluate("() => document.hasFocus()"):
                            continue
                        state = child.evaluate(_FOCUS_JS, op)
                    except Exception:  # a frame that went away while we asked
                        continue
                    self._focus_frame = child
                    break
        return dict(state) if isinstance(state, dict) else {"editable": False, "desc": "?"}

    def _restore(self, before: Mapping[str, Any]) -> bool:
        """Put the field back as it was before typing (for a retry); False if it cannot be."""
        args = [before.get("value", ""), before.get("start"), before.get("end")]
        return bool(self._call("type", self._focus_frame.evaluate, _RESTORE_JS, args))

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
            self._pause(min(left, 0.1) * 1000.0)
        self._save_downloads()  # one that began meanwhile is in the home when the wait ends

    def settle(self, timeout: float = 2.0, since: Frame | None = None) -> SettleResult:
        """Return as soon as the page is done with what the last action started.

        Done means: a navigation it started has reached DOMContentLoaded, no request younger
        than ``request_grace`` seconds is in flight, the renderer has drawn two animation
        frames since, and two consecutive captures agree. The page tells us when drawing is
        done, so there is no quiet period to wait out on a page that did not change. Capped by
        ``timeout``; raises a pending ``PolicyViolation`` for a navigation the last action
        tried.
        """
        self._check()
        t0 = time.perf_counter()
        deadline = t0 + timeout
        spent = 0.0
        while True:
            animating = self._until_idle(deadline)
            self._raise_violation()
            if animating:
                left = max(0.0, deadline - time.perf_counter())
                # Frames compared while a navigation starts would be the old page's (and a
                # capture as it commits can hang): stop and wait for the new page instead.
                result = settle_frames(
                    self.screenshot, left, since, interval=0.002, quiet=0.0, stop=self._navigating
                )
                frame, stable = result.frame, result.stable
                spent += result.capture_ms
            else:
                # Drawn, and nothing animates: this one frame is the settled screen.
                c0 = time.perf_counter()
                frame, stable = self.screenshot(), True
                spent += (time.perf_counter() - c0) * 1000.0
            self._raise_violation()
            # A navigation that began while we captured (a slow form submission) means the
            # screen is about to change: wait for it and settle again.
            if not self._navigating() or time.perf_counter() >= deadline:
                break
        self._nav_pending = False
        self._nav_requested = 0.0
        # A download the action began shows up as late as the capture: keep it now.
        self._save_downloads()
        changed = changed_box(since, frame) if since is not None else None
        elapsed = (time.perf_counter() - t0) * 1000.0
        return SettleResult(frame, changed, elapsed, stable, spent)

    def _until_idle(self, deadline: float) -> bool:
        """Wait (to ``deadline``) for navigation, young requests, then two drawn frames.

        True when CSS animations or transitions are still running (frames must then be
        compared until they agree).
        """
        from playwright.sync_api import Error

        animating = True
        while time.perf_counter() < deadline:
            self._follow_tabs()
            try:
                # One round trip also delivers the events the action caused (a form
                # submission's navigation) before we look at our flags.
                animating = bool(self._page.evaluate(_FRAMES_JS))
            except Error:
                pass  # the old document went away under a navigation: look again
            else:
                self._save_downloads()  # those the round trip delivered
                now = time.monotonic()
                young = any(now - t < self.request_grace for t in self._inflight.values())
                tab_due = time.monotonic() < self._tab_due
                if not self._navigating() and not young and not tab_due:
                    return animating
            self._pause(5)
        return animating

    def _xy(self, x: int, y: int) -> tuple[float, float]:
        w, h = self._screen
        if not (0 <= x < w and 0 <= y < h):
            raise SandboxError(f"point ({x}, {y}) is outside the {w}x{h} viewport")
        return (float(x), float(y))

    # --- DOM helpers for grounding and safety ------------------------------------------

    def dom_find(
        self, target: str, role: str | None = None, *, remember: bool = True
    ) -> list[dict[str, Any]]:
        """Visible elements for ``target`` as dicts (box, text, name, how, kind, actionable).

        One pass over the page (open shadow roots and same-origin frames, nested or
        scrolled, included: boxes are in viewport pixels, clipped to each frame's box; a
        cross-origin frame's content is not seen here, OCR still reads it): the deepest
        elements whose rendered text holds the target (an element and its descendants with
        the same text are one place, the actionable one); fields by ``<label>``,
        ``aria-labelledby``, ``aria-label`` and placeholder; buttons, links and images by
        value, aria-label, title and alt; for ``role="field"`` with no named field, the
        nearest field right of (or below) a caption holding the target. ``name`` is what
        matched and ``how`` says which; ``text`` is what the element shows (its label for a
        field). ``role`` keeps one kind: button/field/link/menu/text. Exact matches first;
        at most 20. With ``remember`` the elements are kept so a click on one can check that
        nothing covers it.
        """
        self._check()
        if role is not None and role not in (*_ROLES, "text"):
            raise SandboxError(f"dom_locate: unknown role {role!r}")
        raw = self._call(
            "dom_locate", self._page.evaluate, _FIND_JS, [target, role, 20, remember, False]
        )
        sw, sh = self._screen
        out: list[dict[str, Any]] = []
        for c in raw or []:
            x0, y0 = max(0, int(c["x"])), max(0, int(c["y"]))
            x1 = min(sw, int(c["x"] + c["w"] + 0.999))
            y1 = min(sh, int(c["y"] + c["h"] + 0.999))
            if x1 <= x0 or y1 <= y0:
                continue
            out.append(
                {
                    "box": Box(x0, y0, x1 - x0, y1 - y0),
                    "text": str(c["text"]),
                    "name": str(c["name"]),
                    "how": str(c["how"]),
                    "kind": str(c["kind"]),
                    "actionable": bool(c["actionable"]),
                }
            )
        return out

    def dom_why_not(self, target: str) -> str | None:
        """Why a target ``dom_find`` did not find cannot be acted on, when the page knows.

        The target is an option of a visible closed list (``<select>``), which shows only its
        chosen option: the way to choose it is to type it into the list. Or it is on the page
        but outside the visible part (below the fold, scrolled away inside a box that
        scrolls): the page must be scrolled to it first.
        """
        self._check()
        got = self._call("dom_why_not", self._page.evaluate, _WHY_NOT_JS, target)
        if not isinstance(got, dict):
            return self._why_off_screen(target)
        option, name = str(got.get("option", "")), str(got.get("name", ""))
        if name:
            return (
                f"'{option}' is an option of the closed list '{name}': "
                f"use `type: {option}, into: {name}`"
            )
        shows = str(got.get("shows", ""))
        return (
            f"'{option}' is an option of a closed list (it shows '{shows}'): click the list, "
            f"then type '{option}'"
        )

    def dom_reveal(self, target: str, role: str | None = None) -> tuple[int, int, int, int] | None:
        """How to scroll a target that is on the page but out of view into it, if it is.

        ``(x, y, dx, dy)``: turn the wheel at (x, y) by these notches (positive: right,
        down), as ``scroll`` takes them. For the first match (exact ones first) that the page, or a
        box that scrolls inside it, or a same-origin frame's page, hides; ``None`` when there
        is none.
        """
        self._check()
        found = self._call(
            "dom_reveal",
            self._page.evaluate,
            _FIND_JS,
            [target, role, 5, "agentcorp.offscreen", True],
        )
        if not found:
            return None
        got = self._call("dom_reveal", self._page.evaluate, _REVEAL_JS)
        if not isinstance(got, dict):
            return None
        return int(got["x"]), int(got["y"]), _notches(got.get("dx")), _notches(got.get("dy"))

    def _why_off_screen(self, target: str) -> str | None:
        """Where ``target`` is when it is on the page but not in view, and how to get there."""
        raw = self._call(
            "dom_why_not", self._page.evaluate, _FIND_JS, [target, None, 5, False, True]
        )
        if not raw:
            return None
        c = raw[0]
        sw, sh = self._screen
        x, y, w, h = (float(c[k]) for k in ("x", "y", "w", "h"))
        ways = []
        if y >= sh:
            ways.append(("down", y + h / 2 - sh / 2))
        elif y + h <= 0:
            ways.append(("up", sh / 2 - (y + h / 2)))
        if x >= sw:
            ways.append(("right", x + w / 2 - sw / 2))
        elif x + w <= 0:
            ways.append(("left", sw / 2 - (x + w / 2)))
        if not ways:
            return (
                f"'{target}' is on the page but out of sight (scrolled away inside a box "
                "that scrolls, or under a header or footer that stays in place): scroll to it "
                "first"
            )
        way, far = ways[0]
        notches = max(1, math.ceil(far / 100))
        where = {"down": "below", "up": "above", "right": "right of", "left": "left of"}[way]
        return (
            f"'{target}' is on the page but {where} the part in view: scroll {way} first "
            f"(`scroll: {{direction: {way}, amount: {notches}}}`)"
        )

    def dom_locate(self, target: str, role: str | None = None) -> list[tuple[Box, str]]:
        """``dom_find`` as ``(box, text)`` pairs (the ``DomLocator`` contract), not remembered."""
        return [(c["box"], c["text"]) for c in self.dom_find(target, role, remember=False)]

    # --- reading the page (success checks) ---------------------------------------------

    def page_text(self) -> str:
        """The page's rendered text, then the values of its visible form fields.

        Same-origin frames follow the page, each the same way (cross-origin ones are unseen).
        """
        self._check()
        return str(self._call("page_text", self._page.evaluate, _PAGE_TEXT_JS))

    def dom_read(self, selector: str, read: str, attribute: str | None = None) -> list[Any]:
        """Per element matching ``selector``: its text, value or ``attribute`` (or None).

        Matches in the page come first, then those in its same-origin frames (nested too) in
        document order. ``read="count"`` returns one entry per match. ``ValueError`` when the
        page rejects the selector.
        """
        from playwright.sync_api import Error

        self._check()
        if read not in ("text", "value", "attribute", "count"):
            raise SandboxError(f"dom_read: unknown read {read!r}")
        try:
            out = self._page.evaluate(_DOM_READ_JS, [selector, read, attribute])
        except Error as exc:
            raise ValueError(f"selector {selector!r}: {_page_error(exc)}") from None
        return list(out)

    def js_eval(self, expression: str) -> Any:
        """Evaluate ``expression`` in the page; ``ValueError`` with the page's message if it throws.

        A function expression is called; a promise is awaited. Values that are not JSON come
        back as Playwright serialises them (None for undefined).
        """
        from playwright.sync_api import Error

        self._check()
        try:
            return self._page.evaluate(expression)
        except Error as exc:
            raise ValueError(_page_error(exc)) from None

    def focused_field(self) -> tuple[Box, bool] | None:
        """Box of the focused text input and whether it is a password field, or None.

        Followed into open shadow roots and frames, those of another origin too (a login
        form embedded from an identity provider): the box is in viewport pixels.
        """
        self._check()
        info = self._call("focused_field", self._page.evaluate, _FOCUSED_FIELD_JS)
        if isinstance(info, dict) and info.get("frame"):
            info = self._focused_in_other_origin()
        if not info:
            return None
        box = Box(int(info["x"]), int(info["y"]), max(1, int(info["w"])), max(1, int(info["h"])))
        return box, bool(info["password"])

    def _focused_in_other_origin(self) -> dict[str, Any] | None:
        """The focused field of the frame (of another origin) that has the focus, placed."""
        from playwright.sync_api import Error

        for child in self._page.frames[1:]:
            try:
                if not child.evaluate("() => document.hasFocus()"):
                    continue
                info = child.evaluate(_FOCUSED_FIELD_JS)
                if not isinstance(info, dict) or info.get("frame"):
                    continue
                handle = child.frame_element()
                outer = handle.bounding_box()
                inset = handle.evaluate(
                    "f => { const cs = getComputedStyle(f); return [f.clientLeft +"
                    " (parseFloat(cs.paddingLeft) || 0), f.clientTop +"
                    " (parseFloat(cs.paddingTop) || 0)]; }"
                )
            except Error:  # a frame that went away while we asked
                continue
            if outer is None:
                continue
            info["x"] += outer["x"] + inset[0]
            info["y"] += outer["y"] + inset[1]
            return dict(info)
        return None


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


# ``band(hit)``: the header or footer band (fixed or sticky, along the top or bottom edge) that
# ``hit`` belongs to, if any: what scrolled under it is out of sight until scrolled out again.
_BAND_JS = r"""
  const band = (hit) => {
    for (let a = hit; a && a.nodeType === 1; a = a.parentElement) {
      const v = a.ownerDocument.defaultView;
      const pos = v.getComputedStyle(a).position;
      if (pos !== 'fixed' && pos !== 'sticky') continue;
      const q = a.getBoundingClientRect(), mid = (q.top + q.bottom) / 2, vh = v.innerHeight;
      if (q.height > 0.4 * vh || (mid > vh / 3 && mid < 2 * vh / 3)) return null;
      return a;
    }
    return null;
  };
  // Whether the middle of element ``e`` (of the top page) lies under such a band.
  const underBand = (e, x, y) => {
    const hit = document.elementFromPoint(x, y);
    if (!hit || e.contains(hit) || hit.contains(e)) return false;
    const b = band(hit);
    return b !== null && !b.contains(e);
  };
"""

_FIND_JS = (
    r"""([target, role, limit, remember, anywhere]) => {
  const KEY = Symbol.for('agentcorp.targets');
  // Format characters (zero-width spaces, soft hyphens) draw nothing: "Con\u200bfirm" shows
  // as "Confirm", on the page and in a target alike.
  const norm = (s) => (s || '').replace(/\p{Cf}/gu, '').replace(/\s+/g, ' ').trim();
  const fold = (s) => norm(s).toLowerCase();
  const squash = (s) => (s || '').replace(/\p{Cf}/gu, '').toLowerCase().replace(/\s+/g, '');
  const want = fold(target);
  const wantSq = squash(target);
  if (!want) return [];
  const vw = window.innerWidth, vh = window.innerHeight;"""
    + _BAND_JS
    + r"""
  const NOT_TEXT = ['button', 'submit', 'reset', 'checkbox', 'radio', 'file', 'image', 'hidden',
    'range', 'color'];
  const isField = (e) => {
    const t = e.tagName;
    if (t === 'TEXTAREA' || t === 'SELECT' || e.isContentEditable) return !e.disabled;
    // A rich-text editor is often a same-origin frame whose whole document is editable.
    if (t === 'IFRAME' || t === 'FRAME') {
      let d = null;
      try { d = e.contentDocument; } catch (_) { d = null; }
      return !!d && (d.designMode === 'on' || (!!d.body && d.body.isContentEditable));
    }
    if (t !== 'INPUT') {
      const r = (e.getAttribute('role') || '').toLowerCase();
      return ['textbox', 'searchbox', 'combobox', 'spinbutton'].includes(r);
    }
    // A file field takes a typed path (the file chooser it opens is answered with it).
    const type = (e.type || '').toLowerCase();
    return (type === 'file' || !NOT_TEXT.includes(type)) && !e.disabled;
  };
  const kindOf = (e) => {
    const t = e.tagName, r = (e.getAttribute('role') || '').toLowerCase();
    const type = (e.type || '').toLowerCase();
    if (isField(e)) return 'field';
    if (t === 'BUTTON' || r === 'button' || t === 'SUMMARY' ||
        (t === 'INPUT' && ['button', 'submit', 'reset', 'image'].includes(type))) return 'button';
    if ((t === 'A' && e.hasAttribute('href')) || r === 'link') return 'link';
    if (['menuitem', 'menuitemcheckbox', 'menuitemradio', 'option', 'tab', 'treeitem']
        .includes(r) || t === 'OPTION') return 'menu';
    if (t === 'INPUT' || r === 'checkbox' || r === 'radio' || r === 'switch') return 'control';
    return 'text';
  };
  const ACTIONABLE = 'a,button,input,select,textarea,summary,option,label,[role=button],' +
    '[role=link],[role=menuitem],[role=option],[role=tab],[role=checkbox],[role=radio],' +
    '[role=treeitem],[onclick],[contenteditable=""],[contenteditable=true]';
  const actionable = (e) => e.matches(ACTIONABLE) ||
    (e.closest(ACTIONABLE) !== null) ||
    e.ownerDocument.defaultView.getComputedStyle(e).cursor === 'pointer';
  // Where an element's document sits: the top page, or a same-origin frame whose content
  // box offsets its coordinates and clips what of it can be seen.
  // ``anywhere``: also what lies outside the viewport or is scrolled away inside a box (to
  // say why a target is not on screen), so nothing is clipped.
  const TOP = {ox: 0, oy: 0, clip: anywhere ? [-Infinity, -Infinity, Infinity, Infinity]
    : [0, 0, vw, vh]};
  const place = new Map();
  const style = (e) => e.ownerDocument.defaultView.getComputedStyle(e);
  // The part of its document's page an element's clipping ancestors (a box that scrolls,
  // overflow: hidden) let show: a row scrolled out of a list is not on screen.
  const clipOf = (e) => {
    const out = [-Infinity, -Infinity, Infinity, Infinity];
    const doc = e.ownerDocument;
    let pos = style(e).position;
    for (let a = e.parentElement || (e.parentNode && e.parentNode.host); a;
         a = a.parentElement || (a.parentNode && a.parentNode.host)) {
      if (pos === 'fixed') break;
      if (a === doc.body || a === doc.documentElement) break;
      const cs = style(a);
      // An absolutely placed element escapes the boxes between it and what it is placed in.
      const contains = pos !== 'absolute' || cs.position !== 'static' || cs.transform !== 'none';
      if (contains) {
        if (cs.overflowX !== 'visible' || cs.overflowY !== 'visible') {
          const q = a.getBoundingClientRect();
          const x = q.left + a.clientLeft, y = q.top + a.clientTop;
          out[0] = Math.max(out[0], x); out[1] = Math.max(out[1], y);
          out[2] = Math.min(out[2], x + a.clientWidth);
          out[3] = Math.min(out[3], y + a.clientHeight);
        }
        pos = cs.position;
      }
    }
    return out;
  };
  const box = (e) => {
    if (e.checkVisibility && !e.checkVisibility({visibilityProperty: true})) return null;
    const q = e.getBoundingClientRect();
    if (q.width <= 0 || q.height <= 0) return null;
    const c = place.get(e) || TOP;
    const r = {left: q.left + c.ox, top: q.top + c.oy, right: q.right + c.ox,
      bottom: q.bottom + c.oy};
    let x0 = Math.max(c.clip[0], r.left), y0 = Math.max(c.clip[1], r.top);
    let x1 = Math.min(c.clip[2], r.right), y1 = Math.min(c.clip[3], r.bottom);
    if (!anywhere && x1 - x0 >= 1 && y1 - y0 >= 1) {
      const k = clipOf(e);
      x0 = Math.max(x0, k[0] + c.ox); y0 = Math.max(y0, k[1] + c.oy);
      x1 = Math.min(x1, k[2] + c.ox); y1 = Math.min(y1, k[3] + c.oy);
    }
    if (x1 - x0 < 1 || y1 - y0 < 1) return null;
    return {x: x0, y: y0, w: x1 - x0, h: y1 - y0, r};
  };
  // Every element, open shadow roots and same-origin frames (nested too) included.
  const all = [];
  const walk = (root, c) => {
    for (const e of root.querySelectorAll('*')) {
      all.push(e);
      if (c !== TOP) place.set(e, c);
      if (e.shadowRoot) walk(e.shadowRoot, c);
      if (e.tagName === 'IFRAME' || e.tagName === 'FRAME') {
        const inner = frameView(e, c);
        if (inner) walk(inner.doc, inner.c);
      }
    }
  };
  // A frame's document and placement, when its origin lets us in and some of it is shown.
  const frameView = (f, c) => {
    let doc = null;
    try { doc = f.contentDocument; } catch (_) { doc = null; }
    if (!doc || !doc.documentElement) return null;
    if (f.checkVisibility && !f.checkVisibility({visibilityProperty: true})) return null;
    const q = f.getBoundingClientRect();
    const cs = f.ownerDocument.defaultView.getComputedStyle(f);
    const pl = parseFloat(cs.paddingLeft) || 0, pt = parseFloat(cs.paddingTop) || 0;
    const pr = parseFloat(cs.paddingRight) || 0, pb = parseFloat(cs.paddingBottom) || 0;
    const ox = c.ox + q.left + f.clientLeft + pl, oy = c.oy + q.top + f.clientTop + pt;
    const clip = [Math.max(c.clip[0], ox), Math.max(c.clip[1], oy),
      Math.min(c.clip[2], ox + f.clientWidth - pl - pr),
      Math.min(c.clip[3], oy + f.clientHeight - pt - pb)];
    if (anywhere) return {doc, c: {ox, oy, clip: TOP.clip}};
    const k = clipOf(f);
    clip[0] = Math.max(clip[0], k[0] + c.ox); clip[1] = Math.max(clip[1], k[1] + c.oy);
    clip[2] = Math.min(clip[2], k[2] + c.ox); clip[3] = Math.min(clip[3], k[3] + c.oy);
    if (clip[2] - clip[0] < 1 || clip[3] - clip[1] < 1) return null;
    return {doc, c: {ox, oy, clip}};
  };
  walk(document, TOP);
  const byId = (root, id) => (root.getElementById ? root.getElementById(id) : null) ||
    (root.ownerDocument || document).getElementById(id);
  const labelledBy = (e) => norm((e.getAttribute('aria-labelledby') || '').split(/\s+/)
    .map((id) => id && byId(e.getRootNode(), id)).filter(Boolean)
    .map((l) => l.innerText || l.textContent).join(' '));
  const matches = (s) => fold(s).includes(want);
  const out = [];
  const seen = new Set();
  const add = (e, text, how) => {
    if (seen.has(e)) return;
    const b = box(e);
    if (!b) return;
    // Under a sticky header the page was scrolled beneath: not in sight (dom_reveal's case).
    if (!anywhere && !place.has(e) && e.ownerDocument === document &&
        underBand(e, b.x + b.w / 2, b.y + b.h / 2)) return;
    seen.add(e);
    out.push({e, b, text: norm(text).slice(0, 200), how, kind: kindOf(e),
      act: actionable(e)});
  };
  // 1. Text: the deepest elements whose rendered text holds the target. An element and its
  //    descendants with the same text are one place: the actionable one among them.
  const SKIP = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'HEAD', 'TITLE', 'HTML',
    'BODY', 'OPTION']);
  // A closed list shows only its chosen option, but innerText lists them all.
  const shownText = (e) => {
    if (e.tagName === 'SELECT') {
      const o = e.selectedOptions && e.selectedOptions[0];
      return o ? o.text : '';
    }
    if (!e.querySelector('select')) return e.innerText;
    const parts = [];
    const w = e.ownerDocument.createTreeWalker(e, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT,
      {
      acceptNode: (n) => n.nodeType === 1 && n.tagName === 'SELECT'
        ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
    for (let n = w.nextNode(); n; n = w.nextNode()) if (n.nodeType === 3) parts.push(n.data);
    for (const sel of e.querySelectorAll('select')) parts.push(shownText(sel));
    return parts.join(' ');
  };
  const holders = all.filter((e) => !SKIP.has(e.tagName) &&
    squash(e.textContent).includes(wantSq) && matches(shownText(e)));
  const holderSet = new Set(holders);
  for (const e of holders) {
    let deepest = true;
    for (const c of e.children) if (holderSet.has(c)) { deepest = false; break; }
    if (!deepest) continue;
    let el = e;
    const own = fold(shownText(e));
    const up = e.parentElement && e.parentElement.closest(ACTIONABLE);
    if (up && fold(shownText(up)) === own && !isField(up)) el = up;
    add(el, shownText(el), 'text');
  }
  // 2. Names that are not text: value of input buttons, aria-label, title, alt, placeholder,
  //    labels and aria-labelledby of fields.
  const fields = [];
  for (const e of all) {
    if (SKIP.has(e.tagName) && e.tagName !== 'OPTION') continue;
    const field = isField(e);
    if (field) fields.push(e);
    const names = [];
    if (field) {
      for (const l of (e.labels || [])) names.push([l.innerText || l.textContent, 'label']);
      names.push([labelledBy(e), 'label']);
      names.push([e.getAttribute('placeholder'), 'placeholder']);
    }
    names.push([e.getAttribute('aria-label'), 'aria']);
    names.push([e.getAttribute('title'), 'title']);
    if (e.tagName === 'IMG') names.push([e.getAttribute('alt'), 'alt']);
    // Only a button-like input shows its value; a checkbox's or radio's value is invisible.
    if (e.tagName === 'INPUT' && /^(submit|button|reset)$/i.test(e.type)) {
      names.push([e.value, 'value']);
    }
    for (const [name, how] of names) {
      // A label's trailing colon or required-mark is punctuation, not part of its name.
      if (name && matches(name)) { add(e, norm(name).replace(/[\s:*]+$/, ''), how); break; }
    }
  }
  // 3. A caption beside a field (text that is no label): the nearest field to its right on
  //    the same row, else the nearest below it.
  const isLabelOf = (c, f) => c.tagName === 'LABEL' && c.control === f;
  if (role === 'field' && !out.some((c) => c.kind === 'field')) {
    const pairs = [];
    // A caption is text one reads; a title or aria-label is nothing drawn beside a field.
    for (const c of out.filter((o) => o.kind !== 'field' && o.how === 'text')) {
      const cr = c.b.r;
      let best = null, bestD = Infinity;
      for (const f of fields) {
        if (isLabelOf(c.e, f)) continue;
        const fb = box(f);
        if (!fb) continue;
        const r = fb.r;
        let d = Infinity;
        const sameRow = r.top < cr.bottom && r.bottom > cr.top;
        if (sameRow && r.left >= cr.right - 4 && r.left - cr.right < 400) d = r.left - cr.right;
        else if (r.top >= cr.bottom - 4 && r.top - cr.bottom < 200 &&
                 r.left < cr.right + 40 && r.right > cr.left - 40) {
          d = (r.top - cr.bottom) + 0.25 * Math.abs(r.left - cr.left);
        }
        if (d < bestD) { bestD = d; best = f; }
      }
      // A caption that is a <label> (unattached) or sits beside the field in the same
      // container names it; the same words elsewhere on the page (instructions) do not.
      if (best) pairs.push({c, f: best, close: c.e.tagName === 'LABEL' ||
        (c.e.parentElement !== null && c.e.parentElement === best.parentElement)});
    }
    const named = pairs.some((p) => p.close) ? pairs.filter((p) => p.close) : pairs;
    for (const p of named) {
      if (!seen.has(p.f)) add(p.f, p.c.text.replace(/[\s:*]+$/, ''), 'caption');
    }
  }
  // A field named by a <label> that matched as text is that label's control: one place.
  let found = out.filter((c) => !(c.how === 'text' && c.kind !== 'field' &&
    out.some((o) => o.kind === 'field' && isLabelOf(c.e, o.e)) && role === 'field'));
  if (role === 'field') found = found.filter((c) => c.kind === 'field');
  else if (role === 'text') found = found.filter((c) => c.kind !== 'field' || c.how !== 'text');
  else if (role) found = found.filter((c) => c.kind === role ||
    (role === 'menu' && c.e.closest('[role=menu],[role=listbox],[role=menubar],[role=tablist]')));
  else found = found.filter((c) => !(c.kind === 'field' && c.how === 'label' &&
    out.some((o) => o.how === 'text' && isLabelOf(o.e, c.e))));
  found.sort((a, b) => (fold(b.text) === want) - (fold(a.text) === want));
  found = found.slice(0, limit);
  // ``remember``: true keeps them for the covered-target check, a name keeps them under it.
  if (remember) {
    window[typeof remember === 'string' ? Symbol.for(remember) : KEY] = found.map((c) => c.e);
  }
  // What the element shows, for reports and ambiguity messages; ``name`` is what matched.
  const shown = (c) => c.kind === 'field' ? c.text
    : (norm(c.e.innerText || (c.e.tagName === 'INPUT' ? c.e.value : '')).slice(0, 200) || c.text);
  return found.map((c, i) => ({x: c.b.x, y: c.b.y, w: c.b.w, h: c.b.h, text: shown(c),
    name: c.text, how: c.how, kind: c.kind, actionable: c.act || c.kind !== 'text', index: i}));
}"""
)

# Frame placement shared by the scripts that map an element of a same-origin frame to the top
# viewport: ``frameOffset(f)`` is where frame element ``f``'s content box starts in its own
# document; ``toTop(e)`` the offset of ``e``'s document in the top viewport (null when ``e``
# is not in this page any more).
_FRAME_PLACE_JS = r"""
  const frameOffset = (f) => {
    const q = f.getBoundingClientRect();
    const cs = f.ownerDocument.defaultView.getComputedStyle(f);
    return [q.left + f.clientLeft + (parseFloat(cs.paddingLeft) || 0),
      q.top + f.clientTop + (parseFloat(cs.paddingTop) || 0)];
  };
  const toTop = (e) => {
    let ox = 0, oy = 0;
    let w = e.ownerDocument && e.ownerDocument.defaultView;
    while (w && w !== window) {
      const f = w.frameElement;
      if (!f || !f.isConnected) return null;
      const [fx, fy] = frameOffset(f);
      ox += fx; oy += fy;
      w = f.ownerDocument.defaultView;
    }
    return w === window ? [ox, oy] : null;
  };
"""

_COVER_JS = (
    r"""([x, y]) => {
  const arr = window[Symbol.for('agentcorp.targets')] || [];"""
    + _FRAME_PLACE_JS
    + _BAND_JS
    + r"""
  const inside = (e) => {
    if (!e || !e.isConnected) return false;
    const o = toTop(e);
    if (!o) return false;
    const r = e.getBoundingClientRect();
    return r.left + o[0] <= x && x < r.right + o[0] && r.top + o[1] <= y && y < r.bottom + o[1];
  };
  const mine = arr.filter(inside);
  if (!mine.length) return null;
  const desc = (e) => {
    const what = '<' + e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
      (typeof e.className === 'string' && e.className.trim()
        ? '.' + e.className.trim().split(/\s+/).slice(0, 2).join('.') : '') + '>';
    const text = (e.innerText || e.value || '').replace(/\s+/g, ' ').trim();
    return what + (text ? ' "' + (text.length > 60 ? text.slice(0, 59) + '…' : text) + '"' : '');
  };
  // A disabled control (or one inside a disabled one) takes no click: nothing would happen.
  const disabled = (e) => {
    const c = e.closest('button, input, select, textarea, option, fieldset');
    return (c !== null && c.matches(':disabled')) || e.closest('[aria-disabled=true]') !== null;
  };
  if (mine.every(disabled)) return {disabled: desc(mine[0])};
  // What a click at (x, y) reaches: into open shadow roots and same-origin frames.
  let doc = document, px = x, py = y, hit = null;
  for (;;) {
    hit = doc.elementFromPoint(px, py);
    while (hit && hit.shadowRoot) {
      const inner = hit.shadowRoot.elementFromPoint(px, py);
      if (!inner || inner === hit) break;
      hit = inner;
    }
    if (!hit || !(hit.tagName === 'IFRAME' || hit.tagName === 'FRAME')) break;
    let d = null;
    try { d = hit.contentDocument; } catch (_) { d = null; }
    if (!d) break;
    const [fx, fy] = frameOffset(hit);
    px -= fx; py -= fy;
    doc = d;
  }
  if (!hit) return 'nothing (the point is outside the page)';
  for (const e of mine) {
    if (e === hit || e.contains(hit) || hit.contains(e)) return null;
    // Inside a frame that is itself the target (a rich-text editor's frame).
    for (let w = hit.ownerDocument.defaultView; w && w !== window; w = w.parent) {
      const f = w.frameElement;
      if (!f) break;
      if (e === f || e.contains(f)) return null;
    }
    if ((hit.tagName === 'LABEL' && hit.control === e) ||
        (e.tagName === 'LABEL' && e.control === hit)) return null;
    const host = e.getRootNode().host;
    if (host && (host === hit || host.contains(hit))) return null;
  }
  // A header or footer that stays put while the page scrolls hides what scrolled under it
  // (a band along the top or bottom edge; an overlay over the page is no such thing).
  const over = band(hit);
  if (over) {
    const q = over.getBoundingClientRect();
    const way = (q.top + q.bottom) / 2 < over.ownerDocument.defaultView.innerHeight / 2
      ? 'up' : 'down';
    return desc(hit) + ', which stays in place when the page scrolls: scroll ' + way +
      ' a little to bring the target out from under it';
  }
  return desc(hit);
}"""
)

# What has the keyboard focus: the element typing goes to, followed into open shadow roots and
# same-origin frames, kept in a page global so the text can be read back from the same element.
_FOCUS_JS = r"""(op) => {
  const KEY = Symbol.for('agentcorp.typing');
  let e;
  if (op === 'find') {
    e = document.activeElement;
    for (;;) {
      if (e && e.shadowRoot && e.shadowRoot.activeElement) {
        e = e.shadowRoot.activeElement;
        continue;
      }
      if (e && (e.tagName === 'IFRAME' || e.tagName === 'FRAME')) {
        let d = null;
        try { d = e.contentDocument; } catch (_) { d = null; }
        if (!d) return {frame: true};
        e = d.activeElement;
        continue;
      }
      break;
    }
    window[KEY] = e;
  } else {
    e = window[KEY];
  }
  if (!e || !e.isConnected) return {editable: false, desc: 'nothing'};
  const tag = e.tagName.toLowerCase();
  const type = (e.type || '').toLowerCase();
  const desc = '<' + tag + (type && tag === 'input' ? ' type=' + type : '') +
    (e.id ? '#' + e.id : '') + '>';
  // An editable document (a rich-text editor's frame) clicked below its text: the caret
  // goes into it, as the editor would put it there.
  if (tag === 'body' && e.isContentEditable) {
    if (op === 'find') e.focus();
  } else if (tag === 'body' || tag === 'html') {
    return {editable: false, desc: 'the page itself'};
  }
  const password = tag === 'input' && type === 'password';
  if (tag === 'select') {
    const o = e.selectedOptions[0];
    return {editable: true, kind: 'select', value: o ? o.text : '', start: null, end: null,
      type, password, desc};
  }
  if (e.isContentEditable) {
    return {editable: true, kind: 'content', value: e.innerText, start: null, end: null,
      type, password, desc};
  }
  const NOT_TEXT = ['button', 'submit', 'reset', 'checkbox', 'radio', 'file', 'image',
    'hidden', 'range', 'color'];
  const editable = (tag === 'textarea' || (tag === 'input' && !NOT_TEXT.includes(type))) &&
    !e.readOnly && !e.disabled;
  if (!editable) return {editable: false, desc};
  let start = null, end = null;
  try { start = e.selectionStart; end = e.selectionEnd; } catch (_) { start = end = null; }
  return {editable: true, kind: tag, value: e.value, start, end, type, password, desc};
}"""

_CHOOSE_JS = r"""(line) => {
  const e = window[Symbol.for('agentcorp.typing')];
  const norm = (t) => (t || '').replace(/\s+/g, ' ').trim().toLowerCase();
  const want = norm(line);
  const opts = Array.from(e.options);
  let pick = opts.find((o) => norm(o.text) === want || norm(o.value) === want);
  if (!pick) {
    const starts = opts.filter((o) => norm(o.text).startsWith(want));
    if (starts.length === 1) pick = starts[0];
  }
  const desc = '<select' + (e.id ? '#' + e.id : '') + '>';
  if (!pick || pick.disabled) return {ok: false, desc, options: opts.map((o) => o.text)};
  if (!pick.selected) {
    e.value = pick.value;
    pick.selected = true;
    e.dispatchEvent(new Event('input', {bubbles: true}));
    e.dispatchEvent(new Event('change', {bubbles: true}));
  }
  return {ok: true};
}"""

_RESTORE_JS = r"""([value, start, end]) => {
  const e = window[Symbol.for('agentcorp.typing')];
  if (!e || !e.isConnected || e.isContentEditable || e.tagName === 'SELECT') return false;
  const proto = e.tagName === 'TEXTAREA' ? HTMLTextAreaElement.prototype
    : HTMLInputElement.prototype;
  Object.getOwnPropertyDescriptor(proto, 'value').set.call(e, value);
  e.dispatchEvent(new Event('input', {bubbles: true}));
  e.focus();
  if (start !== null) { try { e.setSelectionRange(start, end); } catch (_) {} }
  return true;
}"""

# The page's document and, after it, those of its same-origin frames (nested too) that show.
_DOCS_JS = r"""
  const docs = [];
  const visit = (d) => {
    docs.push(d);
    for (const f of d.querySelectorAll('iframe, frame')) {
      let inner = null;
      try { inner = f.contentDocument; } catch (_) { inner = null; }
      if (inner && inner.documentElement && f.getClientRects().length) visit(inner);
    }
  };
  visit(document);
"""

#: How long a navigation the page asked for may take to start loading before settle stops
#: waiting for it (seconds).
_REQUESTED_GRACE = 1.0
#: The first try of a capture gives up after this (ms); the retry gets the full timeout.
_FIRST_CAPTURE_TIMEOUT_MS = 1500.0

# Whether CSS animations or transitions are running. The round trip itself is what settle
# needs first: the action's events have been handled by then, and a capture that follows
# is drawn from the DOM as they left it (captureScreenshot forces a fresh frame).
_FRAMES_JS = (
    """() => {"""
    + _DOCS_JS
    + """
  return docs.some((d) => d.getAnimations().some((a) => a.playState === 'running'));
}"""
)

_PAGE_TEXT_JS = (
    """() => {"""
    + _DOCS_JS
    + r"""
  const parts = [];
  for (const d of docs) {
    let text = d.body ? d.body.innerText : '';
    // A closed list shows only its chosen option (added below), but innerText lists them all.
    for (const sel of d.querySelectorAll('select')) {
      if (sel.multiple || sel.size > 1) continue;
      const all = sel.innerText;
      if (all && text.includes(all)) text = text.replace(all, '');
    }
    parts.push(text);
    for (const e of d.querySelectorAll('input, textarea, select')) {
      const type = (e.type || '').toLowerCase();
      if (type === 'hidden' || type === 'password' || !e.getClientRects().length) continue;
      if (e.tagName === 'SELECT') {
        const o = e.selectedOptions[0];
        if (o) parts.push(o.text);
      } else if (e.value) {
        parts.push(e.value);
      }
    }
  }
  return parts.join('\n');
}"""
)

_DOM_READ_JS = (
    """([sel, read, attr]) => {"""
    + _DOCS_JS
    + r"""
  const els = docs.flatMap((d) => Array.from(d.querySelectorAll(sel)));
  if (read === 'count') return els.map(() => 1);
  return els.map(e => {
    if (read === 'text') return (e.innerText !== undefined ? e.innerText : e.textContent || '')
      .replace(/\s+/g, ' ').trim();
    if (read === 'value') return e.value === undefined ? null : String(e.value);
    const v = e.getAttribute(attr);
    return v === null ? null : v;
  });
}"""
)

# The closed list (a visible single-choice <select>) one of whose options is ``target``: the
# option's text, the list's name (label, aria-label, title) and its chosen option's text.
_WHY_NOT_JS = (
    """(target) => {"""
    + _DOCS_JS
    + r"""
  const fold = (s) => (s || '').replace(/\s+/g, ' ').trim().toLowerCase();
  const want = fold(target);
  if (!want) return null;
  for (const d of docs) {
    for (const sel of d.querySelectorAll('select')) {
      if (sel.multiple || sel.size > 1 || !sel.getClientRects().length) continue;
      if (sel.checkVisibility && !sel.checkVisibility({visibilityProperty: true})) continue;
      const o = Array.from(sel.options).find((x) => fold(x.text) === want);
      if (!o || o.selected) continue;
      const names = Array.from(sel.labels || []).map((l) => l.innerText || l.textContent);
      const by = (sel.getAttribute('aria-labelledby') || '').split(/\s+/)
        .map((id) => id && d.getElementById(id)).filter(Boolean);
      names.push(by.map((l) => l.innerText || l.textContent).join(' '));
      names.push(sel.getAttribute('aria-label'), sel.getAttribute('title'));
      const name = (names.map((n) => (n || '').replace(/\s+/g, ' ').trim()
        .replace(/[\s:*]+$/, '')).find((n) => n) || '');
      const chosen = sel.selectedOptions[0];
      return {option: o.text.replace(/\s+/g, ' ').trim(), name,
        shows: chosen ? chosen.text.replace(/\s+/g, ' ').trim() : ''};
    }
  }
  return null;
}"""
)

# How to scroll the first element ``dom_reveal`` kept into view: a point to turn the wheel at
# (inside the nearest box that scrolls and hides it, else over its page or frame) and how many
# pixels down (negative: up) its middle is from that box's middle. Null when each is in view.
_REVEAL_JS = (
    """() => {
  const els = window[Symbol.for('agentcorp.offscreen')] || [];
  const vw = window.innerWidth, vh = window.innerHeight;"""
    + _FRAME_PLACE_JS
    + _BAND_JS
    + r"""
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
  const up = (a) => a.parentElement || (a.parentNode && a.parentNode.host) || null;
  const style = (a) => a.ownerDocument.defaultView.getComputedStyle(a);
  const scrolls = (a) => /(auto|scroll)/.test(style(a).overflowY) &&
    a.scrollHeight > a.clientHeight;
  const scrollsX = (a) => /(auto|scroll)/.test(style(a).overflowX) &&
    a.scrollWidth > a.clientWidth;
  // A point over the page that no inner scrolling box takes the wheel from.
  const pagePoint = () => {
    for (const [x, y] of [[vw / 2, vh / 2], [4, vh / 2], [vw / 2, 4], [vw / 2, vh - 4]]) {
      let h = document.elementFromPoint(x, y), free = true;
      for (; h; h = up(h)) if (h !== document.body && h !== document.documentElement &&
        scrolls(h)) { free = false; break; }
      if (free) return [x, y];
    }
    return [vw / 2, vh / 2];
  };
  // The wheel turn that brings ``e`` nearer to view: in the innermost box that hides it, else
  // its document's page (a same-origin frame's page scrolls under the frame's box), else the
  // frame it is in, brought into view in its own parent. Null when it is in view.
  const plan = (e) => {
    const d = e.ownerDocument, v = d.defaultView, o = toTop(e);
    if (!o) return null;
    const r = e.getBoundingClientRect();
    const cy = (r.top + r.bottom) / 2, cx = (r.left + r.right) / 2, fh = v.innerHeight;
    for (let a = up(e); a && a !== d.body && a !== d.documentElement; a = up(a)) {
      const q = a.getBoundingClientRect();
      const top = q.top + a.clientTop, bottom = top + a.clientHeight;
      const left = q.left + a.clientLeft, right = left + a.clientWidth;
      const dy = scrolls(a) && (cy < top || cy > bottom) ? cy - (top + bottom) / 2 : 0;
      const dx = scrollsX(a) && (cx < left || cx > right) ? cx - (left + right) / 2 : 0;
      if (!dx && !dy) continue;
      const mid = (clamp(top, 0, fh) + clamp(bottom, 0, fh)) / 2;
      return {x: clamp((left + right) / 2 + o[0], 0, vw - 1), y: clamp(mid + o[1], 0, vh - 1),
        dx, dy};
    }
    if (d === document) {
      if (cy >= 0 && cy <= vh && !(cx >= 0 && cx < vw && underBand(e, cx, cy))) return null;
      const [x, y] = pagePoint();
      return {x, y, dy: cy - vh / 2};
    }
    const f = v.frameElement;
    if (cy >= 0 && cy <= fh) return plan(f);
    return plan(f) || {x: clamp(o[0] + v.innerWidth / 2, 0, vw - 1),
      y: clamp(o[1] + fh / 2, 0, vh - 1), dy: cy - fh / 2};
  };
  for (const e of els) {
    if (!e.isConnected) continue;
    const got = plan(e);
    if (got) return got;
  }
  return null;
}"""
)

# The focused text field's box in the top viewport (through open shadow roots and
# same-origin frames) and whether it is a password field; null when no text field has focus.
_FOCUSED_FIELD_JS = (
    """() => {"""
    + _FRAME_PLACE_JS
    + r"""
  let e = document.activeElement;
  for (;;) {
    if (e && e.shadowRoot && e.shadowRoot.activeElement) {
      e = e.shadowRoot.activeElement;
      continue;
    }
    if (e && (e.tagName === 'IFRAME' || e.tagName === 'FRAME')) {
      let d = null;
      try { d = e.contentDocument; } catch (_) { d = null; }
      if (!d) return {frame: true};  // a frame of another origin: asked in Python
      if (!d.activeElement) return null;
      e = d.activeElement;
      continue;
    }
    break;
  }
  if (!e || e.tagName === 'BODY' || e.tagName === 'HTML') return null;
  const tag = e.tagName.toLowerCase();
  const editable = tag === 'textarea' || e.isContentEditable ||
    (tag === 'input' && !['button','submit','reset','checkbox','radio','file',
      'image','hidden','range','color'].includes((e.type || '').toLowerCase()));
  if (!editable) return null;
  const o = toTop(e) || [0, 0];
  const r = e.getBoundingClientRect();
  return {x: r.x + o[0], y: r.y + o[1], w: r.width, h: r.height,
          password: tag === 'input' && (e.type || '').toLowerCase() === 'password'};
}"""
)


_DATE_TYPES = ("date", "time", "datetime-local", "month", "week")


def _alnum(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _landed(before: Mapping[str, Any], after: Mapping[str, Any], line: str) -> bool:
    """Whether typing ``line`` into the field described by ``before`` gave ``after``.

    Text fields must hold exactly the old value with the selection replaced by the line
    (ignoring punctuation an input mask adds); fields with no selection (number, email) must
    contain it; date and time fields must hold its digits; a select must have picked an
    option starting with it; an editable region must hold it once more than before.
    """
    if not after.get("editable"):
        return False
    old, got = str(before.get("value") or ""), str(after.get("value") or "")
    kind = after.get("kind")
    if kind == "content":
        return got.count(line) > old.count(line)
    if kind == "select":
        return got.casefold().startswith(line.casefold())
    if after.get("type") in _DATE_TYPES:
        return sorted(c for c in got if c.isdigit()) == sorted(c for c in line if c.isdigit())
    start, end = before.get("start"), before.get("end")
    if start is None or end is None:
        return line in got or _alnum(line) in _alnum(got)
    expected = old[: int(start)] + line + old[int(end) :]
    return got == expected or _alnum(got) == _alnum(expected)


def _notches(pixels: Any) -> int:
    """Wheel notches (100 px each) for a distance; at least one for any distance at all."""
    px = float(pixels or 0.0)
    if abs(px) < 1:
        return 0
    return round(px / 100) or (1 if px > 0 else -1)


def _download_name(suggested: str) -> str:
    """A download's file name as the page suggested it, never a path out of the folder."""
    name = suggested.replace("\\", "/").rsplit("/", 1)[-1].strip().lstrip(".")
    return name[:120] or "download"


def _dialog_answer(kind: str, accept: bool, default: str) -> str:
    """How a dialog was answered, in words."""
    if kind == "alert":
        return "OK"
    if kind == "beforeunload":
        return "accepted (the page was left)" if accept else "dismissed (the page stayed)"
    if kind == "prompt" and accept:
        return f"accepted with its default value {default!r}" if default else "accepted empty"
    return "accepted" if accept else "dismissed"


def _page_error(exc: BaseException) -> str:
    """The page's own error message, without Playwright's call log and stack."""
    text = _one_line(exc)
    for prefix in ("Page.evaluate: ", "Error: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
