"""One task end to end: plan (if a planner exists), act, replan on a failed step, check.

``run_task`` is a generator of step records returning a ``TaskResult``. It knows nothing of
the spec or of concrete backends: the application layer (``agentcorp.app.runner``) turns a
spec task into a ``TaskInput`` and builds the computer, models, grounder and gate it is given.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agentcorp.actor.budget import BudgetMeter
from agentcorp.actor.loop import Actor, ActorConfig, EpisodeResult, EpisodeTask
from agentcorp.actor.script import parse_step, step_text
from agentcorp.checks import CHECK_GRACE_S, CheckContext, CheckOutcome, evaluate_steps
from agentcorp.grounding.base import Grounder
from agentcorp.llm.untrusted import untrusted_notice, wrap_screen_text
from agentcorp.planner.plan import Plan, Planner, PlanTask
from agentcorp.policy.base import ActionGate
from agentcorp.sandbox.base import Computer
from agentcorp.types import ChatModel, CheckStep, Step, Usage

__all__ = ["TaskInput", "TaskResult", "TaskStatus", "run_task"]

TaskStatus = Literal["pass", "fail", "error", "budget_exceeded"]


@dataclass(frozen=True, slots=True)
class TaskInput:
    """A task with its templates rendered: what the planner and actor are told."""

    task_id: str
    description: str
    role: str = ""
    role_text: str = ""
    sandbox: str = ""
    sandbox_text: str = ""
    steps: Sequence[Any] = ()
    success: Any = None
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskResult:
    """How the task ended, with every check's outcome and what it cost."""

    task_id: str
    status: TaskStatus
    reason: str = ""
    checks: tuple[CheckOutcome, ...] = ()
    usage: Usage = field(default_factory=Usage)
    actions: int = 0
    elapsed_s: float = 0.0
    mode: str = ""
    episode: EpisodeTask | None = None  # the last episode run, for the recording's manifest
    actor_config: ActorConfig | None = None
    #: For a run from a skill: the rendered sequence as it was looked up
    #: (``{"version", "actions", "actor_config"}``), so a decision replay can redo it.
    cached_run: dict[str, Any] | None = None
    #: After a skill diverged: the action (1-based) from which the steps or model took over.
    repaired_at: int | None = None


def run_task(
    task: TaskInput,
    computer: Computer,
    *,
    gate: ActionGate,
    meter: BudgetMeter,
    check_context: CheckContext,
    actor_model: ChatModel | None = None,
    planner: Planner | None = None,
    grounder: Grounder | None = None,
    config: ActorConfig | None = None,
    max_replans: int = 2,
) -> Generator[Step, None, TaskResult]:
    """Plan, act and check one task; inside another generator use ``yield from`` it."""
    t0 = time.monotonic()
    goal = task.description if not task.role_text else f"{task.description}\n\n{task.role_text}"
    plan_task = PlanTask(
        task.task_id,
        task.description,
        role=task.role_text or task.role,
        sandbox=task.sandbox_text or task.sandbox,
        success=_jsonable(task.success),
        suggested_steps=[_jsonable(s) for s in task.steps],
        inputs=dict(task.inputs),
    )
    plan: Plan | None = None
    steps: list[Any] = list(task.steps)
    if planner is not None:
        plan = yield from planner.plan(plan_task)
        steps = list(plan.steps)
    mode = "planned" if planner is not None else "model" if actor_model else "scripted"
    replans = 0
    while True:
        subgoals = plan.subgoals if plan is not None else []
        episode_goal = goal + (
            "\n\nSubgoals:\n" + "\n".join(f"- {g}" for g in subgoals) if subgoals else ""
        )
        actor = Actor(
            computer, gate=gate, model=actor_model, grounder=grounder, meter=meter, config=config
        )
        episode = EpisodeTask(
            task.task_id,
            episode_goal,
            role=task.role,
            sandbox=task.sandbox,
            steps=steps,
            then_model=bool(subgoals),
        )
        result: EpisodeResult = yield from actor.run(episode)
        if (
            result.status == "failed"
            and result.failed_step is not None
            and planner
            and plan is not None
            and replans < max_replans
        ):
            replans += 1
            failed = _describe_step(steps[result.failed_step])
            plan = yield from planner.replan(
                plan_task, plan, failed, _for_planner(result.reason, actor.config.untrusted_nonce)
            )
            steps = list(plan.steps)
            continue
        break
    end = _finish(task, result)
    outcomes: list[CheckOutcome] = []
    if result.status not in ("budget_exceeded", "error") and task.success is not None:
        check_status, records = evaluate_steps(
            task.success, check_context, step=0, grace_s=CHECK_GRACE_S
        )
        yield from records
        outcomes = [_outcome(r) for r in records[:-1]]
        if end[0] == "pass":
            failing = [o for o in outcomes if o.status != "pass"]
            end = (
                check_status,
                ""
                if check_status == "pass"
                else "; ".join(f"{o.name}: {o.detail}" for o in failing[:3]),
            )
    return TaskResult(
        task.task_id,
        end[0],
        end[1],
        tuple(outcomes),
        meter.usage,
        meter.steps,
        time.monotonic() - t0,
        mode,
        episode,
        config or ActorConfig(),
    )


def _finish(task: TaskInput, result: EpisodeResult) -> tuple[TaskStatus, str]:
    if result.status == "done":
        return "pass", ""
    if result.status == "budget_exceeded":
        return "budget_exceeded", result.reason
    if result.status == "error":
        return "error", result.reason
    return "fail", result.reason


def _outcome(r: CheckStep) -> CheckOutcome:
    return CheckOutcome(r.name, r.status, r.detail)


def _describe_step(step: Any) -> str:
    try:
        return step_text(parse_step(step))
    except ValueError:
        return repr(step)


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(by_alias=True, exclude_none=True, mode="json")
    return value


def _for_planner(reason: str, nonce: str) -> str:
    """The failure as the planner gets it: it may quote the screen, so it is marked as data."""
    return f"{wrap_screen_text(reason, nonce, 'actor')}\n\n{untrusted_notice(nonce)}"
