"""One company's task runner: model client, policy gate, audit log, budgets, mode choice.

Everything is built from a resolved ``RunConfig`` and a loaded ``Company``; the actor,
planner and checks only ever see the ABCs. ``TaskRunner.run`` runs one attempt of one task
as a generator of step records (the recording format) returning its ``TaskResult``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from agentcorp.actor.budget import BudgetMeter, Budgets
from agentcorp.actor.loop import ActorConfig
from agentcorp.actor.runner import TaskInput, TaskResult, run_task
from agentcorp.app.config import LiveViewSettings, RunConfig, default_cache_dir
from agentcorp.app.sandboxes import Sandboxes, check_context
from agentcorp.checks import CHECK_GRACE_S, CheckContext, evaluate_steps
from agentcorp.errors import ConfigError
from agentcorp.grounding.base import Grounder
from agentcorp.planner.plan import Planner
from agentcorp.policy.base import ActionGate
from agentcorp.sandbox.base import Computer
from agentcorp.spec import (
    Company,
    Task,
    effective_models,
    effective_policy,
    render_description,
    render_success,
    render_template,
    task_input_names,
    task_skill_hash,
    task_spec_hash,
)
from agentcorp.types import ActionStep, Step

__all__ = [
    "TaskRunner",
    "audit_path",
    "budgets_of",
    "make_client",
    "make_gate",
    "model_names",
    "new_run_id",
    "open_audit",
    "secret_values",
    "task_input",
]


def make_client(config: RunConfig, company_name: str = "") -> Any:
    """One ``OpenAIClient`` for the whole run (shared pool and usage meter), or ``None``."""
    if not config.online:
        return None
    from agentcorp.llm.client import OpenAIClient
    from agentcorp.llm.providers import provider_named

    provider = provider_named(config.provider, config.base_url)
    key = config.api_key.get_secret_value() if config.api_key is not None else ""
    return OpenAIClient(
        provider,
        api_key=key,
        timeout=config.timeout_s,
        timeout_source=config.timeout_source,
        company=company_name,
    )


def model_names(config: RunConfig, company: Company, task: Task, client: Any) -> dict[str, str]:
    """Planner/actor/judge model names: flags over the spec over the provider's defaults."""
    spec = effective_models(company, task)
    provider = getattr(client, "provider", None)
    planner = config.planner_model or spec.planner or getattr(provider, "default_planner_model", "")
    actor = config.actor_model or spec.actor or getattr(provider, "default_actor_model", "")
    return {"planner": planner or "", "actor": actor or "", "judge": spec.judge or planner or ""}


# --- policy, budgets, task text -----------------------------------------------------------


def secret_values(company: Company, environ: Mapping[str, str] | None = None) -> Any:
    """The run's ``SecretVault`` (values from the environment), or ``None`` with no secrets."""
    from agentcorp.policy.config import secrets_from_spec
    from agentcorp.policy.secrets import SecretVault

    specs = secrets_from_spec(company.secrets)
    return SecretVault.from_env(specs, environ) if specs else None


def make_gate(
    company: Company,
    task: Task,
    vault: Any,
    audit: Any = None,
    computer: Computer | None = None,
) -> ActionGate:
    """The real policy gate for ``task`` (company → role → sandbox policy, the secrets' rules).

    ``audit`` is the run's ``AuditLog`` (or a path); ``computer`` is the task's sandbox, read
    by the gate for what the loop left unknown (focused window, field, page URL, text at a
    point when the backend offers ``text_at``).
    """
    from agentcorp.policy.factory import build_gate

    return build_gate(
        effective_policy(company, task),
        company.secrets,
        vault=vault,
        audit=audit,
        scope=task.id,
        computer=computer,
    )


def new_run_id() -> str:
    """A run id: UTC time to the second and 6 random hex digits (sortable, unique enough)."""
    import secrets as _random

    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{_random.token_hex(3)}"


def audit_path(config: RunConfig, run_id: str) -> Path:
    """Where a run's audit log goes.

    ``--audit`` (a file, or a folder to put it in), else beside the sessions, else a per-run
    folder under the system's temp directory.
    """
    name = f"audit-{run_id}.jsonl"
    if config.audit is not None:
        return config.audit / name if config.audit.is_dir() else config.audit
    if config.sessions is not None:
        return config.sessions / name
    return Path(tempfile.gettempdir()) / "agentcorp-runs" / run_id / "audit.jsonl"


def open_audit(company: Company, config: RunConfig, vault: Any, run_id: str) -> Any:
    """The run's ``AuditLog``, opened with a first ``run`` entry.

    ``ConfigError`` when it cannot be written: a run that cannot leave a trace does not start.
    """
    from agentcorp.policy.audit import AuditLog

    path = audit_path(config, run_id)
    log = AuditLog(path, run_id=run_id, redactor=vault.redactor() if vault is not None else None)
    try:
        log.append(
            "run",
            event="start",
            company=company.company,
            secrets=list(vault.names) if vault is not None else [],
            generated_secrets=list(vault.generated) if vault is not None else [],
        )
    except OSError as exc:
        log.close()
        where = "--audit" if config.audit is not None else "audit log"
        raise ConfigError(f"{where}: cannot write {path}: {exc.strerror or exc}") from None
    return log


def budgets_of(spec: Any) -> Budgets:
    """The spec's budgets as meter limits."""
    if spec is None:
        return Budgets()
    return Budgets(steps=spec.steps, tokens=spec.tokens, usd=spec.usd, wall_clock_s=spec.wall_clock)


def _render(value: Any, inputs: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return render_template(value, inputs)
    if isinstance(value, Mapping):
        return {k: _render(v, inputs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_render(v, inputs) for v in value]
    return value


def task_input(company: Company, task: Task) -> TaskInput:
    """The task as the planner and actor see it, templates rendered."""
    role = company.roles[task.role]
    sandbox_name = company.task_sandbox(task)
    sandbox = company.sandboxes[sandbox_name]
    steps = [
        _render(s.model_dump(by_alias=True, exclude_none=True, mode="json"), task.inputs)
        for s in task.steps or []
    ]
    role_text = (
        f"You are the {role.title}."
        + (f" Goal: {role.goal}" if role.goal else "")
        + (f" Instructions: {role.instructions}" if role.instructions else "")
    )
    if sandbox.kind == "desktop":
        apps = ", ".join(a.name for a in sandbox.apps) or "no apps"
        sandbox_text = (
            f"{sandbox_name}: a Linux desktop {sandbox.screen[0]}x{sandbox.screen[1]} with {apps}"
        )
    else:
        sandbox_text = f"{sandbox_name}: a web browser at {sandbox.start_url or 'a blank page'}"
    success = render_success(task)
    return TaskInput(
        task.id,
        render_description(task),
        role=task.role,
        role_text=role_text,
        sandbox=sandbox_name,
        sandbox_text=sandbox_text,
        steps=steps,
        success=success,
        inputs=dict(task.inputs),
    )


# --- running one task ---------------------------------------------------------------------


@dataclass
class TaskRunner:
    """Runs tasks of one company on shared sandboxes, one model client and a company meter."""

    company: Company
    config: RunConfig
    sandboxes: Sandboxes
    vault: Any
    client: Any = None
    company_meter: BudgetMeter = field(default_factory=lambda: BudgetMeter(Budgets()))
    recordings: Path | None = None
    audit: Any = None  # the run's AuditLog, shared by every task's gate (one chain)
    run_id: str = ""
    #: The last task's home folder and final URL (what its checks read), for regrade.
    final_state: tuple[Path, str | None] | None = None

    @classmethod
    @contextmanager
    def open(
        cls,
        company: Company,
        config: RunConfig,
        environ: Mapping[str, str] | None = None,
        *,
        live_view: LiveViewSettings | None = None,
        notify: Callable[[str], None] | None = None,
        state_root: Path | None = None,
        live_offset: int = 0,
        run_id: str | None = None,
    ) -> Iterator[TaskRunner]:
        """A runner whose sandboxes, client and audit log are closed when the block ends.

        Every task's gate writes to one hash-chained audit log (``audit_path``); ``notify``
        gets one-line notices (generated secrets by name, live view addresses).
        ``state_root`` keeps the sandboxes' homes (``Sandboxes``); ``run_id`` names the
        audit log (one per process that runs tasks: a chain has one writer).
        """
        vault = secret_values(company, environ)
        secrets = {n: vault.value(n) for n in vault.names} if vault is not None else {}
        run_id = run_id or new_run_id()
        audit = open_audit(company, config, vault, run_id)
        if vault is not None and vault.generated and notify is not None:
            names = ", ".join(vault.generated)
            notify(
                f"secrets: {names} not set; using a fresh random value for this run "
                "(if_missing: generate)"
            )
        boxes = Sandboxes(
            company,
            secrets,
            live_view,
            notify,
            str(config.chromium) if config.chromium else None,
            state_root=state_root,
            live_offset=live_offset,
            audit=audit,
        )
        client = None
        try:
            client = make_client(config, company.company)
            meter = BudgetMeter(budgets_of(company.defaults.budgets), name="company")
            runner = cls(
                company,
                config,
                boxes,
                vault,
                client,
                meter,
                company.base_dir / "recordings",
                audit,
                run_id,
            )
            yield runner
        finally:
            boxes.close()
            if client is not None:
                with suppress(Exception):
                    client.close()
            # No closing entry: the last session's manifest then holds the log's final
            # head, so ``agentcorp audit verify --head`` works with it directly.
            audit.close()

    def audit_info(self) -> dict[str, str]:
        """The audit log's path and current head hash, for a session manifest."""
        if self.audit is None:
            return {}
        return {"path": str(self.audit.path), "head": self.audit.head(), "run": self.run_id}

    @property
    def secret_list(self) -> list[str]:
        """Secret values, for redaction in recordings."""
        if self.vault is None:
            return []
        return [self.vault.value(n) for n in self.vault.names]

    @property
    def secret_map(self) -> dict[str, str]:
        """Secret values by name, so a skill stores ``${secrets.NAME}`` in their place."""
        if self.vault is None:
            return {}
        return {n: self.vault.value(n) for n in self.vault.names}

    def action_cache(self) -> Any:
        """The run's ``ActionCache``, or ``None`` with ``--no-cache``."""
        if not self.config.cache:
            return None
        from agentcorp.grounding.cache import ActionCache

        return ActionCache(self.config.cache_dir or default_cache_dir(self.company.base_dir))

    def cache_key(self, task: Task) -> str:
        """The task's skill key: its spec without input values (any row shares it)."""
        from agentcorp.grounding.provenance import skill_key

        return skill_key(task_skill_hash(self.company, task), task.inputs, task_input_names(task))

    def cached(self, task: Task) -> bool:
        """Whether ``task`` has a skill for its inputs (and skills are on)."""
        cache = self.action_cache()
        return cache is not None and (cache.dir / f"{self.cache_key(task)}.json").is_file()

    def mode_for(self, task: Task) -> str:
        """How the task will run: skill, planned/model, recording (offline replay), scripted.

        Offline, a shipped recording (reviewed and committed with the company) goes before
        a learned skill.
        """
        base = self.base_mode(task)
        return "skill" if base != "recording" and self.cached(task) else base

    def base_mode(self, task: Task) -> str:
        """How the task runs without a skill."""
        if self.client is not None:
            return "planned" if self.config.plan else "model"
        if self._recording(task) is not None:
            return "recording"
        return "scripted" if task.steps else "none"

    def _recording(self, task: Task) -> Path | None:
        if self.recordings is None or not self.recordings.is_dir():
            return None
        try:
            from agentcorp.record.find import find_recording
        except ImportError:  # pragma: no cover
            return None
        return find_recording(task.id, task_spec_hash(self.company, task), self.recordings)

    def _help_asker(self, task: Task) -> Callable[[str, str], str] | None:
        """Who answers ``request_help``: the run's console and/or the task's webhook approver."""
        from agentcorp.console.client import console_client, first_answer, webhook_asker

        timeout = self.config.help_timeout_s
        askers = []
        helper = console_client()
        if helper is not None:
            askers.append(helper.asker(timeout))
        approver = effective_policy(self.company, task).approver
        if approver is not None and approver.kind == "webhook" and approver.url:
            askers.append(webhook_asker(approver.url, timeout))
        if not askers:
            return None
        return askers[0] if len(askers) == 1 else first_answer(*askers)

    def run(self, task: Task, attempt: int = 1) -> Generator[Step, None, TaskResult]:
        """Run one attempt of ``task``; a generator of step records returning the result."""
        mode = self.mode_for(task)
        if mode == "none":
            from agentcorp.record.find import stale_message

            stale = (
                stale_message(task.id, task_spec_hash(self.company, task), self.recordings)
                if self.recordings is not None
                else None
            )
            return TaskResult(
                task.id,
                "error",
                "no model configured, and the task has neither a shipped "
                "recording nor scripted steps" + (f": {stale}" if stale else ""),
                mode=mode,
            )
        with self.sandboxes.session(self.company.task_sandbox(task)) as (computer, grounder):
            meter = self.company_meter.child(budgets_of(task.budgets), "task")
            gate = make_gate(self.company, task, self.vault, self.audit, computer)
            # With an operator console: a person may hold the sandbox (and act on it from the
            # page's live view); the clock then stops.
            from agentcorp.console.client import controlled

            gate = controlled(gate, meter.pause, self.audit, computer=computer)
            names = model_names(self.config, self.company, task, self.client)
            model: Any = None
            planner: Planner | None = None
            if self.client is not None:
                wall = meter.limits.wall_clock_s
                deadline = time.monotonic() + wall if wall is not None else None
                model = self.client.bind(task=task.id, deadline=deadline)
                if self.config.plan:
                    planner = Planner(model, model_name=names["planner"])
            ctx = check_context(computer, grounder, model, names["judge"])
            cfg = ActorConfig(
                model=names["actor"],
                image_history=self.config.image_history,
                long_side=self.config.long_side,
                ask_help=self._help_asker(task),
            )
            ti = task_input(self.company, task)
            cache = self.action_cache()
            if mode == "recording":
                gen = self._replay(task, ti, computer, grounder, ctx, meter, gate)
            elif cache is not None:
                from agentcorp.actor.cached import run_task_cached

                gen = run_task_cached(
                    ti,
                    computer,
                    cache=cache,
                    key=self.cache_key(task),
                    gate=gate,
                    meter=meter,
                    check_context=ctx,
                    actor_model=model,
                    planner=planner,
                    grounder=grounder,
                    config=cfg,
                    max_replans=self.config.max_replans,
                    meta={"task": task.id, "company": self.company.company},
                    secrets=self.secret_map,
                    input_names=task_input_names(task),
                    no_model=self.client is None,
                )
            else:
                gen = run_task(
                    ti,
                    computer,
                    gate=gate,
                    meter=meter,
                    check_context=ctx,
                    actor_model=model,
                    planner=planner,
                    grounder=grounder,
                    config=cfg,
                    max_replans=self.config.max_replans,
                )
            result: TaskResult = yield from gen
            # What the checks looked at, for the recording (``capture_final_state``): read
            # now, while the browser of this task is still open.
            url = getattr(computer, "url", None)
            self.final_state = (ctx.home, url if isinstance(url, str) else None)
            return result

    def _replay(
        self,
        task: Task,
        ti: TaskInput,
        computer: Computer,
        grounder: Grounder,
        ctx: CheckContext,
        meter: BudgetMeter,
        gate: ActionGate | None = None,
    ) -> Generator[Step, None, TaskResult]:
        """Offline: decision-replay the shipped recording on the live sandbox, then check."""
        from agentcorp.record.episode import episode_from_manifest, loop_runner
        from agentcorp.record.replay import decision_replay
        from agentcorp.record.session import open_session

        path = self._recording(task)
        assert path is not None
        t0 = time.monotonic()
        session = open_session(path)
        episode, recorded_config = episode_from_manifest(session)
        seen: list[Step] = []
        # The live policy gate, not the recorded decisions: a replayed action is checked
        # (and audited) like any other.
        report = decision_replay(
            session,
            loop_runner(session, grounder=grounder, gate=gate),
            computer,
            on_step=seen.append,
        )
        yield from seen
        if not report.ok:
            return TaskResult(
                task.id,
                "fail",
                f"replay of {path} diverged: {report.divergence}",
                elapsed_s=time.monotonic() - t0,
                mode="recording",
                episode=episode,
                actor_config=recorded_config,
            )
        status: Literal["pass", "fail", "error", "budget_exceeded"] = "pass"
        outcomes: tuple[Any, ...] = ()
        reason = ""
        if ti.success is not None:
            from agentcorp.checks import CheckOutcome

            status, records = evaluate_steps(ti.success, ctx, grace_s=CHECK_GRACE_S)
            yield from records
            outcomes = tuple(CheckOutcome(r.name, r.status, r.detail) for r in records[:-1])
            reason = "; ".join(f"{o.name}: {o.detail}" for o in outcomes if o.status != "pass")
        actions = sum(1 for s in seen if isinstance(s, ActionStep))
        return TaskResult(
            task.id,
            status,
            reason,
            outcomes,
            meter.usage,
            actions,
            time.monotonic() - t0,
            "recording",
            episode,
            recorded_config,
        )
