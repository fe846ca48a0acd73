"""``agentcorp run PATH [--task ID ...]``: run a company's tasks in dependency order.

Configuration is resolved once into ``RunConfig``: flags over environment variables
(``AGENTCORP_PROVIDER``, ``AGENTCORP_BASE_URL``, ``AGENTCORP_PLANNER_MODEL``,
``AGENTCORP_ACTOR_MODEL``, ``AGENTCORP_SESSIONS``, ``AGENTCORP_AUDIT``) over an optional
``agentcorp.toml`` (keys at the top level or under ``[run]``). API keys come only from the
environment: ``XAI_API_KEY`` (xai), ``OPENAI_API_KEY`` (openai), ``AGENTCORP_API_KEY`` (custom
base URL). With no key and no base URL, tasks run offline from shipped recordings or scripted
steps. Every run writes one hash-chained audit log (``--audit``); ``--live-view`` serves the
desktops over password-protected VNC/noVNC while the run lasts.

Progress goes to stderr, the summary table to stdout. Exit codes: 0 all passed, 1 a task did
not pass, 2 invalid input, 3 the environment cannot run the job.
"""

from __future__ import annotations

import difflib
import os
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agentcorp.actor.runner import TaskResult
from agentcorp.cli._app import app
from agentcorp.cli.wiring import (
    _KEY_ENV,
    LiveViewSettings,
    RunConfig,
    TaskRunner,
    in_container,
    model_names,
)
from agentcorp.errors import (
    AgentcorpError,
    ConfigError,
    LLMError,
    SetupError,
)
from agentcorp.sandbox.liveview import PASSWORD_ENV
from agentcorp.types import ActionStep, ModelCallStep, Step

__all__ = ["LIVE_VIEW_ENV", "live_view_settings", "resolve_config", "run", "run_one_recorded"]

LIVE_VIEW_ENV = "AGENTCORP_LIVE_VIEW"

_FIELDS = (
    "provider",
    "base_url",
    "planner_model",
    "actor_model",
    "sessions",
    "audit",
    "image_history",
    "long_side",
    "timeout_s",
    "max_replans",
    "plan",
    "cache",
    "cache_dir",
    "chromium",
)
_ENV = {
    "provider": "AGENTCORP_PROVIDER",
    "base_url": "AGENTCORP_BASE_URL",
    "planner_model": "AGENTCORP_PLANNER_MODEL",
    "actor_model": "AGENTCORP_ACTOR_MODEL",
    "sessions": "AGENTCORP_SESSIONS",
    "audit": "AGENTCORP_AUDIT",
    "cache_dir": "AGENTCORP_CACHE_DIR",
    "chromium": "AGENTCORP_CHROMIUM",
}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    table = data.get("run", data) if isinstance(data.get("run"), dict) else data
    extra = [k for k in table if k not in _FIELDS and k != "run"]
    if extra:
        close = difflib.get_close_matches(extra[0], _FIELDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{path}: unknown key {extra[0]!r}{hint}")
    return {k: v for k, v in table.items() if k in _FIELDS}


def resolve_config(
    *,
    provider: str | None = None,
    base_url: str | None = None,
    planner_model: str | None = None,
    actor_model: str | None = None,
    sessions: Path | None = None,
    config_file: Path | None = None,
    no_plan: bool = False,
    environ: Mapping[str, str] | None = None,
    audit: Path | None = None,
    cache_dir: Path | None = None,
    no_cache: bool = False,
    chromium: Path | None = None,
) -> RunConfig:
    """Flags over environment over ``agentcorp.toml``; raises ``ConfigError`` (one line)."""
    env = os.environ if environ is None else environ
    where = "flags/environment"
    values: dict[str, Any] = {}
    path = config_file if config_file is not None else Path("agentcorp.toml")
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"--config: {config_file} does not exist")
    if path.is_file():
        values.update(_read_toml(path))
        where = str(path)
    for name, var in _ENV.items():
        if env.get(var):
            values[name] = env[var]
    flags = {
        "provider": provider,
        "base_url": base_url,
        "planner_model": planner_model,
        "actor_model": actor_model,
        "sessions": sessions,
        "audit": audit,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    if no_plan:
        values["plan"] = False
    if cache_dir is not None:
        values["cache_dir"] = cache_dir
    if no_cache:
        values["cache"] = False
    if chromium is not None:
        values["chromium"] = chromium
    cache_to = values.get("cache_dir")
    if cache_to is not None and Path(str(cache_to)).exists() and not Path(str(cache_to)).is_dir():
        raise ConfigError(f"--cache-dir: {cache_to} exists and is not a folder")
    if values.get("base_url") and not values.get("provider"):
        values["provider"] = "custom"
    prov = str(values.get("provider") or "xai").strip().lower()
    if prov not in _KEY_ENV:
        raise ConfigError(f"--provider: unknown provider {prov!r}; expected xai, openai or custom")
    values["provider"] = prov
    if prov == "custom" and not values.get("base_url"):
        raise ConfigError("--provider custom needs --base-url URL")
    url = values.get("base_url")
    if url is not None and not str(url).startswith(("http://", "https://")):
        raise ConfigError(f"--base-url: must start with http:// or https://, got {url!r}")
    sessions_dir = values.get("sessions")
    if (
        sessions_dir is not None
        and Path(str(sessions_dir)).exists()
        and not Path(str(sessions_dir)).is_dir()
    ):
        raise ConfigError(f"--sessions: {sessions_dir} exists and is not a folder")
    audit_to = values.get("audit")
    if (
        audit_to is not None
        and Path(str(audit_to)).exists()
        and not (Path(str(audit_to)).is_file() or Path(str(audit_to)).is_dir())
    ):
        raise ConfigError(f"--audit: {audit_to} is neither a file nor a folder")
    key = env.get(_KEY_ENV[prov], "").strip()
    values["api_key"] = key or None
    try:
        return RunConfig.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{where}: {loc}: {err['msg']}") from None


def live_view_settings(
    enabled: bool,
    password: str | None,
    vnc_port: int = 5900,
    web_port: int = 6080,
    environ: Mapping[str, str] | None = None,
    root: Path = Path("/"),
) -> LiveViewSettings | None:
    """The live view asked for by ``--live-view`` or ``AGENTCORP_LIVE_VIEW=1``, or ``None``.

    Refuses (``ConfigError``, one line, exit 2) without a password from ``--vnc-password`` or
    ``AGENTCORP_VNC_PASSWORD``. Binds to all interfaces in a container, else to loopback.
    """
    from agentcorp.sandbox.liveview import LiveView

    env = os.environ if environ is None else environ
    flag = env.get(LIVE_VIEW_ENV, "").strip().lower()
    if flag not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
        raise ConfigError(f"{LIVE_VIEW_ENV}: expected 1 or 0, got {flag!r}")
    if not (enabled or flag in ("1", "true", "yes", "on")):
        return None
    if vnc_port == web_port:
        raise ConfigError(f"--vnc-port and --web-port are both {vnc_port}")
    secret = password or env.get(PASSWORD_ENV) or None
    # LiveView's own checks (present, long enough) before any sandbox starts.
    LiveView("", secret)
    assert secret is not None
    return LiveViewSettings(
        secret, vnc_port, web_port, "0.0.0.0" if in_container(root) else "127.0.0.1"
    )


def _load(path: Path) -> Any:
    from agentcorp.cli.validate import load_company_or_raise

    if not path.exists():
        raise ConfigError(f"{path}: no such company file or folder")
    return load_company_or_raise(path)


# --- progress -----------------------------------------------------------------------------

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


class _Progress:
    """One live line on stderr: task, step, action, tokens, cost, elapsed."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = Live(console=console, auto_refresh=False, transient=True)
        self.task = ""
        self.started = time.monotonic()
        self.step = 0
        self.action = ""
        self.tokens = 0
        self.usd = 0.0

    def begin(self, task_id: str, mode: str, attempt: int) -> None:
        self.task, self.started, self.step, self.action = task_id, time.monotonic(), 0, ""
        self.tokens, self.usd = 0, 0.0
        suffix = f" (attempt {attempt})" if attempt > 1 else ""
        shown = {
            "none": "no model, no recording, no steps",
            "planned": "planner + actor model",
            "model": "actor model",
        }.get(mode, mode)
        self.console.print(f"▶ {task_id}: {shown}{suffix}", highlight=False, markup=False)
        self._show()

    def on_step(self, step: Step) -> None:
        if isinstance(step, ActionStep):
            self.step = step.step
            a = step.action
            what = a.target or a.keys or (repr(a.text) if a.text else "") or a.url or ""
            self.action = f"{a.kind} {what}".strip()[:60]
        elif isinstance(step, ModelCallStep):
            self.tokens += step.usage.total_tokens
            self.usd += step.usage.cost_usd
        self._show()

    def _show(self) -> None:
        line = Text(
            f"  {self.task}  step {self.step}  {self.action}  tokens {self.tokens}  "
            f"${self.usd:.4f}  {time.monotonic() - self.started:.1f}s"
        )
        self.live.update(line, refresh=True)

    def end(self, result: TaskResult, session: Path | None) -> None:
        mark = {"pass": "✔", "fail": "✘", "error": "!", "budget_exceeded": "$"}.get(
            result.status, "?"
        )
        reason = f": {result.reason}" if result.reason else ""
        where = f"  [{session}]" if session else ""
        via = f" (via {path_taken(result.mode, result.repaired_at)})" if result.mode else ""
        self.console.print(
            f"{mark} {result.task_id} {result.status}{reason}{via}{where}",
            highlight=False,
            markup=False,
        )


# --- one recorded attempt -----------------------------------------------------------------


def _session_folder(root: Path, task_id: str, attempt: int) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    folder = root / task_id / f"{stamp}-a{attempt}"
    n = 1
    while folder.exists():
        n += 1
        folder = root / task_id / f"{stamp}-a{attempt}-{n}"
    return folder


def run_one_recorded(
    runner: TaskRunner,
    task: Any,
    attempt: int = 1,
    on_step: Callable[[Step], None] | None = None,
) -> tuple[TaskResult, Path | None]:
    """Run one attempt of ``task`` and record it under ``runner.config.sessions`` if set."""
    from agentcorp.spec import task_spec_hash

    recorder: Any = None
    folder: Path | None = None
    company = runner.company
    if runner.config.sessions is not None:
        from agentcorp.record.recorder import SessionRecorder

        folder = _session_folder(runner.config.sessions, task.id, attempt)
        sb_name = company.task_sandbox(task)
        sb = company.sandboxes[sb_name]
        recorder = SessionRecorder(
            folder,
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
            task_spec=task.model_dump(by_alias=True, exclude_none=True, mode="json"),
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
    runner.final_state = None
    gen = runner.run(task, attempt)
    try:
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                result: TaskResult = stop.value
                break
            if recorder is not None:
                recorder.write(step)
            if on_step is not None:
                on_step(step)
    except SetupError as exc:
        if recorder is not None:
            recorder.finish({"status": "error", "reason": str(exc)}, **_audit_extra(runner))
        raise
    except AgentcorpError as exc:
        result = TaskResult(task.id, "error", f"{type(exc).__name__}: {exc}")
    except BaseException:
        if recorder is not None:
            recorder.abort()
        raise
    if recorder is not None:
        extra: dict[str, Any] = _audit_extra(runner)
        if result.episode is not None and result.actor_config is not None:
            from agentcorp.record.episode import episode_manifest

            extra.update(episode_manifest(result.episode, result.actor_config))
            extra["episode"]["then_model"] = result.episode.then_model
        if result.cache_replay is not None:
            # The cached actions as looked up: a decision replay redoes them before the
            # episode that took over (``agentcorp.record.episode.loop_runner``).
            extra["cache_replay"] = result.cache_replay
        if result.mode == "planned":
            # Enough to re-run planner + actor (``agentcorp.actor.runner.run_task``) in a
            # decision replay of a planned session, not only the last episode.
            from dataclasses import asdict

            from agentcorp.cli.wiring import task_input

            names = model_names(runner.config, company, task, runner.client)
            extra["run_task"] = {
                "task": asdict(task_input(company, task)),
                "planner_model": names["planner"],
                "max_replans": runner.config.max_replans,
            }
        if runner.final_state is not None and task.success is not None:
            # The files and URL the checks read, so ``replay --mode regrade`` re-checks them.
            from agentcorp.record.recorder import capture_final_state

            home, url = runner.final_state
            capture_final_state(recorder, task.success, home, url)
        recorder.finish({"status": result.status, "reason": result.reason}, **extra)
    return result, folder


def _audit_extra(runner: TaskRunner) -> dict[str, Any]:
    """The run's audit log and its head hash when the session ends (``verify --head``)."""
    info = runner.audit_info()
    return {"audit": info} if info else {}


# --- the command --------------------------------------------------------------------------


def _select(company: Any, ids: list[str] | None) -> list[Any]:
    order = company.task_order()
    if not ids:
        return list(order)
    wanted: set[str] = set()
    for i in ids:
        try:
            wanted.add(company.task(i).id)
        except KeyError as exc:
            raise ConfigError(f"--task: {exc.args[0]}") from None
    return [t for t in order if t.id in wanted]


def _header(company: Any, tasks: list[Any], cfg: RunConfig, runner: TaskRunner) -> str:
    """The run's first line: where the model is (if any) and how each task will run."""
    modes = ", ".join(f"{t.id}={path_taken(runner.mode_for(t))}" for t in tasks)
    if cfg.online:
        return (
            f"agentcorp run {company.company}: {len(tasks)} task(s) with the model at "
            f"{cfg.describe()}: {modes}"
        )
    return (
        f"agentcorp run {company.company}: {len(tasks)} task(s) offline (no model "
        f"configured): {modes}"
    )


def _summary(results: list[TaskResult], sessions: dict[str, Path | None]) -> Table:
    table = Table(title="agentcorp run")
    for col in ("task", "status", "mode", "actions", "tokens", "cost $", "time s"):
        table.add_column(col, no_wrap=True)
    table.add_column("detail", no_wrap=True, overflow="ellipsis", max_width=80)
    for r in results:
        detail = r.reason or ", ".join(f"{c.name}: {c.status}" for c in r.checks)
        table.add_row(
            r.task_id,
            r.status,
            r.mode,
            str(r.actions),
            str(r.usage.total_tokens),
            f"{r.usage.cost_usd:.4f}",
            f"{r.elapsed_s:.1f}",
            detail[:80],
        )
    return table


def _preflight(runner: TaskRunner) -> None:
    """Fail fast (exit 3) on an unreachable endpoint or a bad key, before any sandbox starts."""
    if runner.client is None:
        return
    try:
        runner.client.list_models()
    except LLMError:
        # Some OpenAI-compatible servers lack /models; the first real call will tell.
        return


def _write_traces(
    root: Path,
    results: list[TaskResult],
    sessions: dict[str, Path | None],
    err: Console,
) -> Path | None:
    """One HTML trace per recorded session, and an index page linking them all."""
    import html

    from agentcorp.record.report import write_report
    from agentcorp.record.session import open_session

    rows = []
    for r in results:
        folder = sessions.get(r.task_id)
        link = ""
        if folder is not None:
            try:
                trace = write_report(open_session(folder), folder.with_suffix(".html"))
                link = trace.relative_to(root).as_posix()
            except AgentcorpError as exc:
                err.print(f"agentcorp: warning: no trace for {folder}: {exc}", markup=False)
        name = html.escape(r.task_id)
        cell = f"<a href='{html.escape(link)}'>{name}</a>" if link else name
        rows.append(
            f"<tr><td>{cell}</td><td class='{r.status}'>{r.status}</td>"
            f"<td>{html.escape(r.mode)}</td><td>{html.escape(r.reason)}</td></tr>"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    index = root / f"run-{stamp}.html"
    index.write_text(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>agentcorp run"
        "</title><style>body{font:14px sans-serif;margin:2em}td,th{padding:4px 10px;"
        "text-align:left}.pass{color:#080}.fail,.error,.budget_exceeded{color:#b00}</style>"
        "</head><body><h1>agentcorp run</h1><table><tr><th>task</th><th>status</th>"
        f"<th>mode</th><th>detail</th></tr>{''.join(rows)}</table></body></html>\n",
        encoding="utf-8",
    )
    return index


@app.command()
def run(
    path: Annotated[
        Path,
        typer.Argument(metavar="PATH", help="A company file, or a folder holding one company."),
    ],
    task: Annotated[
        list[str] | None,
        typer.Option("--task", metavar="ID", help="Run only this task id (repeatable)."),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Model provider: xai (default), openai or custom."),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL", help="Any OpenAI-compatible endpoint (key from AGENTCORP_API_KEY)."
        ),
    ] = None,
    planner_model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Planner model name.")
    ] = None,
    actor_model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Actor (vision) model name.")
    ] = None,
    sessions: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR", help="Record every task attempt as a session folder under DIR."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Config file (default: ./agentcorp.toml when present)."),
    ] = None,
    no_plan: Annotated[
        bool,
        typer.Option("--no-plan", help="Skip the planner; the actor works from the task itself."),
    ] = False,
    audit: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="The run's hash-chained audit log (a file, or a folder for "
            "audit-RUN.jsonl). Default: beside the sessions, else under the temp folder.",
        ),
    ] = None,
    live_view: Annotated[
        bool,
        typer.Option(
            "--live-view",
            help=f"Serve each desktop sandbox over VNC and noVNC while the run "
            f"lasts (or {LIVE_VIEW_ENV}=1); needs a password.",
        ),
    ] = False,
    vnc_password: Annotated[
        str | None,
        typer.Option(
            metavar="PASSWORD",
            help=f"Live view password (prefer {PASSWORD_ENV}: a command "
            "line is visible to other users).",
        ),
    ] = None,
    vnc_port: Annotated[
        int,
        typer.Option(metavar="PORT", min=1, max=65535, help="Live view VNC port (first desktop)."),
    ] = 5900,
    web_port: Annotated[
        int,
        typer.Option(
            metavar="PORT", min=1, max=65535, help="Live view noVNC port (first desktop)."
        ),
    ] = 6080,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Action cache folder (default $AGENTCORP_CACHE_DIR or "
            "~/.cache/agentcorp/actions).",
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither replay nor store cached action sequences.")
    ] = False,
    chromium: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Chromium executable for browser sandboxes (default "
            "$AGENTCORP_CHROMIUM, else /usr/bin/chromium).",
        ),
    ] = None,
) -> int:
    """Run a company's tasks in dependency order on their sandboxes."""
    cfg = resolve_config(
        provider=provider,
        base_url=base_url,
        planner_model=planner_model,
        actor_model=actor_model,
        sessions=sessions,
        config_file=config,
        no_plan=no_plan,
        audit=audit,
        cache_dir=cache_dir,
        no_cache=no_cache,
        chromium=chromium,
    )
    live = live_view_settings(live_view, vnc_password, vnc_port, web_port)
    company = _load(path)
    tasks = _select(company, task)
    # Wide enough for the summary table when stdout is a file or a pipe.
    out = Console(file=sys.stdout, highlight=False, width=None if sys.stdout.isatty() else 160)
    err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    results: list[TaskResult] = []
    session_of: dict[str, Path | None] = {}
    passed: set[str] = set()
    selected = {t.id for t in tasks}
    progress = _Progress(err)

    def notify(message: str) -> None:
        err.print(message, markup=False, highlight=False)

    with TaskRunner.open(company, cfg, live_view=live, notify=notify) as runner, progress.live:
        # One line however long: scripts and tests read it as the first line.
        out.print(_header(company, tasks, cfg, runner), markup=False, soft_wrap=True)
        _preflight(runner)
        for t in tasks:
            blocked = [d for d in t.depends_on if d in selected and d not in passed]
            if blocked:
                r = TaskResult(
                    t.id, "fail", f"skipped: dependency {blocked[0]!r} did not pass", mode="skipped"
                )
                results.append(r)
                progress.end(r, None)
                continue
            for attempt in range(1, t.retry.max_attempts + 1):
                progress.begin(t.id, runner.mode_for(t), attempt)
                r, folder = run_one_recorded(runner, t, attempt, progress.on_step)
                session_of[t.id] = folder
                progress.end(r, folder)
                if r.status == "pass" or r.status == "budget_exceeded":
                    break
            results.append(r)
            if r.status == "pass":
                passed.add(t.id)
    out.print(_summary(results, session_of))
    if runner.audit is not None:
        out.print(f"audit: {runner.audit.path} (head {runner.audit.head()})", markup=False)
    if cfg.sessions is not None:
        out.print(f"sessions: {cfg.sessions}", markup=False)
        index = _write_traces(cfg.sessions, results, session_of, err)
        if index is not None:
            out.print(f"trace: {index}", markup=False)
    return 0 if all(r.status == "pass" for r in results) else 1
