"""``agentcorp replay`` and ``agentcorp report``: recorded sessions as tests and as traces.

Exit codes for ``replay``: 0 the replay reproduced the recording, 1 it diverged, 2 the
recording is bad (missing, incomplete, tampered, unknown version) or a flag is invalid.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from agentcorp.cli._app import app
from agentcorp.errors import ConfigError


@app.command()
def replay(
    session: Annotated[Path, typer.Argument(help="A recorded session folder.")],
    mode_name: Annotated[
        str,
        typer.Option(
            "--mode",
            help="decision: re-run the loop on recorded model replies; "
            "action: re-execute recorded actions; regrade: re-run the checks.",
        ),
    ] = "decision",
    no_sandbox: Annotated[
        bool,
        typer.Option(
            "--no-sandbox",
            help="Decision mode: serve the recorded frames instead of driving a live sandbox.",
        ),
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Action mode: where diverged frame pairs go.")
    ] = None,
    company: Annotated[
        Path | None,
        typer.Option(
            "--company",
            help="The company file or folder to build a live sandbox from (decision and action "
            "modes). Only this file is used: a recording never names the apps or services "
            "that replay starts, so without --company a live replay is refused.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> int:
    """Replay a recorded session as a test: exit 0 reproduces, 1 diverges, 2 bad recording.

    Recordings are data: replay starts apps or services only from the company file named
    with --company, never from one the recording names.
    """
    from agentcorp.app.replaying import replay_session
    from agentcorp.record.session import open_session

    s = open_session(session)
    s.require_complete()
    if s.manifest.get("kind") == "manager":
        return _replay_manager(session, mode_name, as_json)
    report = replay_session(s, mode_name, no_sandbox=no_sandbox, company=company, out=out)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for o in report.outcomes:
            if o.status != "matched" or mode_name == "regrade":
                extra = f" [{o.frames[0]} | {o.frames[1]}]" if o.frames else ""
                print(f"  step {o.step}: {o.status} {o.detail}{extra}")
        print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return int(report.exit_code)


def _replay_manager(session: Path, mode: str, as_json: bool) -> int:
    """A manager's session: its plans re-made from the recorded replies (no model, no sandbox)."""
    from agentcorp.app.objectives import replay_manager

    if mode != "decision":
        raise ConfigError(f"{session}: a manager's session replays in --mode decision only")
    ok, detail, calls = replay_manager(session)
    if as_json:
        doc = {"mode": "decision", "ok": ok, "divergence": None if ok else detail}
        print(json.dumps({**doc, "model_calls": calls}, indent=2))
    else:
        print(detail if ok else f"diverged: {detail}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


@app.command()
def report(
    session: Annotated[
        Path, typer.Argument(help="A recorded session folder, or a run folder (--sessions).")
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="The HTML file to write (trace.html; for a run folder RUN_DIR/report.html).",
        ),
    ] = None,
    gif: Annotated[
        Path | None, typer.Option("--gif", help="Also write an animation (.gif or .webp).")
    ] = None,
) -> int:
    """Write a self-contained HTML trace of a session, or the report of a whole run."""
    from agentcorp.record.report import write_animation, write_report
    from agentcorp.record.run_report import is_run_folder, write_run_report
    from agentcorp.record.session import open_session

    if is_run_folder(session):
        if gif is not None:
            raise ConfigError(f"--gif: {session} is a run folder; give one of its sessions")
        print(write_run_report(session, output))
        return 0
    s = open_session(session)
    path = write_report(s, output if output is not None else Path("trace.html"))
    if not s.complete:
        print(f"agentcorp: warning: {s.reason}", file=sys.stderr)
    print(path)
    if gif is not None:
        print(write_animation(s, gif))
    return 0
