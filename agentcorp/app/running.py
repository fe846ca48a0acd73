"""``agentcorp.run``: run a company's tasks on the ledger-backed scheduler, in one place.

In-process with one worker by default (tasks in dependency order), ``workers=N`` local
worker processes, or a Ray cluster (``ray_address``). Every run keeps its ledger, settings
and sandbox homes in its run folder (``sessions``, else a fresh temporary folder), so a run
killed at any moment continues with ``resume=True`` and every task ends exactly once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentcorp.app.attempt import RunObserver, TaskRun, instance_of, path_taken
from agentcorp.app.batch import Instance, plan_instances
from agentcorp.app.config import PASSWORD_ENV, LiveViewSettings, RunConfig, resolve_config
from agentcorp.app.episode import EPISODE, RunFolder, Station, to_episode_result
from agentcorp.app.report import RunReport, write_traces
from agentcorp.errors import ConfigError, LLMError
from agentcorp.record.abort import abort_on_signals
from agentcorp.record.recorder import finish_open_sessions
from agentcorp.spec import Company, Task

__all__ = ["MAX_WORKERS", "RunPlan", "load", "run"]

#: More local worker processes than this is a typo, not a plan (each owns desktops).
MAX_WORKERS = 256
_TERMINAL = {"passed", "failed", "error", "budget_exceeded"}
_FROM_LEDGER = {"passed": "pass", "failed": "fail", "error": "error"}


@dataclass(frozen=True)
class RunPlan:
    """What a run is about to do, for its first line: tasks, how each runs, where."""

    company: str
    run_dir: Path
    modes: dict[str, str]
    endpoint: str | None
    backend: str
    workers: int
    resumed: bool

    def header(self) -> str:
        """One line: the model (if any) and how each task will run."""
        modes = ", ".join(f"{t}={path_taken(m)}" for t, m in self.modes.items())
        where = (
            f"with the model at {self.endpoint}"
            if self.endpoint
            else "offline (no model configured)"
        )
        return f"agentcorp run {self.company}: {len(self.modes)} task(s) {where}: {modes}"


def load(path_or_company: str | os.PathLike[str] | Company) -> Company:
    """A loaded company (``SpecError``/``ConfigError`` with exit code 2 when it is not one)."""
    if isinstance(path_or_company, Company):
        return path_or_company
    from agentcorp.spec import load_company

    p = Path(path_or_company)
    if not p.exists():
        raise ConfigError(f"{p}: no such company file or folder")
    return load_company(p)


def _workers(workers: Any) -> int:
    try:
        n = int(workers)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"--workers: expected a whole number, got {workers!r}") from None
    if n < 1 or n > MAX_WORKERS:
        raise ConfigError(f"--workers: expected 1 to {MAX_WORKERS}, got {workers}")
    return n


def _select(company: Company, ids: Sequence[str] | None) -> list[Task]:
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


def _run_folder(sessions: Path | None) -> tuple[RunFolder, bool]:
    """The run folder (``--sessions``, else a fresh temporary one) and whether it is temporary."""
    if sessions is None:
        return RunFolder(Path(tempfile.mkdtemp(prefix="agentcorp-run-"))), True
    try:
        sessions.mkdir(parents=True, exist_ok=True)
        probe = sessions / f".agentcorp-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"--sessions: cannot write to {sessions}: {exc.strerror or exc}"
        ) from None
    return RunFolder(sessions), False


def _prepare(folder: RunFolder, company: Company, resume: bool) -> bool:
    """Check the folder against ``resume``; returns whether an earlier run is continued."""
    from agentcorp.fleet._coord import coordinator_lock
    from agentcorp.fleet.ledger import SqliteLedger

    if folder.meta.is_dir():
        with coordinator_lock(folder.ledger):
            pass  # refused (one line) while another coordinator runs this folder
    if not folder.ledger.exists():
        if resume:
            raise ConfigError(f"--resume: {folder.root} holds no run to resume")
        return False
    settings = folder.read_settings() if folder.settings.exists() else {}
    theirs = settings.get("company")
    if theirs is not None and theirs != company.company:
        raise ConfigError(
            f"{folder.root}: holds a run of company {theirs!r}, not {company.company!r}; "
            "use another --sessions folder"
        )
    led = SqliteLedger(folder.ledger, create=False)
    try:
        unfinished = [r.id for r in led.rows() if r.state not in _TERMINAL]
    finally:
        led.close()
    if resume:
        return True
    if unfinished:
        raise ConfigError(
            f"{folder.root}: holds an unfinished run ({len(unfinished)} task(s) left); "
            "pass --resume to continue it, or use another --sessions folder"
        )
    # A finished run: keep its ledger and state aside, start afresh.
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    folder.meta.rename(folder.root / f".agentcorp-{stamp}")
    return False


def _fleet_tasks(company: Company, instances: Sequence[Instance], folder: RunFolder) -> list[Any]:
    from agentcorp.fleet.model import FleetTask

    selected = {i.task.id for i in instances if not i.batch}
    out = []
    for inst in instances:
        t = inst.task
        tb = t.budgets
        usd = tb.usd if tb is not None and tb.usd is not None else 0.0
        wall = tb.wall_clock if tb is not None and tb.wall_clock is not None else None
        wall = wall if wall is not None else company.defaults.budgets.wall_clock
        deps = tuple(d for d in dict.fromkeys(t.depends_on) if d in selected)
        out.append(
            FleetTask(
                id=inst.id,
                depends_on=inst.after if inst.batch else deps,
                company=company.company,
                cost=float(usd),
                expected_s=float(wall) if wall is not None else 600.0,
                api_key="llm",
                payload={
                    "run_dir": str(folder.root.resolve()),
                    "task_id": t.id,
                    "inputs": inst.inputs,
                    "instance": inst.id if inst.batch else "",
                },
                affinity=_affinity(company, inst),
            )
        )
    return out


def _affinity(company: Company, inst: Instance) -> str | None:
    """The worker group an instance is tied to, if any.

    A sandbox's state (a desktop's apps and files, a back office's database and port) lives
    on one worker: its tasks run there, one at a time. The rows of a batch are independent
    and spread over every worker, each with its own sandboxes, unless their sandbox runs
    services (on fixed ports, one per machine).
    """
    name = company.task_sandbox(inst.task)
    if inst.batch and not company.sandboxes[name].services:
        return None
    return name


def _probe(company: Company, cfg: RunConfig) -> Any:
    """A ``TaskRunner`` that opens nothing: how tasks would run, whether skills exist."""
    from agentcorp.app.runner import TaskRunner
    from agentcorp.app.sandboxes import Sandboxes

    return TaskRunner(
        company,
        cfg,
        Sandboxes(company, {}),
        None,
        client=object() if cfg.online else None,
        recordings=company.base_dir / "recordings",
    )


def _preview_modes(probe: Any, instances: Sequence[Instance]) -> dict[str, str]:
    """How each task will run, without opening anything (a batch: its first row, counted)."""
    out: dict[str, str] = {}
    for inst in instances:
        name = inst.task.id
        n = sum(1 for i in instances if i.task.id == name)
        key = f"{name} ×{n}" if inst.batch else name
        if key not in out:
            out[key] = probe.mode_for(instance_of(inst.task, inst.inputs))
    return out


def _preflight(
    cfg: RunConfig, company: Company, env: Mapping[str, str], tasks: Sequence[Task] = ()
) -> None:
    """Fail fast, before any sandbox starts: a missing secret, a bad endpoint or key.

    Also an actor model that does not take images (exit 3, one line naming it).
    """
    from agentcorp.app.runner import make_client, model_names, secret_values
    from agentcorp.llm.capabilities import check_vision

    secret_values(company, env)
    client = make_client(cfg, company.company)
    if client is None:
        return
    try:
        # Some OpenAI-compatible servers lack /models; the first real call will tell.
        with contextlib.suppress(LLMError):
            client.list_models()
        actors = {model_names(cfg, company, t, client)["actor"] for t in tasks}
        for actor in sorted(a for a in actors if a):
            check_vision(client, actor, declared=cfg.vision)
    finally:
        client.close()


class _Notes:
    """Fleet events → observers' notices (in-process, the attempts speak for themselves)."""

    def __init__(self, observers: Sequence[RunObserver], backend: str) -> None:
        self.observers = observers
        self.backend = backend

    def __call__(self, kind: str, message: str) -> None:
        if self.backend != "inline" or kind == "drain":
            for o in self.observers:
                o.notice(f"fleet: {message}")


def run(
    path_or_company: str | os.PathLike[str] | Company,
    *,
    sessions: str | os.PathLike[str] | None = None,
    workers: int | str = 1,
    ray_address: str | None = None,
    tasks: Sequence[str] | None = None,
    inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    inputs_file: str | os.PathLike[str] | None = None,
    resume: bool = False,
    observers: Sequence[RunObserver] = (),
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    live_view: LiveViewSettings | None = None,
    rate_limits: Mapping[str, tuple[float, float]] | None = None,
    lease_s: float = 30.0,
    spare: int = 0,
    episode: str = EPISODE,
    console: Any = None,
    **settings: Any,
) -> RunReport:
    """Run a company's tasks and return the ``RunReport`` (``report.passed``).

    ``sessions`` is the run folder (recorded sessions, traces, audit log, ledger); ``workers``
    local worker processes (each with its own displays) or a Ray cluster at ``ray_address``
    (``"auto"`` for the one this machine is part of); ``tasks`` selects task ids; ``inputs``
    gives run-time input values to the tasks that declare them, or, as a list of rows, runs
    one selected task once per row (a batch: ``agentcorp.app.batch``), as does
    ``inputs_file`` (CSV with a header row, or JSON Lines); ``resume`` continues the run
    in ``sessions``. ``settings`` are ``RunConfig`` fields (``provider``, ``base_url``,
    ``planner_model``, ``no_plan``, ``no_cache``, ``cache_dir``...) over the environment
    (``environ``, default ``os.environ``, read once) over ``agentcorp.toml``.

    ``episode`` names (``MODULE:FUNCTION``) the episode function the fleet runs for each
    task; the default runs the task itself. Tests and benchmarks name another one.

    ``console`` serves the operator console for the run: an ``agentcorp.console.Console``
    you started (its ``url`` carries the token; you close it), or a bind address
    (``"127.0.0.1:0"``): then one is started for this run, its URL printed on stderr, and
    closed when the run returns. Its address and token reach every worker, local or Ray.
    """
    with _console(console) as operator:
        watched = [*observers]
        if operator is not None:
            # Workers (local or Ray) reach the console through their environment.
            environ = {**(os.environ if environ is None else environ), **operator.env()}
            if operator.observer not in watched:
                watched.append(operator.observer)
        try:
            return _run(
                path_or_company,
                sessions=sessions,
                workers=workers,
                ray_address=ray_address,
                tasks=tasks,
                inputs=inputs,
                inputs_file=inputs_file,
                resume=resume,
                observers=watched,
                environ=environ,
                config_file=config_file,
                live_view=live_view,
                rate_limits=rate_limits,
                lease_s=lease_s,
                spare=spare,
                episode=episode,
                **settings,
            )
        finally:
            if operator is not None:
                operator.finish()


@contextlib.contextmanager
def _console(console: Any) -> Any:
    """The run's operator console: the caller's, or one started (and closed) here."""
    if console is None or not isinstance(console, (str, tuple)):
        yield console
        return
    from agentcorp.console import Console

    bind = console if isinstance(console, str) else ":".join(map(str, console))
    operator = Console(bind).start()
    try:
        print(f"console: {operator.url}", file=sys.stderr, flush=True)
        yield operator
    finally:
        operator.close()


def _run(
    path_or_company: str | os.PathLike[str] | Company,
    *,
    sessions: str | os.PathLike[str] | None,
    workers: int | str,
    ray_address: str | None,
    tasks: Sequence[str] | None,
    inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    inputs_file: str | os.PathLike[str] | None,
    resume: bool,
    observers: Sequence[RunObserver],
    environ: Mapping[str, str] | None,
    config_file: str | os.PathLike[str] | None,
    live_view: LiveViewSettings | None,
    rate_limits: Mapping[str, tuple[float, float]] | None,
    lease_s: float,
    spare: int,
    episode: str,
    **settings: Any,
) -> RunReport:
    t0 = time.monotonic()
    env = dict(os.environ if environ is None else environ)
    n = _workers(workers)
    sess = Path(sessions) if sessions is not None else None
    cfg = resolve_config(
        sessions=sess,
        environ=env,
        config_file=Path(config_file) if config_file is not None else None,
        **settings,
    )
    backend = _backend(n, ray_address, cfg, episode)
    company = load(path_or_company)
    selected = _select(company, tasks)
    probe = _probe(company, cfg)
    # With skills off nothing is learned, so no row waits for the first.
    ready = probe.cached if cfg.cache else (lambda _t: True)
    instances = plan_instances(selected, inputs, ready, inputs_file)
    _preflight(cfg, company, env, selected)
    folder, temporary = _run_folder(cfg.sessions)
    resumed = _prepare(folder, company, resume)
    folder.write_settings(company, cfg, live_view)
    plan = RunPlan(
        company.company,
        folder.root,
        _preview_modes(probe, instances),
        cfg.describe() if cfg.online else None,
        backend,
        n,
        resumed,
    )
    for o in observers:
        o.run_started(plan)
    # Workers read keys and the live view's password from their environment, never a file.
    worker_env = {**env, PASSWORD_ENV: live_view.password} if live_view is not None else env
    schedule = _schedule(backend, n, ray_address, worker_env, rate_limits, lease_s, spare, episode)
    inline = backend == "inline" and episode == EPISODE
    station = Station(folder, env, observers, live_view=live_view) if inline else None
    outcome: Any = None
    aborted: KeyboardInterrupt | None = None
    # Ctrl-C / SIGTERM: open sessions end as "aborted", the report says what ran, and the
    # caller exits 130 / 143 (``RunReport.exit_code``); a watchdog bounds it to seconds.
    with abort_on_signals():
        try:
            fleet_tasks = _fleet_tasks(company, instances, folder)
            outcome = schedule(
                fleet_tasks,
                folder,
                station,
                _Notes(observers, backend),
                source=str(Path(str(company.source)).resolve()),
                budgets=_company_budget(company),
            )
        except KeyboardInterrupt as exc:
            aborted = exc
            finish_open_sessions(str(exc) or "interrupted")
        finally:
            if station is not None:
                station.close()
    results = _results(folder, instances)
    for r in results:
        for o in observers:
            o.task_finished(r)
    report = RunReport(
        company.company,
        folder.root,
        results,
        backend,
        n,
        time.monotonic() - t0,
        audit=_audit_logs(cfg, folder, station),
        resumed=resumed,
        lost=int(getattr(outcome, "lost", 0)),
    )
    if aborted is not None:
        report.aborted = str(aborted) or "interrupted"
        report.abort_code = int(getattr(aborted, "exit_code", 130))
        return report  # no traces: an aborted run exits at once
    if cfg.sessions is not None:
        report.trace = write_traces(folder.root, results, _warn(observers))
    if temporary:
        # Nothing was recorded and nothing can be resumed without --sessions: leave no trace.
        shutil.rmtree(folder.root, ignore_errors=True)
    return report


def _ray_env(env: Mapping[str, str]) -> dict[str, Any] | None:
    """What Ray workers need from the run's environment: the operator console's address.

    A local pool hands workers the whole environment; Ray actors on other nodes see their
    own node's, so the console (approvals, help, control) is passed explicitly.
    """
    from agentcorp.policy.approvers import CONSOLE_TOKEN_ENV, CONSOLE_URL_ENV

    wanted = {k: env[k] for k in (CONSOLE_URL_ENV, CONSOLE_TOKEN_ENV) if env.get(k)}
    return {"env_vars": wanted} if wanted else None


def _company_budget(company: Company) -> dict[str, float]:
    """The company's ``defaults.budgets.usd``: what its tasks reserve from while they run."""
    usd = company.defaults.budgets.usd
    return {company.company: float(usd)} if usd is not None else {}


def _backend(workers: int, ray_address: str | None, cfg: RunConfig, episode: str) -> str:
    """``inline``, ``local`` or ``ray``; refuses what cannot work before anything is made."""
    from agentcorp.fleet.model import resolve_runner

    if episode != EPISODE:
        resolve_runner(episode)  # a bad MODULE:FUNCTION is one line, here, not per worker
    backend = "ray" if ray_address else ("local" if workers > 1 else "inline")
    if backend != "inline" and cfg.audit is not None and not cfg.audit.is_dir():
        # One writer per hash chain: each worker process writes its own log into a folder.
        raise ConfigError(f"--audit: with --workers or --ray give a folder, not {cfg.audit}")
    if backend == "ray":
        from agentcorp.fleet.ray_backend import import_ray

        import_ray()  # the install hint (exit 3) before anything is made
    return backend


def _audit_logs(cfg: RunConfig, folder: RunFolder, station: Station | None) -> list[Path]:
    """The audit logs this run wrote: the station's, or the workers' in the audit folder."""
    if station is not None:
        return [station.audit_path] if station.audit_path is not None else []
    where = cfg.audit if cfg.audit is not None else folder.root
    if where.is_file():
        return [where]
    return sorted(where.glob("audit-*.jsonl")) if where.is_dir() else []


def _warn(observers: Sequence[RunObserver]) -> Callable[[str], None]:
    def warn(message: str) -> None:
        for o in observers:
            o.notice(message)

    return warn


def _schedule(
    backend: str,
    workers: int,
    ray_address: str | None,
    env: Mapping[str, str],
    rate_limits: Mapping[str, tuple[float, float]] | None,
    lease_s: float,
    spare: int,
    ref: str,
) -> Callable[..., Any]:
    """The call that runs the fleet tasks on ``backend`` with the episode function ``ref``."""
    from agentcorp.fleet.policy import RateLimit

    limits = {k: RateLimit(r, b) for k, (r, b) in (rate_limits or {}).items()}

    def inline(tasks: Any, folder: RunFolder, station: Any, note: Any, **kw: Any) -> Any:
        from agentcorp.fleet.inline import InlineOptions, run_inline

        def episode(task: Any, ctx: Any) -> Any:
            payload = dict(task.payload)
            return to_episode_result(
                station.run(
                    payload["task_id"], payload.get("inputs"), ctx, payload.get("instance", "")
                )
            )

        opts = InlineOptions(lease_s=lease_s, rate_limits=limits, spare_slots=spare)
        fn = episode if station is not None else ref
        return run_inline(tasks, folder.ledger, fn, opts, on_event=note, **kw)

    def local(tasks: Any, folder: RunFolder, station: Any, note: Any, **kw: Any) -> Any:
        from agentcorp.fleet.local import LocalOptions, run_local

        opts = LocalOptions(
            workers=workers,
            lease_s=lease_s,
            sandbox="none",
            rate_limits=limits,
            spare_slots=spare,
            env=dict(env),
        )
        return run_local(tasks, folder.ledger, ref, opts, on_event=note, **kw)

    def ray(tasks: Any, folder: RunFolder, station: Any, note: Any, **kw: Any) -> Any:
        from agentcorp.fleet.ray_backend import RayOptions, run_ray

        opts = RayOptions(
            address=None if ray_address == "local" else ray_address,
            lease_s=lease_s,
            rate_limits=limits,
            spare_slots=spare,
            sandbox="none",
            local_desktops=workers,
            runtime_env=_ray_env(env),
        )
        return run_ray(tasks, folder.ledger, ref, opts, on_event=note, **kw)

    return {"inline": inline, "local": local, "ray": ray}[backend]


def _results(folder: RunFolder, instances: Sequence[Instance]) -> list[TaskRun]:
    """Every instance's ``TaskRun``: from its episode's result file, else the ledger."""
    from agentcorp.fleet.ledger import SqliteLedger

    led = SqliteLedger(folder.ledger, create=False)
    try:
        rows = {r.id: r for r in led.rows()}
    finally:
        led.close()
    out = []
    for inst in instances:
        row = rows.get(inst.id)
        state = row.state if row is not None else "pending"
        mine = folder.read_result(inst.id)
        if mine is not None and _FROM_LEDGER.get(state, state) == mine.status:
            mine.attempts = max(mine.attempts, row.attempt if row is not None else 0)
            out.append(mine)
            continue
        detail = (row.detail or "") if row is not None else ""
        skipped = detail.startswith("skipped")
        out.append(
            TaskRun(
                inst.task.id,
                "fail" if skipped or state not in _TERMINAL else _FROM_LEDGER.get(state, state),
                "skipped" if skipped else "",
                detail
                if state in _TERMINAL
                else f"not finished ({state}); run again with --resume",
                {**inst.task.inputs, **inst.inputs},
                row.attempt if row is not None else 0,
                instance=inst.id if inst.batch else "",
            )
        )
    return out
