"""The writable live view: a person holding a task's control lease acts on its sandbox.

Nothing connects to a worker: the agent side pulls. While ``ControlGate`` holds the task (a
person has the lease, the agent is parked), ``LiveDriver.drive`` loops on the console's
``/api/control/TASK/live``: it posts the sandbox's current frame (JPEG, bounded) and the
results of the inputs it ran, and gets back the person's queued inputs, which it runs on the
task's ``Computer`` through ``execute_action``. ``LiveBook`` is the console's side of that
exchange: a bounded queue of inputs per task, the newest live frame, and whether the agent is
parked. Live frames go to the page only; they are never model input nor step records.

Inputs use the ``Action`` vocabulary (``click``, ``right_click``, ``double_click``, ``type``,
``key``, ``scroll``); ``parse_input`` checks one and says, in one line, what is wrong with it.
Typed text is audited by its length only (it may be a password), and may not hold a
``${secrets.NAME}`` placeholder: the console types text as the person wrote it, never a
stored secret.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentcorp.errors import ActionInterrupted, AgentcorpError
from agentcorp.types import Action

if TYPE_CHECKING:
    from agentcorp.sandbox.base import Computer, Frame

__all__ = ["INPUT_KINDS", "LiveBook", "LiveDriver", "describe_input", "parse_input"]

INPUT_KINDS = ("click", "right_click", "double_click", "type", "key", "scroll")
_MAX_TEXT = 2000
_MAX_QUEUE = 64
_MAX_COORD = 16384
#: Named keys both backends understand (besides single characters and F1-F24).
_NAMED_KEYS = frozenset(
    [
        "ctrl",
        "control",
        "alt",
        "shift",
        "super",
        "win",
        "meta",
        "cmd",
        "enter",
        "return",
        "esc",
        "escape",
        "del",
        "delete",
        "backspace",
        "bksp",
        "tab",
        "space",
        "pgup",
        "pageup",
        "pgdn",
        "pagedown",
        "home",
        "end",
        "up",
        "down",
        "left",
        "right",
        "insert",
    ]
)
_MODIFIERS = frozenset(["ctrl", "control", "alt", "shift", "super", "win", "meta", "cmd"])
#: How long after its last poll the agent still counts as parked (seconds).
_PARKED_S = 2.5


def _int(data: Mapping[str, Any], name: str, lo: int, hi: int) -> int:
    v = data.get(name)
    if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
        raise ValueError(f"{name}: needs a whole number, got {v!r}"[:200])
    if not lo <= int(v) <= hi:
        raise ValueError(f"{name}: {int(v)} is outside {lo}..{hi}")
    return int(v)


def _check_keys(keys: Any) -> str:
    if not isinstance(keys, str) or not keys.strip() or len(keys) > 60:
        raise ValueError("keys: needs a combination such as 'ctrl+a' or 'enter' (at most 60)")
    raw = keys.strip()
    parts = [*raw[:-2].split("+"), "+"] if raw.endswith("++") else raw.split("+")
    if raw == "+":
        parts = ["+"]
    for i, part in enumerate(p.strip() for p in parts):
        name = part.lower()
        ok = len(part) == 1 or name in _NAMED_KEYS or (name[:1] == "f" and name[1:].isdigit())
        if not ok:
            raise ValueError(f"keys: unknown key {part!r} in {raw!r}"[:200])
        if i < len(parts) - 1 and name not in _MODIFIERS:
            raise ValueError(f"keys: {part!r} in {raw!r} is not a modifier (ctrl, alt, shift…)")
    return raw


def parse_input(data: Any, size: tuple[int, int] | None = None) -> Action:
    """One person's input as an ``Action``; ``ValueError`` (one line) when it is malformed.

    ``size`` is the sandbox's screen (when known): coordinates must fall on it.
    """
    if not isinstance(data, Mapping):
        raise ValueError('event: needs a JSON object such as {"kind": "click", "x": 1, ...}')
    kind = data.get("kind")
    if kind not in INPUT_KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(INPUT_KINDS)}"[:200])
    if kind == "type":
        text = data.get("text")
        if not isinstance(text, str) or not text or len(text) > _MAX_TEXT:
            raise ValueError(f"text: needs 1 to {_MAX_TEXT} characters")
        if "${secrets." in text:
            raise ValueError("text: may not hold a ${secrets.…} placeholder")
        return Action("type", text=text, summary=f"type {len(text)} characters")
    if kind == "key":
        keys = _check_keys(data.get("keys"))
        return Action("key", keys=keys, summary=f"key {keys}")
    w, h = size if size is not None else (_MAX_COORD, _MAX_COORD)
    x, y = _int(data, "x", 0, w - 1), _int(data, "y", 0, h - 1)
    if kind == "scroll":
        dx = _int(data, "dx", -20, 20) if "dx" in data else 0
        dy = _int(data, "dy", -20, 20) if "dy" in data else 0
        if not dx and not dy:
            raise ValueError("scroll: needs dx or dy (wheel notches, -20..20)")
        return Action("scroll", x=x, y=y, dx=dx, dy=dy, summary=f"scroll {dx},{dy}")
    return Action(kind, x=x, y=y, summary=f"{kind} {x},{y}")


def describe_input(a: Action) -> dict[str, Any]:
    """What the audit keeps of an input: never typed text, only its length."""
    out: dict[str, Any] = {"action": a.kind}
    if a.kind == "type":
        out["text_length"] = len(a.text or "")
    elif a.kind == "key":
        out["keys"] = a.keys
    else:
        out["x"], out["y"] = a.x, a.y
        if a.kind == "scroll":
            out["dx"], out["dy"] = a.dx, a.dy
    return out


def _event_json(a: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": a.kind}
    for name in ("x", "y", "text", "keys"):
        v = getattr(a, name)
        if v is not None:
            out[name] = v
    if a.kind == "scroll":
        out["dx"], out["dy"] = a.dx, a.dy
    return out


# --- the console's side ---------------------------------------------------------------------


@dataclass(slots=True)
class _Live:
    queue: deque[dict[str, Any]] = field(default_factory=deque)
    next_id: int = 1
    frame: bytes | None = None
    frame_no: int = 0
    size: tuple[int, int] | None = None
    seen: float = 0.0  # monotonic time of the agent's last poll
    done: int = 0  # the last input id the agent reported
    error: str = ""  # the last input that failed, and why

    def to_json(self) -> dict[str, Any]:
        return {
            "frame": self.frame_no if self.frame is not None else None,
            "size": list(self.size) if self.size else None,
            "parked": time.monotonic() - self.seen < _PARKED_S,
            "queued": len(self.queue),
            "done": self.done,
            "sent": self.next_id - 1,
            "error": self.error,
        }


class LiveBook:
    """Per task: the person's queued inputs and the sandbox's newest live frame (thread-safe).

    ``on_change(live_only)`` is called after a change: ``True`` for a new frame only (the
    page swaps its image), ``False`` when what the page shows about the view changed.
    """

    def __init__(self, on_change: Callable[[bool], None] | None = None) -> None:
        self.cond = threading.Condition()
        self._tasks: dict[str, _Live] = {}
        self.on_change = on_change

    def _live(self, task_id: str) -> _Live:
        got = self._tasks.get(task_id)
        if got is None:
            got = self._tasks[task_id] = _Live()
        return got

    def size(self, task_id: str) -> tuple[int, int] | None:
        """The task's screen size as the agent last reported it."""
        with self.cond:
            got = self._tasks.get(task_id)
            return got.size if got is not None else None

    def push(self, task_id: str, action: Action) -> int | str:
        """Queue ``action`` for the agent: its id, or why not (too many waiting)."""
        with self.cond:
            live = self._live(task_id)
            if len(live.queue) >= _MAX_QUEUE:
                return f"{task_id}: {_MAX_QUEUE} inputs are waiting for the sandbox already"
            n, live.next_id = live.next_id, live.next_id + 1
            live.queue.append({"id": n, **_event_json(action)})
            self.cond.notify_all()
        self._changed(False)
        return n

    def restart(self, task_id: str) -> None:
        """A new lease on ``task_id``: forget the last one's frame, progress and error."""
        with self.cond:
            old = self._tasks.get(task_id)
            if old is not None and not old.queue:
                self._tasks[task_id] = _Live(next_id=old.next_id)

    def pending(self, task_id: str) -> int:
        """How many inputs wait for ``task_id``'s agent."""
        with self.cond:
            live = self._tasks.get(task_id)
            return len(live.queue) if live is not None else 0

    def exchange(
        self,
        task_id: str,
        frame: bytes | None,
        size: tuple[int, int] | None,
        results: list[dict[str, Any]],
        wait_s: float,
        held: Callable[[], bool],
    ) -> list[dict[str, Any]]:
        """The agent's poll: keep its frame and results; the queued inputs (waits for some).

        Returns at once with what is queued, else when an input arrives, ``held()`` turns
        false, or ``wait_s`` passes.
        """
        with self.cond:
            live = self._live(task_id)
            was_parked = time.monotonic() - live.seen < _PARKED_S
            live.seen = time.monotonic()
            if size is not None:
                live.size = size
            if frame is not None:
                live.frame, live.frame_no = frame, live.frame_no + 1
            for r in results:
                live.done = max(live.done, int(r.get("id") or 0))
                if not r.get("ok"):
                    live.error = f"input {r.get('id')}: {r.get('error') or 'failed'}"[:300]
        if frame is not None:
            self._changed(True)
        if results or not was_parked:
            self._changed(False)
        end = time.monotonic() + wait_s
        with self.cond:
            live = self._live(task_id)
            while not live.queue and held():
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(min(left, 0.1))  # a lapsed lease is noticed by polling
            events = list(live.queue)
            live.queue.clear()
            live.seen = time.monotonic()
        return events

    def leave(self, task_id: str) -> None:
        """The agent stopped driving (hand-back): it is no longer parked here."""
        with self.cond:
            live = self._tasks.get(task_id)
            if live is None:
                return
            live.seen = 0.0
        self._changed(False)

    def wake(self) -> None:
        """A lease ended: long polls return now."""
        with self.cond:
            self.cond.notify_all()

    def frame(self, task_id: str) -> bytes | None:
        """The newest live frame of ``task_id`` (JPEG)."""
        with self.cond:
            live = self._tasks.get(task_id)
            return live.frame if live is not None else None

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per task with a live view: frame number, size, parked, queue, progress."""
        with self.cond:
            return {t: live.to_json() for t, live in self._tasks.items()}

    def _changed(self, frame_only: bool) -> None:
        if self.on_change is not None:
            self.on_change(frame_only)


# --- the agent's side -----------------------------------------------------------------------

#: ``exchange(task_id, payload, wait_s) -> reply`` (``None`` when the console is gone).
Exchange = Callable[[str, dict[str, Any], float], "dict[str, Any] | None"]


class LiveDriver:
    """Runs the person's inputs on the task's ``Computer`` while the agent is parked.

    ``redact`` is the gate's ``redact_frame`` (what policy hides stays hidden from viewers
    too); ``audit`` the run's ``AuditLog`` (each input: ``person.action``).
    """

    def __init__(
        self,
        computer: Computer,
        redact: Callable[[Frame, str], Frame] | None = None,
        audit: Any = None,
        *,
        long_side: int = 1280,
        max_bytes: int = 600_000,
        poll_s: float = 0.25,
    ) -> None:
        self.computer = computer
        self._redact = redact
        self._audit = audit
        self.long_side = long_side
        self.max_bytes = max_bytes
        self.poll_s = poll_s
        self._last_sha = ""

    def drive(self, task_id: str, exchange: Exchange) -> str:
        """Serve the live view until hand-back; the hand-back note.

        A run aborted meanwhile ends it too (the refused action then meets the abort).
        """
        from agentcorp.sandbox.base import checkpoint

        self._last_sha = ""
        try:
            return self._serve(task_id, exchange, checkpoint)
        except ActionInterrupted as exc:
            return str(exc)

    def _serve(self, task_id: str, exchange: Exchange, checkpoint: Callable[[], None]) -> str:
        results: list[dict[str, Any]] = []
        while True:
            checkpoint()
            payload = self._frame_payload(task_id)
            payload["results"], results = results, []
            reply = exchange(task_id, payload, self.poll_s)
            if reply is None:
                return "the operator console could not be reached"
            for event in reply.get("events") or ():
                results.append(self._run(task_id, event))
            if reply.get("released") or not reply.get("held", True):
                if results:  # what ran after the hand-back still reaches the page and audit
                    exchange(task_id, {**self._frame_payload(task_id), "results": results}, 0.0)
                return str(reply.get("note") or "control handed back")

    def _run(self, task_id: str, event: Any) -> dict[str, Any]:
        from agentcorp.sandbox.base import checkpoint, execute_action

        n = event.get("id") if isinstance(event, dict) else None
        action: Action | None = None
        ok, error = False, ""
        try:
            action = parse_input(event, self.computer.size)
            execute_action(self.computer, action, time.monotonic() + 30.0)
            self.computer.settle(timeout=1.0)
            ok = True
        except ValueError as exc:
            error = str(exc)
        except ActionInterrupted as exc:
            checkpoint()  # an aborted run ends the live view; a slow input fails alone
            error = str(exc)
        except AgentcorpError as exc:
            error = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        if (
            error
            and action is not None
            and action.kind == "type"
            and ("'" in error or '"' in error)
        ):
            # A backend's typing error quotes the text and what the field holds: a person's
            # text may be a password, so it is never repeated.
            error = f"type: the {len(action.text or '')} characters did not land as typed"
        if self._audit is not None:
            what = describe_input(action) if action is not None else {"action": "?"}
            fields = {"task": task_id, "input": n, **what, "ok": ok}
            self._audit.append("person.action", **fields, **({"error": error} if error else {}))
        return {"id": n, "ok": ok, "error": error}

    def _frame_payload(self, task_id: str) -> dict[str, Any]:
        """The current frame as a bounded JPEG, when it changed since the last one sent."""
        try:
            frame = self.computer.screenshot()
        except AgentcorpError:
            return {}
        if self._redact is not None:
            frame = self._redact(frame, task_id)
        if frame.sha256 == self._last_sha:
            return {}
        jpeg = self._jpeg(frame)
        if jpeg is None:
            return {}
        self._last_sha = frame.sha256
        size = self.computer.size
        return {"frame": base64.b64encode(jpeg).decode("ascii"), "size": [size[0], size[1]]}

    def _jpeg(self, frame: Frame) -> bytes | None:
        from agentcorp.sandbox.encode import model_image

        img = model_image(frame, self.long_side).convert("RGB")
        for quality in (75, 50, 30):
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=quality)
            if buf.tell() <= self.max_bytes:
                return buf.getvalue()
        return None
