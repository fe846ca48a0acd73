"""Fleet benchmark: dispatch overhead (local and Ray) vs raw baselines, and the big simulation.

Usage: python bench/fleet.py [--json] [--tasks N] [--runs N] [--sim-nodes N] [--sim-tasks N]
                             [--skip-ray] [--skip-sim]

Dispatch overhead is the wall time per no-op task once the workers are up, with 2 workers,
through the whole path (ledger lease in SQLite, hand-off, worker marks running, heartbeat
thread, result written with a fenced compare-and-set, policy update). Baselines measured in
the same run: ``multiprocessing.Pool(2)`` running the same no-ops, and two raw Ray actors
called the same way. The simulation runs the real scheduler policy on 100,000 nodes and
1,000,000 tasks by default.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentcorp.fleet.local import LocalOptions, run_local  # noqa: E402
from agentcorp.fleet.model import FleetTask  # noqa: E402
from agentcorp.fleet.sim import SimConfig, simulate  # noqa: E402


def _noop(_: int) -> int:
    return 0


def _tasks(n: int) -> list[FleetTask]:
    return [FleetTask(f"t{i}") for i in range(n)]


def _timed_run(kind: str, n: int) -> tuple[float, float]:
    """(seconds per task once every worker is up, total wall) for one fleet run.

    Only results that arrive after the last worker came up count, so a worker that starts
    early and runs alone for a while does not flatter the figure.
    """
    ready: list[float] = []
    done: list[float] = []

    def note(ev: str, msg: str) -> None:
        if ev in ("worker", "slot") and " ready" in msg:
            ready.append(time.perf_counter())
        elif ev == "task":
            done.append(time.perf_counter())

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as d:
        if kind == "local":
            rep = run_local(
                _tasks(n),
                Path(d) / "l.db",
                "agentcorp.fleet.runners:noop",
                LocalOptions(workers=2, sandbox="none", lease_s=30),
                on_event=note,
            )
        else:
            from agentcorp.fleet.ray_backend import RayOptions, run_ray

            rep = run_ray(
                _tasks(n),
                Path(d) / "l.db",
                "agentcorp.fleet.runners:noop",
                RayOptions(lease_s=30, run_timeout_s=600),
                on_event=note,
            )
    wall = time.perf_counter() - t0
    if rep.counts != {"passed": n}:
        raise SystemExit(f"bench run failed: {rep.counts}")
    start = max(ready)
    after = [t for t in done if t > start]
    if len(after) < n // 4:
        raise SystemExit(f"{kind}: workers came up too late to measure ({len(after)} results)")
    return (after[-1] - start) / len(after), wall


def bench_local(n: int, runs: int) -> dict[str, Any]:
    per = []
    for _ in range(runs):
        per.append(_timed_run("local", n)[0])
    base = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_noop, range(4))  # warm
        for _ in range(runs):
            t = time.perf_counter()
            for _ in pool.imap_unordered(_noop, range(n), chunksize=1):
                pass
            base.append((time.perf_counter() - t) / n)
    ms = statistics.median(per) * 1000
    bms = statistics.median(base) * 1000
    return {
        "dispatch_ms_local": round(ms, 3),
        "baseline_ms_mp_pool": round(bms, 3),
        "local_vs_mp_pool": round(ms / bms, 1) if bms else None,
        "throughput_local_per_s": round(1000 / ms, 1),
    }


def bench_ray(n: int, runs: int) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="rb", dir="/tmp")
    # Ray 2.60 turns on token auth for local clusters; keep its token (and everything else
    # it writes) in our temp folder instead of ~/.ray. Ray reads these when imported.
    token = Path(tmp) / "auth_token"
    token.write_text(os.urandom(32).hex())
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    ray.init(
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=tmp,
        _node_ip_address="127.0.0.1",
        resources={"desktop": 2},
        num_cpus=2,
    )
    try:
        per = []
        for _ in range(runs):
            per.append(_timed_run("ray", n)[0])

        @ray.remote(num_cpus=0)
        class Noop:
            def run(self) -> int:
                return 0

        actors = [Noop.remote() for _ in range(2)]
        ray.get([a.run.remote() for a in actors], timeout=120)
        base = []
        for _ in range(runs):
            t = time.perf_counter()
            inflight = {a.run.remote(): a for a in actors}
            done_n = 0
            while done_n < n:
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=30)
                for r in ready:
                    a = inflight.pop(r)
                    ray.get(r, timeout=30)
                    done_n += 1
                    if done_n + len(inflight) < n:
                        inflight[a.run.remote()] = a
            base.append((time.perf_counter() - t) / n)
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    ms = statistics.median(per) * 1000
    bms = statistics.median(base) * 1000
    return {
        "dispatch_ms_ray": round(ms, 3),
        "baseline_ms_ray_actor": round(bms, 3),
        "ray_vs_raw_actor": round(ms / bms, 1) if bms else None,
        "throughput_ray_per_s": round(1000 / ms, 1),
    }


def bench_policy(n_tasks: int = 200_000, n_nodes: int = 20_000) -> dict[str, Any]:
    """The policy alone: finish one task, dispatch what became ready; CPU time per dispatch."""
    import random

    from agentcorp.fleet.policy import RateLimit, SchedulerPolicy

    rng = random.Random(1)
    tasks = [
        FleetTask(
            f"c{i // 10}.{i % 10}",
            (f"c{i // 10}.{i % 10 - 1}",) if i % 10 and rng.random() < 0.5 else (),
            f"c{i // 10}",
            0.1,
            100.0,
            f"key{i % 16}",
        )
        for i in range(n_tasks)
    ]
    p = SchedulerPolicy(
        tasks,
        budgets={f"c{j}": 1.5 for j in range(n_tasks // 10)},
        rate_limits={f"key{k}": RateLimit(1e6, 1e6) for k in range(16)},
    )
    for k in range(n_nodes):
        p.add_node(str(k), 1)
    c0, t0 = time.process_time(), time.perf_counter()
    inflight = list(p.next_dispatches(0.0))
    n = len(inflight)
    now = 0.0
    while inflight:
        d = inflight.pop()
        now += 0.001
        p.finished(d.task_id, "passed")
        batch = p.next_dispatches(now)
        n += len(batch)
        inflight.extend(batch)
    return {
        "policy_decision_us_cpu": round((time.process_time() - c0) / n * 1e6, 2),
        "policy_decision_us_wall": round((time.perf_counter() - t0) / n * 1e6, 2),
    }


def bench_sim(nodes: int, tasks: int) -> dict[str, Any]:
    c0 = time.process_time()
    r = simulate(SimConfig(nodes=nodes, tasks=tasks, seed=1))
    cpu = time.process_time() - c0
    share = min(1.0, cpu / r.wall_s) if r.wall_s else 1.0
    return {
        "sim_nodes": r.nodes,
        "sim_tasks": r.tasks,
        "sim_completed": r.completed,
        "sim_lost": r.lost,
        "sim_duplicates": r.duplicates,
        "sim_fenced_zombie_writes": r.fenced,
        "sim_requeued": r.requeued,
        "sim_decision_us": round(r.decision_us, 2),
        # On a shared machine wall time includes waiting for a core; scale by our CPU share.
        "sim_decision_us_cpu_est": round(r.decision_us * share, 2),
        "sim_policy_setup_s": round(r.policy_setup_s, 2),
        "sim_wasted_fraction": round(r.wasted_fraction, 5),
        "sim_makespan_h": round(r.makespan_s / 3600, 2),
        "sim_wall_s": round(r.wall_s, 1),
        "sim_cpu_s": round(cpu, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tasks", type=int, default=400)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sim-nodes", type=int, default=100_000)
    ap.add_argument("--sim-tasks", type=int, default=1_000_000)
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-sim", action="store_true")
    a = ap.parse_args()
    out: dict[str, Any] = {"noop_tasks": a.tasks, "runs": a.runs}
    out.update(bench_local(a.tasks, a.runs))
    if not a.skip_ray:
        out.update(bench_ray(a.tasks, a.runs))
    out.update(bench_policy())
    if not a.skip_sim:
        out.update(bench_sim(a.sim_nodes, a.sim_tasks))
    if a.json:
        print(json.dumps(out, sort_keys=True))
    else:
        for k, v in out.items():
            print(f"{k:32} {v}")


if __name__ == "__main__":
    main()
