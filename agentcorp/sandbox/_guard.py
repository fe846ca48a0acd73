"""Connections no request interception sees (WebSockets), held to the allowed hosts and ports.

Chromium's ``Fetch`` interception pauses HTTP requests, not a WebSocket's handshake, so a page
(or its worker) could talk to any host over ``ws://``. A browser context restricted by
``allow_urls`` therefore gets a proxy: ``ConnectionGuard`` listens on loopback and refuses
every connection it is asked for (``403``), and the context's proxy bypass list names only
the hosts and ports the patterns allow, which Chromium then reaches directly. Loopback is
not bypassed implicitly (``<-loopback>``), so another port on 127.0.0.1 is refused too.
Every refused target is remembered for the audit (``refused``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from agentcorp.policy.urls import UrlPolicy

__all__ = ["ConnectionGuard", "bypass_rules"]

_REFUSAL = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-_*?:")


def bypass_rules(policy: UrlPolicy) -> list[str]:
    """Chromium proxy-bypass rules for the hosts and ports ``policy`` allows.

    A host glob Chromium's rules cannot say (``[a-c].example``) is left out: what it would
    match is refused, never let through.
    """
    rules: list[str] = []
    for host, port in policy.host_ports():
        if not host or not set(host) <= _HOST_CHARS:
            continue
        name = f"[{host}]" if ":" in host else host
        rules.append(name if port is None else f"{name}:{port}")
    return list(dict.fromkeys(rules))


class ConnectionGuard:
    """A loopback proxy that refuses everything, and the context settings that use it."""

    def __init__(self, policy: UrlPolicy) -> None:
        self._policy = policy
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self._refused: list[str] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._serve, name="connection-guard", daemon=True).start()

    def proxy(self) -> dict[str, Any]:
        """Playwright's ``new_context(proxy=...)`` for this guard."""
        bypass = ",".join(["<-loopback>", *bypass_rules(self._policy)])
        return {"server": f"http://127.0.0.1:{self.port}", "bypass": bypass}

    def refused(self) -> list[str]:
        """The targets refused since the last call (``host:port`` or a request line's URL)."""
        with self._lock:
            out, self._refused = self._refused, []
        return out

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2.0)
                head = conn.recv(2048).split(b"\r\n", 1)[0].decode("latin-1")
                parts = head.split(" ")
                if len(parts) >= 2:
                    with self._lock:
                        self._refused.append(parts[1])
                conn.sendall(_REFUSAL)

    def close(self) -> None:
        """Stop listening. Safe to call twice."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the serving thread
        with contextlib.suppress(OSError):
            self._sock.close()
