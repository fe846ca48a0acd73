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
from typing import Any

from agentcorp._io import read_text_bounded
from agentcorp.errors import ConfigError, FencedOut
from agentcorp.fleet.ledger import MemoryLedger
from agentcorp.fleet.model import TERMINAL, FleetTask
from agentcorp.fleet.policy import RateLimit, SchedulerPolicy

__all__ = ["SimConfig", "SimReport", "load_durations", "simulate"]

_JOIN, _DRAIN, _LEAVE, _CRASH, _EXPIRE, _FINISH, _WAVE, _WAKE = range(8)
_DAY = 86400.0


#: The biggest fleet and workload a simulation accepts (minutes of CPU at these sizes).
MAX_NODES = 100_000
MAX_TASKS = 1_000_000


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
        # Ranges, not only signs: a 20-digit --nodes would otherwise run for ever.
        for flag, value, top in (
            ("--nodes", self.nodes, MAX_NODES),
            ("--tasks", self.tasks, MAX_TASKS),
            ("--slots-per-node", self.slots_per_node, 64),
        ):
            if not 1 <= value <= top:
                raise ConfigError(f"{flag} must be 1 to {top:,}, got {value}")
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"--seed must be 0 to 2**63-1, got {self.seed}")
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
    return _Sim(cfg, durations).run()


class _Sim:
    """One simulation: the fleet's nodes, the event heap, and what it measured."""

    def __init__(self, cfg: SimConfig, durations: Sequence[float] | None) -> None:
        self.wall0 = time.perf_counter()
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        tasks, budgets, self.fails = _workload(cfg, self.rng, durations)
        self.ids = [t.id for t in tasks]
        self.index = {t: i for i, t in enumerate(self.ids)}
        self.expected = [t.expected_s for t in tasks]
        limits = {f"key{k}": RateLimit(cfg.key_rate, cfg.key_burst) for k in range(cfg.api_keys)}
        self.ledger = MemoryLedger(self.ids)
        d0 = time.perf_counter()
        self.policy = SchedulerPolicy(
            tasks, budgets=budgets, rate_limits=limits, spare_slots=cfg.spare_slots
        )
        self.setup_s = time.perf_counter() - d0  # building the DAG is not a per-dispatch cost
        self.decision_s = 0.0
        self.heap: list[tuple[float, int, int, int, int]] = []
        self.seq = 0
        n = cfg.nodes
        self.names = [str(k) for k in range(n)]
        self.gen = [0] * n
        self.crashed_at = [-1.0] * n
        self.leave_of = [math.inf] * n
        self.wave_leave = [False] * n
        self.online: list[int] = []
        self.where = [-1] * n  # position in ``online``; -1 when away
        self.off_mean = cfg.mean_online_s * (1 - cfg.online_fraction) / cfg.online_fraction
        # task index -> (epoch, start time, node) of its current attempt
        self.attempt_of: dict[int, tuple[int, float, int]] = {}
        self.zombies: set[int] = set()  # epochs whose episode outlives a lost node
        self.useful = self.wasted = 0.0
        self.dispatches = self.requeued = 0
        self.wake_pending = math.inf
        self.now = 0.0
        self.events = 0

    # --- helpers ----------------------------------------------------------------------

    def push(self, t: float, kind: int, a: int, b: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b))

    def timed(self, fn: Any, *args: Any) -> Any:
        """Call a policy method, counting its time as decision time."""
        d0 = time.perf_counter()
        out = fn(*args)
        self.decision_s += time.perf_counter() - d0
        return out

    def go_online(self, k: int, now: float) -> None:
        self.gen[k] += 1
        self.crashed_at[k] = -1.0
        self.where[k] = len(self.online)
        self.online.append(k)
        self.policy.add_node(self.names[k], self.cfg.slots_per_node)
        stay = self.rng.expovariate(1.0 / self.cfg.mean_online_s)
        self.schedule_departure(k, now, now + stay)

    def schedule_departure(self, k: int, now: float, leave_at: float) -> None:
        self.leave_of[k] = leave_at
        if self.rng.random() < self.cfg.announced_fraction:
            notice = self.rng.uniform(*self.cfg.notice_s)
            self.push(max(now, leave_at - notice), _DRAIN, k, self.gen[k])
            self.push(leave_at, _LEAVE, k, self.gen[k])
        else:
            self.push(leave_at, _CRASH, k, self.gen[k])

    def go_offline(self, k: int, now: float, off_s: float) -> None:
        pos = self.where[k]
        last = self.online.pop()
        if last != k:
            self.online[pos] = last
            self.where[last] = pos
        self.where[k] = -1
        self.gen[k] += 1
        self.push(now + max(off_s, self.cfg.lease_s + 1.0), _JOIN, k, 0)

    def lose(self, tid: str, now: float, until: float) -> None:
        i = self.index[tid]
        ep, t0, _ = self.attempt_of.pop(i)
        self.wasted += max(0.0, min(now, until) - t0)
        if self.ledger.requeue(tid, ep):
            self.requeued += 1

    # --- events -----------------------------------------------------------------------

    def on_finish(self, i: int, ep: int) -> None:
        tid = self.ids[i]
        cur = self.attempt_of.get(i)
        if cur is None or cur[0] != ep:
            # This attempt was already given up on. A dead episode stays silent; a zombie
            # (partitioned node) writes anyway, and fencing must turn it away.
            if ep in self.zombies:
                self.zombies.discard(ep)
                with contextlib.suppress(FencedOut):
                    self.ledger.finish(tid, ep, "passed", effect_key=tid)
            return
        if self.crashed_at[cur[2]] >= 0 and ep not in self.zombies:
            return  # died with its node; the lease expiry re-queues it
        status = "failed" if self.fails[i] else "passed"
        try:
            self.ledger.finish(tid, ep, status, effect_key=tid)
        except FencedOut:
            return  # a zombie's late result: rejected, as it must be
        self.zombies.discard(ep)
        _, t0, _ = self.attempt_of.pop(i)
        self.useful += self.now - t0
        self.timed(self.policy.finished, tid, status)

    def on_wave(self) -> None:
        now = self.now
        self.push(now + _DAY, _WAVE, 0, 0)
        m = int(len(self.online) * self.cfg.wave_fraction)
        for k in self.rng.sample(self.online, m):
            if self.crashed_at[k] >= 0:
                continue  # already gone; its lease expiry is pending
            self.gen[k] += 1
            self.wave_leave[k] = True
            self.timed(self.policy.drain_node, self.names[k], now + 600.0)
            self.push(now + 600.0, _LEAVE, k, self.gen[k])

    def on_leave(self, a: int) -> None:
        for tid in self.timed(self.policy.remove_node, self.names[a]):
            self.lose(tid, self.now, self.now)
        if self.wave_leave[a]:
            self.wave_leave[a] = False
            off = self.rng.uniform(0.5, 1.5) * self.cfg.wave_off_s
        else:
            off = self.rng.expovariate(1.0 / self.off_mean)
        self.go_offline(a, self.now, off)

    def on_crash(self, a: int, b: int) -> None:
        self.crashed_at[a] = self.now
        for tid in self.policy.node_tasks(self.names[a]):
            i = self.index[tid]
            if self.rng.random() < self.cfg.zombie_fraction:
                self.zombies.add(self.attempt_of[i][0])
        self.push(self.now + self.cfg.lease_s, _EXPIRE, a, b)

    def on_expire(self, a: int) -> None:
        for tid in self.timed(self.policy.remove_node, self.names[a]):
            self.lose(tid, self.now, self.crashed_at[a])
        self.go_offline(a, self.now, self.rng.expovariate(1.0 / self.off_mean))

    def handle(self, kind: int, a: int, b: int) -> None:
        """Apply one event."""
        if kind == _FINISH:
            self.on_finish(a, b)
        elif kind == _JOIN:
            self.go_online(a, self.now)
        elif kind == _WAVE:
            self.on_wave()
        elif kind == _WAKE:
            self.wake_pending = math.inf
        elif b != self.gen[a]:
            return  # an event of an earlier session of this node
        elif kind == _DRAIN:
            self.timed(self.policy.drain_node, self.names[a], self.leave_of[a])
        elif kind == _LEAVE:
            self.on_leave(a)
        elif kind == _CRASH:
            self.on_crash(a, b)
        elif kind == _EXPIRE:
            self.on_expire(a)

    def dispatch(self) -> None:
        """Write the policy's decisions, hand out leases, schedule their ends and wakes."""
        now = self.now
        for dec in self.policy.take_decisions():
            self.ledger.decide(dec.task_id, dec.state)
        for d in self.timed(self.policy.next_dispatches, now):
            self.dispatches += 1
            i = self.index[d.task_id]
            k = int(d.node_id)
            lease = self.ledger.lease(d.task_id)
            self.ledger.start(d.task_id, lease.epoch)
            self.attempt_of[i] = (lease.epoch, now, k)
            if self.crashed_at[k] >= 0:
                continue  # leased to a node that is already gone: never finishes
            dur = self.expected[i] * self.rng.lognormvariate(0.0, self.cfg.noise_sigma)
            self.push(now + dur, _FINISH, i, lease.epoch)
        for dec in self.policy.take_decisions():
            self.ledger.decide(dec.task_id, dec.state)
        wake = self.policy.wake_at(now)
        if wake is not None and wake < self.wake_pending:
            self.wake_pending = wake
            self.push(max(wake, now + 1e-6), _WAKE, 0, 0)

    # --- the run ----------------------------------------------------------------------

    def run(self) -> SimReport:
        cfg = self.cfg
        for k in range(cfg.nodes):
            if self.rng.random() < cfg.online_fraction:
                self.go_online(k, 0.0)
            else:
                self.push(self.rng.uniform(0, self.off_mean * 2), _JOIN, k, 0)
        day0 = cfg.start_hour * 3600.0
        for h in cfg.wave_times_h:
            self.push((h * 3600.0 - day0) % _DAY, _WAVE, 0, 0)
        while self.heap and not self.policy.done:
            self.now, _, kind, a, b = heapq.heappop(self.heap)
            if self.now > cfg.max_sim_s:
                break
            self.events += 1
            self.handle(kind, a, b)
            self.dispatch()
        return self.report()

    def report(self) -> SimReport:
        ledger = self.ledger
        states = ledger.state
        writes = ledger.terminal_writes
        lost_n = sum(1 for s, w in zip(states, writes, strict=True) if s not in TERMINAL or w != 1)
        dup = ledger.duplicate_effects + sum(1 for w in writes if w > 1)
        counts = {s: 0 for s in TERMINAL}
        for s in states:
            if s in counts:
                counts[s] += 1
        total_work = self.useful + self.wasted
        return SimReport(
            nodes=self.cfg.nodes,
            tasks=self.cfg.tasks,
            seed=self.cfg.seed,
            completed=sum(counts.values()),
            passed=counts["passed"],
            failed=counts["failed"],
            skipped=counts["error"],
            budget_exceeded=counts["budget_exceeded"],
            lost=lost_n,
            duplicates=dup,
            fenced=ledger.fenced,
            dispatches=self.dispatches,
            requeued=self.requeued,
            decision_us=1e6 * self.decision_s / max(1, self.dispatches),
            policy_setup_s=self.setup_s,
            wasted_fraction=self.wasted / total_work if total_work else 0.0,
            useful_work_s=self.useful,
            wasted_work_s=self.wasted,
            makespan_s=self.now,
            events=self.events,
            wall_s=time.perf_counter() - self.wall0,
        )
