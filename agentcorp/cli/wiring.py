"""The one place spec objects become concrete backends, gates and model clients.

``agentcorp run`` and the fleet (``run_fleet_episode``) both come through here, so a task
runs the same way on a laptop and on a cluster node. Everything is built from a resolved
``RunConfig`` (flags, environment and ``agentcorp.toml`` read once, at the edge) and a loaded
``Company``; the actor, planner and checks only ever see the ABCs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from agentcorp.actor.budget import BudgetMeter, Budgets
from agentcorp.actor.loop import ActorConfig
from agentcorp.actor.runner import TaskInput, TaskResult, run_task
from agentcorp.checks import CheckContext, evaluate_steps
from agentcorp.errors import ConfigError, SandboxError
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
from agentcorp.types import ActionStep, ChatModel, Step

__all__ = [
    "LiveViewSettings",
    "RunConfig",
    "Sandboxes",
    "TaskRunner",
    "audit_path",
    "budgets_of",
    "default_cache_dir",
    "in_container",
    "make_client",
    "make_gate",
    "make_grounder",
    "new_run_id",
    "open_audit",
    "open_browser",
    "open_desktop",
    "run_fleet_episode",
    "start_services",
    "task_input",
]

Provider = Literal["xai", "openai", "custom"]
_KEY_ENV = {"xai": "XAI_API_KEY", "openai": "OPENAI_API_KEY", "custom": "AGENTCORP_API_KEY"}


class RunConfig(BaseModel):
    """Everything ``agentcorp run`` needs besides the spec, resolved once at the edge."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Provider = "xai"
    base_url: str | None = None
    api_key: SecretStr | None = Field(None, repr=False)
    planner_model: str | None = None
    actor_model: str | None = None
    sessions: Path | None = None
    audit: Path | None = None
    image_history: int = Field(3, ge=0, le=50)
    long_side: int = Field(1024, ge=256, le=4096)
    timeout_s: float = Field(60.0, gt=0)
    max_replans: int = Field(2, ge=0, le=10)
    plan: bool = True
    cache: bool = True  # the action cache (``--no-cache`` turns it off)
    cache_dir: Path | None = None  # default ``default_cache_dir()``
    chromium: Path | None = None  # default: Debian's /usr/bin/chromium, else on PATH

    @property
    def online(self) -> bool:
        """A model is configured: a key for the provider, or an explicit base URL."""
        return self.api_key is not None or self.base_url is not None

    def describe(self) -> str:
        """Where model requests go (never the key)."""
        from agentcorp.llm.providers import provider_named

        p = provider_named(self.provider, self.base_url)
        return f"{p.name} at {p.base_url}"


# --- models -------------------------------------------------------------------------------


def default_cache_dir(company_dir: Path | None = None) -> Path:
    """Where skills live by default (as ``agentcorp skills`` looks for them)."""
    from agentcorp.grounding.cache import default_skills_dir

    return default_skills_dir(company_dir, os.environ)


def make_client(config: RunConfig, company_name: str = "") -> Any:
    """One ``OpenAIClient`` for the whole run (shared pool and usage meter), or ``None``."""
    if not config.online:
        return None
    from agentcorp.llm.client import OpenAIClient
    from agentcorp.llm.providers import provider_named

    provider = provider_named(config.provider, config.base_url)
    key = config.api_key.get_secret_value() if config.api_key is not None else ""
    return OpenAIClient(provider, api_key=key, timeout=config.timeout_s, company=company_name)


def model_names(config: RunConfig, company: Company, task: Task, client: Any) -> dict[str, str]:
    """Planner/actor/judge model names: flags over the spec over the provider's defaults."""
    spec = effective_models(company, task)
    provider = getattr(client, "provider", None)
    planner = config.planner_model or spec.planner or getattr(provider, "default_planner_model", "")
    actor = config.actor_model or spec.actor or getattr(provider, "default_actor_model", "")
    return {"planner": planner or "", "actor": actor or "", "judge": spec.judge or planner or ""}


# --- sandboxes ----------------------------------------------------------------------------


def _expand(arg: str, home: Path) -> str:
    return str(home / arg[2:]) if arg.startswith("~/") else str(home) if arg == "~" else arg


def _files(company: Company, name: str) -> dict[str, Path]:
    spec = company.sandboxes[name]
    files = {dest: (company.base_dir / src).resolve() for dest, src in spec.files.items()}
    for dest, src in files.items():
        if not src.is_file():
            raise ConfigError(f"sandboxes.{name}.files[{dest!r}]: {src} does not exist")
    return files


def open_desktop(
    company: Company,
    name: str,
    secrets: Mapping[str, str],
    *,
    display: str | None = None,
) -> Computer:
    """Start desktop sandbox ``name``: its own Xvfb, its files in a fresh home, its apps."""
    from agentcorp.sandbox.apps import AppSpec
    from agentcorp.sandbox.xvfb import XvfbDesktop

    spec = company.sandboxes[name]
    apps = [AppSpec(a.name, list(a.command), a.wait_for_window) for a in spec.apps]
    return XvfbDesktop(
        screen=(spec.screen[0], spec.screen[1]),
        apps=apps,
        files=_files(company, name),
        secrets=secrets,
        display=display,
        allow_real_display=display is not None,
    )


def start_services(
    company: Company,
    name: str,
    home: Path,
    secrets: Mapping[str, str],
) -> list[Any]:
    """Copy a browser sandbox's files into ``home`` and start its services (``~`` = home)."""
    from agentcorp.sandbox.services import ServiceSpec, start_service

    spec = company.sandboxes[name]
    for dest, src in _files(company, name).items():
        target = Path(_expand(dest, home))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    started: list[Any] = []
    try:
        for s in spec.services:
            started.append(
                start_service(
                    ServiceSpec(
                        s.name,
                        [_expand(a, home) for a in s.command],
                        cwd=(company.base_dir / s.cwd).resolve()
                        if s.cwd
                        else company.base_dir.resolve(),
                        env={"HOME": str(home), **dict(s.env)},
                        ready_url=s.ready_url,
                        ready_timeout=s.ready_timeout,
                    ),
                    secrets,
                )
            )
    except BaseException:
        for svc in reversed(started):
            svc.stop()
        raise
    return started


def open_browser(
    company: Company,
    name: str,
    home: Path,
    secrets: Mapping[str, str],
    chromium: str | None = None,
) -> Computer:
    """A fresh headless Chromium on browser sandbox ``name`` (services already running)."""
    from agentcorp.sandbox.browser import BrowserComputer

    spec = company.sandboxes[name]
    allow = list(spec.allow_urls or (spec.policy.allow_urls if spec.policy else None) or [])
    return BrowserComputer(
        screen=(spec.screen[0], spec.screen[1]),
        start_url=spec.start_url,
        allow_urls=allow,
        home=home,
        secrets=secrets,
        chromium=chromium,
    )


@dataclass(frozen=True)
class LiveViewSettings:
    """Serve each desktop sandbox over password-protected VNC and noVNC while the run lasts.

    The n-th desktop opened gets ``vnc_port + n`` and ``web_port + n``. ``bind`` is loopback
    on a normal machine and ``0.0.0.0`` in a container (so ``-p`` mappings reach it).
    """

    password: str = field(repr=False)
    vnc_port: int = 5900
    web_port: int = 6080
    bind: str = "127.0.0.1"


def in_container(root: Path = Path("/")) -> bool:
    """Whether this process runs in a Docker or Podman container (their marker files)."""
    return (root / ".dockerenv").exists() or (root / "run" / ".containerenv").exists()


class Sandboxes:
    """The run's sandboxes. State carries over between tasks on purpose, as on a real machine.

    A desktop (Xvfb, its apps, its home) lives for the whole run, so a file one task saved is
    open for the next. A browser sandbox's home and services (the back office and its
    database) live for the run too, but each task gets a fresh Chromium: a new browser
    session, as a person logging in for each job.
    """

    def __init__(
        self,
        company: Company,
        secrets: Mapping[str, str],
        live_view: LiveViewSettings | None = None,
        notify: Callable[[str], None] | None = None,
        display: str | None = None,
        chromium: str | None = None,
    ) -> None:
        self.company = company
        self.chromium = chromium
        self.secrets = secrets
        self.live_view = live_view
        self._notify = notify
        #: An X display that exists already (a fleet worker's own): desktops start their
        #: apps there instead of on a new Xvfb.
        self.display = display
        self._live: list[Any] = []
        self._told: set[str] = set()
        self._desktops: dict[str, Computer] = {}
        self._homes: dict[str, Path] = {}
        self._services: list[Any] = []
        self._ocr: Any = None
        self._grounders: dict[str, Grounder] = {}

    @contextmanager
    def session(self, name: str) -> Iterator[tuple[Computer, Grounder]]:
        """The computer for one task on sandbox ``name`` and its grounder."""
        if self.company.sandboxes[name].kind == "desktop":
            if name not in self._desktops:
                self._desktops[name] = open_desktop(
                    self.company, name, self.secrets, display=self.display
                )
                self._start_live_view(name, self._desktops[name])
            desk = self._desktops[name]
            if name not in self._grounders:
                self._grounders[name] = make_grounder(desk, self._engine())
            yield desk, self._grounders[name]
            return
        if self.live_view is not None and name not in self._told:
            self._told.add(name)
            self._say(f"live view: sandbox {name} is a headless browser; nothing to show")
        if name not in self._homes:
            home = Path(tempfile.mkdtemp(prefix=f"agentcorp-{name}-"))
            self._homes[name] = home
            self._services.extend(start_services(self.company, name, home, self.secrets))
        browser = open_browser(self.company, name, self._homes[name], self.secrets, self.chromium)
        try:
            yield browser, make_grounder(browser, self._engine())
        finally:
            browser.close()

    def _say(self, message: str) -> None:
        if self._notify is not None:
            self._notify(message)

    def _start_live_view(self, name: str, desk: Computer) -> None:
        """Serve desktop ``name``'s display while the run lasts (when live view is on)."""
        lv = self.live_view
        display = getattr(desk, "display", None)
        if lv is None or not isinstance(display, str):
            return
        from agentcorp.sandbox.liveview import LiveView

        n = len(self._live)
        view = LiveView(
            display, lv.password, vnc_port=lv.vnc_port + n, web_port=lv.web_port + n, bind=lv.bind
        ).start()
        self._live.append(view)
        where = "loopback only" if lv.bind == "127.0.0.1" else f"listening on {lv.bind}"
        self._say(
            f"live view: sandbox {name} at http://localhost:{lv.web_port + n}/vnc.html "
            f"(VNC port {lv.vnc_port + n}, {where}; password required)"
        )

    def _engine(self) -> Any:
        """One OCR engine for the run (its model loads once)."""
        if self._ocr is None:
            from agentcorp.grounding.ocr import OcrEngine

            self._ocr = OcrEngine.shared()
        return self._ocr

    def close(self) -> None:
        """Close every sandbox and service (each stops what it started)."""
        for view in reversed(self._live):
            with suppress(Exception):
                view.stop()
        self._live.clear()
        for comp in self._desktops.values():
            with suppress(Exception):
                comp.close()
        for svc in reversed(self._services):
            with suppress(Exception):
                svc.stop()
        for home in self._homes.values():
            shutil.rmtree(home, ignore_errors=True)
        self._desktops.clear()
        self._services.clear()
        self._homes.clear()
        self._grounders.clear()


def make_grounder(computer: Computer, engine: Any = None) -> Grounder:
    """The grounder for ``computer``: the DOM first then OCR in a browser, OCR on a desktop.

    ``engine`` is a shared ``OcrEngine`` so its model loads once per run.
    """
    from agentcorp.grounding.base import DomLocator
    from agentcorp.grounding.dom import CompositeGrounder, DomGrounder
    from agentcorp.grounding.ocr_grounder import OcrGrounder

    ocr = OcrGrounder(engine) if engine is not None else OcrGrounder()
    if isinstance(computer, DomLocator):
        return CompositeGrounder(DomGrounder(computer), ocr)
    return ocr


def _read_text(grounder: Grounder) -> Any:
    fn = getattr(grounder, "read_text", None)
    return fn if callable(fn) else None


def check_context(
    computer: Computer,
    grounder: Grounder,
    judge: ChatModel | None = None,
    judge_model: str = "",
) -> CheckContext:
    """Where checks of a task look: the sandbox's home, screen, URL and display."""
    home = getattr(computer, "home", None)
    env: dict[str, str] = {}
    display = getattr(computer, "display", None)
    if isinstance(display, str):
        env["DISPLAY"] = display
    url = getattr(computer, "url", None)
    return CheckContext(
        home=Path(home) if home is not None else Path.home(),
        computer=computer,
        grounder=grounder,
        url=(lambda: getattr(computer, "url", None)) if url is not None else None,
        read_text=_read_text(grounder),
        env=env,
        judge=judge,
        judge_model=judge_model,
    )


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
        display: str | None = None,
    ) -> Iterator[TaskRunner]:
        """A runner whose sandboxes, client and audit log are closed when the block ends.

        Every task's gate writes to one hash-chained audit log (``audit_path``); ``notify``
        gets one-line notices (generated secrets by name, live view addresses). ``display``
        is an existing X display for the desktop sandboxes (a fleet worker's own).
        """
        vault = secret_values(company, environ)
        secrets = {n: vault.value(n) for n in vault.names} if vault is not None else {}
        run_id = new_run_id()
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
            display,
            str(config.chromium) if config.chromium else None,
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
        """Whether a cached action sequence exists for ``task`` (and the cache is on)."""
        cache = self.action_cache()
        return cache is not None and (cache.dir / f"{self.cache_key(task)}.json").is_file()

    def mode_for(self, task: Task) -> str:
        """How the task will run: skill, planned/model, recording (offline replay), scripted.

        Offline, a shipped recording (reviewed and committed with the company) goes before
        the local action cache.
        """
        base = self.base_mode(task)
        return "skill" if base != "recording" and self.cached(task) else base

    def base_mode(self, task: Task) -> str:
        """How the task runs without the action cache."""
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
            gate = make_gate(self.company, task, self.vault, self.audit, computer)
            meter = self.company_meter.child(budgets_of(task.budgets), "task")
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

            status, records = evaluate_steps(ti.success, ctx)
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


# --- the fleet's entry point --------------------------------------------------------------


def run_fleet_episode(task: Any, ctx: Any) -> Any:
    """Run one spec task for the fleet (``agentcorp.fleet.runners.spec``).

    ``task.payload`` names ``company_file`` and ``task_id``; model settings come from the
    worker's environment (the same variables ``agentcorp run`` reads). The session is
    recorded under ``ctx.session_dir`` when set.

    Every model call first takes a token of the fleet's shared rate limit
    (``ctx.acquire(task.api_key or "llm")``), so many workers do not trip 429s together. A
    failed attempt is retried in the same episode up to the spec's ``retry.max_attempts``
    (as ``agentcorp run`` does; the ledger's attempts count leases, i.e. node losses). A
    desktop task runs on the worker's own display (``ctx.display``) when the worker owns a
    screen of the sandbox's size, instead of starting another Xvfb.
    """
    from agentcorp.cli.run import resolve_config, run_one_recorded
    from agentcorp.fleet.model import EpisodeResult
    from agentcorp.spec import load_company

    payload = dict(task.payload)
    company = load_company(str(payload["company_file"]))
    spec_task = company.task(str(payload["task_id"]))
    config = resolve_config(sessions=Path(ctx.session_dir) if ctx.session_dir else None)
    env_before = {k: os.environ.get(k) for k in ctx.env()}
    os.environ.update(ctx.env())
    display = _worker_display(company, spec_task, ctx)
    tries = max(1, int(spec_task.retry.max_attempts))
    done = 0
    try:
        with TaskRunner.open(company, config, display=display) as runner:
            if runner.client is not None:
                runner.client = _RateLimitedClient(
                    runner.client, ctx, str(getattr(task, "api_key", None) or "llm")
                )
            for n in range(1, tries + 1):
                done = n
                result, session = run_one_recorded(
                    runner, spec_task, (int(ctx.attempt) - 1) * tries + n
                )
                if result.status in ("pass", "budget_exceeded"):
                    break
    except SandboxError as exc:
        return EpisodeResult("error", str(exc))
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    status: Literal["passed", "failed", "error", "budget_exceeded"] = {
        "pass": "passed",
        "fail": "failed",
        "error": "error",
        "budget_exceeded": "budget_exceeded",
    }[result.status]  # type: ignore[assignment]
    notes = [f"attempt {done} of {tries}"] if tries > 1 else []
    if display is not None:
        notes.append(f"on the worker's display {display}")
    detail = "; ".join([result.reason, *notes] if result.reason else notes)
    return EpisodeResult(status, detail, str(session) if session else None, result.usage.cost_usd)


def _worker_display(company: Company, task: Task, ctx: Any) -> str | None:
    """The worker's own display when the task's desktop fits its screen, else ``None``."""
    display = getattr(ctx, "display", None)
    spec = company.sandboxes[company.task_sandbox(task)]
    size = getattr(getattr(ctx, "computer", None), "size", None)
    if not isinstance(display, str) or spec.kind != "desktop" or size is None:
        return None
    return display if tuple(size) == tuple(spec.screen) else None


class _RateLimitedModel(ChatModel):
    """A bound model that waits for a token of the fleet's shared rate limit per call."""

    def __init__(self, inner: ChatModel, ctx: Any, key: str) -> None:
        self.inner = inner
        self.ctx = ctx
        self.key = key

    def complete(self, request: Any) -> Any:
        """Take a token of ``key`` (``ctx.acquire``), then ask the model."""
        self.ctx.acquire(self.key)
        return self.inner.complete(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _RateLimitedClient:
    """An ``OpenAIClient`` whose bound models go through ``_RateLimitedModel``."""

    def __init__(self, inner: Any, ctx: Any, key: str) -> None:
        self.inner = inner
        self.ctx = ctx
        self.key = key

    def bind(self, **kwargs: Any) -> ChatModel:
        """The inner client's bound model, rate limited."""
        return _RateLimitedModel(self.inner.bind(**kwargs), self.ctx, self.key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
