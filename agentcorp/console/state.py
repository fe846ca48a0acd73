"""What the operator console knows of a run, shared by the observer, the pollers and the server.

One lock guards everything; every change bumps ``version`` and wakes the server-sent event
streams waiting on it. Pending approvals and help questions are rendezvous: the thread that
asked blocks on its entry until a person answers from the page or the deadline passes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ConsoleState", "Question", "TaskView"]

_FINISHED = {"pass", "fail", "error", "budget_exceeded", "aborted", "passed", "failed", "lost"}


@dataclass(slots=True)
class TaskView:
    """One task as the console shows it."""

    id: str
    status: str = "pending"
    depends_on: tuple[str, ...] = ()
    mode: str = ""
    step: int = 0
    intent: str = ""
    action: str = ""
    tokens: int = 0
    cost_usd: float = 0.0
    reason: str = ""
    frame: bytes | None = None  # PNG or JPEG of the last observation
    frame_no: int = 0
    live: bool = False  # steps arrive in this process (else read from its session folder)

    @property
    def finished(self) -> bool:
        """The task reached an end state."""
        return self.status in _FINISHED

    def to_json(self) -> dict[str, Any]:
        """What the page gets (the frame by URL, not inline)."""
        return {
            "id": self.id,
            "status": self.status,
            "depends_on": list(self.depends_on),
            "mode": self.mode,
            "step": self.step,
            "intent": self.intent,
            "action": self.action,
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 6),
            "reason": self.reason,
            "frame": self.frame_no if self.frame is not None else None,
        }


@dataclass(slots=True)
class Question:
    """An approval or a help question waiting for a person."""

    kind: str  # "approval" or "help"
    task_id: str
    text: str
    deadline: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    answer: dict[str, Any] | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def to_json(self) -> dict[str, Any]:
        """What the page gets."""
        left = max(0.0, self.deadline - time.time())
        return {
            "id": self.id,
            "kind": self.kind,
            "task": self.task_id,
            "text": self.text,
            "seconds_left": round(left),
        }


class ConsoleState:
    """The run as the console sees it; thread-safe."""

    def __init__(self, audit_tail: int = 50) -> None:
        self.cond = threading.Condition()
        self.version = 0
        self.live_version = 0  # bumped by each new live frame (the page swaps one image)
        self.company = ""
        self.run_dir: Path | None = None
        self.backend = ""
        self.finished = False
        self.tasks: dict[str, TaskView] = {}
        self.questions: dict[str, Question] = {}
        self.audit: deque[dict[str, Any]] = deque(maxlen=audit_tail)
        self.leases: dict[str, dict[str, Any]] = {}

    def changed(self) -> None:
        """Call with ``cond`` held after a change: wakes the event streams."""
        self.version += 1
        self.cond.notify_all()

    def task(self, task_id: str) -> TaskView:
        """The view of ``task_id`` (made on first sight); call with ``cond`` held."""
        t = self.tasks.get(task_id)
        if t is None:
            t = self.tasks[task_id] = TaskView(task_id)
        return t

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-ready data."""
        with self.cond:
            return {
                "version": self.version,
                "company": self.company,
                "backend": self.backend,
                "finished": self.finished,
                "tasks": [t.to_json() for t in self.tasks.values()],
                "questions": [q.to_json() for q in self.questions.values()],
                "audit": list(self.audit),
                "leases": dict(self.leases),
            }

    def live_changed(self) -> None:
        """A new live frame: wakes the event streams without a whole new snapshot."""
        with self.cond:
            self.live_version += 1
            self.cond.notify_all()

    def wait_any(self, seen: int, seen_live: int, timeout: float) -> tuple[int, int]:
        """Block until ``version`` or ``live_version`` moves (or ``timeout``); both, now."""
        with self.cond:
            self.cond.wait_for(
                lambda: self.version != seen or self.live_version != seen_live, timeout
            )
            return self.version, self.live_version

    def note(self, kind: str, **fields: Any) -> None:
        """Add an entry to the audit tail the page shows."""
        with self.cond:
            self.audit.append({"kind": kind, "t": round(time.time(), 3), **fields})
            self.changed()

    def ask(self, kind: str, task_id: str, text: str, timeout: float) -> Question:
        """Post a question; the caller then waits on ``question.done`` (see ``await_answer``)."""
        q = Question(kind, task_id, text, time.time() + timeout)
        with self.cond:
            self.questions[q.id] = q
            self.changed()
        return q

    def await_answer(self, q: Question) -> dict[str, Any] | None:
        """Block until the question is answered or its deadline passes (``None``)."""
        q.done.wait(max(0.0, q.deadline - time.time()))
        with self.cond:
            self.questions.pop(q.id, None)
            q.done.set()  # an answer arriving now is too late, and is told so
            self.changed()
            return q.answer

    def answer(self, qid: str, answer: dict[str, Any]) -> str | None:
        """Answer question ``qid``; ``None`` when done, else why not (unknown, too late)."""
        with self.cond:
            q = self.questions.get(qid)
            if q is None or q.done.is_set():
                return f"question {qid} is not waiting (answered already, or its time ran out)"
            q.answer = answer
            q.done.set()
            self.questions.pop(qid, None)
            self.changed()
        return None
