"""The local backend: N worker processes on this machine, each owning its own sandbox.

The coordinator (this process) leases tasks in the ledger and hands them to idle workers over
a pipe. A worker marks the task running, heartbeats its lease from a thread, runs the whole
episode on its own Xvfb display, and writes the result to the ledger itself with a
compare-and-set on the lease epoch. Because results go straight to the ledger, a worker
orphaned by a killed coordinator can still finish its episode and have it count, and one
whose lease was taken away in the meantime is fenced out instead of writing twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Literal

from agentcorp.errors import ConfigError, FleetError, SetupError
from agentcorp.fleet._coord import (
    HOST,
    ScheduleReport,
    coordinator_lock,
    resume,
    sync_external,
    write_decisions,
)
from agentcorp.fleet.ledger import SqliteLedger
from agentcorp.fleet.model import TERMINAL, FleetTask, resolve_runner
from agentcorp.fleet.policy import RateLimit, SchedulerPolicy

__all__ = ["LocalOptions", "run_local"]

SandboxKind = Literal["xvfb", "none"]


@dataclass(frozen=True, slots=True)
class LocalOptions:
    """How to run workers on this machine.

    ``lease_s`` is the lease length (heartbeats renew it every third of it); ``sandbox``
    ``"xvfb"`` gives every worker its own virtual desktop for its whole life.
    """

    workers: int = 2
    lease_s: float = 30.0
    sandbox: SandboxKind = "xvfb"
    screen: tuple[int, int] = (1280, 800)
    window_manager: bool = False
    session_root: str | None = None
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    spare_slots: int = 0
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0
    episode_timeout_factor: float = 3.0
    #: The workers' environment (default: this process's); their episodes read it.
    env: Mapping[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if not self.lease_s > 0:
            raise ConfigError(f"--lease must be positive, got {self.lease_s}")
        if self.sandbox not in ("xvfb", "none"):
            raise ConfigError(f"--sandbox must be 'xvfb' or 'none', got {self.sandbox!r}")


# --- the coordinator ----------------------------------------------------------------------


@dataclass(slots=True)
class _Worker:
    name: str
    proc: subprocess.Popen[bytes]
    conn: Connection
    wid: str = ""
    ready: bool = False
    dead: bool = False
    task: tuple[str, int] | None = None  # (task id, epoch) in hand
    leave_at: float | None = None  # monotonic time of an announced departure
    deadline: float = 0.0  # monotonic time by which the episode in hand must be done


def _runner_ref(runner: str | Callable[..., Any]) -> str:
    if isinstance(runner, str):
        resolve_runner(runner)  # fail fast here, naming the flag, not in every worker
        return runner
    module, qual = getattr(runner, "__module__", None), getattr(runner, "__qualname__", "")
    if not module or "<" in qual or module == "__main__":
        raise ConfigError("the local backend needs an importable runner (MODULE:FUNCTION)")
    return f"{module}:{qual}"


class _Pool:
    """The worker processes of one run; a dead one is buried and replaced."""

    def __init__(
        self, ledger: SqliteLedger, ref: str, opts: LocalOptions, report: ScheduleReport
    ) -> None:
        self.ledger = ledger
        self.ref = ref
        self.report = report
        # Workers' sandbox homes live here, so a worker killed with -9 leaves nothing behind
        # once the run ends.
        self.home_root = tempfile.mkdtemp(prefix="agentcorp-fleet-")
        self.opts_json = json.dumps(
            {
                "sandbox": opts.sandbox,
                "screen": list(opts.screen),
                "window_manager": opts.window_manager,
                "lease_s": opts.lease_s,
                "session_root": opts.session_root,
                "home_root": self.home_root,
                "rate_limits": {k: [v.rate, v.burst] for k, v in opts.rate_limits.items()},
            }
        )
        self.workers: dict[str, _Worker] = {}
        self.serial = 0
        self.env = _worker_env(opts.env)

    def spawn(self) -> None:
        self.serial += 1
        name = f"w{self.serial}"
        ours, theirs = socket.socketpair()
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agentcorp.fleet._worker",
                    str(theirs.fileno()),
                    name,
                    str(self.ledger.path),
                    self.ref,
                    self.opts_json,
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=self.env,
            )
        finally:
            theirs.close()
        conn = Connection(ours.detach())
        self.workers[name] = _Worker(name, proc, conn)
        self.report.workers_started += 1

    def stop(self, timeout_s: float) -> None:
        for w in self.workers.values():
            with contextlib.suppress(OSError):
                w.conn.send(None)
        deadline = time.monotonic() + timeout_s
        for w in self.workers.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.proc.wait(timeout=max(0.05, deadline - time.monotonic()))
        for w in self.workers.values():
            if w.proc.poll() is None:
                w.proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    w.proc.wait(timeout=2)
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait(timeout=5)
            with contextlib.suppress(OSError):
                w.conn.close()
        shutil.rmtree(self.home_root, ignore_errors=True)


def _worker_env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    """The workers' environment: ``env`` plus what this interpreter needs to import us."""
    if env is None:
        return None
    out = dict(env)
    for var in ("PYTHONPATH", "PATH", "VIRTUAL_ENV"):
        if var in os.environ and var not in out:
            out[var] = os.environ[var]
    return out


def run_local(
    tasks: Sequence[FleetTask],
    ledger_path: str | Path,
    runner: str | Callable[..., Any],
    options: LocalOptions | None = None,
    *,
    budgets: Mapping[str, float] | None = None,
    source: str = "",
    on_event: Callable[[str, str], None] | None = None,
) -> ScheduleReport:
    """Run ``tasks`` to the end on local worker processes, resuming from ``ledger_path``.

    Safe to kill at any moment and call again with the same ledger: finished tasks are not
    run again, leases of dead workers are re-queued, each task ends exactly once.
    """
    opts = options or LocalOptions()
    ref = _runner_ref(runner)
    with coordinator_lock(ledger_path):
        return _run_local(tasks, ledger_path, ref, opts, budgets, source, on_event)


def _run_local(
    tasks: Sequence[FleetTask],
    ledger_path: str | Path,
    ref: str,
    opts: LocalOptions,
    budgets: Mapping[str, float] | None,
    source: str,
    on_event: Callable[[str, str], None] | None,
) -> ScheduleReport:
    t0 = time.monotonic()
    note = on_event or (lambda kind, msg: None)
    ledger = SqliteLedger(ledger_path)
    try:
        policy, external, done = resume(
            ledger,
            tasks,
            source=source,
            budgets=budgets,
            rate_limits=opts.rate_limits,
            spare_slots=opts.spare_slots,
        )
        report = ScheduleReport(counts={}, wall_s=0.0, resumed_finished=done)
        by_id = {t.id: _task_json(t) for t in tasks}
        pool = _Pool(ledger, ref, opts, report)
        try:
            if not policy.done:
                for _ in range(opts.workers):
                    pool.spawn()
            _loop(policy, ledger, pool, external, by_id, opts, report, note)
        finally:
            pool.stop(opts.stop_timeout_s)
        write_decisions(ledger, policy)
        report.counts = ledger.counts()
        report.wall_s = time.monotonic() - t0
        return report
    finally:
        ledger.close()


def _loop(
    policy: SchedulerPolicy,
    ledger: SqliteLedger,
    pool: _Pool,
    external: dict[str, int],
    by_id: Mapping[str, dict[str, Any]],
    opts: LocalOptions,
    report: ScheduleReport,
    note: Callable[[str, str], None],
) -> None:
    start_deadline = time.monotonic() + opts.start_timeout_s
    tick = min(opts.lease_s / 3, 0.5)
    run_start = time.time()
    while not policy.done:
        _apply_drains(ledger, pool, policy, run_start, report, note)
        if not pool.workers:
            note("drain", "every worker left; the rest stays pending in the ledger")
            return
        if external:
            sync_external(ledger, policy, external)
        for d in policy.next_dispatches(time.monotonic()):
            w = pool.workers[d.node_id]
            lease = ledger.lease(d.task_id, w.wid, HOST, opts.lease_s)
            w.task = (d.task_id, lease.epoch)
            expected = float(by_id[d.task_id]["expected_s"])
            w.deadline = time.monotonic() + expected * opts.episode_timeout_factor + opts.lease_s
            with contextlib.suppress(OSError):  # a dead worker shows up as EOF below
                w.conn.send((by_id[d.task_id], lease.attempt, lease.epoch))
        write_decisions(ledger, policy)
        if policy.done:
            return
        if not any(w.ready for w in pool.workers.values()) and time.monotonic() > start_deadline:
            raise FleetError(f"no worker came up within {opts.start_timeout_s:g}s")
        now = time.monotonic()
        for w in pool.workers.values():
            if w.task is not None and now > w.deadline and w.proc.poll() is None:
                # A hung episode: kill its worker; the EOF below re-queues it whole.
                note("worker", f"{w.name}: {w.task[0]} overran its deadline; killing the worker")
                w.proc.kill()
        wake = policy.wake_at(now)
        timeout = tick if wake is None else max(0.0, min(tick, wake - now))
        conns = {w.conn: w for w in pool.workers.values()}
        for c in wait(list(conns), timeout=timeout):
            w = conns[c]  # type: ignore[index]
            _read(w, policy, report, note)
            if w.dead:
                _bury(w, ledger, policy, report, note)
                del pool.workers[w.name]
                pool.spawn()


def _apply_drains(
    ledger: SqliteLedger,
    pool: _Pool,
    policy: SchedulerPolicy,
    run_start: float,
    report: ScheduleReport,
    note: Callable[[str, str], None],
) -> None:
    """Honour announced departures: stop leasing what cannot finish, re-queue at the time."""
    drains = ledger.drains()
    now_wall, now = time.time(), time.monotonic()
    if drains:
        for w in pool.workers.values():
            if not w.ready or w.leave_at is not None:
                continue
            at = next((t for n, t in drains.items() if n in (w.name, HOST, "*")), None)
            if at is None or at < run_start:
                continue  # none, or an announcement that belonged to an earlier run
            w.leave_at = now + (at - now_wall)
            policy.drain_node(w.name, w.leave_at)
            note("drain", f"{w.name} leaves in {max(0.0, at - now_wall):.1f}s")
    for w in list(pool.workers.values()):
        if w.leave_at is None or w.leave_at > now:
            continue
        w.proc.kill()  # its sandbox dies with it (PDEATHSIG)
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.proc.wait(timeout=5)
        _give_back(w, ledger, policy, report, f"{w.name} left (drained)")
        with contextlib.suppress(OSError):
            w.conn.close()
        lost = policy.remove_node(w.name)
        del pool.workers[w.name]
        note("drain", f"{w.name} left" + (f"; re-queued {', '.join(lost)}" if lost else ""))


def _task_json(t: FleetTask) -> dict[str, Any]:
    d = asdict(t)
    d["payload"] = dict(t.payload)
    return d


def _read(
    w: _Worker, policy: SchedulerPolicy, report: ScheduleReport, note: Callable[[str, str], None]
) -> None:
    while True:
        try:
            if not w.conn.poll(0):
                return
            msg = w.conn.recv()
        except (EOFError, OSError):
            w.dead = True
            return
        kind = msg[0]
        if kind == "ready":
            w.ready, w.wid = True, msg[2]
            policy.add_node(w.name, 1)
            note("worker", f"{w.name} ready (pid {w.proc.pid}, display {msg[3]})")
        elif kind == "failed":
            # The run's input (exit 2) or the worker's environment (exit 3) cannot run
            # episodes: not a task's fault, and not one to fail every task for.
            cls = ConfigError if msg[3:] == ("ConfigError",) else SetupError
            raise cls(f"worker {w.name}: {msg[2]}")
        elif kind == "done":
            _, task_id, epoch, status = msg
            if w.task == (task_id, epoch):
                w.task = None
            if status == "fenced":
                report.fenced += 1
                policy.lost(task_id)
            else:
                policy.finished(task_id, status)
            note("task", f"{task_id} {status} on {w.name}")


def _give_back(
    w: _Worker, ledger: SqliteLedger, policy: SchedulerPolicy, report: ScheduleReport, why: str
) -> None:
    """Re-queue the lease a gone worker held, unless its result already landed."""
    if w.task is None:
        return
    task_id, epoch = w.task
    w.task = None
    if ledger.requeue(task_id, epoch, why):
        report.lost += 1
        return
    # It wrote its result and went away before telling us: the ledger has the outcome.
    row = ledger.row(task_id)
    if row is not None and row.state in TERMINAL and row.epoch == epoch:
        policy.finished(task_id, row.state, row.cost)


def _bury(
    w: _Worker,
    ledger: SqliteLedger,
    policy: SchedulerPolicy,
    report: ScheduleReport,
    note: Callable[[str, str], None],
) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        w.proc.wait(timeout=5)
    note("worker", f"{w.name} (pid {w.proc.pid}) died with exit code {w.proc.poll()}")
    with contextlib.suppress(OSError):
        w.conn.close()
    _give_back(w, ledger, policy, report, f"worker {w.name} died")
    if not w.ready:
        raise FleetError(f"worker {w.name} exited with code {w.proc.poll()} before it was ready")
    policy.remove_node(w.name)
