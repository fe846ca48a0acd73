"""The Ray backend on a real 3-node ``ray.cluster_utils.Cluster``.

One module-scoped cluster: a head with no desktops and two nodes with one desktop each, fast
health checks, everything on loopback, Ray's temp dir and auth token in this module's tmp
folder; the cluster is shut down by the fixture.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcorp.errors import ConfigError, FencedOut
from agentcorp.fleet.ledger import SqliteLedger
from agentcorp.fleet.model import FleetTask
from agentcorp.fleet.ray_backend import RayOptions, run_ray
from tests.fleet.conftest_helpers import check_exactly_once
from tests.fleet.runners import read_log

ROOT = Path(__file__).resolve().parents[2]
FAST_HEALTH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 200,
    "health_check_timeout_ms": 500,
    "health_check_failure_threshold": 3,
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[Any], Path]]:
    tmp = tmp_path_factory.mktemp("ray")
    token = tmp / "auth_token"
    token.write_text(secrets.token_hex(32))
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_TMPDIR", str(tmp))  # Ray's temp dir (sessions, sockets, logs) in here
    mp.setenv("RAY_AUTH_MODE", "token")
    mp.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # bind everything to 127.0.0.1
    mp.setenv("PYTHONPATH", str(ROOT))
    # Ray reads its auth and network settings when it is first imported: import it only now.
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"desktop": 0},
            "include_dashboard": False,
            "_system_config": FAST_HEALTH,
        },
    )
    try:
        nodes = [c.add_node(num_cpus=1, resources={"desktop": 1}) for _ in range(2)]
        c.wait_for_nodes(timeout=60)
        ray.init(
            address=c.address,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
        )
        yield c, nodes, tmp
    finally:
        ray.shutdown()
        c.shutdown()
        mp.undo()
    assert not ray.is_initialized()


def _opts(**kw: Any) -> RayOptions:
    return RayOptions(
        lease_s=5.0,
        run_timeout_s=90,
        actor_start_timeout_s=30,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
        **kw,
    )


def test_cluster_is_on_loopback_with_our_temp_dir(cluster: tuple[Any, list[Any], Path]) -> None:
    import ray

    c, _, tmp = cluster
    assert c.address.startswith("127.0.0.1:")
    assert ray.cluster_resources().get("desktop") == 2
    assert any(p.name.startswith("session_") for p in (tmp / "ray").iterdir())


def test_node_removed_mid_task_completes_elsewhere_and_zombie_is_fenced(
    cluster: tuple[Any, list[Any], Path], tmp_path: Path
) -> None:
    c, nodes, _ = cluster
    log = tmp_path / "episodes.jsonl"
    tasks = [
        FleetTask("a", payload={"log": str(log), "sleep_s": 0.05}),
        FleetTask("b", ("a",), payload={"log": str(log), "sleep_s": 3.0}),
        FleetTask("c", ("b",), payload={"log": str(log), "sleep_s": 0.05}),
    ]
    ledger_path = tmp_path / "run.db"
    removed: dict[str, Any] = {}

    def remove_when_running() -> None:
        deadline = time.monotonic() + 60
        while True:  # the coordinator creates the ledger; open it only once it exists
            try:
                led = SqliteLedger(ledger_path, create=False)
                break
            except ConfigError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.02)
        try:
            while time.monotonic() < deadline:
                row = led.row("b") if led.meta("fingerprint") else None
                if row is not None and row.state == "running":
                    time.sleep(0.3)  # mid-episode
                    victim = next(n for n in nodes if n.node_id == row.node)
                    c.remove_node(victim, allow_graceful=False)
                    removed.update(node=row.node, epoch=row.epoch)
                    return
                time.sleep(0.02)
        finally:
            led.close()

    th = threading.Thread(target=remove_when_running, daemon=True)
    th.start()
    notes: list[str] = []
    report = run_ray(
        tasks,
        ledger_path,
        "tests.fleet.runners:sleepy",
        _opts(),
        on_event=lambda kind, msg: notes.append(msg),
    )
    th.join(timeout=10)
    assert removed, notes
    assert report.counts == {"passed": 3}, notes
    assert report.lost == 1
    led = SqliteLedger(ledger_path)
    try:
        tries = [a for a in led.attempts() if a["task_id"] == "b"]
        assert [a["outcome"].split(":")[0] for a in tries] == ["lost", "passed"]
        assert tries[0]["node"] == removed["node"] and tries[1]["node"] != removed["node"]
        # The zombie (the actor on the removed node) answers late with its old epoch: refused.
        with pytest.raises(FencedOut, match=f"epoch {removed['epoch']} rejected"):
            led.finish("b", int(removed["epoch"]), "passed", detail="late zombie write")
        row = led.row("b")
        assert row is not None and row.detail != "late zombie write"
    finally:
        led.close()
    ends = [e for e in read_log(log) if e["task"] == "b" and e["event"] == "end"]
    assert len(ends) == 1 and ends[0]["node"] != removed["node"]
    assert ends[0]["first"] is True  # its side effect was claimed in the ledger, once
    con = sqlite3.connect(ledger_path)
    try:
        keys = [k for (k,) in con.execute("SELECT key FROM effects ORDER BY key")]
    finally:
        con.close()
    assert keys == ["a/1/finish", "b/2/finish", "c/1/finish"]
    check_exactly_once(ledger_path, log)
    # Put a desktop node back for the next test.
    nodes[:] = [n for n in nodes if n.node_id != removed["node"]]
    nodes.append(c.add_node(num_cpus=1, resources={"desktop": 1}))
    c.wait_for_nodes(timeout=60)


def test_resume_after_driver_loss_reruns_only_unfinished(
    cluster: tuple[Any, list[Any], Path], tmp_path: Path
) -> None:
    log = tmp_path / "episodes.jsonl"
    tasks = [
        FleetTask(f"t{i}", (f"t{i - 1}",) if i else (), payload={"log": str(log), "sleep_s": 0.02})
        for i in range(6)
    ]
    ledger_path = tmp_path / "run.db"
    led = SqliteLedger(ledger_path)
    led.ensure_tasks(tasks)
    # An earlier driver finished t0 and died holding t1's lease.
    l0 = led.lease("t0", "ray:slot9", "gone", 60)
    led.finish("t0", l0.epoch, "passed")
    l1 = led.lease("t1", "ray:slot9", "gone", 60)
    led.start("t1", l1.epoch)
    led.close()
    report = run_ray(tasks, ledger_path, "tests.fleet.runners:sleepy", _opts())
    assert report.counts == {"passed": 6} and report.resumed_finished == 1
    ran = {e["task"] for e in read_log(log) if e["event"] == "start"}
    assert ran == {f"t{i}" for i in range(1, 6)}
    check_exactly_once(ledger_path, log)


def test_missing_ray_gives_the_install_hint(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from agentcorp.fleet.ray_backend import import_ray\n"
        "import_ray()\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode != 0
    assert 'pip install "agentcorp[ray]"' in r.stderr


def test_drain_announced_node_gets_no_work_it_cannot_finish(
    cluster: tuple[Any, list[Any], Path], tmp_path: Path
) -> None:
    _, nodes, _ = cluster
    log = tmp_path / "episodes.jsonl"
    tasks = [
        FleetTask(f"t{i}", expected_s=120.0, payload={"log": str(log), "sleep_s": 0.02})
        for i in range(4)
    ]
    ledger_path = tmp_path / "run.db"
    led = SqliteLedger(ledger_path)
    led.ensure_tasks(tasks)
    leaving = nodes[0].node_id
    led.announce_drain(leaving, time.time() + 60)  # 60 s left < 120 s expected
    led.close()
    report = run_ray(tasks, ledger_path, "tests.fleet.runners:sleepy", _opts())
    assert report.counts == {"passed": 4}
    used = {e["node"] for e in read_log(log) if e["event"] == "end"}
    assert used == {nodes[1].node_id}


def test_cli_run_on_the_cluster(
    cluster: tuple[Any, list[Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from agentcorp.cli import main
    from tests.fleet.conftest_helpers import ledger_of, write_company

    c, _, _ = cluster
    company = write_company(tmp_path / "co", 6)
    run_dir = tmp_path / "run"
    ledger = ledger_of(run_dir)
    code = main(
        [
            "run",
            str(company),
            "--ray",
            c.address,
            "--sessions",
            str(run_dir),
            "--lease",
            "5",
            "--episode",
            "tests.fleet.runners:spec_sleepy",
            "--rate-limit",
            "llm=50/5",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads(out)
    assert doc["backend"] == "ray"
    assert [t["status"] for t in doc["tasks"]] == ["pass"] * 6
    check_exactly_once(ledger, company.parent / "episodes.jsonl")
