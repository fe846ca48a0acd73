"""One task instance run to its end: attempts, retries, and the observers of its step stream.

The task runner yields step records; observers consume them. The session recorder is one
observer, attached per attempt; a progress display (and later a web console) subscribes
the same way, by passing a ``RunObserver`` to ``agentcorp.run(observers=[...])``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentcorp.actor.runner import TaskResult
from agentcorp.app.runner import TaskRunner, model_names, task_input
from agentcorp.errors import AgentcorpError, SetupError
from agentcorp.spec import Company, Task, render_success
from agentcorp.types import ActionStep, ModelCallStep, Step, Usage

__all__ = [
    "RunObserver",
    "SessionObserver",
    "TaskRun",
    "instance_of",
    "path_taken",
    "run_attempt",
    "run_instance",
]

_PATHS = {
    "scripted": "steps",
    "planned": "model",
    "model": "model",
    "recording": "recording",
    "skill": "skill",
    "none": "nothing to run",
    "skipped": "skipped",
}


def path_taken(mode: str, repaired_at: int | None = None) -> str:
    """The user-facing name of how a task ran: skill, steps, recording or model.

    After a skill diverged at action k and the model (or the steps) took over
    (``skill+model``), it reads ``model (skill repaired at step k)``.
    """
    parts = mode.split("+")
    if parts[0] == "skill" and len(parts) > 1:
        rest = ", then ".join(_PATHS.get(p, p) for p in parts[1:])
        at = f" at step {repaired_at}" if repaired_at is not None else ""
        return f"{rest} (skill repaired{at})"
    return ", then ".join(_PATHS.get(part, part) for part in parts)


@dataclass
class TaskRun:
    """One task instance of a run and how it ended (a row of the ``RunReport``).

    ``inputs`` are the instance's input values (the task's own, overridden by run-time
    ones). ``attempts`` counts the attempts run for it, across worker losses and resumes.
    """

    task_id: str
    status: str
    mode: str = ""
    reason: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    actions: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    session: str | None = None
    checks: list[dict[str, str]] = field(default_factory=list)
    #: After its skill diverged: the action (1-based) from which the steps or model took over.
    repaired_at: int | None = None
    #: The instance's id in a batch (``task#n``, one per input row); empty for a lone task.
    instance: str = ""
    # False when a model call had no known price: ``cost_usd`` then counts only the priced
    # ones and reports show the cost as unknown, never as a plain figure.
    cost_known: bool = True

    @property
    def name(self) -> str:
        """How reports name it: the instance id in a batch, else the task id."""
        return self.instance or self.task_id

    @property
    def passed(self) -> bool:
        """The instance passed its checks."""
        return self.status == "pass"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the ``--json`` report's per-task row)."""
        d = asdict(self)
        d["id"] = d.pop("task_id")
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TaskRun:
        """The inverse of ``to_json``."""
        d = dict(d)
        d["task_id"] = d.pop("id")
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class RunObserver:
    """Subscribes to a run: notices, attempts starting and ending, every step record.

    Subclass and override what you need; every method is a no-op here. Observers are called
    in the process that runs the attempt (steps of worker processes are not forwarded) and
    ``task_finished`` in the coordinator, once per task instance.
    """

    def run_started(self, plan: Any) -> None:
        """The run is about to start (``agentcorp.app.running.RunPlan``: tasks, modes, where)."""

    def notice(self, message: str) -> None:
        """A one-line notice (generated secrets by name, live view addresses, workers)."""

    def attempt_started(self, task_id: str, mode: str, attempt: int) -> None:
        """An attempt of ``task_id`` starts, running by ``mode``."""

    def step(self, task_id: str, step: Step) -> None:
        """A step record of the running attempt."""

    def attempt_ended(self, task_id: str, result: TaskResult, session: Path | None) -> None:
        """An attempt ended (``session``: its recorded folder)."""

    def task_finished(self, run: TaskRun) -> None:
        """A task instance ended for good (passed, failed, or skipped)."""


def instance_of(task: Task, inputs: Mapping[str, Any] | None) -> Task:
    """``task`` with run-time ``inputs`` over its own (the same task when there are none)."""
    if not inputs:
        return task
    return task.model_copy(update={"inputs": {**task.inputs, **inputs}})


def _session_folder(root: Path, task_id: str, attempt: int) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    folder = root / task_id / f"{stamp}-a{attempt}"
    n = 1
    while folder.exists():
        n += 1
        folder = root / task_id / f"{stamp}-a{attempt}-{n}"
    return folder


class SessionObserver:
    """Records one attempt as a session folder (``agentcorp.record``): an observer of steps."""

    def __init__(self, runner: TaskRunner, task: Task, attempt: int, root: Path) -> None:
        from agentcorp.record.recorder import SessionRecorder
        from agentcorp.spec import task_spec_hash

        company = runner.company
        self.runner, self.task = runner, task
        self.folder = _session_folder(root, task.id, attempt)
        sb_name = company.task_sandbox(task)
        sb = company.sandboxes[sb_name]
        self.recorder = SessionRecorder(
            self.folder,
            task_id=task.id,
            spec_hash=task_spec_hash(company, task),
            sandbox_info={
                "name": sb_name,
                "kind": sb.kind,
                "screen": list(sb.screen),
                "apps": [a.name for a in sb.apps],
                "start_url": sb.start_url,
            },
            models={
                **model_names(runner.config, company, task, runner.client),
                "endpoint": runner.config.describe() if runner.client else "none",
            },
            secrets=runner.secret_list,
            budgets=task.budgets.model_dump(mode="json") if task.budgets else {},
            task_spec=_recorded_spec(task),
            extra={
                "attempt": attempt,
                "mode": runner.mode_for(task),
                **(
                    {"company_file": str(Path(company.source).resolve())}
                    if company.source is not None
                    else {}
                ),
            },
        )

    def step(self, step: Step) -> None:
        """Write one step record."""
        self.recorder.write(step)

    def abort(self) -> None:
        """Drop the unfinished session (it stays visibly incomplete)."""
        self.recorder.abort()

    def aborted(self, why: str) -> None:
        """Close the session with outcome ``aborted`` (Ctrl-C, SIGTERM): what ran is kept."""
        self.recorder.finish_aborted(why, **_audit_extra(self.runner))

    def error(self, exc: BaseException) -> None:
        """Close the session as an environment error."""
        self.recorder.finish({"status": "error", "reason": str(exc)}, **_audit_extra(self.runner))

    def finish(self, result: TaskResult) -> None:
        """Close the session with the result and what replay and regrade need."""
        runner, task = self.runner, self.task
        extra: dict[str, Any] = _audit_extra(runner)
        if result.episode is not None and result.actor_config is not None:
            from agentcorp.record.episode import episode_manifest

            extra.update(episode_manifest(result.episode, result.actor_config))
            extra["episode"]["then_model"] = result.episode.then_model
        if result.cached_run is not None:
            # The cached actions as looked up: a decision replay redoes them before the
            # episode that took over (``agentcorp.record.episode.loop_runner``).
            extra["cached_run"] = result.cached_run
        if result.mode == "planned":
            # Enough to re-run planner + actor (``agentcorp.actor.runner.run_task``) in a
            # decision replay of a planned session, not only the last episode.
            names = model_names(runner.config, runner.company, task, runner.client)
            extra["run_task"] = {
                "task": asdict(task_input(runner.company, task)),
                "planner_model": names["planner"],
                "max_replans": runner.config.max_replans,
            }
        if runner.final_state is not None and task.success is not None:
            # The files and URL the checks read, so ``replay --mode regrade`` re-checks them.
            from agentcorp.record.recorder import capture_final_state

            home, url = runner.final_state
            capture_final_state(self.recorder, task.success, home, url)
        self.recorder.finish({"status": result.status, "reason": result.reason}, **extra)


def _recorded_spec(task: Task) -> dict[str, Any]:
    """The task as the manifest keeps it: its checks as this instance ran them.

    Inputs are filled in, so a regrade re-evaluates what was checked, not the template.
    """
    doc: dict[str, Any] = task.model_dump(by_alias=True, exclude_none=True, mode="json")
    if task.success is not None:
        doc["success"] = render_success(task)
    return doc


def _audit_extra(runner: TaskRunner) -> dict[str, Any]:
    """The run's audit log and its head hash when the session ends (``verify --head``)."""
    info = runner.audit_info()
    return {"audit": info} if info else {}


@dataclass
class _Spent:
    """What an attempt used so far (kept when it ends in an error)."""

    usage: Usage = field(default_factory=Usage)
    actions: int = 0
    t0: float = field(default_factory=time.monotonic)


def _drain(
    gen: Any,
    task_id: str,
    spent: _Spent,
    rec: SessionObserver | None,
    observers: Sequence[RunObserver],
    cancel: Any = None,
) -> TaskResult:
    """Feed every step of the episode to the recorder and observers; its result.

    ``cancel`` (a ``threading.Event``), once set, ends the attempt between two steps as
    cancelled (best-of-N: another attempt passed first).
    """
    while True:
        if cancel is not None and cancel.is_set():
            gen.close()  # the loop's own cleanup runs (its sandbox session ends)
            return TaskResult(task_id, "fail", "cancelled: another attempt passed first")
        try:
            step = next(gen)
        except StopIteration as stop:
            result: TaskResult = stop.value
            return result
        if isinstance(step, ModelCallStep):
            spent.usage = spent.usage + step.usage
        elif isinstance(step, ActionStep):
            spent.actions += 1
        if rec is not None:
            rec.step(step)
        for o in observers:
            o.step(task_id, step)


def run_attempt(
    runner: TaskRunner,
    task: Task,
    attempt: int = 1,
    observers: Sequence[RunObserver] = (),
    cancel: Any = None,
) -> tuple[TaskResult, Path | None]:
    """Run one attempt of ``task``, recorded under ``runner.config.sessions`` when set.

    ``cancel`` (a ``threading.Event``) stops the attempt between two steps once set: it
    fails as cancelled (best-of-N: another attempt passed first).
    """
    rec = (
        SessionObserver(runner, task, attempt, runner.config.sessions)
        if runner.config.sessions is not None
        else None
    )
    for o in observers:
        o.attempt_started(task.id, runner.mode_for(task), attempt)
    runner.final_state = None
    gen = runner.run(task, attempt)
    # What the attempt spent so far: a task that errors still reports the tokens, mode and
    # time it used (the planner may have spent plenty before the error).
    spent = _Spent()
    try:
        result = _drain(gen, task.id, spent, rec, observers, cancel)
    except SetupError as exc:
        if rec is not None:
            rec.error(exc)
        raise
    except AgentcorpError as exc:
        result = TaskResult(
            task.id,
            "error",
            f"{type(exc).__name__}: {exc}",
            usage=spent.usage,
            actions=spent.actions,
            elapsed_s=time.monotonic() - spent.t0,
            mode=runner.mode_for(task),
        )
    except KeyboardInterrupt as exc:
        if rec is not None:
            rec.aborted(str(exc) or "interrupted")
        raise
    except BaseException:
        if rec is not None:
            rec.abort()
        raise
    if rec is not None:
        rec.finish(result)
    folder = rec.folder if rec is not None else None
    for o in observers:
        o.attempt_ended(task.id, result, folder)
    return result, folder


def run_instance(
    runner: TaskRunner,
    task: Task,
    observers: Sequence[RunObserver] = (),
    *,
    first_attempt: int = 1,
) -> TaskRun:
    """Run ``task`` (an instance: ``instance_of``) until it passes or its retries run out.

    The spec's ``retry.max_attempts`` applies here, whatever runs the task; a budget
    overrun is never retried. ``first_attempt`` numbers the attempts of a task run again
    after a lost worker, so their sessions do not overwrite earlier ones.
    """
    if task.attempts is not None and task.attempts.n > 1:
        from agentcorp.app.best_of_n import run_best_of_n

        return run_best_of_n(runner, task, observers, first_attempt=first_attempt)
    tries = max(1, int(task.retry.max_attempts))
    result: TaskResult | None = None
    session: Path | None = None
    n = 0
    start = _HomeSnapshot.take(runner, task) if tries > 1 else None
    try:
        for n in range(1, tries + 1):
            if n > 1:
                time.sleep(float(task.retry.backoff))
                if start is not None:
                    start.restore()
            result, session = run_attempt(runner, task, first_attempt + n - 1, observers)
            if result.status in ("pass", "budget_exceeded"):
                break
    finally:
        if start is not None:
            start.drop()
    assert result is not None
    return TaskRun(
        task.id,
        result.status,
        result.mode,
        result.reason,
        dict(task.inputs),
        n,
        result.actions,
        result.usage.total_tokens,
        result.usage.cost_usd,
        result.elapsed_s,
        str(session) if session is not None else None,
        [{"name": c.name, "status": c.status, "detail": c.detail} for c in result.checks],
        result.repaired_at,
        cost_known=result.usage.cost_known,
    )


class _HomeSnapshot:
    """A desktop sandbox's home as it was before a task's first attempt, for its retries.

    A retry starts where the first attempt did, not amid a failed attempt's half-done work
    (a line typed and saved twice): the home is put back and the desktop reopened, so apps
    start afresh from those files. Only for desktops without services, whose state is all in
    the home (a service's state lives outside it, and its effects are keyed per step).
    """

    def __init__(self, runner: TaskRunner, name: str, copy: Path) -> None:
        self.runner, self.name, self.copy = runner, name, copy

    @classmethod
    def take(cls, runner: TaskRunner, task: Task) -> _HomeSnapshot | None:
        """Copy the home of ``task``'s sandbox, when a retry can be put back to it."""
        import shutil
        import tempfile

        name = runner.company.task_sandbox(task)
        spec = runner.company.sandboxes[name]
        home = runner.sandboxes.home_of(name)
        if spec.kind != "desktop" or spec.services or home is None:
            return None
        copy = Path(tempfile.mkdtemp(prefix="agentcorp-retry-")) / "home"
        shutil.copytree(home, copy, symlinks=True)
        return cls(runner, name, copy)

    def restore(self) -> None:
        """Put the home back as it was before the first attempt; the desktop reopens."""
        self.runner.sandboxes.replace_home(self.name, self.copy)

    def drop(self) -> None:
        """Forget the copy."""
        import shutil

        shutil.rmtree(self.copy.parent, ignore_errors=True)


def company_task(company: Company, task_id: str) -> Task:
    """The task ``task_id`` of ``company`` (``ConfigError`` naming the id when absent)."""
    from agentcorp.errors import ConfigError

    try:
        return company.task(task_id)
    except KeyError as exc:
        raise ConfigError(f"--task: {exc.args[0]}") from None
