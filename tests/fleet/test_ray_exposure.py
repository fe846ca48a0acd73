"""Issue 16 defect 4: a local Ray head listens on loopback only, with token auth on.

``run_ray`` without an address starts its own head in this process; while a task runs, a
thread lists every listening TCP socket of this process tree (GCS, raylet, workers, actors)
from /proc, and reads the GCS process's environment for the authentication mode.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from agentcorp.fleet.model import FleetTask
from agentcorp.fleet.ray_backend import RayOptions, run_ray
from tests.fleet._sockets import is_loopback, listening

ROOT = Path(__file__).resolve().parents[2]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def test_local_head_binds_loopback_with_token_auth(tmp_path: Path) -> None:
    seen: dict[str, set[str]] = {}
    gcs_env: dict[str, str] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for addr, pid in listening():
                name = _comm(pid)
                seen.setdefault(name, set()).add(addr)
                if name == "gcs_server" and not gcs_env:
                    gcs_env.update(_environ(pid))
            time.sleep(0.2)

    log = tmp_path / "episodes.jsonl"
    tasks = [FleetTask(f"t{i}", payload={"log": str(log), "sleep_s": 2.0}) for i in range(2)]
    before = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    th = threading.Thread(target=watch, daemon=True)
    # Ray's socket paths must stay under 107 bytes: a short temp dir of our own.
    ray_tmp = tempfile.mkdtemp(prefix="ac-ray-")
    th.start()
    try:
        report = run_ray(
            tasks,
            tmp_path / "run.db",
            "tests.fleet.runners:sleepy",
            RayOptions(
                lease_s=5.0,
                run_timeout_s=120,
                temp_dir=ray_tmp,
                runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
            ),
        )
    finally:
        stop.set()
        th.join(timeout=10)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert report.counts == {"passed": 2}
    assert "gcs_server" in seen and "raylet" in seen, seen
    exposed = {name: a for name, addrs in seen.items() for a in addrs if not is_loopback(a)}
    assert exposed == {}, seen
    assert gcs_env.get("RAY_AUTH_MODE") == "token"
    token = Path(gcs_env["RAY_AUTH_TOKEN_PATH"])
    assert not token.exists()  # the per-run token is removed with the run
    # the run restored this process's environment
    assert {k: os.environ.get(k) for k in before} == before
