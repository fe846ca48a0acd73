"""``agentcorp run PATH``: run a company's tasks (``agentcorp.run``), print progress and a summary.

Progress goes to stderr, the summary table to stdout (or the report as JSON with ``--json``).
Exit codes: 0 all passed, 1 a task did not pass, 2 invalid input, 3 the environment cannot
run the job. Configuration (flags > environment > ``agentcorp.toml``) is resolved by the
library (``agentcorp.app.config``); see the README's "Running" section.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from agentcorp.app.config import (
    LIVE_VIEW_ENV,
    PASSWORD_ENV,
    live_view_settings,
    parse_rate_limits,
)
from agentcorp.app.progress import TerminalProgress, summary_table
from agentcorp.app.report import audit_head
from agentcorp.cli._app import app
from agentcorp.errors import ConfigError
from agentcorp.spec import parse_input_args

__all__ = ["run"]


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
    input_: Annotated[
        list[str] | None,
        typer.Option("--input", metavar="KEY=VALUE", help="A run-time input value (repeatable)."),
    ] = None,
    inputs_file: Annotated[
        Path | None,
        typer.Option(
            "--inputs",
            metavar="FILE",
            help="Run --task once per row of FILE (CSV with a header row, or JSON Lines).",
        ),
    ] = None,
    no_model: Annotated[
        bool,
        typer.Option(
            "--no-model",
            help="Use no model even if one is configured (a diverging skill fails at once).",
        ),
    ] = False,
    objective: Annotated[
        list[str] | None,
        typer.Option(
            "--objective",
            metavar="ID",
            help="Run this objective instead of the tasks: the manager plans it, the plan runs "
            "(repeatable; see docs/manager.md).",
        ),
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
            help="Skills folder (default $AGENTCORP_SKILLS_DIR, $AGENTCORP_CACHE_DIR or "
            "COMPANY/.agentcorp/skills).",
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither use nor learn skills.")
    ] = False,
    workers: Annotated[
        str,
        typer.Option(
            metavar="N",
            help="Local worker processes, each with its own displays (default 1: in this process).",
        ),
    ] = "1",
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray", metavar="ADDRESS", help="Run on a Ray cluster (an address, or auto)."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the unfinished run in --sessions DIR."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run report as JSON on stdout.")
    ] = False,
    rate_limit: Annotated[
        list[str] | None,
        typer.Option(
            "--rate-limit",
            metavar="[KEY=]RATE[/BURST]",
            help="Model calls per second, shared by every worker (key llm by default).",
        ),
    ] = None,
    lease: Annotated[
        float, typer.Option(metavar="SECONDS", help="Lease length of a running task.")
    ] = 30.0,
    spare: Annotated[
        int, typer.Option(metavar="N", help="Worker slots kept free for retried tasks.")
    ] = 0,
    episode: Annotated[
        str | None,
        typer.Option(
            metavar="MODULE:FUNCTION",
            hidden=True,
            help="Another episode function for every task (tests and benchmarks).",
        ),
    ] = None,
    chromium: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="Chromium executable for browser sandboxes (default "
            "$AGENTCORP_CHROMIUM, else /usr/bin/chromium).",
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            metavar="SECONDS",
            help="Per-request model timeout (default $AGENTCORP_TIMEOUT, else the config "
            "file's timeout_s, else 60); a request that times out is not re-sent.",
        ),
    ] = None,
    console: Annotated[
        str | None,
        typer.Option(
            "--console",
            metavar="HOST:PORT",
            help="Serve the operator console for this run (127.0.0.1:0 picks a free port); "
            "its URL with a fresh token goes to stderr.",
        ),
    ] = None,
    console_linger: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="Keep the console up this long after the run ends."),
    ] = 0.0,
) -> int:
    """Run a company's tasks in dependency order on their sandboxes (resumable)."""
    import agentcorp

    live = live_view_settings(live_view, vnc_password, vnc_port, web_port)
    if not lease > 0 or lease == float("inf"):
        raise ConfigError(f"--lease must be a positive number of seconds, got {lease}")
    if not 0 <= spare <= 4096:
        raise ConfigError(f"--spare must be 0 to 4096, got {spare}")
    if resume and sessions is None:
        raise ConfigError("--resume needs --sessions DIR (the run folder to continue)")
    # Wide enough for the summary table when stdout is a file or a pipe.
    out = Console(file=sys.stdout, highlight=False, width=None if sys.stdout.isatty() else 200)
    err = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    progress = TerminalProgress(out, err, quiet_header=as_json)
    settings: dict[str, Any] = {
        "provider": provider,
        "base_url": base_url,
        "planner_model": planner_model,
        "actor_model": actor_model,
        "no_plan": no_plan,
        "audit": audit,
        "cache_dir": cache_dir,
        "no_cache": no_cache,
        "chromium": chromium,
        **({"timeout_s": timeout} if timeout is not None else {}),
    }
    observers: list[Any] = [progress]
    operator = _start_console(console, err) if console is not None else None
    if operator is not None:
        observers.append(operator.observer)
    try:
        if objective:
            if task or resume:
                raise ConfigError("--objective runs the objective's own plan: drop --task/--resume")
            return _objectives(
                path,
                objective,
                progress,
                out,
                as_json,
                sessions=sessions,
                workers=workers,
                ray_address=ray,
                observers=observers,
                config_file=config,
                **settings,
            )
        report = _run_with(
            progress,
            operator,
            console_linger,
            lambda: agentcorp.run(
                path,
                sessions=sessions,
                workers=workers,  # checked by the library: one line, exit 2
                ray_address=ray,
                tasks=task,
                inputs=parse_input_args(input_ or []),
                inputs_file=inputs_file,
                resume=resume,
                observers=observers,
                console=operator,
                config_file=config,
                live_view=live,
                rate_limits=parse_rate_limits(rate_limit or []),
                lease_s=lease,
                spare=spare,
                **({"episode": episode} if episode else {}),
                **({"use_model": False} if no_model else {}),
                **settings,
            ),
        )
    finally:
        if operator is not None:
            operator.close()
    if as_json:
        typer.echo(json.dumps(report.to_json(), sort_keys=True))
    else:
        out.print(summary_table(report.results))
        for log in report.audit:
            out.print(f"audit: {log} (head {audit_head(log)})", markup=False)
        if sessions is not None:
            out.print(f"sessions: {report.run_dir}", markup=False)
        if report.trace is not None:
            out.print(f"trace: {report.trace}", markup=False)
    if report.aborted is not None:
        err.print(
            f"agentcorp: {report.aborted}; the open sessions are kept as aborted", markup=False
        )
    return int(report.exit_code)


def _objectives(
    path: Path, ids: list[str], progress: TerminalProgress, out: Console, as_json: bool, **kw: Any
) -> int:
    """Each objective through ``agentcorp.run_objective``; its summary (or JSON) on stdout."""
    import agentcorp
    from agentcorp.app.running import load

    company = load(path)
    reports = []
    with progress.live:
        for oid in ids:
            reports.append(agentcorp.run_objective(company, oid, **kw))
    passed = all(r.passed for r in reports)
    if as_json:
        doc = {
            "company": company.company,
            "passed": passed,
            "objectives": [r.to_json() for r in reports],
        }
        typer.echo(json.dumps(doc, sort_keys=True))
    else:
        for r in reports:
            out.print(summary_table(r.tasks))
            line = (
                f"objective {r.objective}: {r.status} in {r.rounds} round(s), "
                f"{r.tokens} tokens, ${r.cost_usd:.4f}"
            )
            if r.manager_replayed:
                line += (
                    f" (the manager was replayed from its recording, made for "
                    f"{r.manager_usage.total_tokens} tokens, ${r.manager_usage.cost_usd:.4f})"
                )
            out.print(line + (f": {r.reason}" if r.reason else ""), markup=False)
            for p in r.problems:
                out.print(f"  problem: {p}", markup=False)
            if r.session is not None:
                out.print(f"manager session: {r.session}", markup=False)
    return 0 if passed else 1


@app.command()
def plan(
    path: Annotated[
        Path,
        typer.Argument(metavar="PATH", help="A company file, or a folder holding one company."),
    ],
    objective: Annotated[str, typer.Option("--objective", metavar="ID", help="The objective.")],
    provider: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Model provider: xai (default), openai or custom."),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(metavar="URL", help="Any OpenAI-compatible endpoint.")
    ] = None,
    planner_model: Annotated[
        str | None, typer.Option(metavar="MODEL", help="Planner model name.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Config file (default: ./agentcorp.toml when present)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> int:
    """Show the plan the manager makes for an objective, validated, without running it."""
    from agentcorp.app.objectives import plan_objective
    from agentcorp.planner.manager import render_plan

    outcome = plan_objective(
        path,
        objective,
        config_file=config,
        provider=provider,
        base_url=base_url,
        planner_model=planner_model,
    )
    if as_json:
        doc = {"status": outcome.status, "problems": outcome.problems, "plan": outcome.plan}
        typer.echo(json.dumps(doc, sort_keys=True))
    elif outcome.status == "accepted":
        typer.echo(render_plan(outcome.plan))
    else:
        typer.echo(f"agentcorp: no valid plan for objective {objective!r}:", err=True)
        for p in outcome.problems:
            typer.echo(f"  {p}", err=True)
    return 0 if outcome.status == "accepted" else 1


def _start_console(bind: str, err: Console) -> Any:
    """The operator console, serving; its URL (with the token) on stderr."""
    from agentcorp.console import Console as OperatorConsole

    operator = OperatorConsole(bind).start()
    err.print(f"console: {operator.url}", markup=False, soft_wrap=True)
    return operator


def _run_with(progress: Any, operator: Any, linger: float, run: Callable[[], Any]) -> Any:
    """Run with the progress display; then let the console show the end for ``linger`` s."""
    with progress.live:
        report = run()
    if operator is not None:
        operator.finish()
        time.sleep(max(0.0, linger))
    return report
