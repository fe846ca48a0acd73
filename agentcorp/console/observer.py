"""The console's feeds: an observer of the step stream, and a poller of the run's ledger.

In-process runs feed the console through ``ConsoleObserver`` (subscribed like the session
recorder, via ``agentcorp.run(observers=[...])``). With ``--workers`` or Ray the workers'
steps stay in their processes, so ``LedgerPoller`` reads the task states from the ledger
and each running task's newest recorded frame and step from its session folder.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

from agentcorp.app.attempt import RunObserver, TaskRun
from agentcorp.console.state import ConsoleState, TaskView
from agentcorp.types import ActionStep, ModelCallStep, ObservationStep, PolicyStep, Step

__all__ = ["ConsoleObserver", "LedgerPoller"]

_LEDGER_STATES = {"passed": "pass", "failed": "fail"}


class ConsoleObserver(RunObserver):
    """Keeps ``ConsoleState`` current from the run's events and step records."""

    def __init__(self, state: ConsoleState) -> None:
        self.state = state

    def run_started(self, plan: Any) -> None:
        """Every task of the run, pending, with how it will run."""
        s = self.state
        with s.cond:
            s.company, s.run_dir, s.backend = plan.company, Path(plan.run_dir), plan.backend
            for task_id, mode in plan.modes.items():
                s.task(task_id).mode = mode
            s.changed()
        s.note("run", message=plan.header())

    def notice(self, message: str) -> None:
        """Into the audit tail."""
        self.state.note("notice", message=message)

    def attempt_started(self, task_id: str, mode: str, attempt: int) -> None:
        """The task runs."""
        with self.state.cond:
            t = self.state.task(task_id)
            t.status, t.mode, t.step, t.intent, t.action = "running", mode, 0, "", ""
            self.state.changed()

    def step(self, task_id: str, step: Step) -> None:
        """Last frame, current step and intent, tokens and cost so far."""
        with self.state.cond:
            t = self.state.task(task_id)
            t.live = True
            if not _apply_step(t, step):
                return
            self.state.changed()
        if isinstance(step, PolicyStep) and step.decision != "allowed":
            self.state.note(
                "policy", task=task_id, decision=step.decision, rule=step.rule or "", step=step.step
            )

    def task_finished(self, run: TaskRun) -> None:
        """The task's end state and reason."""
        with self.state.cond:
            t = self.state.task(run.task_id)
            t.status, t.reason = run.status, run.reason
            t.tokens, t.cost_usd = max(t.tokens, run.tokens), max(t.cost_usd, run.cost_usd)
            t.mode = run.mode or t.mode
            self.state.changed()


def _apply_step(t: TaskView, step: Step) -> bool:
    """Update ``t`` from one step record; whether anything shown changed."""
    if isinstance(step, ObservationStep):
        image = _image_of(step)
        if image is None:
            return False
        t.frame, t.frame_no = image, t.frame_no + 1
    elif isinstance(step, ActionStep):
        a = step.action
        t.step = step.step
        t.intent = a.intent or step.reasoning or ""
        t.action = a.summary or a.kind
    elif isinstance(step, ModelCallStep):
        t.tokens += step.usage.prompt_tokens + step.usage.completion_tokens
        t.cost_usd += step.usage.cost_usd
    else:
        return False
    return True


def _image_of(step: ObservationStep) -> bytes | None:
    """The observation as an image: what the model was sent (redacted), else the frame."""
    if step.image:
        return bytes(step.image)
    frame = step.frame
    if frame is None or not hasattr(frame, "pil"):
        return None
    buf = io.BytesIO()
    img = frame.pil().convert("RGB")
    img.save(buf, format="JPEG", quality=70)
    return buf.getvalue()


class LedgerPoller:
    """Reads task states and dependencies from the run's ledger every ``period_s`` seconds."""

    def __init__(self, state: ConsoleState, period_s: float = 0.5) -> None:
        self.state = state
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="agentcorp-console-ledger")
        self._thread.daemon = True

    def start(self) -> None:
        """Start polling (in a daemon thread)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; one last read so the final states show."""
        self._stop.set()
        self._thread.join(5.0)
        self.poll()

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.poll()

    def poll(self) -> None:
        """One read of the ledger (nothing when the run has not made it yet)."""
        root = self.state.run_dir
        if root is None:
            return
        db = root / ".agentcorp" / "ledger.db"
        if not db.is_file():
            return
        try:
            rows = _ledger_rows(db)
        except Exception:  # a ledger mid-write, or being made: the next poll reads it
            return
        with self.state.cond:
            moved = False
            for task_id, state, deps, detail in rows:
                moved |= _merge_row(self.state.task(task_id), state, deps, detail)
            # Tasks in worker processes: their steps are read from their session folders.
            remote = [
                t.id for t in self.state.tasks.values() if t.status == "running" and not t.live
            ]
            if moved:
                self.state.changed()
        for task_id in remote:
            self._read_session(root, task_id)

    def _read_session(self, root: Path, task_id: str) -> None:
        tail = _session_tail(root, task_id)
        if tail is None:
            return
        with self.state.cond:
            t = self.state.task(task_id)
            if t.live or t.finished:
                return
            frame, t.step, t.intent, t.action, t.tokens, t.cost_usd = tail
            if frame is not None and frame != t.frame:
                t.frame, t.frame_no = frame, t.frame_no + 1
            self.state.changed()


_Tail = tuple[bytes | None, int, str, str, int, float]


def _session_tail(root: Path, task_id: str) -> _Tail | None:
    """The newest session of ``task_id`` (being written): last frame, step, intent, usage."""
    from agentcorp.errors import AgentcorpError
    from agentcorp.record.report import _frame_png
    from agentcorp.record.session import open_session

    folders = sorted(
        (p for p in (root / task_id).glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime
    )
    if not folders:
        return None
    try:
        s = open_session(folders[-1])
    except AgentcorpError:
        return None
    t = TaskView(task_id)
    last_obs = None
    for ev in s.events:
        if isinstance(ev.step, ObservationStep):
            last_obs = ev
        else:
            _apply_step(t, ev.step)
    frame = None
    if last_obs is not None:
        try:
            got = _frame_png(s, last_obs)
        except AgentcorpError:
            got = None
        frame = got[1] if got is not None else None
    return frame, t.step, t.intent, t.action, t.tokens, t.cost_usd


def _ledger_rows(db: Path) -> list[tuple[str, str, tuple[str, ...], str]]:
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2.0)
    try:
        rows = con.execute("SELECT id, state, spec, detail FROM tasks ORDER BY rowid").fetchall()
    finally:
        con.close()
    out = []
    for task_id, state, spec, detail in rows:
        try:
            deps = tuple(str(d) for d in json.loads(spec).get("depends_on") or ())
        except (ValueError, AttributeError, TypeError):
            deps = ()
        out.append((str(task_id), str(state), deps, str(detail or "")))
    return out


def _merge_row(t: TaskView, state: str, deps: tuple[str, ...], detail: str) -> bool:
    """Ledger facts over the view; an in-process end state is never moved back."""
    moved = t.depends_on != deps
    t.depends_on = deps
    status = _LEDGER_STATES.get(state, state)
    if status == "leased":
        status = "running"
    if not t.finished and status != t.status:
        t.status, moved = status, True
        if t.finished and detail and not t.reason:
            t.reason = detail
    return moved
