"""Running an objective: the manager plans it, the one run path runs the plan, failures replan.

``run_objective`` asks the manager (``agentcorp.planner.manager``) for a plan, runs its tasks
with ``agentcorp.app.running.run`` (ledger, workers, sessions: nothing else runs tasks), and
when a task fails gives the manager what happened so it may add, change or drop the tasks
that have not run, up to the objective's ``max_rounds``. Each round is a run folder of its
own (``ID/round-N``); the sandboxes' homes carry over from one round to the next, so the
files and databases earlier rounds changed are there for the tasks that follow.

The manager's model calls, its plans and the approval form one recorded session
(``ID/manager``), which ``replay_manager`` decision-replays without a model. Offline, the
company's shipped recording of the manager (``recordings/objective.ID/``) stands in for the
model, as a task's shipped recording does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agentcorp.app.attempt import RunObserver, TaskRun
from agentcorp.app.config import resolve_config
from agentcorp.app.episode import EPISODE
from agentcorp.app.running import load, run
from agentcorp.errors import ConfigError, LLMError, RecordingError, SetupError
from agentcorp.planner.manager import Approve, Manager, ManagerOutcome, TaskReport
from agentcorp.record.replay import ReplayDivergence
from agentcorp.spec import Company, Objective, Task, load_company, load_company_text
from agentcorp.types import Action, ChatModel, ModelCallStep, PlanStep, Step, Usage

__all__ = [
    "ObjectiveReport",
    "manager_task_id",
    "objective_hash",
    "plan_objective",
    "replay_manager",
    "run_objective",
]


@dataclass
class ObjectiveReport:
    """How an objective ended: its status, the plan's rounds and every task run."""

    objective: str
    status: str
    reason: str = ""
    rounds: int = 0
    tasks: list[TaskRun] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    manager_usage: Usage = field(default_factory=Usage)
    #: The manager was the company's shipped recording (offline): its usage is what the
    #: recording cost when it was made, not what this run spent.
    manager_replayed: bool = False
    session: Path | None = None
    run_dir: Path | None = None
    wall_s: float = 0.0

    @property
    def passed(self) -> bool:
        """Every task of the final plan passed."""
        return self.status == "passed"

    @property
    def spent(self) -> Usage:
        """What this run's manager spent (nothing when it was replayed from a recording)."""
        return Usage() if self.manager_replayed else self.manager_usage

    @property
    def tokens(self) -> int:
        """The manager's tokens spent in this run and every task's."""
        return self.spent.total_tokens + sum(t.tokens for t in self.tasks)

    @property
    def cost_usd(self) -> float:
        """The manager's cost in this run and every task's."""
        return self.spent.cost_usd + sum(t.cost_usd for t in self.tasks)

    def to_json(self) -> dict[str, Any]:
        """The objective's entry in ``agentcorp run --json`` (``objectives``)."""
        return {
            "id": self.objective,
            "status": self.status,
            "passed": self.passed,
            "reason": self.reason,
            "problems": self.problems,
            "rounds": self.rounds,
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 6),
            "manager": {
                "replayed": self.manager_replayed,
                "tokens": self.manager_usage.total_tokens,
                "cost_usd": round(self.manager_usage.cost_usd, 6),
            },
            "session": str(self.session) if self.session else None,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "wall_s": round(self.wall_s, 3),
            "plan": self.plan,
            "tasks": [t.to_json() for t in self.tasks],
        }


def manager_task_id(objective_id: str) -> str:
    """The task id the manager's session is recorded under (and shipped recordings found by)."""
    return f"objective.{objective_id}"


def objective_hash(company: Company, objective: Objective) -> str:
    """sha256 of everything the manager is shown (company, prompt, plan schema).

    A change to any of them marks a shipped manager session stale instead of diverging.
    """
    from agentcorp.planner.manager import SYSTEM, PlanShape

    doc = {
        "v": 1,
        "objective": objective.model_dump(mode="json"),
        "company": _company_doc(company),
        # What the model is told besides: the instructions and the plan's schema.
        "system": SYSTEM,
        "schema": PlanShape.model_json_schema(by_alias=True),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _company_doc(company: Company) -> dict[str, Any]:
    data = company.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data.pop("objectives", None)
    return dict(data)


# --- the manager's model and its record -----------------------------------------------------


class _Record:
    """The manager's session: every step numbered and written, usage summed."""

    def __init__(self, recorder: Any, observers: Sequence[RunObserver], task_id: str) -> None:
        self.recorder = recorder
        self.observers = observers
        self.task_id = task_id
        self.n = 0
        self.usage = Usage()

    def drive(self, gen: Any) -> ManagerOutcome:
        while True:
            try:
                step: Step = next(gen)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            step = replace(step, step=self.n)
            self.n += 1
            if isinstance(step, ModelCallStep):
                self.usage = self.usage + step.usage
            if self.recorder is not None:
                self.recorder.write(step)
            for o in self.observers:
                o.step(self.task_id, step)


def _planner_name(company: Company, cfg: Any, client: Any) -> str:
    provider = getattr(client, "provider", None)
    return str(
        cfg.planner_model
        or company.defaults.models.planner
        or getattr(provider, "default_planner_model", "")
        or "planner"
    )


def _model(
    company: Company, objective: Objective, cfg: Any, model: ChatModel | None
) -> tuple[ChatModel | None, str, Any]:
    """The manager's model, its name and what to close: given, configured, or the shipped one."""
    if model is not None:
        return model, _planner_name(company, cfg, model), None
    if cfg.online:
        from agentcorp.app.runner import make_client

        client = make_client(cfg, company.company)
        return client, _planner_name(company, cfg, client), client
    from agentcorp.record.find import find_recording
    from agentcorp.record.replay import RecordedChatModel
    from agentcorp.record.session import open_session

    folder = company.base_dir / "recordings"
    tid = manager_task_id(objective.id)
    path = (
        find_recording(tid, objective_hash(company, objective), folder) if folder.is_dir() else None
    )
    if path is None:
        return None, "", None
    session = open_session(path)
    name = str(session.manifest.get("models", {}).get("planner") or "planner")
    return RecordedChatModel(session), name, None


def _approver(company: Company, observers: Sequence[RunObserver], approver: Any) -> Approve:
    """The company's approver (``policy.approver``) deciding a plan shown to it in full."""
    from agentcorp.policy.approvers import PendingAction, make_approver
    from agentcorp.policy.base import GateContext
    from agentcorp.policy.config import ApproverConfig

    if approver is None:
        spec = company.policy.approver if company.policy is not None else None
        cfg = (
            ApproverConfig(kind=spec.kind, url=spec.url, timeout=spec.timeout)
            if spec is not None
            else ApproverConfig()
        )
        approver = make_approver(cfg)

    def approve(objective_id: str, text: str) -> tuple[bool, str, str]:
        for o in observers:
            o.notice(f"approval needed for objective {objective_id}:\n{text}")
        pending = PendingAction(
            Action("done", summary=text),
            GateContext(manager_task_id(objective_id), "manager", "", "model"),
            rule="objective approval",
            reason=f"the plan of objective {objective_id} needs approval",
        )
        answer = approver.decide(pending)
        return answer.approved, answer.by, answer.reason

    return approve


# --- public --------------------------------------------------------------------------------


def plan_objective(
    path_or_company: str | os.PathLike[str] | Company,
    objective_id: str,
    *,
    inputs: Mapping[str, Any] | None = None,
    model: ChatModel | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    **settings: Any,
) -> ManagerOutcome:
    """The objective's plan, validated, without running it or asking for approval."""
    company = load(path_or_company)
    objective = _objective(company, objective_id, inputs)
    cfg = resolve_config(
        environ=dict(os.environ if environ is None else environ),
        config_file=Path(config_file) if config_file is not None else None,
        **settings,
    )
    chat, name, closing = _model(company, objective, cfg, model)
    if chat is None:
        raise SetupError(_no_model(company, objective))
    try:
        manager = Manager(chat, company, model_name=name)
        return _Record(None, (), "").drive(
            manager.plan(objective.model_copy(update={"approval": False}), inputs)
        )
    finally:
        if closing is not None:
            closing.close()


def _no_model(company: Company, objective: Objective) -> str:
    """Why the objective cannot be planned offline (and what to do)."""
    from agentcorp.record.find import stale_message

    folder = company.base_dir / "recordings"
    stale = (
        stale_message(manager_task_id(objective.id), objective_hash(company, objective), folder)
        if folder.is_dir()
        else None
    )
    return (
        f"objective {objective.id!r}: no model configured and no shipped recording of its "
        "manager; configure a model (--provider/--base-url or XAI_API_KEY)"
        + (f"; {stale}" if stale else "")
    )


def run_objective(
    path_or_company: str | os.PathLike[str] | Company,
    objective_id: str,
    *,
    sessions: str | os.PathLike[str] | None = None,
    inputs: Mapping[str, Any] | None = None,
    observers: Sequence[RunObserver] = (),
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    model: ChatModel | None = None,
    approver: Any = None,
    workers: int | str = 1,
    ray_address: str | None = None,
    episode: str = EPISODE,
    **settings: Any,
) -> ObjectiveReport:
    """Plan the objective, run the plan on the one run path, replan failures; the report.

    ``model`` is the manager's ``ChatModel`` (default: the configured client, else offline the
    company's shipped recording of the manager); ``approver`` an ``Approver`` instead of the
    company's ``policy.approver``. The rest is as for ``agentcorp.run``.
    """
    t0 = time.monotonic()
    company = load(path_or_company)
    objective = _objective(company, objective_id, inputs)
    env = dict(os.environ if environ is None else environ)
    cfg = resolve_config(
        environ=env,
        config_file=Path(config_file) if config_file is not None else None,
        **{k: v for k, v in settings.items() if k != "sessions"},
    )
    temporary = sessions is None
    root = (
        Path(tempfile.mkdtemp(prefix="agentcorp-objective-"))
        if sessions is None
        else Path(sessions)
    ) / objective.id
    report = ObjectiveReport(objective.id, "error", run_dir=root)
    chat, name, closing = _model(company, objective, cfg, model)
    if chat is None:
        raise SetupError(_no_model(company, objective))
    report.manager_replayed = model is None and not cfg.online
    recorder = _recorder(root, company, objective, name)
    rec = _Record(recorder, observers, manager_task_id(objective.id))
    manager = Manager(
        chat, company, model_name=name, approve=_approver(company, observers, approver)
    )
    run_kw = dict(
        observers=observers,
        environ=env,
        config_file=config_file,
        workers=workers,
        ray_address=ray_address,
        episode=episode,
        **settings,
    )
    try:
        _rounds(report, rec, manager, company, objective, inputs, root, run_kw)
    except (LLMError, ReplayDivergence) as exc:
        # The manager's model failed (after the client's own retries): the objective ends
        # here, recorded, with the one-line reason.
        before = f"{report.reason}; then " if report.reason else ""
        report.status, report.reason = "error", f"{before}the manager's model failed: {exc}"
    finally:
        report.manager_usage = rec.usage
        outcome = {"status": "pass" if report.passed else "fail", "reason": report.reason}
        report.session = recorder.finish(outcome, checks=[])
        if closing is not None:
            closing.close()
        report.wall_s = time.monotonic() - t0
        if temporary:
            for i in range(1, report.rounds + 1):
                shutil.rmtree(root / f"round-{i}" / ".agentcorp" / "sandboxes", ignore_errors=True)
    return report


def _objective(company: Company, objective_id: str, inputs: Mapping[str, Any] | None) -> Objective:
    try:
        objective = company.objective(objective_id)
    except KeyError as exc:
        raise ConfigError(f"--objective: {exc.args[0]}") from None
    unknown = sorted(set(inputs or {}) - set(objective.inputs))
    if unknown:
        raise ConfigError(f"--input: objective {objective.id!r} has no input named {unknown[0]!r}")
    return objective


def _recorder(root: Path, company: Company, objective: Objective, name: str) -> Any:
    from agentcorp.record.recorder import SessionRecorder

    folder = root / "manager"
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{root}: holds a run of objective {objective.id!r} already")
    return SessionRecorder(
        folder,
        task_id=manager_task_id(objective.id),
        spec_hash=objective_hash(company, objective),
        sandbox_info={},
        models={"planner": name},
        task_spec={
            "objective": objective.model_dump(mode="json"),
            "company": _company_doc(company),
        },
        extra={"kind": "manager"},
        background=False,
    )


def _rounds(
    report: ObjectiveReport,
    rec: _Record,
    manager: Manager,
    company: Company,
    objective: Objective,
    inputs: Mapping[str, Any] | None,
    root: Path,
    run_kw: dict[str, Any],
) -> None:
    """Plan, run, replan: until every task passed, the plan is refused, or rounds run out."""
    outcome = rec.drive(manager.plan(objective, inputs))
    ran: dict[str, TaskRun] = {}
    prev: Path | None = None
    while True:
        report.rounds += 1
        report.plan = outcome.plan
        if outcome.status != "accepted" or outcome.company is None:
            report.status = outcome.status
            report.reason = outcome.reason
            report.problems = outcome.problems
            return
        folder = root / f"round-{report.rounds}"
        plan_company = _write_plan(folder, outcome.company, company)
        if prev is not None:
            _carry_homes(prev, folder)
        for o in rec.observers:
            o.notice(
                f"objective {objective.id}: round {report.rounds}: "
                f"{len(outcome.to_run)} task(s): {', '.join(outcome.to_run)}"
            )
        result = run(plan_company, sessions=folder, tasks=outcome.to_run, **run_kw)
        prev = folder
        for r in result.results:
            if r.mode != "skipped":
                ran[r.task_id] = r
        report.tasks = [*ran.values()]
        if result.passed:
            report.status, report.reason = "passed", ""
            return
        failed = [r for r in result.results if not r.passed and r.mode != "skipped"]
        report.status = "failed"
        report.reason = "; ".join(f"{r.task_id}: {r.reason or r.status}" for r in failed)
        if report.rounds >= objective.max_rounds:
            return
        reports = [
            TaskReport(
                r.task_id,
                r.status,
                r.reason,
                list(r.checks),
                "" if r.passed else _last_screen(r.session),
            )
            for r in ran.values()
        ]
        tasks = [outcome.company.task(t) for t in ran]
        outcome = rec.drive(manager.replan(objective, inputs, outcome.plan, tasks, reports))


def _last_screen(session: str | None) -> str:
    """What the failed attempt last saw or said: the actor's last words, its error, the page.

    Read from its recorded session (nothing when there is none); the manager gets it as
    untrusted text.
    """
    from agentcorp.record.session import open_session
    from agentcorp.types import ActionStep, ErrorStep

    if not session:
        return ""
    try:
        s = open_session(session)
    except RecordingError:
        return ""
    parts: list[str] = []
    for step in reversed(s.steps()):
        if isinstance(step, ActionStep) and step.action.summary:
            parts.append(f"the actor said: {step.action.summary}")
        elif isinstance(step, ModelCallStep) and step.response.get("content"):
            parts.append(f"the model said: {step.response['content']}")
        elif isinstance(step, ErrorStep):
            parts.append(f"error: {step.message}")
        if parts:
            break
    url = (s.manifest.get("final_state") or {}).get("url")
    if url:
        parts.append(f"page: {url}")
    return "; ".join(parts)[:600]


def _write_plan(folder: Path, plan: Company, company: Company) -> Company:
    """The plan's company as a file in the round's folder (workers load it from there)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plan.yaml"
    data = plan.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    # JSON is YAML: the spec loader reads it like any company file.
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    return load_company(path, base_dir=company.base_dir)


def _carry_homes(prev: Path, folder: Path) -> None:
    """The sandboxes' homes of the last round, for the next: what was done stays done."""
    src = prev / ".agentcorp" / "sandboxes"
    if src.is_dir():
        shutil.copytree(src, folder / ".agentcorp" / "sandboxes", symlinks=True)


# --- replay -----------------------------------------------------------------------------------


def replay_manager(session_path: str | os.PathLike[str]) -> tuple[bool, str, int]:
    """Decision-replay a manager session: the recorded replies, the same validation, same plans.

    Returns (reproduced, what differed or a summary, model calls served). The company the
    manager saw is read from the session (data only: nothing is started).
    """
    from agentcorp.record.replay import RecordedChatModel
    from agentcorp.record.session import open_session

    session = open_session(session_path)
    session.require_complete()
    spec = session.manifest.get("task_spec")
    if session.manifest.get("kind") != "manager" or not isinstance(spec, dict):
        raise RecordingError(f"{session_path}: not a recorded manager session")
    company = load_company_text(
        json.dumps({**spec["company"], "objectives": [spec["objective"]]}),
        "recorded company",
        check_files=False,
    )
    objective = company.objectives[0]
    recorded = [e.step for e in session.events if isinstance(e.step, PlanStep)]
    decisions = [e.step for e in session.events if e.step.kind == "policy"]
    model = RecordedChatModel(session)
    name = str(session.manifest.get("models", {}).get("planner") or "planner")
    answers = iter(decisions)

    def approve(_oid: str, _text: str) -> tuple[bool, str, str]:
        d = next(answers, None)
        ok = d is not None and getattr(d, "decision", "") == "approved"
        return ok, str(getattr(d, "approver", "") or "replay"), "as recorded"

    manager = Manager(model, company, model_name=name, approve=approve, check_files=False)
    replayed: list[dict[str, Any]] = []
    seen: dict[str, Any] = {}
    try:
        for i, step in enumerate(recorded):
            plan = step.plan
            if i == 0:
                out = _Record(None, (), "").drive(manager.plan(objective, None))
            else:
                prior = recorded[i - 1].plan
                ran = [Task.model_validate(seen[t]) for t in plan.get("ran", [])]
                reports = [TaskReport(**_report_args(r)) for r in plan["feedback"]["ran"]]
                nonce = str(plan["feedback"].get("nonce") or "")
                out = _Record(None, (), "").drive(
                    manager.replan(objective, None, prior, ran, reports, nonce or None)
                )
            replayed.append(out.plan)
            seen.update({t["id"]: t for t in plan.get("tasks", []) if isinstance(t, dict)})
    except (ReplayDivergence, KeyError, ValueError):
        pass
    if model.divergence is not None:
        return False, model.divergence, model.served
    for i, (a, b) in enumerate(zip(recorded, replayed, strict=False)):
        if a.plan != b:
            return False, f"plan {i + 1} differs from the recording", model.served
    if len(replayed) != len(recorded):
        return False, f"replayed {len(replayed)} of {len(recorded)} plans", model.served
    try:
        model.assert_complete()
    except ReplayDivergence as exc:
        return False, str(exc), model.served
    return (
        True,
        f"reproduced {len(recorded)} plan(s) from {model.served} model call(s)",
        model.served,
    )


def _report_args(d: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "task_id": d.get("task", ""),
        "status": d.get("status", ""),
        "reason": d.get("reason", ""),
        "checks": list(d.get("checks", [])),
        "last_screen": d.get("last_screen", ""),
    }
