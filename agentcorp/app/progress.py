"""The run on a terminal: the progress display (an observer) and the summary table.

``TerminalProgress`` subscribes to a run like any ``RunObserver`` (a web console does the
same): the run's header on stdout, notices and one live progress line on stderr.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from agentcorp.app.attempt import RunObserver, TaskRun, path_taken
from agentcorp.types import ActionStep, ModelCallStep, Step, Usage

__all__ = ["TerminalProgress", "summary_table"]


class TerminalProgress(RunObserver):
    """The run's header on stdout; notices and one live progress line on stderr."""

    def __init__(self, out: Console, err: Console, quiet_header: bool = False) -> None:
        self.out, self.console = out, err
        self.quiet_header = quiet_header
        self.live = Live(console=err, auto_refresh=False, transient=True)
        self.task = ""
        self.started = time.monotonic()
        self.step_no = 0
        self.action = ""
        self.tokens = 0
        self.usd = 0.0
        self.usage = Usage()

    def run_started(self, plan: Any) -> None:
        """Print the run's header line."""
        # One line however long: scripts and tests read it as the first line.
        target = self.console if self.quiet_header else self.out
        target.print(plan.header(), markup=False, soft_wrap=True)

    def notice(self, message: str) -> None:
        """Print a one-line notice on stderr."""
        self.console.print(message, markup=False, highlight=False)

    def attempt_started(self, task_id: str, mode: str, attempt: int) -> None:
        """Announce an attempt and start its live line."""
        self.task, self.started, self.step_no, self.action = task_id, time.monotonic(), 0, ""
        self.tokens, self.usd, self.usage = 0, 0.0, Usage()
        suffix = f" (attempt {attempt})" if attempt > 1 else ""
        shown = {
            "none": "no model, no recording, no steps",
            "planned": "planner + actor model",
            "model": "actor model",
        }.get(mode, mode)
        self.console.print(f"▶ {task_id}: {shown}{suffix}", highlight=False, markup=False)
        self._show()

    def step(self, task_id: str, step: Step) -> None:
        """Update the live line from a step record."""
        if isinstance(step, ActionStep):
            self.step_no = step.step
            a = step.action
            what = a.target or a.keys or (repr(a.text) if a.text else "") or a.url or ""
            self.action = f"{a.kind} {what}".strip()[:60]
        elif isinstance(step, ModelCallStep):
            self.tokens += step.usage.total_tokens
            self.usd += step.usage.cost_usd
            self.usage = self.usage + step.usage
        self._show()

    def _show(self) -> None:
        line = Text(
            f"  {self.task}  step {self.step_no}  {self.action}  tokens {self.tokens}  "
            f"${self.usage.cost_text()}  {time.monotonic() - self.started:.1f}s"
        )
        self.live.update(line, refresh=True)

    def attempt_ended(self, task_id: str, result: Any, session: Path | None) -> None:
        """Print how the attempt ended."""
        self.live.update(Text(""), refresh=True)
        via = path_taken(result.mode, result.repaired_at) if result.mode else ""
        self._line(task_id, result.status, result.reason, via, session)

    def task_finished(self, run: TaskRun) -> None:
        """Print tasks that ended without an attempt (skipped by a failed dependency)."""
        if run.mode == "skipped" or run.attempts == 0:
            via = path_taken(run.mode, run.repaired_at) if run.mode else ""
            self._line(run.task_id, run.status, run.reason, via, None)

    def _line(self, task_id: str, status: str, reason: str, via: str, session: Any) -> None:
        mark = {"pass": "✔", "fail": "✘", "error": "!", "budget_exceeded": "$"}.get(status, "?")
        reason = f": {reason}" if reason else ""
        where = f"  [{session}]" if session else ""
        via = f" (via {via})" if via else ""
        self.console.print(
            f"{mark} {task_id} {status}{reason}{via}{where}", highlight=False, markup=False
        )


def summary_table(results: list[TaskRun]) -> Table:
    """The run's summary: one row per task instance."""
    table = Table(title="agentcorp run")
    for col in ("task", "status", "mode", "actions", "tokens", "cost $", "time s", "tries"):
        table.add_column(col, no_wrap=True)
    table.add_column("detail", no_wrap=True, overflow="ellipsis", max_width=80)
    for r in results:
        detail = r.reason or ", ".join(f"{c['name']}: {c['status']}" for c in r.checks)
        if r.instance:
            shown = ", ".join(f"{k}={v}" for k, v in r.inputs.items())
            detail = f"({shown}) {detail}"
        table.add_row(
            r.name,
            r.status,
            # A skill that needed repair says from where: "model (skill repaired at step 3)".
            r.mode if r.repaired_at is None else path_taken(r.mode, r.repaired_at),
            str(r.actions),
            str(r.tokens),
            f"{r.cost_usd:.4f}" if r.cost_known else "unknown",
            f"{r.elapsed_s:.1f}",
            str(r.attempts),
            escape(detail[:80]),
        )
    return table
