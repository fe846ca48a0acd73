"""kill -9 of a process owning a desktop and a browser leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

OWNER = """
import json, os, sys, time
from agentcorp.sandbox.apps import AppSpec
from agentcorp.sandbox.browser import BrowserComputer
from agentcorp.sandbox.xvfb import XvfbDesktop
desk = XvfbDesktop(apps=[AppSpec("clock", ["mousepad"], wait_for_window="Mousepad")])
browser = BrowserComputer(start_url="about:blank")
print(json.dumps({"display": desk.display}), flush=True)
time.sleep(120)
"""


def _descendants(root: int) -> dict[int, str]:
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        names[int(entry)] = name
    out: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out[child] = names[child]
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_kill_9_leaves_no_xvfb_window_manager_app_or_browser() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert owner.stdout is not None
        display = json.loads(owner.stdout.readline())["display"]
        procs = _descendants(owner.pid)
        kinds = " ".join(procs.values()).lower()
        assert "xvfb" in kinds and "openbox" in kinds and "mousepad" in kinds
        assert "chrom" in kinds, procs
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 15
        left = procs
        while time.monotonic() < deadline:
            left = {p: n for p, n in procs.items() if _alive(p)}
            if not left:
                break
            time.sleep(0.05)
        assert not left, f"orphans after kill -9: {left}"
        # Xvfb normally removes its socket; after SIGKILL only the lock file may stay behind.
        assert not Path(f"/tmp/.X11-unix/X{display[1:]}").exists() or not _listening(display)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()


def _listening(display: str) -> bool:
    import socket

    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(f"/tmp/.X11-unix/X{display[1:]}")
        return True
    except OSError:
        return False
    finally:
        s.close()
