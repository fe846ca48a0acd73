"""What every coordinator does the same way: resume from the ledger, write decisions, report."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentcorp.errors import ConfigError, FencedOut, FleetError
from agentcorp.fleet.ledger import SqliteLedger
from agentcorp.fleet.model import TERMINAL, FleetTask
from agentcorp.fleet.policy import RateLimit, SchedulerPolicy

__all__ = [
    "ScheduleReport",
    "coordinator_lock",
    "holder_alive",
    "holder_id",
    "resume",
    "sync_external",
    "write_decisions",
]

HOST = socket.gethostname()


@dataclass(slots=True)
class ScheduleReport:
    """How the scheduler ended a run: tasks per state and what happened on the way.

    The application layer turns it into the user-facing ``agentcorp.RunReport``.
    """

    counts: dict[str, int]
    wall_s: float
    lost: int = 0
    fenced: int = 0
    resumed_finished: int = 0
    workers_started: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every task passed."""
        return set(self.counts) <= {"passed"}


@contextlib.contextmanager
def coordinator_lock(ledger_path: str | Path) -> Iterator[None]:
    """Hold ``LEDGER.lock`` for the life of a coordinator: one coordinator per ledger.

    The kernel drops the lock when the process dies, even by ``kill -9``, so a restarted
    coordinator never waits for a dead one.
    """
    lock = Path(f"{ledger_path}.lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"{ledger_path}: cannot lock the ledger: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise ConfigError(
                f"{ledger_path}: in use by another coordinator ({other}); wait for it or kill it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_id("coordinator").encode(), 0)
        yield
    finally:
        os.close(fd)


def holder_id(name: str, pid: int | None = None) -> str:
    """A lease holder's id: ``host/pid/name`` so a restarted coordinator can check it."""
    return f"{HOST}/{os.getpid() if pid is None else pid}/{name}"


def holder_alive(worker: str | None) -> bool | None:
    """True/False for a holder on this host (by pid), None when it cannot be known here."""
    if not worker:
        return False
    host, _, rest = worker.partition("/")
    pid_s = rest.partition("/")[0]
    if host != HOST or not pid_s.isdigit():
        return None
    try:
        os.kill(int(pid_s), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resume(
    ledger: SqliteLedger,
    tasks: Sequence[FleetTask],
    *,
    source: str = "",
    budgets: Mapping[str, float] | None = None,
    rate_limits: Mapping[str, RateLimit] | None = None,
    spare_slots: int = 0,
) -> tuple[SchedulerPolicy, dict[str, int], int]:
    """Open a run from its ledger: the policy, leases held elsewhere, tasks already done.

    A lease whose holder is known dead (a worker process of this host that is gone) is
    re-queued at once instead of waiting for it to expire.
    """
    ledger.ensure_tasks(tasks, source)
    ledger.expire()
    for row in ledger.rows():
        if row.state in ("leased", "running") and holder_alive(row.worker) is False:
            ledger.requeue(row.id, row.epoch, "holder gone")
    rows = ledger.rows()
    policy = SchedulerPolicy(
        tasks, budgets=budgets, rate_limits=rate_limits, spare_slots=spare_slots
    )
    external_ids = policy.restore({r.id: r.state for r in rows}, {r.id: r.attempt for r in rows})
    by_id = {r.id: r for r in rows}
    external = {tid: by_id[tid].epoch for tid in external_ids}
    write_decisions(ledger, policy)
    done = sum(1 for r in rows if r.state in TERMINAL)
    return policy, external, done


def write_decisions(ledger: SqliteLedger, policy: SchedulerPolicy) -> None:
    """Write the terminal states the policy chose on its own."""
    for d in policy.take_decisions():
        row = ledger.row(d.task_id)
        if row is not None and row.state in TERMINAL:
            continue  # decided before a crash; the ledger already has it
        if row is not None and row.state != "pending":
            # A lost lease the policy gave up on: hand it back first, then close it.
            ledger.requeue(d.task_id, row.epoch, d.detail)
        ledger.decide(d.task_id, d.state, d.detail)


def sync_external(ledger: SqliteLedger, policy: SchedulerPolicy, external: dict[str, int]) -> int:
    """Follow leases held by holders from an earlier coordinator; returns how many ended."""
    ended = 0
    for tid, epoch in list(external.items()):
        row = ledger.row(tid)
        if row is None:
            raise FleetError(f"task {tid!r} vanished from the ledger")
        if row.state in TERMINAL:
            policy.finished(tid, row.state, row.cost)
        elif row.state == "pending" or row.epoch != epoch:
            policy.lost(tid)
        elif row.lease_expires is not None and row.lease_expires < time.time():
            with contextlib.suppress(FencedOut):
                ledger.requeue(tid, epoch, "lease expired")
            policy.lost(tid)
        else:
            continue
        del external[tid]
        ended += 1
    return ended
