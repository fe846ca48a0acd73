"""Opt-in live view of a virtual desktop: x11vnc with a required password, plus noVNC.

A person can watch agents at work from a browser (noVNC over websockify) or any VNC viewer.
There is no password-less mode: peers ship VNC with no password or with "secret"; we refuse to
start without one. The password goes to x11vnc through a private file, never on a command line
(where ``ps`` would show it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from agentcorp.errors import ConfigError, SandboxUnavailable, SetupError

__all__ = ["PASSWORD_ENV", "LiveView"]

PASSWORD_ENV = "AGENTCORP_VNC_PASSWORD"
_NOVNC_WEB = Path("/usr/share/novnc")


def _wait_port(
    host: str, port: int, proc: subprocess.Popen[bytes], timeout: float, name: str
) -> None:
    """Poll until something accepts on (host, port); fail early if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"live view: {name} exited with code {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)  # polling a port that is coming up, not a settle
    raise SetupError(f"live view: nothing listens on {host}:{port} after {timeout:.0f}s")


class LiveView:
    """Serve ``display`` over VNC (``vnc_port``) and noVNC (``web_port``) with a password.

    ``bind`` is the address to listen on: loopback by default; inside a container use
    ``0.0.0.0`` and map the ports (``-p 6080:6080``).
    """

    def __init__(
        self,
        display: str,
        password: str | None,
        *,
        vnc_port: int = 5900,
        web_port: int | None = 6080,
        bind: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not password:
            raise ConfigError(
                f"live view needs a password: set {PASSWORD_ENV} (or --vnc-password); "
                "refusing to serve a desktop without one"
            )
        if len(password) < 6:
            raise ConfigError("live view password must be at least 6 characters")
        self.display = display
        self.vnc_port = vnc_port
        self.web_port = web_port
        self.bind = bind
        self._password = password
        self._env = dict(env if env is not None else os.environ)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> LiveView:
        """Start x11vnc (and websockify for noVNC when ``web_port`` is set)."""
        x11vnc = shutil.which("x11vnc")
        if x11vnc is None:
            raise SandboxUnavailable("live view needs x11vnc: apt-get install x11vnc")
        self._tmp = tempfile.TemporaryDirectory(prefix="agentcorp-vnc-")
        pwfile = Path(self._tmp.name) / "passwd"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self._password + "\n")
        listen = "localhost" if self.bind in ("127.0.0.1", "localhost") else self.bind
        vnc = subprocess.Popen(
            [
                x11vnc,
                "-display",
                self.display,
                "-rfbport",
                str(self.vnc_port),
                "-listen",
                listen,
                "-passwdfile",
                f"rm:{pwfile}",
                "-forever",
                "-shared",
                "-noxdamage",
                "-quiet",
                "-noipv6",
            ],
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._procs.append(vnc)
        try:
            host = "127.0.0.1" if listen == "localhost" else self.bind
            _wait_port(host, self.vnc_port, vnc, 15, "x11vnc")
            if self.web_port is not None:
                self._start_novnc()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_novnc(self) -> None:
        websockify = shutil.which("websockify")
        if websockify is None or not _NOVNC_WEB.is_dir():
            raise SandboxUnavailable(
                "live view's web client needs noVNC: apt-get install novnc python3-websockify"
            )
        web = subprocess.Popen(
            [
                websockify,
                "--web",
                str(_NOVNC_WEB),
                f"{self.bind}:{self.web_port}",
                f"127.0.0.1:{self.vnc_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._procs.append(web)
        assert self.web_port is not None
        host = self.bind if self.bind != "0.0.0.0" else "127.0.0.1"
        _wait_port(host, self.web_port, web, 15, "websockify")

    def stop(self) -> None:
        """Stop what was started. Safe to call twice."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=3)
        self._procs.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LiveView:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
