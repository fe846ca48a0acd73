"""``agentcorp fleet run | status | simulate``: a company on many workers, resumable."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

from agentcorp.cli._app import fleet_app
from agentcorp.errors import ConfigError

_RATE = re.compile(r"^(?:(?P<key>[A-Za-z0-9_.-]+)=)?(?P<rate>[0-9.]+)(?:/(?P<burst>[0-9.]+))?$")


def _parse_rate(values: list[str]) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for v in values:
        m = _RATE.match(v.strip())
        try:
            rate = float(m["rate"]) if m else 0.0
            burst = float(m["burst"]) if m and m["burst"] else max(1.0, rate)
        except ValueError:
            m = None
        if m is None or rate <= 0 or burst < 1:
            raise ConfigError(f"--rate-limit: expected [KEY=]RATE[/BURST] with RATE > 0, got {v!r}")
        out[m["key"] or "llm"] = (rate, burst)
    return out


def _default_ledger(path: Path) -> Path:
    base = path if path.is_dir() else path.parent
    stem = path.name if path.is_dir() else path.stem
    return base / ".agentcorp" / f"{stem}.fleet.db"


@fleet_app.command("run")
def fleet_run(
    path: Annotated[Path, typer.Argument(help="A company file, or a folder holding one company.")],
    ledger: Annotated[
        Path | None,
        typer.Option("--ledger", help="Ledger file (SQLite); run again with it to resume."),
    ] = None,
    backend: Annotated[str, typer.Option(help="local (default) or ray.")] = "local",
    workers: Annotated[int, typer.Option(help="Local worker processes (own Xvfb each).")] = 2,
    address: Annotated[
        str | None, typer.Option(help="Ray head address (ray backend; default: start locally).")
    ] = None,
    lease: Annotated[float, typer.Option(help="Lease length in seconds.")] = 30.0,
    sandbox: Annotated[str, typer.Option(help="Per-worker sandbox: xvfb or none.")] = "xvfb",
    runner: Annotated[
        str, typer.Option(help="Episode runner MODULE:FUNCTION.")
    ] = "agentcorp.fleet.runners:spec",
    rate_limit: Annotated[
        list[str] | None,
        typer.Option("--rate-limit", help="[KEY=]RATE[/BURST] episode starts per second."),
    ] = None,
    spare: Annotated[int, typer.Option(help="Slots kept free for retried tasks.")] = 0,
    sessions: Annotated[
        Path | None, typer.Option(help="Folder for recorded sessions (one per attempt).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> int:
    """Run a company on a pool of workers; kill it any time and run it again to resume."""
    from agentcorp.fleet.policy import RateLimit
    from agentcorp.fleet.runners import load_plan

    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend must be 'local' or 'ray', got {backend!r}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if not lease > 0:
        raise ConfigError(f"--lease must be positive, got {lease}")
    if spare < 0:
        raise ConfigError(f"--spare must be 0 or more, got {spare}")
    if address is not None and backend != "ray":
        raise ConfigError("--address needs --backend ray")
    limits = {k: RateLimit(r, b) for k, (r, b) in _parse_rate(rate_limit or []).items()}
    plan = load_plan(path)
    ledger_path = ledger if ledger is not None else _default_ledger(path)
    ledger_path.parent.mkdir(parents=True, exist_ok=True)
    session_root = str(sessions.resolve()) if sessions is not None else None

    def note(kind: str, msg: str) -> None:
        if not as_json:
            typer.echo(f"fleet: {msg}", err=True)

    if backend == "local":
        from agentcorp.fleet.local import LocalOptions, run_local

        opts = LocalOptions(
            workers=workers,
            lease_s=lease,
            sandbox=sandbox,  # type: ignore[arg-type]
            rate_limits=limits,
            spare_slots=spare,
            session_root=session_root,
        )
        report = run_local(
            plan.tasks,
            ledger_path,
            runner,
            opts,
            budgets=plan.budgets,
            source=plan.source,
            on_event=note,
        )
    else:
        from agentcorp.fleet.ray_backend import RayOptions, run_ray

        ropts = RayOptions(
            address=address,
            lease_s=lease,
            rate_limits=limits,
            spare_slots=spare,
            session_root=session_root,
            sandbox=sandbox,
        )
        report = run_ray(
            plan.tasks,
            ledger_path,
            runner,
            ropts,
            budgets=plan.budgets,
            source=plan.source,
            on_event=note,
        )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ledger": str(ledger_path),
                    "counts": report.counts,
                    "wall_s": report.wall_s,
                    "dispatched": report.dispatched,
                    "lost": report.lost,
                    "fenced": report.fenced,
                    "resumed_finished": report.resumed_finished,
                    "ok": report.ok,
                },
                sort_keys=True,
            )
        )
    else:
        summary = ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items()))
        typer.echo(f"fleet: {summary} in {report.wall_s:.1f}s (ledger {ledger_path})")
    return 0 if report.ok else 1


@fleet_app.command("status")
def fleet_status(
    ledger: Annotated[Path, typer.Option("--ledger", help="Ledger file of a fleet run.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON.")] = False,
) -> int:
    """Show the ledger of a fleet run: every task's state, attempt and holder."""
    from dataclasses import asdict

    from agentcorp.fleet.ledger import SqliteLedger

    led = SqliteLedger(ledger, create=False)
    try:
        rows = led.rows()
        counts = led.counts()
        source = led.meta("source") or ""
    finally:
        led.close()
    if as_json:
        typer.echo(
            json.dumps(
                {"source": source, "counts": counts, "tasks": [asdict(r) for r in rows]},
                sort_keys=True,
            )
        )
        return 0
    typer.echo(f"{ledger}: {source}")
    for r in rows:
        holder = f" on {r.worker}" if r.state in ("leased", "running") and r.worker else ""
        detail = f"  {r.detail}" if r.detail else ""
        typer.echo(
            f"  {r.id:<30} {r.state:<16} attempt {r.attempt} epoch {r.epoch}{holder}{detail}"
        )
    typer.echo("  " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 0


@fleet_app.command("drain")
def fleet_drain(
    ledger: Annotated[Path, typer.Option("--ledger", help="Ledger file of a fleet run.")],
    node: Annotated[
        str, typer.Option(help="Worker name (w1), host name, Ray node id, or * for all.")
    ],
    in_s: Annotated[float, typer.Option("--in", help="Seconds until the node leaves.")] = 0.0,
) -> int:
    """Announce that a node leaves: no new work it cannot finish; the rest is re-queued."""
    import time

    from agentcorp.fleet.ledger import SqliteLedger

    if in_s < 0:
        raise ConfigError(f"--in must be 0 or more, got {in_s:g}")
    led = SqliteLedger(ledger, create=False)
    try:
        led.announce_drain(node, time.time() + in_s)
    finally:
        led.close()
    typer.echo(f"fleet: {node} leaves in {in_s:g}s", err=True)
    return 0


@fleet_app.command("simulate")
def fleet_simulate(
    nodes: Annotated[int, typer.Option(help="Nodes in the fleet.")] = 1000,
    tasks: Annotated[int, typer.Option(help="Tasks to run.")] = 10000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    durations_from: Annotated[
        Path | None,
        typer.Option("--durations-from", help="Folder of recorded sessions (manifest duration_s)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> int:
    """Simulate the real scheduler on a fleet of nodes that come and go."""
    from agentcorp.fleet.sim import SimConfig, load_durations, simulate

    cfg = SimConfig(nodes=nodes, tasks=tasks, seed=seed)
    durations = load_durations(durations_from) if durations_from is not None else None
    report = simulate(cfg, durations)
    if as_json:
        typer.echo(report.to_json())
    else:
        typer.echo(
            f"simulated {report.nodes} nodes, {report.tasks} tasks: {report.completed} completed "
            f"({report.passed} passed), lost {report.lost}, duplicates {report.duplicates}, "
            f"fenced zombie writes {report.fenced}, wasted {100 * report.wasted_fraction:.2f}%, "
            f"decision {report.decision_us:.1f} us/dispatch, makespan "
            f"{report.makespan_s / 3600:.1f} h, wall {report.wall_s:.1f} s"
        )
    return 0 if report.lost == 0 and report.duplicates == 0 else 1
