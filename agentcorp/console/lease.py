"""Control leases: a person holds a task's sandbox; the agent's actions are refused meanwhile.

``LeaseBook`` (console side) grants, renews and releases leases and keeps them in the run's
ledger file (table ``control_leases``), so every viewer and a later reader see who held what.
A lease lapses when its holder stops sending heartbeats for ``ttl_s`` seconds.

``ControlGate`` (agent side) wraps a task's policy gate: before each action it asks the
console whether a person holds the task; if so the action is refused with
``control held by a person`` (audited), the call blocks until hand-back with no screenshot
taken and the task's budget clock paused, and the refusal carries the person's note, so the
next turn starts from a fresh observation.
"""

from __future__ import annotations

import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentcorp.policy.base import ActionGate, GateContext, GateDecision
from agentcorp.types import Action

if TYPE_CHECKING:
    from agentcorp.sandbox.base import Frame

__all__ = ["REFUSAL", "ControlGate", "Lease", "LeaseBook"]

REFUSAL = "control held by a person"


@dataclass(slots=True)
class Lease:
    """Who holds a task's sandbox, until when (``time.time()``).

    ``key`` goes to the page that took the lease only: inputs to the live view must carry it.
    """

    task_id: str
    holder: str
    expires: float
    taken: float
    key: str = ""

    def to_json(self) -> dict[str, Any]:
        """What viewers see."""
        return {"holder": self.holder, "expires_in": round(max(0.0, self.expires - time.time()))}


class LeaseBook:
    """The run's control leases (thread-safe); persisted to the ledger file when it exists."""

    def __init__(self, ttl_s: float = 20.0) -> None:
        self.ttl_s = ttl_s
        self.cond = threading.Condition()
        self._leases: dict[str, Lease] = {}
        self._notes: dict[str, str] = {}
        self.ledger: Path | None = None
        #: Told ``(kind, fields)`` when a lease lapses (the console audits it).
        self.on_lapse: Any = None

    def held(self, task_id: str) -> Lease | None:
        """The live lease on ``task_id`` (a lapsed one is released here)."""
        with self.cond:
            lease = self._leases.get(task_id)
            if lease is not None and lease.expires < time.time():
                self._drop(task_id, f"the lease of {lease.holder} lapsed (no heartbeat)")
                if self.on_lapse is not None:
                    self.on_lapse("lease.lapsed", task=task_id, by=lease.holder)
                return None
            return lease

    def take(self, task_id: str, holder: str) -> Lease | str:
        """Grant ``holder`` the lease, or say why not (someone else holds it)."""
        with self.cond:
            current = self.held(task_id)
            if current is not None and current.holder != holder:
                return f"{task_id}: control already held by {current.holder}"
            now = time.time()
            taken, key = (
                (current.taken, current.key) if current else (now, secrets.token_urlsafe(18))
            )
            lease = Lease(task_id, holder, now + self.ttl_s, taken, key)
            self._leases[task_id] = lease
            self._persist(lease)
            self.cond.notify_all()
            return lease

    def heartbeat(self, task_id: str, holder: str) -> Lease | str:
        """Extend ``holder``'s lease, or say why not (not held by them)."""
        with self.cond:
            current = self.held(task_id)
            if current is None or current.holder != holder:
                return f"{task_id}: {holder} holds no control lease on it"
            current.expires = time.time() + self.ttl_s
            self._persist(current)
            return current

    def holds(self, task_id: str, holder: str, key: str) -> bool:
        """Whether ``holder`` holds ``task_id`` and ``key`` is the one their take was given."""
        with self.cond:
            current = self.held(task_id)
            return (
                current is not None
                and current.holder == holder
                and hmac.compare_digest(current.key.encode(), key.encode())
            )

    def release(self, task_id: str, holder: str, note: str = "") -> str | None:
        """Hand back; ``None`` when done, else why not."""
        with self.cond:
            current = self.held(task_id)
            if current is None or current.holder != holder:
                return f"{task_id}: {holder} holds no control lease on it"
            self._drop(task_id, note or f"{holder} handed control back")
            return None

    def wait_released(self, task_id: str, timeout: float) -> str | None:
        """Block while ``task_id`` is held (up to ``timeout``); the hand-back note, or ``None``."""
        end = time.monotonic() + timeout
        with self.cond:
            while self.held(task_id) is not None:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 1.0))  # lapses are noticed by polling
            return self._notes.get(task_id, "control handed back")

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every live lease, for viewers."""
        with self.cond:
            return {
                t: lease.to_json()
                for t in list(self._leases)
                if (lease := self.held(t)) is not None
            }

    def _drop(self, task_id: str, note: str) -> None:
        self._leases.pop(task_id, None)
        self._notes[task_id] = note
        self._persist(None, task_id)
        self.cond.notify_all()

    def _persist(self, lease: Lease | None, task_id: str | None = None) -> None:
        if self.ledger is None or not self.ledger.is_file():
            return
        try:
            con = sqlite3.connect(self.ledger, timeout=5.0)
            try:
                with con:
                    con.execute(
                        "CREATE TABLE IF NOT EXISTS control_leases(task_id TEXT PRIMARY KEY, "
                        "holder TEXT NOT NULL, taken REAL NOT NULL, expires REAL NOT NULL)"
                    )
                    if lease is None:
                        con.execute("DELETE FROM control_leases WHERE task_id=?", (task_id,))
                    else:
                        con.execute(
                            "INSERT OR REPLACE INTO control_leases VALUES (?, ?, ?, ?)",
                            (lease.task_id, lease.holder, lease.taken, lease.expires),
                        )
            finally:
                con.close()
        except sqlite3.Error:
            pass  # the in-memory book stays authoritative; the ledger copy is for readers


class ControlGate(ActionGate):
    """``inner`` with the console's control leases in front (see the module docstring).

    ``ask(task_id)`` returns ``None`` when nobody holds the task, else blocks until hand-back
    and returns the person's note; ``pause(seconds)`` stops the budget clock for that long;
    ``audit`` is the run's ``AuditLog`` (or ``None``).
    """

    def __init__(self, inner: ActionGate, ask: Any, pause: Any = None, audit: Any = None) -> None:
        self.inner = inner
        self._ask = ask
        self._pause = pause
        self._audit = audit

    def check(self, action: Action, context: GateContext) -> GateDecision:
        """Refuse while a person holds the task; otherwise the inner gate decides."""
        t0 = time.monotonic()
        note = self._ask(context.task_id)
        if note is None:
            return self.inner.check(action, context)
        waited = time.monotonic() - t0
        if self._pause is not None:
            self._pause(waited)
        message = f"{REFUSAL}: the action was not run; {note}. Look at the screen again."
        if self._audit is not None:
            self._audit.append(
                "control",
                task=context.task_id,
                action=action.kind,
                source=context.source,
                decision="refused",
                message=message,
                paused_s=round(waited, 3),
            )
        return GateDecision(False, "denied", "control", "person", message)

    def redact_frame(self, frame: Frame, task_id: str) -> Frame:
        """The inner gate's redaction."""
        return self.inner.redact_frame(frame, task_id)
