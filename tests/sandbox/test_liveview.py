"""Live view: refuses to start without a password; with one, a real RFB handshake succeeds."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentcorp.errors import ConfigError
from agentcorp.sandbox.liveview import LiveView
from agentcorp.testing.rfb import rfb_handshake

__all__ = ["rfb_handshake"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    for _ in range(50):
        n = random.randint(100, 999)
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            break
    proc = subprocess.Popen(
        ["Xvfb", f":{n}", "-screen", "0", "640x480x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        assert proc.poll() is None, "Xvfb died"
        assert time.monotonic() < deadline, "Xvfb did not come up"
        time.sleep(0.02)
    yield f":{n}"
    proc.terminate()
    proc.wait(timeout=5)


def test_refuses_without_password(display: str) -> None:
    with pytest.raises(ConfigError, match="needs a password"):
        LiveView(display, None)
    with pytest.raises(ConfigError, match="needs a password"):
        LiveView(display, "")
    with pytest.raises(ConfigError, match="at least 6"):
        LiveView(display, "abc")


def test_handshake_with_password_and_novnc(display: str) -> None:
    vnc_port, web_port = _free_port(), _free_port()
    with LiveView(display, "s3cret-pw", vnc_port=vnc_port, web_port=web_port) as live:
        types, result = rfb_handshake(vnc_port, "s3cret-pw")
        assert 1 not in types, "a password-less security type was offered"
        assert result == 0, "correct password was rejected"
        _, bad = rfb_handshake(vnc_port, "wrong-pw")
        assert bad != 0, "wrong password was accepted"
        page = urllib.request.urlopen(f"http://127.0.0.1:{web_port}/vnc.html", timeout=10).read()
        assert b"noVNC" in page
        pids = [p.pid for p in live._procs]
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"process {pid} left running"


def test_password_not_on_command_line(display: str) -> None:
    port = _free_port()
    with LiveView(display, "hunter2-pw", vnc_port=port, web_port=None) as live:
        for proc in live._procs:
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            assert b"hunter2-pw" not in cmdline
    assert os.environ.get("AGENTCORP_VNC_PASSWORD") is None


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
