"""The fleet simulator: the real ``SchedulerPolicy`` and ledger state machine on a simulated clock.

Nodes are machines that are idle (so ours) most of the day: they join and leave at random,
and twice a day a wave of them leaves together (the morning and evening commute). Most
departures are announced some minutes ahead (a drain); the rest are sudden and only noticed
when the lease runs out. Some suddenly lost nodes are partitioned rather than dead: their
episode finishes anyway and tries to write a result late, which fencing must reject.

Task durations come from a log-normal distribution, or from the ``duration_s`` of recorded
sessions' manifests. The run reports what a real fleet cares about: tasks completed, lost
(must be 0), side effects committed twice (must be 0), the fraction of compute wasted on
attempts that did not count, and the policy's decision cost per dispatch.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from agentcorp._io import read_text_bounded
from agentcorp.errors import ConfigError, FencedOut
from agentcorp.fleet.ledger import MemoryLedger
from agentcorp.fleet.model import TERMINAL, FleetTask
from agentcorp.fleet.policy import RateLimit, SchedulerPolicy

__all__ = ["SimConfig", "SimReport", "load_durations", "simulate"]

_JOIN, _DRAIN, _LEAVE, _CRASH, _EXPIRE, _FINISH, _WAVE, _WAKE = range(8)
_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class SimConfig:
    """The fleet, the workload and the availability model of one simulation."""

    nodes: int = 1000
    tasks: int = 10000
    seed: int = 0
    slots_per_node: int = 1
    online_fraction: float = 0.7
    mean_online_s: float = 4 * 3600.0
    announced_fraction: float = 0.7
    notice_s: tuple[float, float] = (300.0, 1800.0)
    lease_s: float = 30.0
    zombie_fraction: float = 0.5
    wave_times_h: tuple[float, ...] = (8.0, 17.5)
    wave_fraction: float = 0.2
    wave_off_s: float = 3600.0
    start_hour: float = 7.5
    median_task_s: float = 180.0
    task_sigma: float = 0.6
    noise_sigma: float = 0.2
    company_size: int = 10
    fail_rate: float = 0.01
    tight_budget_rate: float = 0.02
    api_keys: int = 16
    key_rate: float = 200.0
    key_burst: float = 400.0
    spare_slots: int = 0
    max_sim_s: float = 60 * _DAY

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ConfigError(f"--nodes must be at least 1, got {self.nodes}")
        if self.tasks < 1:
            raise ConfigError(f"--tasks must be at least 1, got {self.tasks}")
        if not 0 < self.online_fraction <= 1:
            raise ConfigError(f"online fraction must be in (0, 1], got {self.online_fraction}")


@dataclass(slots=True)
class SimReport:
    """What a simulation measured."""

    nodes: int
    tasks: int
    seed: int
    completed: int
    passed: int
    failed: int
    skipped: int
    budget_exceeded: int
    lost: int
    duplicates: int
    fenced: int
    dispatches: int
    requeued: int
    decision_us: float
    policy_setup_s: float
    wasted_fraction: float
    useful_work_s: float
    wasted_work_s: float
    makespan_s: float
    events: int
    wall_s: float

    def to_json(self) -> str:
        """One JSON object."""
        return json.dumps(asdict(self), sort_keys=True)


def load_durations(folder: str | Path) -> list[float]:
    """Episode durations: ``duration_s`` of every session manifest under ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"--durations-from: {root} is not a folder")
    out: list[float] = []
    for m in sorted(root.rglob("manifest.json")):
        try:
            d = json.loads(read_text_bounded(m, 16 << 20, what="manifest"))
        except (OSError, ValueError, ConfigError, RecursionError) as exc:
            raise ConfigError(f"--durations-from: {m}: unreadable manifest ({exc})") from exc
        v = d.get("duration_s") if isinstance(d, dict) else None
        if isinstance(v, int | float) and v > 0 and math.isfinite(v):
            out.append(float(v))
    if not out:
        raise ConfigError(f"--durations-from: no manifest.json with duration_s under {root}")
    return out


def _workload(
    cfg: SimConfig, rng: random.Random, durations: Sequence[float] | None
) -> tuple[list[FleetTask], dict[str, float], list[bool]]:
    tasks: list[FleetTask] = []
    budgets: dict[str, float] = {}
    fails: list[bool] = []
    size = max(1, cfg.company_size)
    mu = math.log(cfg.median_task_s)
    n = cfg.tasks
    for c0 in range(0, n, size):
        company = f"c{c0 // size}"
        ids: list[str] = []
        total = 0.0
        for j in range(min(size, n - c0)):
            tid = f"{company}.{j}"
            deps: tuple[str, ...] = ()
            if j:
                k = rng.randrange(3)
                deps = tuple(sorted({ids[rng.randrange(j)] for _ in range(k)}))
            exp_s = rng.choice(durations) if durations else rng.lognormvariate(mu, cfg.task_sigma)
            cost = round(exp_s / 600.0, 4)
            total += cost
            key = f"key{rng.randrange(cfg.api_keys)}" if cfg.api_keys else None
            tasks.append(FleetTask(tid, deps, company, cost, exp_s, key, 5))
            fails.append(rng.random() < cfg.fail_rate)
            ids.append(tid)
        factor = 0.5 if rng.random() < cfg.tight_budget_rate else 1.5
        budgets[company] = total * factor
    return tasks, budgets, fails


def simulate(cfg: SimConfig, durations: Sequence[float] | None = None) -> SimReport:
    """Run one simulation to the end (every task terminal, or ``max_sim_s`` reached)."""
    wall0 = time.perf_counter()
    rng = random.Random(cfg.seed)
    tasks, budgets, fails = _workload(cfg, rng, durations)
    ids = [t.id for t in tasks]
    index = {t: i for i, t in enumerate(ids)}
    expected = [t.expected_s for t in tasks]
    limits = {f"key{k}": RateLimit(cfg.key_rate, cfg.key_burst) for k in range(cfg.api_keys)}
    ledger = MemoryLedger(ids)
    pc = time.perf_counter
    d0 = pc()
    policy = SchedulerPolicy(
        tasks, budgets=budgets, rate_limits=limits, spare_slots=cfg.spare_slots
    )
    setup_s = pc() - d0  # building the DAG once is not a per-dispatch decision
    decision_s = 0.0

    heap: list[tuple[float, int, int, int, int]] = []
    seq = 0

    def push(t: float, kind: int, a: int, b: int = 0) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, kind, a, b))

    n = cfg.nodes
    names = [str(k) for k in range(n)]
    gen = [0] * n
    crashed_at = [-1.0] * n
    leave_of = [math.inf] * n
    wave_leave = [False] * n
    online: list[int] = []
    where = [-1] * n  # position in ``online``; -1 when away
    off_mean = cfg.mean_online_s * (1 - cfg.online_fraction) / cfg.online_fraction
    # task index -> (epoch, start time, node) of its current attempt
    attempt_of: dict[int, tuple[int, float, int]] = {}
    zombies: set[int] = set()  # epochs whose episode outlives a lost node and writes late
    useful = wasted = 0.0
    dispatches = requeued = 0
    wake_pending = math.inf

    def go_online(k: int, now: float) -> None:
        gen[k] += 1
        crashed_at[k] = -1.0
        where[k] = len(online)
        online.append(k)
        policy.add_node(names[k], cfg.slots_per_node)
        stay = rng.expovariate(1.0 / cfg.mean_online_s)
        schedule_departure(k, now, now + stay)

    def schedule_departure(k: int, now: float, leave_at: float) -> None:
        leave_of[k] = leave_at
        if rng.random() < cfg.announced_fraction:
            notice = rng.uniform(*cfg.notice_s)
            push(max(now, leave_at - notice), _DRAIN, k, gen[k])
            push(leave_at, _LEAVE, k, gen[k])
        else:
            push(leave_at, _CRASH, k, gen[k])

    def go_offline(k: int, now: float, off_s: float) -> None:
        pos = where[k]
        last = online.pop()
        if last != k:
            online[pos] = last
            where[last] = pos
        where[k] = -1
        gen[k] += 1
        push(now + max(off_s, cfg.lease_s + 1.0), _JOIN, k, 0)

    def lose(tid: str, now: float, until: float) -> None:
        nonlocal wasted, requeued
        i = index[tid]
        ep, t0, _ = attempt_of.pop(i)
        wasted += max(0.0, min(now, until) - t0)
        if ledger.requeue(tid, ep):
            requeued += 1

    for k in range(n):
        if rng.random() < cfg.online_fraction:
            go_online(k, 0.0)
        else:
            push(rng.uniform(0, off_mean * 2), _JOIN, k, 0)
    day0 = cfg.start_hour * 3600.0
    for h in cfg.wave_times_h:
        t = (h * 3600.0 - day0) % _DAY
        push(t, _WAVE, 0, 0)

    now = 0.0
    events = 0
    while heap and not policy.done:
        now, _, kind, a, b = heapq.heappop(heap)
        if now > cfg.max_sim_s:
            break
        events += 1
        if kind == _FINISH:
            i, ep = a, b
            tid = ids[i]
            cur = attempt_of.get(i)
            if cur is None or cur[0] != ep:
                # This attempt was already given up on. A dead episode stays silent; a
                # zombie (partitioned node) writes anyway, and fencing must turn it away.
                if ep in zombies:
                    zombies.discard(ep)
                    with contextlib.suppress(FencedOut):
                        ledger.finish(tid, ep, "passed", effect_key=tid)
                continue
            if crashed_at[cur[2]] >= 0 and ep not in zombies:
                continue  # died with its node; the lease expiry re-queues it
            status = "failed" if fails[i] else "passed"
            try:
                ledger.finish(tid, ep, status, effect_key=tid)
            except FencedOut:
                continue  # a zombie's late result: rejected, as it must be
            zombies.discard(ep)
            _, t0, _ = attempt_of.pop(i)
            useful += now - t0
            d0 = pc()
            policy.finished(tid, status)
            decision_s += pc() - d0
        elif kind == _JOIN:
            go_online(a, now)
        elif kind == _WAVE:
            push(now + _DAY, _WAVE, 0, 0)
            m = int(len(online) * cfg.wave_fraction)
            for k in rng.sample(online, m):
                if crashed_at[k] >= 0:
                    continue  # already gone; its lease expiry is pending
                gen[k] += 1
                wave_leave[k] = True
                d0 = pc()
                policy.drain_node(names[k], now + 600.0)
                decision_s += pc() - d0
                push(now + 600.0, _LEAVE, k, gen[k])
        elif kind == _WAKE:
            wake_pending = math.inf
        elif b != gen[a]:
            continue  # an event of an earlier session of this node
        elif kind == _DRAIN:
            d0 = pc()
            policy.drain_node(names[a], leave_of[a])
            decision_s += pc() - d0
        elif kind == _LEAVE:
            d0 = pc()
            lost = policy.remove_node(names[a])
            decision_s += pc() - d0
            for tid in lost:
                lose(tid, now, now)
            if wave_leave[a]:
                wave_leave[a] = False
                off = rng.uniform(0.5, 1.5) * cfg.wave_off_s
            else:
                off = rng.expovariate(1.0 / off_mean)
            go_offline(a, now, off)
        elif kind == _CRASH:
            crashed_at[a] = now
            for tid in policy.node_tasks(names[a]):
                i = index[tid]
                if rng.random() < cfg.zombie_fraction:
                    zombies.add(attempt_of[i][0])
            push(now + cfg.lease_s, _EXPIRE, a, b)
        elif kind == _EXPIRE:
            d0 = pc()
            lost = policy.remove_node(names[a])
            decision_s += pc() - d0
            for tid in lost:
                lose(tid, now, crashed_at[a])
            go_offline(a, now, rng.expovariate(1.0 / off_mean))

        for dec in policy.take_decisions():
            ledger.decide(dec.task_id, dec.state)
        d0 = pc()
        batch = policy.next_dispatches(now)
        decision_s += pc() - d0
        for d in batch:
            dispatches += 1
            i = index[d.task_id]
            k = int(d.node_id)
            lease = ledger.lease(d.task_id)
            ledger.start(d.task_id, lease.epoch)
            attempt_of[i] = (lease.epoch, now, k)
            if crashed_at[k] >= 0:
                continue  # leased to a node that is already gone: never finishes
            dur = expected[i] * rng.lognormvariate(0.0, cfg.noise_sigma)
            push(now + dur, _FINISH, i, lease.epoch)
        for dec in policy.take_decisions():
            ledger.decide(dec.task_id, dec.state)
        wake = policy.wake_at(now)
        if wake is not None and wake < wake_pending:
            wake_pending = wake
            push(max(wake, now + 1e-6), _WAKE, 0, 0)

    states = ledger.state
    writes = ledger.terminal_writes
    lost_n = sum(1 for s, w in zip(states, writes, strict=True) if s not in TERMINAL or w != 1)
    dup = ledger.duplicate_effects + sum(1 for w in writes if w > 1)
    counts = {s: 0 for s in TERMINAL}
    for s in states:
        if s in counts:
            counts[s] += 1
    skipped = counts["error"]
    total_work = useful + wasted
    return SimReport(
        nodes=cfg.nodes,
        tasks=cfg.tasks,
        seed=cfg.seed,
        completed=sum(counts.values()),
        passed=counts["passed"],
        failed=counts["failed"],
        skipped=skipped,
        budget_exceeded=counts["budget_exceeded"],
        lost=lost_n,
        duplicates=dup,
        fenced=ledger.fenced,
        dispatches=dispatches,
        requeued=requeued,
        decision_us=1e6 * decision_s / max(1, dispatches),
        policy_setup_s=setup_s,
        wasted_fraction=wasted / total_work if total_work else 0.0,
        useful_work_s=useful,
        wasted_work_s=wasted,
        makespan_s=now,
        events=events,
        wall_s=time.perf_counter() - wall0,
    )
