"""The manager: a company objective in, a validated plan of tasks out; replanned when work fails.

The planner model is shown the objective, the roles it may use (titles, goals, instructions),
the sandboxes, the company's existing tasks and the check vocabulary, and replies with a plan
(``PLAN_SHAPE`` in docs/manager.md): new tasks, written like the company YAML's, and uses of
existing tasks. The plan becomes a would-be company (the same company, its tasks replaced by
the plan's, its roles narrowed to the objective's, its budgets capped by the objective's) that
goes through the spec loader's own validation, the one every hand-written file goes through;
every problem goes back to the model, a bounded number of times. The plan's tasks must also
fit the objective's budget together. Approval, when the objective asks for it, is a callback
(the application layer wires the company's approver). Everything is a generator of step
records (``ModelCallStep``, ``PlanStep``, ``PolicyStep``), so the manager's session is recorded
and decision-replayed like any other.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentcorp.llm.structured import OutputModes, output_modes
from agentcorp.llm.untrusted import new_nonce, untrusted_notice, wrap_screen_text
from agentcorp.planner.plan import PlanError, ask_json
from agentcorp.spec import (
    Company,
    Objective,
    SpecError,
    Task,
    load_company_text,
    render_template,
)
from agentcorp.spec import models as spec
from agentcorp.types import ChatModel, PlanStep, PolicyStep, Step

__all__ = [
    "BUDGET_FIELDS",
    "Approve",
    "Manager",
    "ManagerOutcome",
    "PlanShape",
    "TaskReport",
    "render_goal",
    "render_plan",
]

BUDGET_FIELDS = ("steps", "tokens", "usd", "wall_clock")

#: ``approve(objective_id, rendered_plan)`` → (approved, by whom, why).
Approve = Callable[[str, str], tuple[bool, str, str]]


class UseTask(BaseModel):
    """A use of one of the company's existing tasks, as it is (inputs may be overridden)."""

    model_config = ConfigDict(extra="forbid")

    use: str = Field(description="Id of an existing task of the company.")
    inputs: dict[str, spec.Scalar] = Field(
        default_factory=dict, description="Input values replacing the task's own."
    )
    depends_on: list[str] | None = Field(
        default=None, description="Replaces the task's depends_on (ids in this plan)."
    )


class PlanShape(BaseModel):
    """The JSON the manager's model writes: its schema is what the model is given."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(default="", description="One or two sentences: the plan's idea.")
    tasks: list[spec.Task | UseTask] = Field(
        description="Tasks to run, new ones written like the company YAML's, or uses of "
        "existing ones ({use: ID}); depends_on orders them."
    )


SYSTEM = """\
You are the manager of a company whose work is done by AI agents on computers. Turn the \
objective into a plan: a list of tasks, each for one role, on a sandbox, with a description \
the role's agent can act on, the inputs its {inputs.NAME} variables use, depends_on (ids of \
tasks that must pass first), success checks that prove it was done (prefer deterministic \
checks: file_contains, sqlite, http, dom, url_matches, command), and budgets. Reuse the \
company's existing tasks with {"use": "ID"} when one does the job. Reply with JSON only, \
matching the schema. Secrets are written as ${secrets.NAME}; never invent their values."""


@dataclass
class TaskReport:
    """What happened to one task of the plan (what a replan is told)."""

    task_id: str
    status: str
    reason: str = ""
    checks: list[dict[str, str]] = field(default_factory=list)
    last_screen: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, as the model sees it and the record keeps it."""
        return {
            "task": self.task_id,
            "status": self.status,
            "reason": self.reason,
            "checks": self.checks,
            "last_screen": self.last_screen,
        }


@dataclass
class ManagerOutcome:
    """The manager's decision: a plan to run (``company`` holds exactly its tasks) or not.

    ``status`` is ``accepted``, ``invalid`` (no valid plan within the re-asks; ``problems``
    lists the last ones) or ``denied`` (the approver said no; ``reason`` says why).
    """

    status: Literal["accepted", "invalid", "denied"]
    company: Company | None = None
    to_run: list[str] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    problems: list[str] = field(default_factory=list)


def render_goal(objective: Objective, inputs: Mapping[str, Any] | None = None) -> str:
    """The objective's goal with its inputs (run-time values over the declared ones)."""
    return render_template(objective.goal, {**objective.inputs, **dict(inputs or {})})


def render_plan(plan: Mapping[str, Any]) -> str:
    """A plan for a person: one paragraph per task, in order, with role, needs and checks."""
    lines = [f"Plan for objective {plan.get('objective', '?')}: {plan.get('summary', '')}".strip()]
    for t in plan.get("tasks", []):
        deps = ", ".join(t.get("depends_on", [])) or "nothing"
        what = str(t.get("description", ""))
        # An unvalidated plan (the model's, as written) may name inputs it lacks.
        with contextlib.suppress(KeyError, TypeError):
            what = render_template(what, t.get("inputs") or {})
        lines.append(f"- {t.get('id')} ({t.get('role')}), after {deps}: {what}")
        if t.get("inputs"):
            lines.append(f"    inputs: {json.dumps(t['inputs'], sort_keys=True)}")
        if t.get("success") is not None:
            lines.append(f"    passes when: {json.dumps(t['success'], sort_keys=True)}")
        if t.get("budgets"):
            lines.append(f"    budgets: {json.dumps(t['budgets'], sort_keys=True)}")
    return "\n".join(lines)


class Manager:
    """Plans objectives of ``company`` with a ``ChatModel`` (the planner model)."""

    def __init__(
        self,
        model: ChatModel,
        company: Company,
        *,
        model_name: str,
        max_reasks: int = 3,
        temperature: float | None = 0.0,
        modes: OutputModes | None = None,
        max_tokens: int | None = None,
        approve: Approve | None = None,
        check_files: bool = True,
    ) -> None:
        self.model = model
        self.company = company
        self.model_name = model_name
        self.max_reasks = max_reasks
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.approve = approve
        # Whether files copied into sandboxes must exist (a replay reads no company folder).
        self.check_files = check_files
        self.modes = modes if modes is not None else output_modes(model)
        self.revision = 0

    # --- public --------------------------------------------------------------------------

    def plan(
        self, objective: Objective, inputs: Mapping[str, Any] | None = None
    ) -> Generator[Step, None, ManagerOutcome]:
        """Ask for the objective's first plan, validated and (if asked) approved."""
        prompt = self._context(objective, inputs)
        return self._decide(objective, prompt, done=[], feedback=None)

    def replan(
        self,
        objective: Objective,
        inputs: Mapping[str, Any] | None,
        current: Mapping[str, Any],
        ran: Sequence[Task],
        reports: Sequence[TaskReport],
        nonce: str | None = None,
    ) -> Generator[Step, None, ManagerOutcome]:
        """Ask for the tasks still to run after some failed: add, change or drop what has not run.

        ``current`` is the plan that ran (as recorded); ``ran`` the tasks that ran (kept in the
        would-be company, unchangeable, so depends_on may name them); ``reports`` what happened.
        What happened holds text read from screens and files, so it reaches the model inside
        an untrusted block (``agentcorp.llm.untrusted``) marked with ``nonce`` (default: a
        fresh one; a replay passes the recorded one).
        """
        ran_ids = [t.id for t in ran]
        nonce = nonce or new_nonce()
        feedback = {
            "ran": [r.to_json() for r in reports],
            "not_run": [t["id"] for t in current.get("tasks", []) if t.get("id") not in ran_ids],
            "nonce": nonce,
        }
        happened = wrap_screen_text(json.dumps(feedback["ran"], sort_keys=True), nonce, "report")
        prompt = (
            f"{self._context(objective, inputs)}\n\nThe plan so far:\n"
            f"{json.dumps(current.get('tasks', []), sort_keys=True)}\n\n"
            f"What happened:\n{happened}\n\n"
            f"Tasks that ran cannot change or run again: {json.dumps(ran_ids)}. Reply with the "
            "complete list of tasks still to run (new ones with new ids, changed or kept ones "
            "that have not run); depends_on may name tasks that passed."
        )
        system = f"{SYSTEM}\n\n{untrusted_notice(nonce)}"
        return self._decide(objective, prompt, done=list(ran), feedback=feedback, system=system)

    # --- the decision ----------------------------------------------------------------------

    def _decide(
        self,
        objective: Objective,
        prompt: str,
        done: list[Task],
        feedback: dict[str, Any] | None,
        system: str = SYSTEM,
    ) -> Generator[Step, None, ManagerOutcome]:
        base: list[dict[str, Any]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": prompt},
        ]
        last: list[str] = []

        def read(raw: str) -> tuple[Company, list[dict[str, Any]], str] | str:
            found = self._read(objective, raw, done)
            if isinstance(found, list):
                last[:] = found
                return "the plan has these problems: " + "; ".join(found)
            return found

        try:
            company, tasks, summary = yield from ask_json(
                self.model,
                base,
                PlanShape.model_json_schema(by_alias=True),
                read,
                model_name=self.model_name,
                modes=self.modes,
                max_reasks=self.max_reasks,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
                name="manager",
                who=f"manager for objective {objective.id!r}",
            )
        except PlanError as exc:
            return ManagerOutcome("invalid", reason=str(exc), problems=last or [str(exc)])
        plan: dict[str, Any] = {
            "objective": objective.id,
            "summary": summary,
            "round": self.revision + 1,
            "ran": [t.id for t in done],
            "tasks": tasks,
        }
        if feedback is not None:
            plan["feedback"] = feedback
        yield PlanStep(0, time.time(), plan, self.revision)
        self.revision += 1
        to_run = [t["id"] for t in tasks]
        if objective.approval:
            approved, by, why = self._ask_approval(objective.id, plan)
            yield PolicyStep(
                0,
                time.time(),
                "approved" if approved else "rejected",
                rule=f"objective {objective.id} needs approval",
                approver=by,
            )
            if not approved:
                return ManagerOutcome("denied", company, to_run, plan, reason=why)
        return ManagerOutcome("accepted", company, to_run, plan)

    def _ask_approval(self, objective_id: str, plan: Mapping[str, Any]) -> tuple[bool, str, str]:
        if self.approve is None:
            return False, "none", "the objective needs approval and no approver is configured"
        return self.approve(objective_id, render_plan(plan))

    # --- reading a plan ------------------------------------------------------------------

    def _read(
        self, objective: Objective, raw: str, done: list[Task]
    ) -> tuple[Company, list[dict[str, Any]], str] | list[str]:
        """The would-be company and the plan's tasks, or every problem (for the model)."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            return [f"not JSON: {exc}"]
        if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
            return ["the reply must be an object with a 'tasks' list"]
        unknown = sorted(set(data) - {"summary", "tasks"})
        if unknown:
            return [f"unknown key {unknown[0]!r} (allowed: summary, tasks)"]
        summary = data.get("summary", "")
        problems: list[str] = []
        tasks = [self._expand(i, e, problems) for i, e in enumerate(data["tasks"])]
        if problems:
            return problems
        would_be = self._would_be(objective, done, tasks)
        try:
            company = load_company_text(
                json.dumps(would_be),
                "plan",
                base_dir=self.company.base_dir,
                check_files=self.check_files,
            )
        except SpecError as exc:
            return [_issue_text(i.path, i.message, len(done), tasks) for i in exc.issues]
        problems = _over_budget(objective, company.tasks)
        if problems:
            return problems
        return company, tasks, summary if isinstance(summary, str) else ""

    def _expand(self, i: int, entry: Any, problems: list[str]) -> dict[str, Any]:
        """A plan entry as a task mapping: a use of an existing task is copied from the company."""
        if not isinstance(entry, dict):
            problems.append(f"tasks[{i}]: a task is an object, got {type(entry).__name__}")
            return {}
        if "use" not in entry:
            return entry
        extra = sorted(set(entry) - {"use", "inputs", "depends_on"})
        if extra:
            problems.append(f"tasks[{i}]: a use takes only use, inputs and depends_on, not {extra}")
            return {}
        try:
            task = self.company.task(str(entry["use"]))
        except KeyError as exc:
            problems.append(f"tasks[{i}].use: {exc.args[0]}")
            return {}
        out = task.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        if isinstance(entry.get("inputs"), dict):
            out["inputs"] = {**task.inputs, **entry["inputs"]}
        if entry.get("depends_on") is not None:
            out["depends_on"] = entry["depends_on"]
        return dict(out)

    def _would_be(
        self, objective: Objective, done: list[Task], tasks: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The company as it would be with this plan: what the spec loader validates."""
        data = self.company.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        data.pop("objectives", None)
        data["tasks"] = [
            t.model_dump(mode="json", by_alias=True, exclude_defaults=True) for t in done
        ] + tasks
        if objective.roles:
            data["roles"] = {k: v for k, v in data["roles"].items() if k in objective.roles}
        if objective.budgets is not None:
            caps = dict(data.get("defaults", {}).get("budgets", {}))
            for name in BUDGET_FIELDS:
                mine = getattr(objective.budgets, name)
                if mine is not None and (caps.get(name) is None or mine < caps[name]):
                    caps[name] = mine
            data.setdefault("defaults", {})["budgets"] = caps
        return dict(data)

    # --- what the model is told ----------------------------------------------------------

    def _context(self, objective: Objective, inputs: Mapping[str, Any] | None) -> str:
        c = self.company
        roles = {
            k: {
                "title": r.title,
                "goal": r.goal,
                "instructions": r.instructions,
                "sandbox": r.sandbox,
            }
            for k, r in c.roles.items()
            if not objective.roles or k in objective.roles
        }
        sandboxes = {
            k: {
                "kind": s.kind,
                "apps": [a.name for a in s.apps],
                "files": sorted(s.files),
                "start_url": s.start_url,
            }
            for k, s in c.sandboxes.items()
        }
        existing = [
            {
                "id": t.id,
                "role": t.role,
                "description": t.description,
                "inputs": t.inputs,
                "depends_on": t.depends_on,
            }
            for t in c.tasks
        ]
        budget = (
            objective.budgets.model_dump(mode="json", exclude_none=True)
            if objective.budgets is not None
            else {}
        )
        parts = [
            f"Company {c.company}: {c.description}".strip(),
            f"Objective {objective.id}: {render_goal(objective, inputs)}",
            f"Roles you may use: {json.dumps(roles, sort_keys=True)}",
            f"Sandboxes: {json.dumps(sandboxes, sort_keys=True)}",
            f"Existing tasks (reuse with use): {json.dumps(existing, sort_keys=True)}",
            f"Success checks: {', '.join(spec.LEAF_CHECKS)}, combined with all / any / not.",
            f"Step actions for scripted steps: {', '.join(spec.STEP_KINDS)}.",
        ]
        if budget:
            parts.append(
                f"Budget of the whole plan (every task sets its part; together they fit): "
                f"{json.dumps(budget, sort_keys=True)}"
            )
        return "\n".join(parts)


_TASK_PATH = re.compile(r"^tasks\[(\d+)\]")


def _issue_text(path: str, message: str, offset: int, tasks: list[dict[str, Any]]) -> str:
    """A validator issue about the would-be company, named by the plan's own task."""
    m = _TASK_PATH.match(path)
    if m is None:
        return f"{path}: {message}" if path else message
    i = int(m.group(1)) - offset
    if i < 0:
        return f"{path}: {message}"
    tid = tasks[i].get("id") if i < len(tasks) else None
    named = f"tasks[{i}]" + (f" ({tid})" if isinstance(tid, str) else "")
    return f"{named}{path[m.end() :]}: {message}"


def _over_budget(objective: Objective, tasks: Sequence[Task]) -> list[str]:
    """The plan's tasks must fit the objective's budget together, each naming its part."""
    if objective.budgets is None:
        return []
    problems = []
    for name in BUDGET_FIELDS:
        cap = getattr(objective.budgets, name)
        if cap is None:
            continue
        parts = [(t.id, getattr(t.budgets, name) if t.budgets is not None else None) for t in tasks]
        missing = [tid for tid, v in parts if v is None]
        if missing:
            problems.append(
                f"task {missing[0]!r} sets no budgets.{name}: the objective's {name} budget of "
                f"{cap:g} is shared by its tasks, so each task sets its part"
            )
            continue
        total = sum(float(v) for _, v in parts if v is not None)
        if total > cap:
            problems.append(
                f"the tasks' budgets.{name} add up to {total:g}, over the objective's budget "
                f"of {cap:g}"
            )
    return problems
