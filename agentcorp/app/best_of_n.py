"""Best-of-N: a task's ``attempts: {n: N}`` run as N independent rollouts; first to pass wins.

Each rollout gets its own copy of the sandbox: a fresh desktop (its own display and apps)
whose home starts as a copy of the sandbox's home as the run left it. The rollouts run at
once (``parallel: true``, threads of this worker) or one after another; the deterministic
success checks decide each, the first to pass wins and the others are cancelled between two
steps. Every rollout is recorded as its own attempt session; tokens and cost are summed over
all of them. The winner's home becomes the sandbox's home and its desktop is reopened from
it, so the tasks that follow see the winner's work. Validation allows ``attempts`` only on
desktop sandboxes without services: nothing an attempt does can reach another.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from agentcorp.actor.runner import TaskResult
from agentcorp.app.attempt import RunObserver, TaskRun, run_attempt
from agentcorp.app.runner import TaskRunner
from agentcorp.app.sandboxes import Sandboxes
from agentcorp.spec import Task
from agentcorp.types import ModelCallStep, Step, Usage

__all__ = ["run_best_of_n"]


class _Meter(RunObserver):
    """Sums the model usage of one rollout (a cancelled one returns no usage of its own)."""

    def __init__(self) -> None:
        self.usage = Usage()

    def step(self, task_id: str, step: Step) -> None:
        if isinstance(step, ModelCallStep):
            self.usage = self.usage + step.usage


def run_best_of_n(
    runner: TaskRunner,
    task: Task,
    observers: Sequence[RunObserver] = (),
    *,
    first_attempt: int = 1,
) -> TaskRun:
    """Run ``task``'s N rollouts; its ``TaskRun`` is the winner's (or the last failure's)."""
    assert task.attempts is not None
    n = task.attempts.n
    name = runner.company.task_sandbox(task)
    base = runner.sandboxes.home_of(name)
    cancel = threading.Event()
    root = Path(tempfile.mkdtemp(prefix=f"agentcorp-best-of-{n}-"))
    meters = [_Meter() for _ in range(n)]
    t0 = time.monotonic()

    def rollout(k: int) -> tuple[int, TaskResult, Path | None]:
        home = root / str(k) / name
        if base is not None and base.is_dir():
            shutil.copytree(base, home, symlinks=True)
        boxes = Sandboxes(
            runner.company,
            runner.sandboxes.secrets,
            chromium=runner.sandboxes.chromium,
            state_root=root / str(k),
            audit=runner.audit,
        )
        child = dataclasses.replace(runner, sandboxes=boxes, final_state=None)
        try:
            result, session = run_attempt(
                child, task, first_attempt + k, [*observers, meters[k]], cancel=cancel
            )
        finally:
            boxes.close()
        if result.status == "pass":
            cancel.set()
        return k, result, session

    results: list[tuple[int, TaskResult, Path | None]] = []
    try:
        if task.attempts.parallel:
            with ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"best-of-{task.id}") as pool:
                pending: set[Future[tuple[int, TaskResult, Path | None]]] = {
                    pool.submit(rollout, k) for k in range(n)
                }
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    results.extend(f.result() for f in done)
        else:
            for k in range(n):
                results.append(rollout(k))
                if results[-1][1].status == "pass":
                    break
        return _outcome(runner, task, name, root, results, meters, time.monotonic() - t0)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _outcome(
    runner: TaskRunner,
    task: Task,
    name: str,
    root: Path,
    results: list[tuple[int, TaskResult, Path | None]],
    meters: list[_Meter],
    elapsed: float,
) -> TaskRun:
    """The winner (first to pass, in finishing order) or the last result; usage summed."""
    winner = next((r for r in results if r[1].status == "pass"), None)
    k, result, session = winner if winner is not None else results[-1]
    if winner is not None:
        _adopt(runner, name, root / str(k) / name)
    usage = sum((m.usage for m in meters), Usage())
    tried = len(results)
    reason = result.reason
    if winner is None:
        reason = f"none of {tried} attempts passed; last: {reason}"
    return TaskRun(
        task.id,
        result.status,
        result.mode,
        reason,
        dict(task.inputs),
        tried,
        sum(r[1].actions for r in results),
        usage.total_tokens,
        usage.cost_usd,
        elapsed,
        str(session) if session is not None else None,
        [{"name": c.name, "status": c.status, "detail": c.detail} for c in result.checks],
    )


def _adopt(runner: TaskRunner, name: str, home: Path) -> None:
    """The winner's home becomes the sandbox's; its desktop reopens from it for what follows."""
    base = runner.sandboxes.home_of(name)
    if base is None or not home.is_dir():
        return
    runner.sandboxes.reopen(name)
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(home, base, symlinks=True)
