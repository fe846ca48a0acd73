"""The in-process backend: one worker, this process, the same ledger and policy as the others.

``run_inline`` is what ``agentcorp run`` uses without ``--workers``/``--ray``: tasks are
leased, started, heartbeaten and finished in the ledger exactly as a worker process does it,
so a run killed with ``kill -9`` resumes from its ledger like any other, and the runner (a
plain callable here, never pickled) keeps its state (open sandboxes) from task to task.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentcorp.errors import ConfigError, FencedOut
from agentcorp.fleet._coord import (
    HOST,
    ScheduleReport,
    coordinator_lock,
    holder_id,
    resume,
    sync_external,
    write_decisions,
)
from agentcorp.fleet._worker import SqliteRateLimiter, _Heartbeat, run_episode
from agentcorp.fleet.ledger import SqliteLedger
from agentcorp.fleet.model import EpisodeContext, FleetTask, resolve_runner
from agentcorp.fleet.policy import RateLimit

__all__ = ["InlineOptions", "run_inline"]

NODE = "w1"


@dataclass(frozen=True, slots=True)
class InlineOptions:
    """How the in-process worker runs: lease length, rate limits, spare slots."""

    lease_s: float = 30.0
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    spare_slots: int = 0
    session_root: str | None = None

    def __post_init__(self) -> None:
        if not self.lease_s > 0:
            raise ConfigError(f"--lease must be positive, got {self.lease_s}")


def run_inline(
    tasks: Sequence[FleetTask],
    ledger_path: str | Path,
    runner: str | Callable[..., Any],
    options: InlineOptions | None = None,
    *,
    budgets: Mapping[str, float] | None = None,
    source: str = "",
    on_event: Callable[[str, str], None] | None = None,
) -> ScheduleReport:
    """Run ``tasks`` to the end in this process, resuming from ``ledger_path``.

    Tasks run one at a time in dependency order (the policy's ready order). A task leased
    by a coordinator that was killed is re-queued once its holder is known dead.
    """
    opts = options or InlineOptions()
    fn = resolve_runner(runner)
    with coordinator_lock(ledger_path):
        ledger = SqliteLedger(ledger_path)
        try:
            return _run(tasks, ledger, fn, opts, budgets, source, on_event)
        finally:
            ledger.close()


def _run(
    tasks: Sequence[FleetTask],
    ledger: SqliteLedger,
    fn: Callable[..., Any],
    opts: InlineOptions,
    budgets: Mapping[str, float] | None,
    source: str,
    on_event: Callable[[str, str], None] | None,
) -> ScheduleReport:
    t0 = time.monotonic()
    note = on_event or (lambda kind, msg: None)
    policy, external, done = resume(
        ledger,
        tasks,
        source=source,
        budgets=budgets,
        rate_limits=opts.rate_limits,
        spare_slots=opts.spare_slots,
    )
    report = ScheduleReport(counts={}, wall_s=0.0, resumed_finished=done)
    by_id = {t.id: t for t in tasks}
    limiter = SqliteRateLimiter(ledger, opts.rate_limits)
    wid = holder_id(NODE)
    policy.add_node(NODE, 1)
    run_start = time.time()
    while not policy.done:
        if _drained(ledger, run_start):
            note("drain", f"{NODE} left (drained); the rest stays pending in the ledger")
            break
        if external:
            sync_external(ledger, policy, external)
        dispatches = policy.next_dispatches(time.monotonic())
        for d in dispatches:
            lease = ledger.lease(d.task_id, wid, HOST, opts.lease_s)
            ctx = EpisodeContext(
                task_id=d.task_id,
                attempt=lease.attempt,
                epoch=lease.epoch,
                worker_id=wid,
                node_id=HOST,
                session_dir=_session_dir(opts, d.task_id, lease.attempt),
                limiter=limiter,
                effects=ledger,
            )
            status = _serve(ledger, fn, by_id[d.task_id], ctx, opts.lease_s)
            if status == "fenced":
                report.fenced += 1
                policy.lost(d.task_id)
            else:
                policy.finished(d.task_id, status)
            note("task", f"{d.task_id} {status} on {NODE}")
        write_decisions(ledger, policy)
        if not dispatches and not policy.done:
            wake = policy.wake_at(time.monotonic())
            time.sleep(0.2 if wake is None else max(0.0, min(0.2, wake - time.monotonic())))
    write_decisions(ledger, policy)
    report.counts = ledger.counts()
    report.wall_s = time.monotonic() - t0
    return report


def _session_dir(opts: InlineOptions, task_id: str, attempt: int) -> str | None:
    if not opts.session_root:
        return None
    return str(Path(opts.session_root) / task_id / f"attempt-{attempt}")


def _drained(ledger: SqliteLedger, run_start: float) -> bool:
    """Whether this process was told to leave (``fleet drain``) and its time has come."""
    drains = ledger.drains()
    at = next((t for n, t in drains.items() if n in (NODE, HOST, "*")), None)
    return at is not None and at >= run_start and at <= time.time()


def _serve(
    ledger: SqliteLedger,
    fn: Callable[..., Any],
    task: FleetTask,
    ctx: EpisodeContext,
    lease_s: float,
) -> str:
    """``running``, heartbeat, the episode, the fenced result: as a worker process does."""
    try:
        ledger.start(task.id, ctx.epoch)
    except FencedOut:
        return "fenced"
    hb = _Heartbeat(str(ledger.path), task.id, ctx.epoch, lease_s, threading.Event())
    hb.start()
    try:
        result = run_episode(fn, task, ctx)
    finally:
        hb.stop()
    try:
        ledger.finish(
            task.id,
            ctx.epoch,
            result.status,
            detail=result.detail,
            session_path=result.session_path,
            cost=result.cost,
        )
    except FencedOut:
        return "fenced"
    return result.status
