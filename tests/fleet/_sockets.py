"""Listening TCP sockets of a process tree, read from /proc (no psutil needed)."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path


def _tree(root: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo.extend(kids.get(p, []))
    return out


def _inodes(pids: set[int]) -> dict[str, int]:
    found: dict[str, int] = {}
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for n in names:
            try:
                target = os.readlink(fd_dir / n)
            except OSError:
                continue
            if target.startswith("socket:["):
                found[target[8:-1]] = pid
    return found


def _addr(hexaddr: str) -> str:
    ip, port = hexaddr.split(":")
    raw = bytes.fromhex(ip)
    if len(raw) == 4:
        text = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:
        words = struct.unpack("<4I", raw)
        text = socket.inet_ntop(socket.AF_INET6, struct.pack(">4I", *words))
    return f"{text}:{int(port, 16)}"


def listening(root: int | None = None) -> list[tuple[str, int]]:
    """(address:port, pid) of every TCP socket in LISTEN state owned by ``root``'s tree."""
    inodes = _inodes(_tree(root if root is not None else os.getpid()))
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                out.append((_addr(f[1]), inodes[f[9]]))
    return out


def is_loopback(addr: str) -> bool:
    host = addr.rsplit(":", 1)[0]
    return (
        host.startswith("127.")
        or host in ("::1", "::ffff:127.0.0.1")
        or host.startswith("::ffff:127.")
    )
