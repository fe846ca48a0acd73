from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from agentcorp.errors import SandboxError, SandboxUnavailable
from agentcorp.sandbox.services import ServiceSpec, running_service, start_service

SERVER = """
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ.get("TOKEN", "").encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_service_gets_its_secret_and_is_stopped(tmp_path: Path) -> None:
    port = _port()
    (tmp_path / "srv.py").write_text(SERVER)
    spec = ServiceSpec(
        "web",
        [sys.executable, "srv.py", str(port)],
        cwd=tmp_path,
        env={"TOKEN": "t=${secrets.token}"},
        ready_url=f"http://127.0.0.1:{port}/",
    )
    with running_service(spec, {"token": "abc"}) as svc:
        assert httpx.get(f"http://127.0.0.1:{port}/", trust_env=False).text == "t=abc"
        pid = svc.pid
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.02)
    assert not _alive(pid)


def test_service_that_dies_reports_its_last_line(tmp_path: Path) -> None:
    spec = ServiceSpec(
        "broken",
        [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(4)"],
        ready_url="http://127.0.0.1:9/",
    )
    with pytest.raises(SandboxError, match=r"'broken' exited with code 4: boom: bad config"):
        start_service(spec)


def test_unknown_secret_in_env_is_a_clear_error() -> None:
    spec = ServiceSpec("s", [sys.executable, "-c", "pass"], env={"P": "${secrets.missing}"})
    with pytest.raises(SandboxError, match=r"service 's' env P: unknown secret 'missing'"):
        start_service(spec, {})


def test_missing_program_names_the_package() -> None:
    spec = ServiceSpec("s", ["/nonexistent/serve"], package="acme-backoffice")
    with pytest.raises(SandboxUnavailable, match="apt-get install acme-backoffice"):
        start_service(spec)


def test_not_ready_in_time(tmp_path: Path) -> None:
    spec = ServiceSpec(
        "sleepy",
        [sys.executable, "-c", "import time; time.sleep(30)"],
        ready_url=f"http://127.0.0.1:{_port()}/",
        ready_timeout=0.5,
    )
    with pytest.raises(SandboxError, match="not ready"):
        start_service(spec)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_tilde_means_the_sandbox_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    code = (
        "import os, sys; open(sys.argv[1], 'w').write(os.environ['OUT'] + '|' + os.environ['HOME'])"
    )
    spec = ServiceSpec("t", [sys.executable, "-c", code, "~/out.txt"], env={"OUT": "~/x"})
    svc = start_service(spec, {}, home)
    svc.proc.wait(timeout=10)
    svc.stop()
    assert (home / "out.txt").read_text() == f"{home}/x|{home}"


def test_bare_python_in_a_command_is_agentcorps_own_interpreter(tmp_path: Path) -> None:
    # A Python service must see agentcorp's virtual environment even when it is not on PATH.
    port = _port()
    out = tmp_path / "exe.txt"
    code = (
        "import sys, pathlib, http.server\n"
        f"pathlib.Path({str(out)!r}).write_text(sys.executable)\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    spec = ServiceSpec("py", ["python3", "-c", code], ready_url=f"http://127.0.0.1:{port}/")
    with running_service(spec):
        assert out.read_text() == sys.executable


def test_a_port_already_answering_is_refused_not_mistaken_for_ready(tmp_path: Path) -> None:
    # Another process (another run's service) already serves the ready URL: ours must not
    # take its answer as "ready" and send the task to a stranger.
    port = _port()
    (tmp_path / "srv.py").write_text(SERVER)
    other = ServiceSpec(
        "other",
        [sys.executable, "srv.py", str(port)],
        cwd=tmp_path,
        ready_url=f"http://127.0.0.1:{port}/",
    )
    with running_service(other):
        ours = ServiceSpec(
            "ours",
            [sys.executable, "srv.py", str(port)],
            cwd=tmp_path,
            ready_url=f"http://127.0.0.1:{port}/",
        )
        with pytest.raises(SandboxError, match=r"'ours': something else already answers at"):
            start_service(ours)


def test_a_stranger_going_away_frees_the_port_within_the_grace(tmp_path: Path) -> None:
    # The service of a worker that was just killed dies a moment later: ours then starts.
    import threading

    port = _port()
    (tmp_path / "srv.py").write_text(SERVER)
    spec = ServiceSpec(
        "s", [sys.executable, "srv.py", str(port)], cwd=tmp_path,
        ready_url=f"http://127.0.0.1:{port}/",
    )  # fmt: skip
    other = start_service(spec)
    threading.Timer(1.0, other.stop).start()
    with running_service(spec) as ours:
        assert ours.pid != other.pid
