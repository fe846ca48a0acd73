"""A small RFB (VNC) 3.8 client that performs the handshake and VNC authentication.

Used to prove a live view really asks for its password: by the test suite, and by
``sandboxes/docker/build-and-test.sh`` against a container's mapped port
(``python -m agentcorp.testing.rfb HOST PORT`` with the password in ``AGENTCORP_VNC_PASSWORD``).
"""

from __future__ import annotations

import os
import socket
import struct
import sys

__all__ = ["rfb_handshake", "vnc_des"]


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"RFB: connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def vnc_des(password: str, challenge: bytes) -> bytes:
    """VNC authentication's answer: DES-ECB of ``challenge``, keyed by the bit-reversed password."""
    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
        from cryptography.hazmat.primitives.ciphers import Cipher, modes
    except ImportError as exc:  # pragma: no cover - dev dependency
        raise RuntimeError("the RFB client needs cryptography: pip install cryptography") from exc
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in password.encode()[:8].ljust(8, b"\0"))
    enc = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return enc.update(challenge) + enc.finalize()


def rfb_handshake(
    port: int, password: str, host: str = "127.0.0.1", timeout: float = 10.0
) -> tuple[list[int], int]:
    """Connect, negotiate RFB 3.8 and authenticate; return (offered security types, result).

    ``result`` is 0 when the server accepted the password. Raises ``ConnectionError`` when the
    server speaks no RFB or offers no VNC authentication.
    """
    with socket.create_connection((host, port), timeout=timeout) as s:
        version = _recv(s, 12)
        if not version.startswith(b"RFB "):
            raise ConnectionError(f"RFB: not a VNC server (greeting {version!r})")
        s.sendall(b"RFB 003.008\n")
        (count,) = struct.unpack("B", _recv(s, 1))
        if count == 0:
            raise ConnectionError("RFB: server refused the connection")
        types = list(_recv(s, count))
        if 2 not in types:
            raise ConnectionError(f"RFB: VNC authentication not offered (types {types})")
        s.sendall(b"\x02")
        challenge = _recv(s, 16)
        s.sendall(vnc_des(password, challenge))
        (result,) = struct.unpack(">I", _recv(s, 4))
        return types, result


def main(argv: list[str]) -> int:
    """``python -m agentcorp.testing.rfb HOST PORT``: exit 0 when the password is accepted."""
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m agentcorp.testing.rfb HOST PORT", file=sys.stderr)
        return 2
    password = os.environ.get("AGENTCORP_VNC_PASSWORD", "")
    types, result = rfb_handshake(int(argv[1]), password, host=argv[0])
    ok = result == 0 and 1 not in types
    print(f"rfb: security types {types}, auth {'ok' if ok else 'refused'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
