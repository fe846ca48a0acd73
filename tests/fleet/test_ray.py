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
    # One token for the whole test session: Ray reads it once, when it is first imported, so
    # every module's cluster (tests/console uses this fixture too) must be given the same.
    token = tmp_path_factory.getbasetemp() / "ray_auth_token"
    if not token.exists():
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
    assert keys == ["a/finish", "b/finish", "c/finish"]  # one per task, whatever the attempt
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


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_sample_company_on_the_cluster_killed_and_resumed(
    cluster: tuple[Any, list[Any], Path], tmp_path: Path
) -> None:
    """``agentcorp run tasks/acme --ray ADDRESS``: the driver killed with -9, then resumed."""
    import json
    import signal
    import subprocess
    import sys

    from tests.fleet.conftest_helpers import ledger_of

    c, _, _ = cluster
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_API_KEY", "_PASSWORD")) and not k.startswith("AGENTCORP_")
    }
    env["AGENTCORP_CACHE_DIR"] = str(tmp_path / "cache")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "agentcorp", "run", str(ROOT / "tasks" / "acme")]
    cmd += ["--ray", c.address, "--sessions", str(run_dir), "--lease", "10"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                con = sqlite3.connect(f"file:{ledger_of(run_dir)}?mode=ro", uri=True, timeout=5)
                try:
                    row = con.execute("SELECT COUNT(*) FROM tasks WHERE state='passed'")
                    done = int(row.fetchone()[0])
                finally:
                    con.close()
            except sqlite3.Error:
                done = 0
            if done >= 2:
                break
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()
    r = subprocess.run(
        [*cmd, "--resume", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert doc["backend"] == "ray" and doc["resumed"] and doc["passed"]
    assert (
        sorted(t["id"] for t in doc["tasks"]) == sorted({t["id"] for t in doc["tasks"]})
        and len(doc["tasks"]) == 9
    )
    states = check_exactly_once(ledger_of(run_dir))
    assert set(states.values()) == {"passed"} and len(states) == 9


def test_effect_of_a_dead_attempt_is_honoured_on_the_cluster(
    cluster: tuple[Any, list[Any], Path], tmp_path: Path
) -> None:
    """Issue 16 defect 5 on Ray: attempt 1 did its effect, then its driver died before the
    result write; attempt 2 runs on a cluster actor and must not do it again."""
    log = tmp_path / "episodes.jsonl"
    world = tmp_path / "world.txt"
    task = FleetTask("pay", payload={"log": str(log), "world": str(world)})
    ledger_path = tmp_path / "run.db"
    led = SqliteLedger(ledger_path)
    led.ensure_tasks([task])
    lease = led.lease("pay", "ray:slot9", "gone", 60)
    led.start("pay", lease.epoch)
    assert led.record_effect("pay/charge", "pay", lease.epoch)
    world.write_text("pay charged by attempt 1\n")
    led.complete_effect("pay/charge", "pay", lease.epoch, "charged by attempt 1")
    led.close()  # ...and the driver is gone: no result was written
    report = run_ray([task], ledger_path, "tests.fleet.runners:charge", _opts())
    assert report.counts == {"passed": 1}
    assert world.read_text().splitlines() == ["pay charged by attempt 1"]
    honoured = [e for e in read_log(log) if e["event"] == "honoured"]
    assert [(e["attempt"], e["outcome"]) for e in honoured] == [(2, "charged by attempt 1")]
    check_exactly_once(ledger_path, log)


def test_driver_kill_9_between_effect_and_result_write_on_the_cluster(
    cluster: tuple[Any, list[Any], Path], tmp_path: Path
) -> None:
    """Issue 16 defect 5 for real: ``agentcorp run --ray`` killed with -9 right after an
    episode's effect (its actors die with it), then resumed: the effect is not done again."""
    import signal
    import subprocess
    import sys

    from tests.fleet.conftest_helpers import ledger_of, write_company

    c, _, _ = cluster
    company = write_company(tmp_path / "co", 1)
    log = company.parent / "episodes.jsonl"
    world = company.parent / "world.txt"
    (company.parent / "after_s").write_text("30")  # the episode lingers after its effect
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "agentcorp", "run", str(company), "--ray", c.address]
    cmd += ["--sessions", str(run_dir), "--lease", "5", "--episode", "tests.fleet.runners:charge"]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300
        while not any(e["event"] == "effected" for e in read_log(log)):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the effect never happened"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()
    (company.parent / "after_s").unlink()
    r = subprocess.run(
        [*cmd, "--resume"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert world.read_text().splitlines() == ["t00 charged by attempt 1"]
    honoured = [e for e in read_log(log) if e["event"] == "honoured"]
    assert [e["outcome"] for e in honoured] == ["charged by attempt 1"], [
        (e["event"], e["attempt"]) for e in read_log(log)
    ] + [r.stdout[-500:]]
    check_exactly_once(ledger_of(run_dir), None)
