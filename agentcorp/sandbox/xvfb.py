"""The desktop backend: our own Xvfb, openbox, real apps; XTest input and MIT-SHM capture.

Everything runs in-process and event-driven: input goes through the XTest extension with an
``XSync`` after each action (so the server has processed it when the call returns), frames
come from one reused ``mss`` instance through MIT-SHM, and ``settle()`` watches frames
instead of sleeping. Every process we start (Xvfb, openbox, apps) dies with us, even on
``kill -9`` (``PR_SET_PDEATHSIG``), and is stopped by PID on ``close()``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from agentcorp.errors import SandboxError, SandboxUnavailable
from agentcorp.sandbox import _typed
from agentcorp.sandbox._proc import (
    clean_env,
    find_program,
    register_cleanup,
    spawn,
    stop_process,
    tune_allocator,
    unregister_cleanup,
)
from agentcorp.sandbox._settle import changed_box, settle_frames
from agentcorp.sandbox.apps import AppSpec
from agentcorp.sandbox.atspi import POPUP_ROLES, Accessible, AtspiTree, Snapshot
from agentcorp.sandbox.base import (
    Button,
    Computer,
    Frame,
    SettleResult,
    checkpoint,
    interruptible_sleep,
)
from agentcorp.sandbox.secrets import resolve_secrets
from agentcorp.types import Box, Point

__all__ = ["AppSpec", "XvfbDesktop"]

_BUTTONS: dict[str, int] = {"left": 1, "middle": 2, "right": 3}

# Friendly names for key combos, mapped to X keysym names.
_KEY_ALIASES: dict[str, str] = {
    "ctrl": "Control_L",
    "control": "Control_L",
    "alt": "Alt_L",
    "shift": "Shift_L",
    "super": "Super_L",
    "win": "Super_L",
    "meta": "Super_L",
    "cmd": "Super_L",
    "altgr": "ISO_Level3_Shift",
    "enter": "Return",
    "return": "Return",
    "esc": "Escape",
    "escape": "Escape",
    "del": "Delete",
    "delete": "Delete",
    "backspace": "BackSpace",
    "bksp": "BackSpace",
    "tab": "Tab",
    "space": "space",
    "pgup": "Prior",
    "pageup": "Prior",
    "pgdn": "Next",
    "pagedown": "Next",
    "home": "Home",
    "end": "End",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "insert": "Insert",
    "ins": "Insert",
    "menu": "Menu",
    "plus": "plus",
    "minus": "minus",
}
_CHAR_KEYSYMS: dict[str, int] = {"\n": 0xFF0D, "\r": 0xFF0D, "\t": 0xFF09, "\b": 0xFF08}


def _char_keysym(ch: str) -> int:
    """The X keysym that types ``ch``: Latin-1 keysyms equal code points, others are U+."""
    if ch in _CHAR_KEYSYMS:
        return _CHAR_KEYSYMS[ch]
    cp = ord(ch)
    if 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xFF:
        return cp
    return 0x01000000 | cp


def _expand_home(arg: str, home: Path) -> str:
    if arg == "~":
        return str(home)
    if arg.startswith("~/"):
        return str(home / arg[2:])
    return arg


def _free_display() -> int:
    """A display number in 100-999 with neither a socket nor a lock file."""
    for _ in range(200):
        n = random.randint(100, 999)
        if not (Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists()):
            return n
    raise SandboxError("no free X display number in 100-999")


class XvfbDesktop(Computer):
    """A virtual desktop: its own Xvfb, a light window manager, apps and files.

    ``files`` maps destinations (``"~/books.csv"``, or a path relative to HOME) to source
    files copied into the sandbox's own HOME before the apps start. ``display=None`` starts
    a fresh Xvfb on a free display; an existing display is used only with
    ``allow_real_display=True``. ``secrets`` resolves ``${secrets.NAME}`` in ``type()``.
    ``xvfb``/``window_manager_command`` name the programs (tests point them elsewhere).
    Apps get a clean, declared environment (``_proc.clean_env`` plus the desktop's own
    variables and ``env``), never this process's.

    ``accessibility=True`` gives the desktop its own session bus and AT-SPI registry and
    starts apps with their accessibility bridges on, so ``accessibility()`` can read the tree
    (names, roles, states, screen boxes) and typing can check itself; without ``dbus-daemon``
    or ``at-spi2-core`` the desktop still runs and ``accessibility()`` is None (OCR only).
    ``type_delay`` is the pause after each typed key in seconds (None: adaptive, see
    ``type``).

    Call ``settle()`` between actions, as the actor loop does: a GTK app that is still
    processing keystrokes can drop a click that arrives a few milliseconds after them.
    """

    def __init__(
        self,
        *,
        screen: tuple[int, int] = (1280, 800),
        apps: Sequence[AppSpec] = (),
        files: Mapping[str, Path] | None = None,
        home: Path | None = None,
        env: Mapping[str, str] | None = None,
        display: str | None = None,
        allow_real_display: bool = False,
        input_backend: Literal["xtest", "pyautogui"] = "xtest",
        secrets: Mapping[str, str] | None = None,
        window_manager: bool = True,
        xvfb: str = "Xvfb",
        window_manager_command: Sequence[str] = ("openbox",),
        ready_timeout: float = 20.0,
        accessibility: bool = True,
        type_delay: float | None = None,
    ) -> None:
        w, h = screen
        if w < 1 or h < 1:
            raise SandboxError(f"screen must be positive, got {screen!r}")
        if input_backend not in ("xtest", "pyautogui"):
            raise SandboxError(
                f"input_backend must be 'xtest' or 'pyautogui', got {input_backend!r}"
            )
        if display is not None and not allow_real_display:
            raise SandboxError(
                f"refusing to drive existing display {display!r}: pass allow_real_display=True"
            )
        self._screen = (w, h)
        self._secrets: dict[str, str] = dict(secrets or {})
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._closed = False
        self._own_home = home is None
        self.home: Path = (
            Path(tempfile.mkdtemp(prefix="agentcorp-home-")) if home is None else home.absolute()
        )
        self.home.mkdir(parents=True, exist_ok=True)
        self._x: Any = None
        self._mss: Any = None
        self._pyautogui: Any = None
        self._remapped: OrderedDict[int, int] = OrderedDict()  # keysym -> spare keycode
        self._spare: list[int] = []
        self._original_map: dict[int, tuple[int, ...]] = {}
        self._wm_started = False
        self._a11y: AtspiTree | None = None
        self.a11y_problem: str | None = None if accessibility else "accessibility is off"
        self._session_bus: str | None = None
        self._a11y_bus: str | None = None
        self._snap: tuple[int, object, Snapshot] | None = None
        self._input_gen = 0
        if type_delay is not None and not 0 <= type_delay <= 5:
            raise SandboxError(f"type_delay must be between 0 and 5 seconds, got {type_delay!r}")
        self.type_delay = type_delay
        #: How long a click waits for a window covering its grounded target to go.
        self.cover_wait = 1.0
        self._targets: list[Box] = []
        # Where the last click went and the input generation it made: a typing step's
        # field check asks whether that click is what put the focus where it is.
        self._clicked: tuple[int, int, int] | None = None
        self._learned_delay = 0.0
        #: (active window, focused element, its mirrors) of the last text-less focus.
        self._textless: tuple[int, tuple[str, str], list[tuple[str, str]]] | None = None
        self._app_delays: dict[int, float] = {}
        tune_allocator()
        register_cleanup(id(self), self.close)
        try:
            if display is None:
                self.display: str = self._start_xvfb(xvfb, ready_timeout)
                self._owns_display = True
            else:
                self.display = display
                self._owns_display = False
            self._connect()
            if window_manager and self._owns_display:
                self._start_wm(window_manager_command, ready_timeout)
            if accessibility:
                self._start_accessibility(ready_timeout)
            self._env = self._app_env(env or {})
            self._install_files(files or {})
            for app in apps:
                self.launch(app, timeout=app.timeout or ready_timeout)
            if input_backend == "pyautogui":
                self._pyautogui = _load_pyautogui(self.display)
        except BaseException:
            self.close()
            raise

    # --- lifecycle ---------------------------------------------------------------------

    def _start_xvfb(self, xvfb: str, timeout: float) -> str:
        w, h = self._screen
        last = ""
        for _ in range(5):
            n = _free_display()
            r, wfd = os.pipe()
            log = tempfile.TemporaryFile()  # noqa: SIM115  (closed on every path below)
            try:
                proc = spawn(
                    [
                        xvfb,
                        f":{n}",
                        "-screen",
                        "0",
                        f"{w}x{h}x24",
                        "-nolisten",
                        "tcp",
                        "-noreset",
                        "-displayfd",
                        str(wfd),
                    ],
                    package="xvfb",
                    pass_fds=(wfd,),
                    stderr=log,
                )
            except BaseException:
                os.close(r)
                log.close()
                raise
            finally:
                os.close(wfd)
            self._procs.append(("Xvfb", proc))
            try:
                got = _read_line(r, timeout)
            finally:
                os.close(r)
            if got.strip() == str(n):
                log.close()
                return f":{n}"
            # Lost a race for the number (or Xvfb failed): keep why, try another number.
            stop_process(proc)
            self._procs.remove(("Xvfb", proc))
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()
            log.close()
            last = lines[-1] if lines else ""
        raise SandboxError(f"Xvfb did not start: {last or 'no display number reported'}")

    def _connect(self) -> None:
        from Xlib import X, display, error
        from Xlib.ext import xtest

        try:
            self._x = display.Display(self.display)
        except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
            raise SandboxError(f"cannot connect to X display {self.display}: {exc}") from exc
        if not self._x.has_extension("XTEST"):
            raise SandboxError(f"X display {self.display} lacks the XTEST extension")
        self._X = X
        self._xtest = xtest
        self._root = self._x.screen().root
        self._root.change_attributes(event_mask=X.PropertyChangeMask | X.SubstructureNotifyMask)
        geom = self._root.get_geometry()
        self._screen = (int(geom.width), int(geom.height))
        import mss

        try:
            self._mss = mss.MSS(display=self.display)
        except Exception as exc:  # mss raises its own ScreenShotError and ctypes errors
            raise SandboxError(f"cannot capture display {self.display}: {exc}") from exc
        self._find_spare_keycodes()

    def _start_wm(self, command: Sequence[str], timeout: float) -> None:
        env = clean_env({"DISPLAY": self.display, "HOME": str(self.home)})
        proc = spawn(list(command), package="openbox", env=env, cwd=self.home)
        self._procs.append(("window manager", proc))
        self._wm_started = True
        self._wait_wm_manages(timeout, proc)

    def _wait_wm_manages(self, timeout: float, proc: subprocess.Popen[bytes]) -> None:
        """Return once the window manager really manages windows: it reparents a probe.

        Its ``_NET_SUPPORTING_WM_CHECK`` property is set before it handles map requests, so
        an app mapping its window in that gap (xedit does) is never managed.
        """
        from Xlib import X, error

        probe = self._root.create_window(
            -100, -100, 8, 8, 0, X.CopyFromParent, X.InputOutput, X.CopyFromParent
        )
        probe.set_wm_name("agentcorp window manager probe")
        probe.map()
        self._x.sync()

        mapped = [time.monotonic()]

        def managed() -> bool:
            try:
                parent = probe.query_tree().parent
            except error.XError:
                return False
            if int(parent.id) != int(self._root.id) or int(probe.id) in self._client_ids():
                return True
            if time.monotonic() - mapped[0] > 0.5:
                # Mapped while the WM was between taking over the root and adopting the
                # windows already there: map it again so the WM gets a map request.
                probe.unmap()
                probe.map()
                self._x.sync()
                mapped[0] = time.monotonic()
            return False

        try:
            self._wait_x(managed, timeout, "the window manager to manage windows", proc)
        finally:
            with contextlib.suppress(error.XError):
                probe.destroy()
                self._x.sync()

    def _start_accessibility(self, timeout: float) -> None:
        """Start the desktop's own session bus and AT-SPI registry (a missing piece is noted)."""
        try:
            find_program("dbus-daemon", "dbus-daemon")
            _a11y_bus_config()
        except SandboxUnavailable as exc:
            self.a11y_problem = str(exc)
            return
        run = self.home / ".run"
        run.mkdir(mode=0o700, exist_ok=True)
        base = {"DISPLAY": self.display, "HOME": str(self.home), "XDG_RUNTIME_DIR": str(run)}
        r, wfd = os.pipe()
        try:
            proc = spawn(
                ["dbus-daemon", "--session", "--nofork", f"--print-address={wfd}"],
                package="dbus-daemon",
                env=clean_env(base),
                cwd=self.home,
                pass_fds=(wfd,),
            )
        finally:
            os.close(wfd)
        self._procs.append(("session bus", proc))
        try:
            address = _read_line(r, timeout).strip()
        finally:
            os.close(r)
        if not address:
            raise SandboxError("the desktop's session bus (dbus-daemon) reported no address")
        self._session_bus = address
        # The accessibility bus is ours too (not at-spi-bus-launcher's child, which would
        # outlive a kill -9 of this process); the registry is activated on it and exits
        # with it. Apps find it by the variable (GTK) or the root window property (Qt).
        from Xlib import Xatom

        conf = _a11y_bus_config()
        r, wfd = os.pipe()
        try:
            bus = spawn(
                ["dbus-daemon", f"--config-file={conf}", "--nofork", f"--print-address={wfd}"],
                package="at-spi2-core",
                env=clean_env(base),
                cwd=self.home,
                pass_fds=(wfd,),
            )
        finally:
            os.close(wfd)
        self._procs.append(("at-spi bus", bus))
        try:
            a11y = _read_line(r, timeout).strip()
        finally:
            os.close(r)
        if not a11y:
            raise SandboxError("the desktop's accessibility bus (dbus-daemon) reported no address")
        self._a11y_bus = a11y
        self._root.change_property(self._atom("AT_SPI_BUS"), Xatom.STRING, 8, a11y.encode())
        self._x.sync()
        self._a11y = AtspiTree(a11y)
        self.a11y_problem = None

    def _app_env(self, extra: Mapping[str, str]) -> dict[str, str]:
        run = self.home / ".run"
        run.mkdir(mode=0o700, exist_ok=True)
        env = clean_env()
        a11y = self._session_bus is not None
        env.update(
            DISPLAY=self.display,
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / ".config"),
            XDG_DATA_HOME=str(self.home / ".local" / "share"),
            XDG_CACHE_HOME=str(self.home / ".cache"),
            XDG_RUNTIME_DIR=str(run),
            # The desktop's own bus, or none: an app must never find (and join) an instance
            # running on another desktop.
            DBUS_SESSION_BUS_ADDRESS=self._session_bus or "disabled:",
            NO_AT_BRIDGE="0" if a11y else "1",
            AT_SPI_BUS_ADDRESS=self._a11y_bus or "",
            GDK_BACKEND="x11",
            GTK_OVERLAY_SCROLLING="0",
        )
        if a11y:
            env.update(QT_ACCESSIBILITY="1", QT_LINUX_ACCESSIBILITY_ALWAYS_ON="1")
        env.setdefault("LANG", "C.UTF-8")
        env.update(extra)
        return env

    def _install_files(self, files: Mapping[str, Path]) -> None:
        for dest, src in files.items():
            target = self._home_path(dest)
            src_path = Path(src)
            if not src_path.is_file():
                raise SandboxError(f"files[{dest!r}]: source {src_path} is not a file")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src_path, target)

    def _home_path(self, dest: str) -> Path:
        rel = dest[2:] if dest.startswith("~/") else dest
        if not rel or rel.startswith("/") or ".." in Path(rel).parts:
            raise SandboxError(f"files: destination {dest!r} must be '~/…' inside the sandbox HOME")
        return self.home / rel

    def launch(self, app: AppSpec, timeout: float = 20.0) -> subprocess.Popen[bytes]:
        """Start ``app`` on this desktop and wait for its window when it names one."""
        if not app.command:
            raise SandboxError(f"app {app.name!r}: empty command")
        argv = [_expand_home(a, self.home) for a in app.command]
        cwd = app.cwd if app.cwd is not None else self.home
        env = dict(self._env)
        env.update({k: _expand_home(v, self.home) for k, v in app.env.items()})
        registered = self._a11y.app_count() if self._a11y is not None else None
        proc = spawn(argv, package=app.debian_package(), env=env, cwd=cwd)
        self._procs.append((app.name, proc))
        if app.type_delay is not None:
            self._app_delays[proc.pid] = app.type_delay
        if app.wait_for_window:
            title = app.wait_for_window
            found: list[Any] = []

            def shown() -> bool:
                # With a window manager the window counts once it is managed (listed by it).
                win = self.find_window(title)
                if win is None or (self._wm_started and win.id not in self._client_ids()):
                    return False
                found.append(win)
                return True

            self._wait_x(shown, timeout, f"app {app.name!r} window {title!r}", proc)
            if app.maximize:
                self.maximize(title, timeout=timeout)
            if self._wm_started:
                # The WM focuses a new window right after managing it; wait for that so the
                # first keystroke goes to the app, but a WM that does not is no error.
                with contextlib.suppress(SandboxError):
                    self._wait_x(lambda: self._active_id() == found[-1].id, 2.0, "focus")
            if registered is not None:
                self._wait_registered(registered)
        return proc

    def _wait_registered(self, before: int) -> None:
        """Wait briefly for a new app on the accessibility bus (its tree), if one comes.

        An app registers a moment after its window shows (Qt apps reliably after); a first
        step grounded in that moment would find no tree and fall back to OCR, whose
        geometry can pick another field than the one a label names. An app with no bridge
        (Athena) never registers: it costs ``_REGISTER_WAIT`` once, at start.
        """
        assert self._a11y is not None
        deadline = time.monotonic() + _REGISTER_WAIT
        while self._a11y.app_count() <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        self._input_gen += 1  # a tree read before this is stale

    def maximize(self, title: str | None = None, timeout: float = 5.0) -> None:
        """Ask the window manager to maximize a window (EWMH) and wait until it has."""
        from Xlib import X
        from Xlib.protocol import event

        win = self.find_window(title) if title is not None else self._active()
        if win is None:
            raise SandboxError(f"no window {title!r} to maximize" if title else "no active window")
        if not self._wm_started:
            raise SandboxError("maximize needs the window manager (window_manager=True)")
        state = self._atom("_NET_WM_STATE")
        horz = self._atom("_NET_WM_STATE_MAXIMIZED_HORZ")
        vert = self._atom("_NET_WM_STATE_MAXIMIZED_VERT")
        msg = event.ClientMessage(window=win, client_type=state, data=(32, [1, horz, vert, 1, 0]))
        self._root.send_event(msg, event_mask=X.SubstructureRedirectMask | X.SubstructureNotifyMask)
        self._x.sync()

        def maximized() -> bool:
            val = self._get_prop(win, "_NET_WM_STATE")
            return val is not None and horz in val and vert in val

        self._wait_x(maximized, timeout, f"window {title!r} to maximize")

    def _client_ids(self) -> set[int]:
        ids = self._get_prop(self._root, "_NET_CLIENT_LIST")
        return {int(i) for i in ids} if ids is not None else set()

    def _active_id(self) -> int:
        val = self._get_prop(self._root, "_NET_ACTIVE_WINDOW")
        return int(val[0]) if val is not None and len(val) else 0

    def _wait_x(
        self,
        ready: Callable[[], bool],
        timeout: float,
        what: str,
        proc: subprocess.Popen[bytes] | None = None,
    ) -> None:
        """Wait for ``ready()``, re-checking whenever the X server sends us an event."""
        deadline = time.monotonic() + timeout
        fd = self._x.fileno()
        while True:
            while self._x.pending_events():
                self._x.next_event()
            if ready():
                return
            if proc is not None and proc.poll() is not None:
                raise SandboxError(f"{what}: process exited with code {proc.returncode}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxError(f"timed out after {timeout:.0f}s waiting for {what}")
            # Property and map events on the root wake us; the cap re-checks the process.
            select.select([fd], [], [], min(left, 0.05))

    def close(self) -> None:
        """Stop every process this desktop started (newest first) and free the display."""
        if self._closed:
            return
        self._closed = True
        unregister_cleanup(id(self))
        if self._a11y is not None:
            self._a11y.close()
            self._a11y = None
        if self._x is not None and not self._owns_display_safe():
            self._restore_keymap()
        for _, proc in reversed(self._procs):
            stop_process(proc, grace=1.0)
        self._procs.clear()
        if self._mss is not None:
            with contextlib.suppress(Exception):
                self._mss.close()
            self._mss = None
        if self._x is not None:
            with contextlib.suppress(Exception):
                self._x.close()
            self._x = None
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def _owns_display_safe(self) -> bool:
        return bool(getattr(self, "_owns_display", False))

    @property
    def pids(self) -> dict[str, int]:
        """PIDs of the processes this desktop started, by name (for tests and diagnostics)."""
        return {name: p.pid for name, p in self._procs if p.poll() is None}

    # --- windows -----------------------------------------------------------------------

    def _atom(self, name: str) -> int:
        return int(self._x.intern_atom(name))

    def _get_prop(self, win: Any, name: str) -> Any:
        from Xlib import X, error

        try:
            prop = win.get_full_property(self._atom(name), X.AnyPropertyType)
        except error.XError:
            return None
        return prop.value if prop is not None else None

    def _title(self, win: Any) -> str:
        val = self._get_prop(win, "_NET_WM_NAME")
        if val is None:
            val = self._get_prop(win, "WM_NAME")
        if val is None:
            return ""
        return val.decode("utf-8", "replace") if isinstance(val, bytes) else str(val)

    def _clients(self) -> list[Any]:
        ids = self._get_prop(self._root, "_NET_CLIENT_LIST")
        if ids is not None and len(ids):
            return [self._x.create_resource_object("window", int(i)) for i in ids]
        # No window manager: top-level children (and one level down) with a name.
        from Xlib import error

        out: list[Any] = []
        try:
            for child in self._root.query_tree().children:
                out.append(child)
                out.extend(child.query_tree().children)
        except error.XError:
            pass
        return out

    def find_window(self, title: str) -> Any | None:
        """The first mapped top-level window whose title contains ``title``, or None."""
        from Xlib import X, error

        for win in self._clients():
            if title not in self._title(win):
                continue
            try:
                if win.get_attributes().map_state == X.IsViewable:
                    return win
            except error.XError:
                continue
        return None

    def _active(self) -> Any | None:
        val = self._get_prop(self._root, "_NET_ACTIVE_WINDOW")
        if val is not None and len(val) and int(val[0]):
            return self._x.create_resource_object("window", int(val[0]))
        focus = self._x.get_input_focus().focus
        return None if isinstance(focus, int) or focus == self._root else focus

    def window_title(self) -> str | None:
        """Title of the active window (for the safety policy), or None."""
        win = self._active()
        return self._title(win) if win is not None else None

    def window_class(self) -> str | None:
        """WM_CLASS class name of the active window, or None."""
        from Xlib import error

        win = self._active()
        if win is None:
            return None
        try:
            cls = win.get_wm_class()
        except error.XError:
            return None
        return str(cls[1]) if cls else None

    def window_box(self, title: str | None = None) -> Box | None:
        """Screen box of the window titled ``title`` (substring), or of the active one."""
        from Xlib import error

        win = self.find_window(title) if title is not None else self._active()
        if win is None:
            return None
        try:
            geom = win.get_geometry()
            pos = win.translate_coords(self._root, 0, 0)
        except error.XError:
            return None
        x, y = -int(pos.x), -int(pos.y)
        box = Box(x, y, int(geom.width), int(geom.height))
        sw, sh = self._screen
        x0, y0 = max(0, box.x), max(0, box.y)
        return Box(x0, y0, max(0, min(sw, box.right) - x0), max(0, min(sh, box.bottom) - y0))

    def screenshot_window(self, title: str | None = None) -> Frame:
        """Capture only the window titled ``title`` (substring), or the active window."""
        box = self.window_box(title)
        if box is None or box.w == 0 or box.h == 0:
            raise SandboxError(f"no visible window {title!r}" if title else "no active window")
        return self.screenshot(box)

    # --- Computer ----------------------------------------------------------------------

    @property
    def size(self) -> Point:
        """Screen (width, height) in pixels."""
        return self._screen

    def screenshot(self, region: Box | None = None) -> Frame:
        """Capture the screen (or ``region``) through MIT-SHM with the reused mss instance."""
        self._check_open()
        if region is None:
            mon = {"left": 0, "top": 0, "width": self._screen[0], "height": self._screen[1]}
        else:
            sw, sh = self._screen
            if (
                region.w <= 0
                or region.h <= 0
                or region.x < 0
                or region.y < 0
                or region.right > sw
                or region.bottom > sh
            ):
                raise SandboxError(f"region {region} is not inside the {sw}x{sh} screen")
            mon = {"left": region.x, "top": region.y, "width": region.w, "height": region.h}
        t = time.time()
        try:
            shot = self._mss.grab(mon)
        except Exception as exc:
            raise SandboxError(f"capture of {self.display} failed: {exc}") from exc
        w, h = shot.width, shot.height
        # One SIMD pass BGRX -> RGB (~0.3 ms at 1280x800; Pillow's raw decoder + tobytes ~2 ms).
        bgrx = np.frombuffer(shot.raw, np.uint8).reshape(h, w, 4)
        rgb = cv2.cvtColor(bgrx, cv2.COLOR_BGRA2RGB)
        return Frame(rgb.tobytes(), w, h, (mon["left"], mon["top"]), t)

    def click(self, x: int, y: int, button: Button = "left") -> None:
        """Move to (x, y) and click once with ``button``.

        When the element at (x, y) was just grounded from the accessibility tree and another
        window is on top of it there (an open menu, a dialog, another app), waits up to
        ``cover_wait`` seconds for it to go, else raises ``SandboxError`` naming what covers
        the target; nothing is clicked.
        """
        self._wait_uncovered(x, y)
        self._input_gen += 1
        self._clicked = (x, y, self._input_gen) if button == "left" else None
        if self._pyautogui is not None:
            self._pyautogui.click(x, y, button=button)
            return
        b = self._button(button)
        self._motion(x, y)
        self._fake(self._X.ButtonPress, b)
        self._fake(self._X.ButtonRelease, b)
        self._x.sync()

    def double_click(self, x: int, y: int) -> None:
        """Move to (x, y) and double-click the left button (covered targets as ``click``)."""
        self._wait_uncovered(x, y)
        self._input_gen += 1
        if self._pyautogui is not None:
            self._pyautogui.doubleClick(x, y)
            return
        self._motion(x, y)
        for _ in range(2):
            self._fake(self._X.ButtonPress, 1)
            self._fake(self._X.ButtonRelease, 1)
        self._x.sync()

    def move(self, x: int, y: int) -> None:
        """Move the pointer to (x, y) without clicking."""
        if self._pyautogui is not None:
            self._pyautogui.moveTo(x, y)
            return
        self._motion(x, y)
        self._x.sync()

    def drag(self, path: Sequence[Point]) -> None:
        """Press at ``path[0]``, move through every point (in small steps), release at the end."""
        self._input_gen += 1
        pts = [self._on_screen(int(px), int(py)) for px, py in path]
        if len(pts) < 2:
            raise SandboxError("drag needs at least two points")
        if self._pyautogui is not None:
            pg = self._pyautogui
            pg.moveTo(*pts[0])
            pg.mouseDown()
            for p in pts[1:]:
                pg.moveTo(*p)
            pg.mouseUp()
            return
        self._motion(*pts[0])
        self._fake(self._X.ButtonPress, 1)
        self._x.sync()
        for (ax, ay), (bx, by) in itertools.pairwise(pts):
            # Intermediate motion so toolkits see the drag threshold crossed.
            steps = max(1, int(max(abs(bx - ax), abs(by - ay)) // 8))
            for i in range(1, steps + 1):
                self._motion(ax + (bx - ax) * i // steps, ay + (by - ay) * i // steps)
            self._x.sync()
        self._fake(self._X.ButtonRelease, 1)
        self._x.sync()

    def scroll(self, x: int, y: int, dx: int, dy: int) -> None:
        """Scroll at (x, y) by wheel notches: ``dy`` > 0 down, ``dx`` > 0 right."""
        self._input_gen += 1
        if self._pyautogui is not None:
            self._pyautogui.moveTo(x, y)
            if dy:
                self._pyautogui.scroll(-dy)
            if dx:
                self._pyautogui.hscroll(dx)
            return
        self._motion(x, y)
        for count, neg, pos in ((dy, 4, 5), (dx, 6, 7)):
            b = pos if count > 0 else neg
            for _ in range(abs(count)):
                self._fake(self._X.ButtonPress, b)
                self._fake(self._X.ButtonRelease, b)
        self._x.sync()

    def type(self, text: str) -> None:
        """Type ``text`` exactly (Unicode included); ``${secrets.NAME}`` resolved here.

        When the accessibility tree shows the focused element holds text, typing checks
        itself: the element's text must show the insertion. On a mismatch the field's text
        is put back (AT-SPI EditableText) and the text typed again with a longer pause after
        each key (the pause then stays learnt for this desktop), at most ``_RETYPES`` times;
        then the step fails with what the field shows.

        When the focused element's text cannot be read (a spreadsheet cell, an app with no
        accessibility tree such as xedit or Tk), the text is typed at full speed and checked
        where it shows: in another editable element of the app that mirrors it (a formula
        bar), else by OCR of the screen lines that changed. On a mismatch what landed is
        erased (BackSpace, only once the check knows how much landed) and the text typed
        again with a longer pause after each key, at most ``_RETYPES`` times; then the step
        fails saying what the screen shows. Keys into an element of an app whose tree shows
        no editable element at all (a calculator's keypad) are commands: they are paced,
        since some apps drop keys that arrive during the press animation of the key before.
        A text holding a secret is never read back from the screen, nor one OCR cannot read
        (another script than Latin) when OCR is the only reader: it is paced.
        """
        self._check_open()
        self._input_gen += 1
        value = resolve_secrets(text, self._secrets)
        delay = self._key_delay()
        known = self._still_textless()
        focus = None if known is not None else self._focus_text()
        if focus is None:
            mirrors = (known or self._text_mirrors()) if value == text else None
            if mirrors == [] and not _typed.checkable(value):
                mirrors = None  # OCR would be the only reader, and it reads Latin script
            if mirrors is not None:
                # Tab and Return move on (to the next cell or field): each piece is checked
                # where it was typed, before the key that leaves it.
                for piece in re.split(r"([\t\n])", text):
                    if piece in ("\t", "\n"):
                        self._send_keys(piece, delay)
                    elif piece and mirrors == [] and not _typed.checkable(piece):
                        self._send_keys(piece, delay, paced=self.type_delay is None)
                    elif piece:
                        self._type_on_screen(piece, delay, mirrors)
                return
            # Keys into an element that holds no text are commands (a calculator's keypad):
            # each waits until the app has drawn the one before (apps drop keys that arrive
            # during a key's press animation). Without a tree nothing says which this is.
            paced = self._a11y is not None and self.type_delay is None
            self._send_keys(value, delay, paced=paced)
            return
        ref, before, editable = focus
        for attempt in range(_RETYPES + 1):
            self._send_keys(value, delay)
            after = self._wait_text(ref, before, value)
            if after is None or _landed(before, after, value):
                self._learned_delay = max(self._learned_delay, delay if attempt else 0.0)
                return
            if attempt == _RETYPES or not editable or not self._restore_text(ref, before):
                break
            delay = max(0.02, delay * 2.5)
        # With a secret in it, the field's text is not repeated (it may hold part of it).
        shows = repr(after or "") if value == text else "other text"
        raise SandboxError(f"typed {text!r} but the field shows {shows} after {attempt + 1} tries")

    def _text_mirrors(self) -> list[tuple[str, str]] | None:
        """Where typed text can be read back when the focused element's text cannot.

        A list of the focused app's other editable elements (possibly empty: read the
        screen), or None when the keys are commands (the app's tree shows no editable
        element) or there is no tree at all (accessibility off: typing is not checked).
        """
        snap = self.accessibility()
        if snap is None or self._a11y is None:
            return None
        node = snap.focused()
        if node is None:
            win = self.window_box()
            if win is not None and any(
                n.role in _WINDOW_ROLES and _same_window(n.box, win) for n in snap.nodes
            ):
                return None  # the window is in the tree but reports no focus: commands
            return []  # the active app shows nothing over AT-SPI (Athena, Tk): OCR
        refs = [
            n.ref
            for n in snap.nodes
            if n.app == node.app and n.editable and n.role != "password text" and n.ref != node.ref
        ]
        if refs:
            self._textless = (self._active_id(), node.ref, refs)
        return refs or None

    def _still_textless(self) -> list[tuple[str, str]] | None:
        """The mirrors of the last text-less focus when that element still has the focus.

        A whole snapshot of a spreadsheet's tree costs 250-400 ms; one state call says the
        cell area still has the focus in the same window (typing cell after cell).
        """
        known = self._textless
        if known is None or self._a11y is None:
            return None
        window, ref, mirrors = known
        states = self._a11y.states_of(ref)
        if states is None or "focused" not in states or window != self._active_id():
            self._textless = None
            return None
        return mirrors

    def _type_on_screen(self, text: str, delay: float, mirrors: list[tuple[str, str]]) -> None:
        """Type ``text`` (no secret in it) and check it shows; retype slower on a mismatch."""
        assert self._a11y is not None
        shows = ""
        for attempt in range(_RETYPES + 1):
            before = self.screenshot()
            texts = self._a11y.texts_of(mirrors)
            self._send_keys(text, delay)
            seen = self._screen_check(text, before, list(zip(mirrors, texts, strict=True)))
            if seen.landed:
                self._learned_delay = max(self._learned_delay, delay if attempt else 0.0)
                return
            shows = seen.shows
            if attempt == _RETYPES or not self._erase(seen):
                break
            delay = max(0.03, delay * 2.5)
        what = f"the screen shows {shows[:120]!r}" if shows else "nothing on the screen changed"
        raise SandboxError(f"typed {text!r} but {what} after {attempt + 1} tries")

    def _screen_check(
        self, value: str, before: Frame, mirrors: list[tuple[tuple[str, str], str | None]]
    ) -> _Seen:
        """Whether ``value`` shows once the screen is still: in a mirror, else by OCR."""
        known = [(r, t) for r, t in mirrors if t is not None]
        if known and self._mirror_shows(value, known):
            return _Seen(True, value)
        # Frames 30 ms apart: a burst of keys is drawn in several passes, and a check made
        # between two of them would call text that is still arriving missing.
        settled = settle_frames(
            self.screenshot, _ECHO_TIMEOUT, before, interval=0.03, quiet=_FIRST_DRAW
        )
        if known:
            seen = self._mirror_check(value, known)
            if seen is not None:
                return seen
        return self._ocr_check(value, before, settled.frame, settled.changed)

    def _mirror_shows(self, value: str, mirrors: list[tuple[tuple[str, str], str]]) -> bool:
        """Whether a mirror shows the text within ``_FIRST_DRAW`` (the quick, usual answer)."""
        assert self._a11y is not None
        deadline = time.monotonic() + _FIRST_DRAW
        while True:
            now = self._a11y.texts_of([r for r, _ in mirrors])
            if any(
                new and _landed(old, new, value) for (_, old), new in zip(mirrors, now, strict=True)
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _mirror_check(self, value: str, mirrors: list[tuple[tuple[str, str], str]]) -> _Seen | None:
        """What the mirrors say (None: none of them changed, they do not mirror this field)."""
        assert self._a11y is not None
        deadline = time.monotonic() + _ECHO_TIMEOUT
        while True:
            now = self._a11y.texts_of([r for r, _ in mirrors])
            pairs = [(r, old, new) for (r, old), new in zip(mirrors, now, strict=True) if new]
            if any(_landed(old, new, value) for _, old, new in pairs):
                return _Seen(True, value)
            moved = [(r, old, new) for r, old, new in pairs if new != old]
            if not moved:
                return None
            if time.monotonic() >= deadline:
                ref, old, new = moved[0]
                return _Seen(False, new, erase=_mirror_erase(ref, old, new, value))
            time.sleep(0.02)

    def _ocr_check(self, value: str, before: Frame, after: Frame, changed: Box | None) -> _Seen:
        """Read the lines that changed, after and before; the text must show once more."""
        if changed is None or _caret_only(changed):
            return _Seen(False, "", erase=_NOTHING)  # at most a caret blinked
        # Whole lines of the window (a change at a line's end reads with the line's start),
        # and all of the change even where it leaves the window (a completion popup); the
        # change itself is read too when it is one line high (a short word inside a field's
        # border can escape the line finder).
        win = self.window_box() or Box(0, 0, *self._screen)
        x0, x1 = min(win.x, changed.x), max(win.right, changed.right)
        area = Box(x0, max(0, changed.y - 4), x1 - x0, changed.h + 8)
        boxes = _typed.line_boxes(after, area)
        if changed.h <= _LINE_H:
            boxes.append(changed.expand(3, *self._screen))
        now = _typed.read_lines(after, boxes)
        shown = " | ".join(t for t in now if t)
        if not _typed.shows(now, value):
            return _Seen(False, shown, erase=self._ocr_erase(value, before, boxes, now))
        if _typed.ends_in_bar(value):
            bare = self._caret_off(after, boxes)
            if bare is None:
                return _Seen(False, f"{shown} (its last character or the caret: unknown)")
            now = bare
            if not _typed.shows(now, value):
                shown = " | ".join(t for t in now if t)
                return _Seen(False, shown, self._ocr_erase(value, before, boxes, now))
        if _typed.shows_more(_typed.read_lines(before, boxes), now, value):
            return _Seen(True, shown)
        return _Seen(False, shown)

    def _caret_off(self, after: Frame, boxes: list[Box]) -> list[str] | None:
        """The lines read from a frame with the caret blinked off (None: it never blinked).

        Watches the lines until they differ from ``after`` in one narrow column only (the
        caret came or went) and reads the one of the two frames with less ink there.
        """
        if not boxes:
            return None
        area = boxes[0]
        for b in boxes[1:]:
            area = area.union(b)
        # The caret may stand just past the last glyph's box (the reading's crop pads it in).
        area = area.expand(6, *self._screen)
        first = after.crop(area)
        deadline = time.monotonic() + _BLINK_WAIT
        while time.monotonic() < deadline:
            time.sleep(0.04)
            cur = self.screenshot(area)
            d = changed_box(first, cur)
            if d is None:
                continue
            if d.w > _CARET_W:
                return None  # something besides the caret changed: no clean reading
            off = cur if _ink(cur, d) < _ink(first, d) else first
            return _typed.read_lines(off, boxes)
        return None

    def _ocr_erase(self, value: str, before: Frame, boxes: list[Box], now: list[str]) -> _Erase:
        """How to take back what landed, when what changed shows part of ``value`` typed in."""
        if "\n" in value:
            return None
        was = _typed.read_lines(before, boxes)
        want = _typed.ocr_fold(value)
        grown = [
            (box, _typed.insertion(_typed.ocr_fold(a), _typed.ocr_fold(b)))
            for box, a, b in zip(boxes, was, now, strict=True)
            if _typed.ocr_fold(a) != _typed.ocr_fold(b)
        ]
        if not grown:
            return _NOTHING  # nothing reads differently: no text landed
        typed_in = [
            (box, ins)
            for box, ins in grown
            if not ins.removed and ins.inserted and _typed.is_subsequence(ins.inserted, want)
        ]
        if len(typed_in) != len(grown):
            return None  # some text changed otherwise than by keys of this text going in
        # The reading that saw most of it bounds the BackSpaces. Spaces do not show in a
        # reading: up to every typed space may have landed too, and a caret read as a glyph
        # may have hidden one more. Each BackSpace is checked against the line as it was.
        box, ins = max(typed_in, key=lambda bi: len(bi[1].inserted))
        most = min(len(value), len(ins.inserted) + value.count(" ") + 1)
        return ("pixels", box, before, most)

    def _erase(self, seen: _Seen) -> bool:
        """Take back what a mistyped text put in; True once the field is as it was.

        One BackSpace at a time, each waited for (its effect shows, at most
        ``_ECHO_TIMEOUT``), stopping as soon as the field reads as before: never more than
        ``most``, so text that was there before typing is never erased.
        """
        if seen.erase is None:
            return False
        kind, where, old, most = seen.erase
        if kind == "none":
            return True
        probe = self._erase_probe(kind, where, old)
        if probe is None:
            return False
        look, restored, moved = probe
        backspace = self._keycode_for(self._keysym("BackSpace", "BackSpace"))[0]
        prev = look()
        for _ in range(most):
            checkpoint()
            self._input_gen += 1
            self._fake(self._X.KeyPress, backspace)
            self._fake(self._X.KeyRelease, backspace)
            self._x.sync()
            deadline = time.monotonic() + _ECHO_TIMEOUT
            while True:
                cur = look()
                if restored(cur):
                    return True
                if moved(prev, cur) or time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
            prev = cur
        return False

    def _erase_probe(
        self, kind: str, where: object, old: object
    ) -> tuple[Callable[[], Any], Callable[[Any], bool], Callable[[Any, Any], bool]] | None:
        """(read the field, is it as before, did it change) for a mirror or a screen line."""
        a11y = self._a11y
        if kind == "text" and isinstance(where, tuple) and isinstance(old, str) and a11y:
            ref = where
            return (lambda: a11y.text_of(ref), lambda t: t == old, lambda a, b: a != b)
        if kind == "pixels" and isinstance(where, Box) and isinstance(old, Frame):
            sx, sy = self._screen
            region = Box(where.x, where.y, min(where.w, sx - where.x), min(where.h, sy - where.y))
            was = old.crop(region)
            return (
                lambda: self.screenshot(region),
                lambda f: _caret_only(changed_box(was, f)),
                lambda a, b: not _caret_only(changed_box(a, b)),
            )
        return None

    def _send_keys(self, value: str, delay: float, *, paced: bool = False) -> None:
        region = self.window_box() if paced else None
        try:
            self._send_each(value, delay, paced, region)
        finally:
            self._x.sync()

    def _send_each(self, value: str, delay: float, paced: bool, region: Box | None) -> None:
        for i, ch in enumerate(value):
            if i % 16 == 0:
                checkpoint()  # a budget or an abort stops a long text part-way
            before = self.screenshot(region) if paced and region and region.w and region.h else None
            keycode, shift = self._keycode_for(_char_keysym(ch))
            self._press_keycode(keycode, shift)
            if delay or paced:
                self._x.sync()
            if before is not None and region is not None:
                self._wait_quiet(region, before)
            if delay:
                time.sleep(delay)

    def _wait_quiet(self, region: Box, before: Frame) -> None:
        """Wait until the window showed the key's effect and then stayed still a while.

        A key whose effect never shows costs the whole ``_KEY_SETTLE``: on a busy machine an
        app may take longer than any fixed quiet spell to draw a key, and a key sent before
        it did is the one it drops.
        """
        t0 = time.monotonic()
        last, still_since = before.rgb, t0
        changed = False
        while time.monotonic() - t0 < _KEY_SETTLE:
            time.sleep(0.01)
            cur = self.screenshot(region).rgb
            now = time.monotonic()
            if cur != last:
                last, still_since, changed = cur, now, True
            elif changed and now - still_since >= _KEY_QUIET:
                return

    def _key_delay(self) -> float:
        """The pause after each key: the app's, else the desktop's, else what was learnt."""
        pid = self._active_pid()
        if pid is not None and pid in self._app_delays:
            return self._app_delays[pid]
        if self.type_delay is not None:
            return self.type_delay
        return self._learned_delay

    def _active_pid(self) -> int | None:
        win = self._active()
        val = self._get_prop(win, "_NET_WM_PID") if win is not None else None
        return int(val[0]) if val is not None and len(val) else None

    def _focus_text(self) -> tuple[tuple[str, str], str, bool] | None:
        """(element, its text, editable) for a focused element that holds text, else None."""
        snap = self.accessibility()
        if snap is None or self._a11y is None:
            return None
        node = snap.focused()
        if node is None:
            return None
        text = self._a11y.text_of(node.ref)
        if text is None or not node.editable:
            return None
        return node.ref, text, node.editable

    def _wait_text(self, ref: tuple[str, str], before: str, value: str) -> str | None:
        """The element's text once it shows ``value`` (or after a short while)."""
        assert self._a11y is not None
        deadline = time.monotonic() + _ECHO_TIMEOUT
        after = self._a11y.text_of(ref)
        while after is not None and not _landed(before, after, value):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
            after = self._a11y.text_of(ref)
        return after

    def _restore_text(self, ref: tuple[str, str], before: str) -> bool:
        assert self._a11y is not None
        return self._a11y.set_text(ref, before)

    def _wait_uncovered(self, x: int, y: int) -> None:
        cached = self._snap
        if cached is None or cached[0] != self._input_gen or not self._wm_started:
            return  # no element was grounded for this click: nothing to compare with
        snap = cached[2]
        deadline = time.monotonic() + self.cover_wait
        while True:
            cover = self._covering(snap, x, y)
            if cover is None:
                return
            if time.monotonic() >= deadline:
                raise SandboxError(
                    f"click at ({x}, {y}) not done: the target is covered by {cover}"
                )
            time.sleep(0.05)

    def _covering(self, snap: Snapshot, x: int, y: int) -> str | None:
        """What window is on top of the grounded element at (x, y), or None when nothing is."""
        mine = [n for n in snap.nodes if n.box in self._targets and n.box.contains(x, y)]
        if not mine:
            return None
        node = min(mine, key=lambda n: n.box.w * n.box.h)
        top = self._top_window_at(x, y)
        if top is None:
            return None
        win, box = top
        # The element is in the top window when the window is its own (same frame) or one of
        # its ancestors fills that window (a menu item inside an open menu popup).
        chain = (node, *snap.ancestors(node))
        if any(_same_window(up.box, box) for up in chain):
            return None
        if chain[-1].role not in _WINDOW_ROLES and not _is_popup(win) and _inside(node.box, box):
            # The snapshot did not reach the element's window (a partial tree: Mousepad's
            # text view stops at its scroll pane); an element lying wholly inside the top
            # window is that window's. A popup over it is still caught above and below.
            return None
        in_menu = any(up.role in _POPUP_OWNERS or "menu" in up.role for up in chain)
        if in_menu and _inside(node.box, box) and _is_popup(win):
            return None  # an item of the open menu (a popup is not in the tree as a window)
        title = self._title_in(win)
        if _is_popup(win):
            of = f" of {title!r}" if title else ""
            return f"{_popup_name(snap, box)}{of} (an open menu or popup)"
        return f"the window {title!r}" if title else _popup_name(snap, box)

    def _top_window_at(self, x: int, y: int) -> tuple[Any, Box] | None:
        """The topmost viewable top-level window (WM frame or popup) holding (x, y)."""
        from Xlib import X, error

        try:
            children = self._root.query_tree().children
        except error.XError:
            return None
        for win in reversed(children):  # query_tree lists bottom to top
            try:
                if win.get_attributes().map_state != X.IsViewable:
                    continue
                g = win.get_geometry()
            except error.XError:
                continue
            box = Box(int(g.x), int(g.y), int(g.width), int(g.height))
            if box.w > 1 and box.h > 1 and box.contains(x, y):
                return win, box
        return None

    def _title_in(self, win: Any) -> str:
        """The title of ``win`` or of the client window the WM framed in it."""
        from Xlib import error

        title = self._title(win)
        if title:
            return title
        with contextlib.suppress(error.XError):
            for child in win.query_tree().children:
                title = self._title(child)
                if title:
                    return title
        return ""

    def accessibility(self, fresh_for: object | None = None) -> Snapshot | None:
        """The accessibility tree now (cached until the next input), or None without one.

        ``fresh_for`` keys the cache too (the grounder passes the frame it grounds on), so a
        new frame after a change the desktop did not cause gets a new snapshot.
        """
        if self._a11y is None:
            return None
        cached = self._snap
        if cached is not None and cached[0] == self._input_gen and cached[1] is fresh_for:
            return cached[2]
        snap = self._a11y.snapshot()
        # What fields and displays hold is visible text too (OCR often misses it inside a
        # field's border); a password field's content is never read.
        fields = [
            n.ref
            for n in snap.nodes
            if (n.editable or n.role == "text") and n.role != "password text"
        ]
        for ref, text in zip(fields, self._a11y.texts_of(fields), strict=True):
            if text:
                snap.texts[ref] = text
        self._snap = (self._input_gen, fresh_for, snap)
        return snap

    def text_extents(self, ref: tuple[str, str], start: int, end: int) -> Box | None:
        """Screen box of characters ``start:end`` of an element's text (None: unknown)."""
        return self._a11y.range_extents(ref, start, end) if self._a11y is not None else None

    def relations(
        self, refs: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, list[tuple[str, str]]]]:
        """Label relations of elements of the tree (``AtspiTree.relations``; {} without one)."""
        return self._a11y.relations(refs) if self._a11y is not None else {}

    def grounded(self, boxes: Sequence[Box]) -> None:
        """Remember the elements grounding just found, for the covered-target check."""
        self._targets = list(boxes)

    def focused_element(self) -> Accessible | None:
        """The element with keyboard focus per the accessibility tree (None: unknown)."""
        snap = self.accessibility()
        return snap.focused() if snap is not None else None

    def check_editable_focus(self, label: str) -> None:
        """Raise ``SandboxError`` unless focus is in an editable element (when the tree knows).

        Right after a click (the ``into`` step clicked its field) the focus must be in the
        element clicked: a field that refused it leaves the focus in another field, where
        the text would land while the step said ok. The app gets a moment to move it.
        """
        clicked = self._clicked
        if clicked is not None and clicked[2] != self._input_gen:
            clicked = None  # other input since: the click is not what typing follows
        deadline = time.monotonic() + (_FOCUS_WAIT if clicked is not None else 0.0)
        while True:
            self._input_gen += 1  # the click that focused it may have been just now
            problem = _focus_problem(self.focused_element(), clicked)
            if problem is None:
                return
            if time.monotonic() >= deadline:
                raise SandboxError(f"into {label!r}: {problem}")
            time.sleep(0.05)

    def key(self, combo: str) -> None:
        """Press a combination like ``"ctrl+s"``, ``"alt+F4"``, ``"Return"``, ``"ctrl+shift+t"``."""
        self._check_open()
        names = _split_combo(combo)
        self._check_key_goes_somewhere(combo, names)
        if self._pyautogui is not None:
            self._pyautogui.hotkey(*[_pyautogui_key(n) for n in names])
            return
        codes: list[int] = []
        for name in names:
            keycode, shift = self._keycode_for(self._keysym(name, combo))
            if shift and len(names) == 1:
                codes.append(self._keycode_for(self._keysym("shift", combo))[0])
            codes.append(keycode)
        for kc in codes:
            self._fake(self._X.KeyPress, kc)
        for kc in reversed(codes):
            self._fake(self._X.KeyRelease, kc)
        self._x.sync()
        self._input_gen += 1

    def _check_key_goes_somewhere(self, combo: str, names: Sequence[str]) -> None:
        """Raise ``SandboxError`` when the keyboard focus is on no app's window.

        That is no window at all, or the window manager's own window (where openbox parks
        the focus when an app closed or a click on the bare desktop took it):
        a key then reaches no app and the step must not report ok. A window mapping just
        now gets a moment. Combos with alt or super may be the window manager's own
        bindings (alt+Tab), which work with no window focused: those always go.
        """
        if any(n.lower() in _WM_MODIFIERS for n in names):
            return
        deadline = time.monotonic() + _FOCUS_WAIT
        while self._focus_reaches_no_app():
            if time.monotonic() >= deadline:
                raise SandboxError(
                    f"key {combo!r}: no window has the keyboard focus (an app closed, or a"
                    " click outside every window took it), so no app would get it"
                )
            time.sleep(0.05)

    def _focus_reaches_no_app(self) -> bool:
        from Xlib import X, error

        try:
            focus = self._x.get_input_focus().focus
        except error.XError:
            return False
        if isinstance(focus, int):
            return bool(focus == X.NONE)  # PointerRoot: the window under the pointer gets keys
        # Focus on the root (or any window) still sends keys to the window under the pointer
        # inside it; the manager's own window is a 1x1 one off screen, with nothing inside.
        check = self._get_prop(self._root, "_NET_SUPPORTING_WM_CHECK")
        return bool(check is not None and len(check) and focus.id == int(check[0]))

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass (only when the model or a script asks for it)."""
        if seconds > 0:
            interruptible_sleep(seconds)

    def settle(self, timeout: float = 2.0, since: Frame | None = None) -> SettleResult:
        """Return once two consecutive frames a few ms apart are equal (or ``timeout``)."""
        return settle_frames(self.screenshot, timeout, since)

    # --- XTest plumbing ----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed or self._x is None:
            raise SandboxError("the desktop is closed")

    def _on_screen(self, x: int, y: int) -> Point:
        w, h = self._screen
        if not (0 <= x < w and 0 <= y < h):
            raise SandboxError(f"point ({x}, {y}) is outside the {w}x{h} screen")
        return (x, y)

    def _button(self, button: str) -> int:
        try:
            return _BUTTONS[button]
        except KeyError:
            raise SandboxError(f"unknown mouse button {button!r}") from None

    def _fake(self, event: int, detail: int) -> None:
        self._xtest.fake_input(self._x, event, detail)

    def _motion(self, x: int, y: int) -> None:
        self._check_open()
        x, y = self._on_screen(int(x), int(y))
        self._xtest.fake_input(self._x, self._X.MotionNotify, x=x, y=y)

    def _keysym(self, name: str, combo: str) -> int:
        from Xlib import XK

        if len(name) == 1:
            return _char_keysym(name)
        ks = XK.string_to_keysym(_KEY_ALIASES.get(name.lower(), name))
        if not ks:
            ks = XK.string_to_keysym(name.capitalize())
        if not ks:
            raise SandboxError(f"unknown key {name!r} in key combo {combo!r}")
        return int(ks)

    def _find_spare_keycodes(self) -> None:
        lo, hi = self._x.display.info.min_keycode, self._x.display.info.max_keycode
        mapping = self._x.get_keyboard_mapping(lo, hi - lo + 1)
        self._spare = [lo + i for i, syms in enumerate(mapping) if not any(syms)]
        self._spare.reverse()  # take high keycodes first; low ones are likelier to be real keys

    def _keycode_for(self, keysym: int) -> tuple[int, bool]:
        """(keycode, needs shift) for ``keysym``, mapping a spare keycode if none has it."""
        if keysym in self._remapped:
            self._remapped.move_to_end(keysym)
            return self._remapped[keysym], False
        for keycode, index in self._x.keysym_to_keycodes(keysym):
            if index in (0, 1):
                return int(keycode), index == 1
        return self._remap(keysym), False

    def _remap(self, keysym: int) -> int:
        if self._spare:
            keycode = self._spare.pop()
        elif self._remapped:
            # Out of spares: reuse the least recently typed one (its key events are long
            # processed since we sync after every action).
            _, keycode = self._remapped.popitem(last=False)
        else:
            raise SandboxError("no spare keycode to type a character without a key")
        if keycode not in self._original_map:
            self._original_map[keycode] = tuple(self._x.get_keyboard_mapping(keycode, 1)[0])
        self._x.change_keyboard_mapping(keycode, [(keysym, keysym)])
        self._x.sync()
        self._remapped[keysym] = keycode
        return keycode

    def _restore_keymap(self) -> None:
        # Only on displays we did not start: our own Xvfb dies with its keymap.
        with contextlib.suppress(Exception):
            for keycode, syms in self._original_map.items():
                self._x.change_keyboard_mapping(keycode, [syms])
            self._x.sync()

    def _press_keycode(self, keycode: int, shift: bool) -> None:
        shift_code = self._keycode_for(0xFFE1)[0] if shift else 0
        if shift:
            self._fake(self._X.KeyPress, shift_code)
        self._fake(self._X.KeyPress, keycode)
        self._fake(self._X.KeyRelease, keycode)
        if shift:
            self._fake(self._X.KeyRelease, shift_code)


#: How often a mistyped text is typed again (each time with a longer pause per key).
_RETYPES = 2
#: How long typed text may take to show in the accessibility tree.
_ECHO_TIMEOUT = 1.0
#: A command key (into an element holding no text) waits until its window showed the key's
#: effect and then stayed still ``_KEY_QUIET`` (at most ``_KEY_SETTLE``): galculator drops a
#: key arriving during the press animation of the key before (an operator, or the same key
#: again: "800" became "80"), and a fixed pause long enough for it slows every other app.
_KEY_QUIET = 0.06
_KEY_SETTLE = 0.8
#: How long typed text checked on screen may take to start drawing.
_FIRST_DRAW = 0.3
#: Widest difference (px) still taken for the same field: a caret that blinked meanwhile.
_CARET_W = 3
#: Tallest change read as one line of text by itself (px).
_LINE_H = 60
#: How long a check waits for the caret to blink (Tk: 0.9 s cycle; GTK: 1.2 s).
_BLINK_WAIT = 1.4


def _caret_only(diff: Box | None) -> bool:
    """Whether two looks at a field differ at most by a caret that blinked."""
    return diff is None or diff.w <= _CARET_W


def _ink(frame: Frame, box: Box) -> float:
    """How far ``box`` of ``frame`` is from the frame's usual colour (a drawn caret: far)."""
    px = np.frombuffer(frame.rgb, np.uint8).reshape(frame.height, frame.width, 3)
    ox, oy = frame.origin
    part = px[box.y - oy : box.bottom - oy, box.x - ox : box.right - ox].astype(np.int16)
    usual = np.median(px.reshape(-1, 3), axis=0)
    return float(np.abs(part - usual).mean()) if part.size else 0.0


#: How to erase a mistyped text: ("text", element, its text before, most BackSpaces) or
#: ("pixels", line box, frame before, most BackSpaces); None when it cannot be known.
_Erase = tuple[str, object, object, int] | None
#: Nothing landed, so nothing needs erasing before a retry.
_NOTHING: _Erase = ("none", None, None, 0)


@dataclass(frozen=True, slots=True)
class _Seen:
    """What a typing check saw: whether the text landed, what shows, how to take it back."""

    landed: bool
    shows: str
    erase: _Erase = None


def _mirror_erase(ref: tuple[str, str], old: str, new: str, value: str) -> _Erase:
    """Erase for a mirror whose text grew by part of ``value`` (keys dropped), else None."""
    ins = _typed.insertion(old, new)
    if ins.removed or not ins.inserted or not _typed.is_subsequence(ins.inserted, value):
        return None
    return ("text", ref, old, len(ins.inserted))


def _landed(before: str, after: str, value: str) -> bool:
    """Whether ``after`` is ``before`` with ``value`` typed in (at any one place)."""
    if not value:
        return True
    # One more occurrence than before; or the field is exactly it (typed over a selection).
    return after.count(value) > before.count(value) or after == value


#: Roles whose items show in a popup window of their own (menus, a combo box's list).
_POPUP_OWNERS = frozenset({"combo box", "list", "list box", "popup menu"})
_WINDOW_ROLES = frozenset({"frame", "window", "dialog", "alert", "file chooser"})


def _inside(a: Box, b: Box) -> bool:
    return b.x <= a.x and b.y <= a.y and a.right <= b.right and a.bottom <= b.bottom


def _is_popup(win: Any) -> bool:
    """Whether ``win`` is an override-redirect window (a menu, a tooltip, a completion)."""
    try:
        return bool(win.get_attributes().override_redirect)
    except Exception:  # Xlib raises its own errors for a window that just went away
        return False


def _same_window(a: Box, b: Box) -> bool:
    """Whether two boxes are one window (its frame with or without the WM's decorations)."""
    return b.contains(*a.center) and abs(a.w - b.w) <= 40 and abs(a.h - b.h) <= 60


#: Modifiers of the window manager's own key bindings (alt+Tab, super+d): such a combo can
#: act with no window focused.
_WM_MODIFIERS = frozenset(
    {"alt", "super", "win", "meta", "cmd", "alt_l", "alt_r", "super_l", "super_r", "meta_l"}
    | {"meta_r", "hyper_l", "hyper_r"}
)
#: How long a started app may take to register on the accessibility bus after its window
#: shows (Qt apps take tens of ms; an app with no accessibility bridge pays all of it).
_REGISTER_WAIT = 1.0
#: How long an app may take to move the keyboard focus to the field a click landed on.
_FOCUS_WAIT = 1.0


def _focus_problem(node: Accessible | None, clicked: tuple[int, int, int] | None) -> str | None:
    """Why typing must not follow with focus on ``node`` (None: fine, or unknown)."""
    if node is None:
        return None
    what = f"{node.role} {node.name!r}" if node.name else node.role or "an element"
    if not node.editable:
        return f"focus is on {what}, not an editable field"
    if clicked is not None:
        x, y, _ = clicked
        b = node.box
        if not Box(b.x - 2, b.y - 2, b.w + 4, b.h + 4).contains(x, y):
            return (
                f"the click at ({x}, {y}) did not focus the field there; focus stayed on"
                f" {what} at ({b.x}, {b.y}, {b.w}x{b.h})"
            )
    return None


def _popup_name(snap: Snapshot, box: Box) -> str:
    """Name an untitled popup window by the accessible element that fills it."""
    for n in snap.nodes:
        if _same_window(n.box, box) and n.role in POPUP_ROLES:
            return f"a {n.role} {n.name!r}" if n.name else f"a {n.role}"
    return f"a popup window at ({box.x}, {box.y}, {box.w}x{box.h})"


def _a11y_bus_config() -> str:
    """at-spi2-core's configuration of the accessibility bus (it activates the registry)."""
    for path in (
        "/usr/share/defaults/at-spi2/accessibility.conf",
        "/usr/local/share/defaults/at-spi2/accessibility.conf",
    ):
        if os.path.isfile(path):
            return path
    raise SandboxUnavailable(
        "the AT-SPI accessibility bus configuration is missing (apt-get install at-spi2-core)"
    )


def _split_combo(combo: str) -> list[str]:
    if not isinstance(combo, str) or not combo.strip():
        raise SandboxError(f"empty key combo {combo!r}")
    raw = combo.strip()
    if raw == "+":
        return ["+"]
    tail: list[str] = []
    if raw.endswith("++"):
        # "ctrl++" is ctrl and the plus key.
        raw, tail = raw[:-2], ["+"]
    names = [part.strip() for part in raw.split("+")]
    if any(not n for n in names):
        raise SandboxError(f"malformed key combo {combo!r}")
    return names + tail


_PYAUTOGUI_KEYS = {
    "Return": "enter",
    "Escape": "esc",
    "BackSpace": "backspace",
    "Control_L": "ctrl",
    "Alt_L": "alt",
    "Shift_L": "shift",
    "Super_L": "win",
    "Prior": "pageup",
    "Next": "pagedown",
}


def _pyautogui_key(name: str) -> str:
    mapped = _KEY_ALIASES.get(name.lower(), name)
    return _PYAUTOGUI_KEYS.get(mapped, mapped.lower() if len(mapped) > 1 else mapped)


def _read_line(fd: int, timeout: float) -> str:
    """Read one line from ``fd`` within ``timeout`` seconds ('' on EOF or timeout)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return ""
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return ""
        chunk = os.read(fd, 64)
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")


_pyautogui_display: str | None = None


def _load_pyautogui(display: str) -> Any:
    """Import pyautogui bound to ``display`` (it binds at import, so one display per process)."""
    global _pyautogui_display
    if _pyautogui_display is not None and _pyautogui_display != display:
        raise SandboxError(
            f"pyautogui is already bound to display {_pyautogui_display}; it supports one "
            "display per process (use input_backend='xtest')"
        )
    old = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = display
    try:
        import pyautogui
    except Exception as exc:
        raise SandboxUnavailable(f"pyautogui cannot start: {exc} (pip install pyautogui)") from exc
    finally:
        if old is None:
            os.environ.pop("DISPLAY", None)
        else:
            os.environ["DISPLAY"] = old
    pyautogui.PAUSE = 0
    # Agents legitimately click screen corners; pyautogui's fail-safe would abort them.
    pyautogui.FAILSAFE = False
    _pyautogui_display = display
    return pyautogui
