"""``agentcorp fleet status | drain | simulate``: look at and steer a run's ledger.

Running is ``agentcorp run`` (``--workers N``, ``--ray ADDRESS``, ``--resume``); ``--ledger``
takes a run folder (``--sessions DIR``) or the ledger file in it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agentcorp.cli._app import fleet_app
from agentcorp.errors import ConfigError


def _ledger(path: Path) -> Path:
    """A ledger file, or a run folder (``--sessions DIR``) holding one."""
    from agentcorp.app.episode import RunFolder

    return RunFolder(path).ledger if path.is_dir() else path


@fleet_app.command("status")
def fleet_status(
    ledger: Annotated[
        Path, typer.Option("--ledger", help="A run folder (--sessions DIR) or its ledger file.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print rows as JSON.")] = False,
) -> int:
    """Show the ledger of a fleet run: every task's state, attempt and holder."""
    from dataclasses import asdict

    from agentcorp.fleet.ledger import SqliteLedger

    ledger = _ledger(ledger)
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
    ledger: Annotated[
        Path, typer.Option("--ledger", help="A run folder (--sessions DIR) or its ledger file.")
    ],
    node: Annotated[
        str, typer.Option(help="Worker name (w1), host name, Ray node id, or * for all.")
    ],
    in_s: Annotated[float, typer.Option("--in", help="Seconds until the node leaves.")] = 0.0,
) -> int:
    """Announce that a node leaves: no new work it cannot finish; the rest is re-queued."""
    import time

    from agentcorp.fleet.ledger import SqliteLedger

    if not 0 <= in_s <= 366 * 86400:  # NaN fails too
        raise ConfigError(f"--in must be 0 to 31622400 seconds (a year), got {in_s:g}")
    led = SqliteLedger(_ledger(ledger), create=False)
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
