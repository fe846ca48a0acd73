"""What a run returns: ``RunReport``, and the run's HTML traces."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentcorp.app.attempt import TaskRun
from agentcorp.errors import AgentcorpError

__all__ = ["RunReport", "audit_head", "write_traces"]


@dataclass
class RunReport:
    """How a run ended: one ``TaskRun`` per task instance, in dependency order.

    ``run_dir`` is the run folder (ledger, sessions, traces); ``trace`` the run's HTML index
    when sessions were recorded; ``backend`` is ``inline``, ``local`` or ``ray``.
    """

    company: str
    run_dir: Path
    results: list[TaskRun]
    backend: str = "inline"
    workers: int = 1
    wall_s: float = 0.0
    trace: Path | None = None
    audit: list[Path] = field(default_factory=list)  # the run's hash-chained audit logs
    resumed: bool = False
    lost: int = 0
    #: Set when Ctrl-C or SIGTERM stopped the run: why, and the exit code (130, 143).
    aborted: str | None = None
    abort_code: int = 0

    @property
    def passed(self) -> bool:
        """Every task instance passed (never for an aborted run)."""
        return self.aborted is None and bool(self.results) and all(r.passed for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 every task passed, 1 one did not, 130/143 the run was aborted by a signal."""
        if self.aborted is not None:
            return self.abort_code or 130
        return 0 if self.passed else 1

    def result(self, task_id: str) -> TaskRun:
        """The result of ``task_id`` (``KeyError`` when it was not part of the run)."""
        for r in self.results:
            if r.task_id == task_id:
                return r
        raise KeyError(task_id)

    def to_json(self) -> dict[str, Any]:
        """The ``agentcorp run --json`` document."""
        return {
            "company": self.company,
            "passed": self.passed,
            "run_dir": str(self.run_dir),
            "backend": self.backend,
            "workers": self.workers,
            "resumed": self.resumed,
            "wall_s": round(self.wall_s, 3),
            "lost": self.lost,
            "aborted": self.aborted,
            "trace": str(self.trace) if self.trace else None,
            "audit": [{"path": str(p), "head": audit_head(p)} for p in self.audit],
            "tasks": [r.to_json() for r in self.results],
        }


def audit_head(path: Path) -> str:
    """The hash of an audit log's last entry (what ``agentcorp audit verify --head`` takes)."""
    import json

    try:
        lines = path.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)
        return str(json.loads(lines[-1])["hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def write_traces(
    root: Path, results: list[TaskRun], warn: Callable[[str], None] | None = None
) -> Path:
    """One HTML trace per recorded session, and an index page linking them all."""
    from agentcorp.record.report import IndexRow, render_run_index, write_report
    from agentcorp.record.session import open_session

    rows = []
    for r in results:
        link = None
        if r.session is not None:
            folder = Path(r.session)
            try:
                trace = write_report(open_session(folder), folder.with_suffix(".html"))
                link = trace.resolve().relative_to(root.resolve()).as_posix()
            except (AgentcorpError, ValueError) as exc:
                if warn is not None:
                    warn(f"agentcorp: warning: no trace for {folder}: {exc}")
        rows.append(IndexRow(r.task_id, r.status, r.mode, r.reason, link))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    index = root / f"run-{stamp}.html"
    try:
        html = _run_report(root, results)
    except AgentcorpError as exc:  # no ledger to read: the plain index still links the traces
        if warn is not None:
            warn(f"agentcorp: warning: plain run index: {exc}")
        html = render_run_index(rows)
    index.write_text(html, encoding="utf-8")
    return index


def _run_report(root: Path, results: list[TaskRun]) -> str:
    """The run report (DAG, timeline, phases, failures) with the run's own results over it."""
    from agentcorp.record.run_report import load_run, overlay_results, render_run_report

    view = load_run(root)
    overlay_results(view, [r.to_json() for r in results])
    return render_run_report(view)
