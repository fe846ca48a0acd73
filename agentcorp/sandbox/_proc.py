"""Process plumbing shared by the backends: spawn children that die with us, stop them by PID.

Every child we start gets ``PR_SET_PDEATHSIG`` = SIGKILL so that even a ``kill -9`` of the
Python process leaves no Xvfb, window manager, app or service behind, and its own process
group so that stopping it also stops whatever it forked.

The kernel delivers the death signal when the *thread* that forked the child exits, so
create sandboxes on a thread that outlives them (the main thread, or a long-lived worker).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from agentcorp.errors import SandboxError, SandboxUnavailable

__all__ = ["INHERITED_ENV", "clean_env", "find_program", "spawn", "stop_process", "tune_allocator"]

_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None = None
_libc_lock = threading.Lock()


def _load_libc() -> ctypes.CDLL:
    global _libc
    with _libc_lock:
        if _libc is None:
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        return _libc


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: only async-signal-safe work here.
    libc = _libc
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_tuned = False


def tune_allocator() -> None:
    """Let glibc recycle frame-sized buffers instead of mapping fresh pages for each one.

    Every capture allocates a few megabytes (pixels, converted pixels, the bytes object).
    Above glibc's default mmap threshold each such buffer is a fresh ``mmap`` whose pages
    are faulted in and zeroed on first touch, then unmapped on free: measured on the step
    benchmark that is about half of a step's CPU and two thirds of its wall time under
    load. Serving them from the heap (and not trimming it eagerly) keeps the pages warm.
    Process-wide and done once; a no-op where glibc's ``mallopt`` is missing.
    """
    global _tuned
    if _tuned:
        return
    _tuned = True
    try:
        libc = _load_libc()
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
        libc.mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)
    except (OSError, AttributeError):
        pass


#: What a started program inherits from our own process: where programs are, the locale,
#: the time zone and who the user is. Nothing else: OpenCV sets ``QT_QPA_PLATFORM_PLUGIN_PATH``
#: and ``QT_QPA_FONTDIR`` to its bundled plugins (every Qt app then aborts), and our own
#: session bus, ``PYTHON*`` and credentials are none of an app's business.
INHERITED_ENV = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "USER", "LOGNAME", "SHELL", "TMPDIR"})


def clean_env(declared: Mapping[str, str] | None = None) -> dict[str, str]:
    """A child's environment: ``INHERITED_ENV`` and ``LC_*`` from ours, then ``declared``."""
    env = {k: v for k, v in os.environ.items() if k in INHERITED_ENV or k.startswith("LC_")}
    env.setdefault("PATH", os.defpath)
    env.update(declared or {})
    return env


# Bare interpreter names in a command mean the Python agentcorp itself runs under, so a
# Python service (the back office) sees agentcorp's virtual environment even when that
# environment is not on PATH (`.venv/bin/agentcorp run ...` without activating it).
_OWN_PYTHON = frozenset({"python", "python3", f"python3.{sys.version_info.minor}"})


def find_program(name: str, package: str) -> str:
    """The absolute path of ``name`` (a bare name or a path), or ``SandboxUnavailable``.

    ``python``/``python3`` resolve to ``sys.executable``.
    """
    if name in _OWN_PYTHON and sys.executable:
        return sys.executable
    if os.sep in name:
        if os.path.isfile(name) and os.access(name, os.X_OK):
            return name
    else:
        found = shutil.which(name)
        if found:
            return found
    raise SandboxUnavailable(
        f"{name} is not installed or not executable (apt-get install {package})"
    )


def spawn(
    argv: Sequence[str],
    *,
    package: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    stdout: int | object = subprocess.DEVNULL,
    stderr: int | object = subprocess.DEVNULL,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, killed by the kernel if we die.

    ``package`` names the Debian package to install when the program is missing.
    """
    if not argv:
        raise SandboxError("empty command")
    exe = find_program(argv[0], package)
    if cwd is not None and not Path(cwd).is_dir():
        raise SandboxError(f"cannot start {argv[0]}: working directory {cwd} does not exist")
    _load_libc()
    try:
        return subprocess.Popen(
            [exe, *argv[1:]],
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=stdout,  # type: ignore[arg-type]
            stderr=stderr,  # type: ignore[arg-type]
            start_new_session=True,
            preexec_fn=_die_with_parent,
            pass_fds=tuple(pass_fds),
            close_fds=True,
        )
    except FileNotFoundError as exc:
        raise SandboxUnavailable(f"{argv[0]} is not installed (apt-get install {package})") from exc
    except OSError as exc:
        raise SandboxError(f"cannot start {argv[0]}: {exc.strerror or exc}") from exc


def stop_process(proc: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """Stop ``proc`` and its process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        _kill_group(proc.pid, signal.SIGKILL)
        return
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    _kill_group(proc.pid, signal.SIGKILL)


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# --- cleanup on exit and on SIGTERM/SIGHUP --------------------------------------------------

_live: dict[int, Callable[[], None]] = {}
_live_lock = threading.Lock()
_handlers_installed = False


def register_cleanup(key: int, close: Callable[[], None]) -> None:
    """Call ``close`` at interpreter exit or on SIGTERM/SIGHUP unless unregistered first."""
    global _handlers_installed
    with _live_lock:
        _live[key] = close
        if _handlers_installed:
            return
        _handlers_installed = True
    import atexit

    atexit.register(_close_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        # Only take over signals nobody else handles; chaining someone's handler is theirs.
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _on_signal)


def unregister_cleanup(key: int) -> None:
    """Forget a cleanup registered with ``register_cleanup``."""
    with _live_lock:
        _live.pop(key, None)


def _close_all() -> None:
    with _live_lock:
        closers = list(_live.values())
        _live.clear()
    for close in closers:
        with contextlib.suppress(Exception):
            close()


def close_all_sandboxes() -> None:
    """Run every registered cleanup now (a run that must exit at once)."""
    _close_all()


def _on_signal(signum: int, frame: object) -> None:
    _close_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
