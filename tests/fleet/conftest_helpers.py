"""Shared helpers for the fleet tests: a small real company file and log checks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from agentcorp.fleet.ledger import SqliteLedger
from agentcorp.fleet.model import FleetTask
from agentcorp.spec import load_company
from tests.fleet.runners import read_log


def write_company(folder: Path, n: int, *, gap: int = 1, name: str = "fleet-test") -> Path:
    """A valid company of ``n`` tasks; task i depends on task i-gap."""
    lines = [
        "version: 1",
        f"company: {name}",
        "defaults:",
        "  budgets: {usd: 100, wall_clock: 60s}",
        "roles:",
        "  worker: {title: Worker, goal: Do the work, sandbox: desk}",
        "sandboxes:",
        "  desk: {kind: desktop, screen: [640, 480]}",
        "tasks:",
    ]
    for i in range(n):
        dep = f", depends_on: [t{i - gap:02d}]" if i >= gap else ""
        lines.append(f"  - {{id: t{i:02d}, role: worker, description: step {i}{dep}}}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "company.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def plan_tasks(path: Path) -> list[FleetTask]:
    """The fleet tasks of a company file (ids, dependencies, company), in dependency order."""
    company = load_company(path)
    return [
        FleetTask(
            id=t.id,
            depends_on=tuple(t.depends_on),
            company=company.company,
            expected_s=60.0,
            api_key="llm",
            payload={"company_file": str(path), "task_id": t.id},
        )
        for t in company.task_order()
    ]


def ledger_of(run_dir: Path) -> Path:
    """The ledger file of a run folder (``agentcorp run --sessions DIR``)."""
    return run_dir / ".agentcorp" / "ledger.db"


def check_exactly_once(ledger_path: Path, log_path: Path | None = None) -> dict[str, str]:
    """Every terminal task has one terminal attempt, its last; returns task -> state."""
    if not ledger_path.exists() or ledger_path.stat().st_size == 0:
        assert log_path is None or not read_log(log_path)  # killed before it began
        return {}
    led = SqliteLedger(ledger_path, create=False)
    try:
        rows = {r.id: r for r in led.rows()}
        attempts = led.attempts()
    finally:
        led.close()
    terminal = {"passed", "failed", "error", "budget_exceeded"}
    ends = Counter(a["task_id"] for a in attempts if a["outcome"] in terminal)
    for tid, row in rows.items():
        mine = [a for a in attempts if a["task_id"] == tid]
        if row.state in terminal:
            if mine:  # tasks decided without running have no attempts
                assert ends[tid] == 1, (tid, mine)
                assert mine[-1]["outcome"] == row.state, (tid, mine)
                assert mine[-1]["epoch"] == row.epoch
                assert all(a["outcome"] and a["outcome"].startswith("lost") for a in mine[:-1])
        else:
            assert ends[tid] == 0, (tid, mine)
    if log_path is not None:
        # No episode of a task started after the attempt that finished it.
        for e in read_log(log_path):
            row = rows[str(e["task"])]
            if row.state in terminal:
                assert int(e["epoch"]) <= row.epoch, e  # type: ignore[call-overload]
    return {tid: r.state for tid, r in rows.items()}
