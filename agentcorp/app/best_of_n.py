"""Best-of-N: a task's ``attempts: {n: N}`` run as N independent rollouts; first to pass wins.

Each rollout gets its own copy of the sandbox: a fresh desktop (its own display and apps)
whose home starts as a copy of the sandbox's home as the run left it. The rollouts run at
once (``parallel: true``, threads of this worker) or one after another; the deterministic
success checks decide each, the first to pass wins and the others are cancelled between two
steps. Every rollout is recorded as its own attempt session; tokens and cost are summed over
all of them. The winner's home becomes the sandbox's home and its desktop is reopened from
it, so the tasks that follow see the winner's work. Validation allows ``attempts`` only on
desktop sandboxes without services: nothing an attempt does can reach another.

A task with no deterministic success check (none, or only ``llm_judge``) cannot be decided by
"first to pass": all N rollouts run to their end and, when more than one ends well, the judge
model picks the winner from their step summaries (``agentcorp.app.judge``). Its calls are
written to the winner's session folder (``judge.json``) and its usage is added to the task's.
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
from agentcorp.app.judge import RolloutLog, Verdict, deterministic, judge_rollouts
from agentcorp.app.runner import TaskRunner, model_names
from agentcorp.app.sandboxes import Sandboxes
from agentcorp.planner.plan import PlanError
from agentcorp.spec import Task
from agentcorp.types import ModelCallStep, Step, Usage

__all__ = ["run_best_of_n"]


class _Meter(RunObserver):
    """One rollout's model usage (a cancelled one returns none of its own) and its log."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.log = RolloutLog()

    def step(self, task_id: str, step: Step) -> None:
        if isinstance(step, ModelCallStep):
            self.usage = self.usage + step.usage
        self.log.step(step)


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
    judged = not deterministic(task)
    if judged and runner.client is None:
        return _refused(
            task,
            "best-of-N without a deterministic success check needs a judge model, and no "
            "model is configured: add a check that decides without a model, or a model",
        )
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
        if result.status == "pass" and not judged:
            cancel.set()  # the first to pass wins; a judged task waits for every rollout
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
                if results[-1][1].status == "pass" and not judged:
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
    """The winner (first to pass, or the judge's pick) or the last result; usage summed."""
    usage = sum((m.usage for m in meters), Usage())
    passed = [r for r in results if r[1].status == "pass"]
    winner = passed[0] if passed else None
    note = ""
    calls: list[ModelCallStep] = []
    if len(passed) > 1 and not deterministic(task):
        verdict, calls = _judge(runner, task, passed, meters)
        usage = sum((c.usage for c in calls), usage)
        winner = next((r for r in passed if r[0] + 1 == verdict.winner), None)
        note = f"the judge picked attempt {verdict.winner}" if winner else "the judge picked none"
        note += f": {verdict.reason}" if verdict.reason else ""
    k, result, session = winner if winner is not None else results[-1]
    if winner is not None:
        _adopt(runner, name, root / str(k) / name)
    if calls and session is not None:
        _keep_judgement(session, calls)
    tried = len(results)
    reason = note or result.reason
    if winner is None:
        reason = (
            f"none of {tried} attempts was chosen: {note}"
            if note
            else (f"none of {tried} attempts passed; last: {result.reason}")
        )
    return TaskRun(
        task.id,
        result.status if winner is not None or not note else "fail",
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
    if home.is_dir():
        runner.sandboxes.replace_home(name, home)


def _judge(
    runner: TaskRunner,
    task: Task,
    passed: list[tuple[int, TaskResult, Path | None]],
    meters: list[_Meter],
) -> tuple[Verdict, list[ModelCallStep]]:
    """Ask the judge model to pick among the rollouts that ended well: its verdict and calls."""
    from agentcorp.llm.structured import output_modes

    model = runner.client.bind(task=task.id)
    name = model_names(runner.config, runner.company, task, runner.client)["judge"]
    offered = [
        (k + 1, r.status, r.reason, [f"{c.name}: {c.status}" for c in r.checks], meters[k].log)
        for k, r, _ in passed
    ]
    gen = judge_rollouts(model, name, task, offered, output_modes(model))
    calls: list[ModelCallStep] = []
    try:
        while True:
            step = next(gen)
            if isinstance(step, ModelCallStep):
                calls.append(step)
    except StopIteration as stop:
        verdict: Verdict = stop.value
    except PlanError as exc:
        verdict = Verdict(None, f"no usable verdict from the judge: {exc}")
    if runner.audit is not None:
        runner.audit.append(
            "judge", task=task.id, winner=verdict.winner, reason=verdict.reason, calls=len(calls)
        )
    return verdict, calls


def _keep_judgement(session: Path, calls: list[ModelCallStep]) -> None:
    """The judge's model calls beside the winner's recording (data, for people and audits)."""
    import json

    doc = [
        {"purpose": c.purpose, "model": c.model, "request": c.request, "response": c.response}
        for c in calls
    ]
    (session / "judge.json").write_text(
        json.dumps(doc, ensure_ascii=False, indent=1, default=str), encoding="utf-8"
    )


def _refused(task: Task, reason: str) -> TaskRun:
    return TaskRun(task.id, "error", "best-of-N", reason, dict(task.inputs), 0, 0, 0, 0.0, 0.0)
