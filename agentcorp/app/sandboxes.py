"""A run's sandboxes: desktops (Xvfb and their apps), browsers and their services.

The same code opens them whatever runs the task (in-process, a local worker process, a Ray
actor), so a task sees the same desktop, home and window manager everywhere. With a
``state_root`` (the run folder's ``sandboxes/``) every sandbox keeps its home there: files a
task saved (and a service's database) survive a killed worker, and the sandbox reopened on a
resumed run starts from them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from agentcorp.app.config import LiveViewSettings
from agentcorp.checks import CheckContext
from agentcorp.errors import ConfigError
from agentcorp.grounding.base import Grounder
from agentcorp.sandbox.base import Computer
from agentcorp.spec import Company
from agentcorp.types import ChatModel

__all__ = [
    "Sandboxes",
    "check_context",
    "make_grounder",
    "open_browser",
    "open_desktop",
    "start_services",
]


def _expand(arg: str, home: Path) -> str:
    return str(home / arg[2:]) if arg.startswith("~/") else str(home) if arg == "~" else arg


def _files(company: Company, name: str) -> dict[str, Path]:
    spec = company.sandboxes[name]
    files = {dest: (company.base_dir / src).resolve() for dest, src in spec.files.items()}
    for dest, src in files.items():
        if not src.is_file():
            raise ConfigError(f"sandboxes.{name}.files[{dest!r}]: {src} does not exist")
    return files


def place_files(company: Company, name: str, home: Path) -> None:
    """Copy browser sandbox ``name``'s ``files`` into its home (for the page's file fields).

    A file already there (a kept home of an earlier run) is left as it is, as on a desktop.
    """
    for dest, src in _files(company, name).items():
        if not dest.startswith("~/"):
            raise ConfigError(f"sandboxes.{name}.files[{dest!r}]: must be '~/…' inside the home")
        target = Path(_expand(dest, home)).resolve()
        if not target.is_relative_to(home.resolve()):
            raise ConfigError(f"sandboxes.{name}.files[{dest!r}]: must stay inside the home")
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)


def open_desktop(
    company: Company,
    name: str,
    secrets: Mapping[str, str],
    *,
    home: Path | None = None,
) -> Computer:
    """Start desktop sandbox ``name``: its own Xvfb and window manager, its files, its apps.

    ``home`` is a kept home folder (the run folder's): files already there are the
    sandbox's saved state and are not copied over again.
    """
    from agentcorp.sandbox.apps import AppSpec
    from agentcorp.sandbox.xvfb import XvfbDesktop

    spec = company.sandboxes[name]
    apps = [
        AppSpec(
            a.name,
            list(a.command),
            a.wait_for_window,
            timeout=a.timeout,
            env=dict(a.env),
            type_delay=a.type_delay,
        )
        for a in spec.apps
    ]
    files = _files(company, name)
    if home is not None:
        files = {d: src for d, src in files.items() if not Path(_expand(d, home)).exists()}
    return XvfbDesktop(
        screen=(spec.screen[0], spec.screen[1]),
        type_delay=spec.type_delay,
        apps=apps,
        files=files,
        secrets=secrets,
        home=home,
    )


def start_services(
    company: Company,
    name: str,
    home: Path,
    secrets: Mapping[str, str],
) -> list[Any]:
    """Copy a browser sandbox's files into ``home`` and start its services (``~`` = home)."""
    from agentcorp.sandbox.services import ServiceSpec, start_service

    spec = company.sandboxes[name]
    for dest, src in _files(company, name).items():
        target = Path(_expand(dest, home))
        if target.exists():
            continue  # the sandbox's saved state (a resumed run): keep it
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    started: list[Any] = []
    try:
        for s in spec.services:
            started.append(
                start_service(
                    ServiceSpec(
                        s.name,
                        [_expand(a, home) for a in s.command],
                        cwd=(company.base_dir / s.cwd).resolve()
                        if s.cwd
                        else company.base_dir.resolve(),
                        env={"HOME": str(home), **dict(s.env)},
                        ready_url=s.ready_url,
                        ready_timeout=s.ready_timeout,
                    ),
                    secrets,
                )
            )
    except BaseException:
        for svc in reversed(started):
            svc.stop()
        raise
    return started


def open_browser(
    company: Company,
    name: str,
    home: Path,
    secrets: Mapping[str, str],
    chromium: str | None = None,
    on_navigation: Callable[[str, bool, str | None], None] | None = None,
    shared: Any = None,
    on_dialog: Callable[[str, str, str], None] | None = None,
    on_connection: Callable[[str, str], None] | None = None,
) -> Computer:
    """A fresh browser session on browser sandbox ``name`` (services already running).

    ``on_navigation(url, allowed, reason)`` hears every navigation decision and
    ``on_dialog(kind, message, answer)`` every dialog the page showed and
    ``on_connection(target, reason)`` every connection the URL policy's guard refused (the
    audit log).
    ``shared`` (a ``SharedChromium``) runs the session as a new browser context in that
    Chromium instead of starting one.
    """
    from agentcorp.sandbox.browser import BrowserComputer

    spec = company.sandboxes[name]
    allow = list(spec.allow_urls or (spec.policy.allow_urls if spec.policy else None) or [])
    return BrowserComputer(
        screen=(spec.screen[0], spec.screen[1]),
        start_url=spec.start_url,
        allow_urls=allow,
        home=home,
        secrets=secrets,
        chromium=chromium,
        on_navigation=on_navigation,
        shared=shared,
        dialogs=spec.dialogs or "accept",
        on_dialog=on_dialog,
        on_connection=on_connection,
    )


class Sandboxes:
    """The run's sandboxes. State carries over between tasks on purpose, as on a real machine.

    A desktop (Xvfb, its apps, its home) lives for the whole run, so a file one task saved is
    open for the next. A browser sandbox's home and services (the back office and its
    database) live for the run too, but each task gets a fresh browser session (a new
    context: no cookies, storage or pages of the task before), as a person logging in for
    each job; the Chromium process behind those sessions is started once per sandbox and
    shared, because starting it costs seconds a batch of rows would pay per row.
    ``state_root`` keeps every home under it (``state_root/NAME``) instead of a temporary
    folder; ``live_offset`` shifts the live view ports (one worker's desktops do not collide
    with another's).
    """

    def __init__(
        self,
        company: Company,
        secrets: Mapping[str, str],
        live_view: LiveViewSettings | None = None,
        notify: Callable[[str], None] | None = None,
        chromium: str | None = None,
        *,
        state_root: Path | None = None,
        live_offset: int = 0,
        audit: Any = None,
    ) -> None:
        self.company = company
        #: The run's ``AuditLog``: every browser navigation decision and every dialog a page
        #: showed is appended to it.
        self.audit = audit
        self.chromium = chromium
        self.secrets = secrets
        self.live_view = live_view
        self._notify = notify
        self.state_root = state_root
        self.live_offset = live_offset
        self._live: list[Any] = []
        self._told: set[str] = set()
        self._desktops: dict[str, Computer] = {}
        self._homes: dict[str, Path] = {}
        self._services: list[Any] = []
        self._ocr: Any = None
        self._grounders: dict[str, Grounder] = {}
        self._chromium: dict[str, Any] = {}

    def _home(self, name: str) -> Path | None:
        if self.state_root is None:
            return None
        # Absolute: apps and services run in other working folders, and a relative home
        # (`--sessions runs/demo`) would make `~/notes.txt` another file for each of them.
        home = (self.state_root / name).absolute()
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{home}: cannot make the sandbox's home: {exc.strerror}") from None
        return home

    @contextmanager
    def session(self, name: str) -> Iterator[tuple[Computer, Grounder]]:
        """The computer for one task on sandbox ``name`` and its grounder."""
        if self.company.sandboxes[name].kind == "desktop":
            if name not in self._desktops:
                self._engine().preload()  # while the desktop starts
                self._desktops[name] = open_desktop(
                    self.company, name, self.secrets, home=self._home(name)
                )
                self._start_live_view(name, self._desktops[name])
            desk = self._desktops[name]
            if name not in self._grounders:
                self._grounders[name] = make_grounder(desk, self._engine())
            yield desk, self._grounders[name]
            return
        if self.live_view is not None and name not in self._told:
            self._told.add(name)
            self._say(f"live view: sandbox {name} is a headless browser; nothing to show")
        if name not in self._homes:
            home = self._home(name) or Path(tempfile.mkdtemp(prefix=f"agentcorp-{name}-"))
            self._homes[name] = home
            place_files(self.company, name, home)
            self._services.extend(start_services(self.company, name, home, self.secrets))
        browser = open_browser(
            self.company,
            name,
            self._homes[name],
            self.secrets,
            self.chromium,
            on_navigation=self._navigation_auditor(name),
            shared=self._shared_chromium(name),
            on_dialog=self._dialog_auditor(name),
            on_connection=self._connection_auditor(name),
        )
        try:
            yield browser, make_grounder(browser, self._engine())
        finally:
            browser.close()

    def _shared_chromium(self, name: str) -> Any:
        """Sandbox ``name``'s Chromium process, made on first use (started by its first page)."""
        if name not in self._chromium:
            from agentcorp.sandbox.browser import SharedChromium

            self._chromium[name] = SharedChromium(self.chromium)
        return self._chromium[name]

    def home_of(self, name: str) -> Path | None:
        """Where sandbox ``name`` keeps its home (None when it is a temporary folder)."""
        return self._home(name)

    def reopen(self, name: str) -> None:
        """Close desktop ``name`` so the next task opens it afresh from its home.

        Best-of-N replaced the home's files with the winner's: apps still holding the old
        ones would save them back.
        """
        desk = self._desktops.pop(name, None)
        self._grounders.pop(name, None)
        if desk is not None:
            with suppress(Exception):
                desk.close()

    def replace_home(self, name: str, source: Path) -> None:
        """Make ``source``'s files the home of desktop ``name`` and reopen it from them.

        Apps still holding the old files would save them back, so the desktop is closed
        first; the next task opens it afresh (best-of-N's winner, a retry's starting point).
        """
        home = self.home_of(name)
        if home is None:
            return
        self.reopen(name)
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(source, home, symlinks=True)

    def _navigation_auditor(self, name: str) -> Callable[[str, bool, str | None], None] | None:
        audit = self.audit
        if audit is None:
            return None

        def record(url: str, allowed: bool, reason: str | None) -> None:
            audit.append("navigation", sandbox=name, url=url, allowed=allowed, reason=reason)

        return record

    def _connection_auditor(self, name: str) -> Callable[[str, str], None] | None:
        audit = self.audit
        if audit is None:
            return None

        def record(target: str, reason: str) -> None:
            audit.append("connection", sandbox=name, target=target, allowed=False, reason=reason)

        return record

    def _dialog_auditor(self, name: str) -> Callable[[str, str, str], None] | None:
        audit = self.audit
        if audit is None:
            return None

        def record(kind: str, message: str, answer: str) -> None:
            # The message is the page's text: the audit log keeps it as data, redacted.
            audit.append("dialog", sandbox=name, dialog=kind, message=message, answer=answer)

        return record

    def _say(self, message: str) -> None:
        if self._notify is not None:
            self._notify(message)

    def _start_live_view(self, name: str, desk: Computer) -> None:
        """Serve desktop ``name``'s display while the run lasts (when live view is on)."""
        lv = self.live_view
        display = getattr(desk, "display", None)
        if lv is None or not isinstance(display, str):
            return
        from agentcorp.sandbox.liveview import LiveView

        n = self.live_offset + len(self._live)
        view = LiveView(
            display, lv.password, vnc_port=lv.vnc_port + n, web_port=lv.web_port + n, bind=lv.bind
        ).start()
        self._live.append(view)
        where = "loopback only" if lv.bind == "127.0.0.1" else f"listening on {lv.bind}"
        self._say(
            f"live view: sandbox {name} at http://localhost:{lv.web_port + n}/vnc.html "
            f"(VNC port {lv.vnc_port + n}, {where}; password required)"
        )

    def _engine(self) -> Any:
        """One OCR engine for the run (its model loads once)."""
        if self._ocr is None:
            from agentcorp.grounding.ocr import OcrEngine

            self._ocr = OcrEngine.shared()
        return self._ocr

    def close(self) -> None:
        """Close every sandbox and service (each stops what it started)."""
        for view in reversed(self._live):
            with suppress(Exception):
                view.stop()
        self._live.clear()
        for comp in self._desktops.values():
            with suppress(Exception):
                comp.close()
        for chromium in self._chromium.values():
            with suppress(Exception):
                chromium.close()
        self._chromium.clear()
        for svc in reversed(self._services):
            with suppress(Exception):
                svc.stop()
        if self.state_root is None:
            for home in self._homes.values():
                shutil.rmtree(home, ignore_errors=True)
        self._desktops.clear()
        self._services.clear()
        self._homes.clear()
        self._grounders.clear()


def make_grounder(computer: Computer, engine: Any = None) -> Grounder:
    """The grounder for ``computer``: the DOM (browser) or accessibility tree first, then OCR.

    ``engine`` is a shared ``OcrEngine`` so its model loads once per run.
    """
    from agentcorp.grounding.atspi import AccessibleTree, AtspiGrounder
    from agentcorp.grounding.base import DomLocator
    from agentcorp.grounding.dom import CompositeGrounder, DomGrounder
    from agentcorp.grounding.ocr_grounder import OcrGrounder

    ocr = OcrGrounder(engine) if engine is not None else OcrGrounder()
    if isinstance(computer, DomLocator):
        return CompositeGrounder(DomGrounder(computer), ocr)
    if isinstance(computer, AccessibleTree):
        return CompositeGrounder(AtspiGrounder(computer), ocr)
    return ocr


def _read_text(grounder: Grounder) -> Any:
    fn = getattr(grounder, "read_text", None)
    return fn if callable(fn) else None


def check_context(
    computer: Computer,
    grounder: Grounder,
    judge: ChatModel | None = None,
    judge_model: str = "",
) -> CheckContext:
    """Where checks of a task look: the sandbox's home, screen, URL and display."""
    home = getattr(computer, "home", None)
    env: dict[str, str] = {}
    display = getattr(computer, "display", None)
    if isinstance(display, str):
        env["DISPLAY"] = display
    url = getattr(computer, "url", None)
    return CheckContext(
        home=Path(home) if home is not None else Path.home(),
        computer=computer,
        grounder=grounder,
        url=(lambda: getattr(computer, "url", None)) if url is not None else None,
        read_text=_read_text(grounder),
        env=env,
        judge=judge,
        judge_model=judge_model,
    )
