"""Replaying a recorded session: decision, action and regrade modes.

- ``RecordedChatModel(session)`` answers the loop's model requests from the recording, matched
  by order *and* canonical request hash; the first unmatched request becomes a
  ``ReplayDivergence`` naming the step and the first JSON path that differs.
- ``decision_replay(session, run)`` re-runs a loop (``run(model, computer)`` yields step
  records) against recorded responses and compares its actions with the recorded ones.
- ``action_replay(session, computer, grounder)`` re-executes the recorded actions without a
  model, relocating text targets through a ``Grounder`` when the screen moved.
- ``regrade(session, evaluate)`` re-evaluates the success checks on the recorded final frame.

``live_sandbox_company(session, company)`` is the recording trust rule: a recording is data,
so the company file a live sandbox is built from (its apps, services and commands) is only ever
the one the user named; the path a manifest carries is never opened.

Every mode returns a ``ReplayReport``; ``report.exit_code`` is 0 (reproduced) or 1 (diverged).
A bad recording raises ``RecordingError`` (exit 2).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from agentcorp.errors import (
    AgentcorpError,
    ConfigError,
    RecordingError,
    SandboxError,
    UnsupportedAction,
)
from agentcorp.grounding.base import Grounder, Hint
from agentcorp.record.canonical import (
    BLOB_REF_PREFIX,
    canonical_json,
    externalize_images,
    fast_canonical_text,
    first_difference,
    request_body,
)
from agentcorp.record.recorder import _check_leaves
from agentcorp.record.redact import Redactor
from agentcorp.record.session import Event, Session
from agentcorp.sandbox.base import COMPUTER_ACTIONS, Computer, Frame, SettleResult, execute_action
from agentcorp.types import (
    Action,
    ActionResultStep,
    ActionStep,
    Box,
    ChatModel,
    ChatRequest,
    ChatResponse,
    CheckStep,
    ModelCallStep,
    ObservationStep,
    PolicyStep,
    Step,
    ToolCall,
)

__all__ = [
    "RecordedChatModel",
    "ReplayDivergence",
    "ReplayReport",
    "StepOutcome",
    "action_replay",
    "decision_replay",
    "live_sandbox_company",
    "regrade",
]

LoopRunner = Callable[[ChatModel, Computer], Iterable[Step]]
StepStatus = Literal["matched", "relocated", "diverged"]
_IMAGE = "<image>"


def live_sandbox_company(session: Session, company: Path | None) -> Path:
    """The company file a live replay sandbox may be built from: ``company``, or refusal.

    A recording is data, never code: its manifest may name a company file (and so commands
    that start apps and services), but replay never follows it. Without ``company`` this
    raises ``ConfigError`` (exit 2) telling the user to name one or replay offline.
    """
    if company is None:
        named = session.manifest.get("company_file")
        hint = f" (the recording names {str(named)[:200]!r}; it is not opened)" if named else ""
        raise ConfigError(
            "a live sandbox starts the apps and services of a company file, and a recording "
            f"never chooses it: pass --company PATH, or --no-sandbox{hint}"
        )
    return company


class ReplayDivergence(AgentcorpError):
    """The replayed run did something the recording did not (exit code 1)."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """How one recorded step replayed; ``frames`` are (recorded, live) PNG paths when saved."""

    step: int
    status: StepStatus
    detail: str = ""
    frames: tuple[str, str] | None = None


@dataclass(slots=True)
class ReplayReport:
    """The result of a replay in any mode."""

    mode: str
    session: str
    divergence: str | None = None
    outcomes: list[StepOutcome] = field(default_factory=list)
    records: int = 0
    model_calls: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the replay reproduced the recording."""
        return self.divergence is None and all(o.status != "diverged" for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        """0 when reproduced, 1 when diverged."""
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (``agentcorp replay --json``)."""
        return {
            "mode": self.mode,
            "ok": self.ok,
            "divergence": self.divergence,
            "records": self.records,
            "model_calls": self.model_calls,
            "elapsed_s": round(self.elapsed_s, 4),
            "outcomes": [
                {
                    "step": o.step,
                    "status": o.status,
                    "detail": o.detail,
                    "frames": list(o.frames) if o.frames else None,
                }
                for o in self.outcomes
            ],
        }

    def summary(self) -> str:
        """One line for the terminal."""
        counts = {
            s: sum(o.status == s for o in self.outcomes)
            for s in ("matched", "relocated", "diverged")
        }
        parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        head = "reproduced" if self.ok else "DIVERGED"
        tail = f": {self.divergence}" if self.divergence else ""
        extra = f" ({parts})" if parts else ""
        return f"{self.mode} replay {head}{extra} in {self.elapsed_s:.2f}s{tail}"


# --- decision replay ----------------------------------------------------------------------


def _mask_images(body: Any) -> Any:
    """Every image reference replaced by one placeholder (live frames never match pixels)."""
    if isinstance(body, dict):
        return {k: _mask_images(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_mask_images(v) for v in body]
    if isinstance(body, str) and body.startswith(BLOB_REF_PREFIX):
        return _IMAGE
    return body


def response_from_dict(data: Mapping[str, Any], step: ModelCallStep) -> ChatResponse:
    """A ``ChatResponse`` from a recorded response dict (ours or the OpenAI wire shape)."""
    finish = data.get("finish_reason")
    if "choices" in data and isinstance(data["choices"], list) and data["choices"]:
        choice = data["choices"][0]
        msg = choice.get("message", {}) if isinstance(choice, dict) else {}
        finish = choice.get("finish_reason") if isinstance(choice, dict) else None
        raw_calls = [
            {"id": c.get("id", ""), **(c.get("function") or {})}
            for c in msg.get("tool_calls") or []
            if isinstance(c, dict)
        ]
        content = msg.get("content")
    else:
        raw_calls = [c for c in data.get("tool_calls") or [] if isinstance(c, dict)]
        content = data.get("content")
    calls = tuple(
        ToolCall(str(c.get("id", "")), str(c.get("name", "")), str(c.get("arguments", "")))
        for c in raw_calls
    )
    return ChatResponse(
        content if isinstance(content, str) else None,
        calls,
        step.usage,
        step.model,
        step.request_id,
        step.latency_ms,
        finish if isinstance(finish, str) else None,
    )


class RecordedChatModel(ChatModel):
    """Serves recorded responses in order, each only to a request equal to the recorded one.

    ``match_images=False`` compares requests with every image masked (for replays on a live
    sandbox, whose pixels never equal the recording's). The first mismatch is kept in
    ``divergence`` and raised as ``ReplayDivergence``.
    """

    def __init__(self, session: Session, *, match_images: bool = True) -> None:
        self.session = session
        self.match_images = match_images
        self.calls: list[Event] = [e for e in session.events if isinstance(e.step, ModelCallStep)]
        self.served = 0
        self.divergence: str | None = None
        self._redactor = Redactor()

    def _fail(self, message: str) -> ReplayDivergence:
        if self.divergence is None:
            self.divergence = message
        return ReplayDivergence(message)

    def complete(self, request: ChatRequest) -> ChatResponse:
        """The recorded response for this request, or ``ReplayDivergence``."""
        if self.divergence is not None:
            raise ReplayDivergence(self.divergence)
        index = self.served
        if index >= len(self.calls):
            raise self._fail(
                f"model call {index + 1}: the recording has only {len(self.calls)} model calls"
            )
        event = self.calls[index]
        step = event.step
        assert isinstance(step, ModelCallStep)
        match_images = self.match_images and "images_redacted" not in event.refs
        recorded_hash = event.refs.get("request_hash") if match_images else None
        body = request_body(request)
        if recorded_hash is not None:
            # Optimistic: the canonical text without redaction equals the recorded text in the
            # common case; only a mismatch pays for the exact (redacting) form below.
            fast = fast_canonical_text(body)
            if hashlib.sha256(fast.encode()).hexdigest() == recorded_hash:
                self.served += 1
                return response_from_dict(step.response, step)
        live = self._redactor.value(externalize_images(body))
        if not match_images:
            live = _mask_images(live)
        live_hash = hashlib.sha256(canonical_json(live).encode()).hexdigest()
        recorded: Any = None
        if recorded_hash is None:
            recorded = self.session.request_body(event)
            recorded = recorded if match_images else _mask_images(recorded)
            recorded_hash = hashlib.sha256(canonical_json(recorded).encode()).hexdigest()
        if live_hash != recorded_hash:
            if recorded is None:
                recorded = self.session.request_body(event)
            diff = first_difference(recorded, live) or "canonical hashes differ"
            raise self._fail(f"step {step.step}: model call {index + 1}: {diff}")
        self.served += 1
        return response_from_dict(step.response, step)

    def assert_complete(self) -> None:
        """Raise ``ReplayDivergence`` if recorded calls were left unserved."""
        if self.served < len(self.calls):
            nxt = self.calls[self.served].step
            raise self._fail(
                f"step {nxt.step}: the replay made {self.served} of "
                f"{len(self.calls)} recorded model calls"
            )


def _executed_actions(session: Session) -> list[ActionStep]:
    return [e.step for e in session.events if isinstance(e.step, ActionStep)]


def _action_diff(recorded: Action, live: Action) -> str | None:
    from dataclasses import asdict

    return first_difference(_jsonish(asdict(recorded)), _jsonish(asdict(live)), "action")


def _jsonish(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonish(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonish(v) for v in value]
    return value


def _image_key(session: Session) -> tuple[int, str, int] | None:
    """The (long side, format, quality) the recorded model images were encoded with."""
    cfg = session.manifest.get("actor_config")
    if not isinstance(cfg, dict):
        return None
    side, fmt, quality = cfg.get("long_side"), cfg.get("image_format"), cfg.get("image_quality")
    if isinstance(side, int) and isinstance(fmt, str) and isinstance(quality, int):
        return (side, fmt, quality)
    return None


def decision_replay(
    session: Session,
    run: LoopRunner,
    computer: Computer | None = None,
    *,
    on_step: Callable[[Step], None] | None = None,
) -> ReplayReport:
    """Re-run a loop with recorded model responses and compare its actions with the recording.

    ``computer`` defaults to a ``RecordedFramesComputer`` (no sandbox); pass a live one to
    replay on a real desktop (images are then not compared). ``on_step`` sees every replayed
    step (e.g. to record the replay itself).
    """
    session.require_complete()
    # Matching trusts the hashes in events.jsonl, so make sure the bodies still match them.
    session.verify(frames=False)
    session = session.actor_part()
    from agentcorp.sandbox.recorded import RecordedFramesComputer

    live_sandbox = computer is not None
    comp = (
        computer
        if computer is not None
        else RecordedFramesComputer(session, image_key=_image_key(session))
    )
    model = RecordedChatModel(session, match_images=not live_sandbox)
    expected = _executed_actions(session)
    report = ReplayReport("decision", str(session.folder))
    t0 = time.perf_counter()
    seen = 0
    try:
        for step in run(model, comp):
            report.records += 1
            if on_step is not None:
                on_step(step)
            if model.divergence is not None:
                break
            if isinstance(step, ActionStep):
                if seen >= len(expected):
                    report.divergence = (
                        f"step {step.step}: replay took action {seen + 1} "
                        f"({step.action.kind}) but the recording has {len(expected)} actions"
                    )
                    break
                rec = expected[seen]
                same = rec.action == step.action  # dataclass equality: cheap when equal
                diff = None if same else _action_diff(rec.action, step.action)
                if diff is None and rec.source != step.source:
                    diff = f"source differs: {rec.source!r} vs {step.source!r}"
                seen += 1
                if diff is not None:
                    report.divergence = f"step {step.step}: {diff}"
                    report.outcomes.append(StepOutcome(step.step, "diverged", diff))
                    break
                report.outcomes.append(StepOutcome(step.step, "matched"))
    except ReplayDivergence:
        pass
    report.elapsed_s = time.perf_counter() - t0
    report.model_calls = model.served
    if report.divergence is None and model.divergence is not None:
        report.divergence = model.divergence
    if report.divergence is None:
        try:
            model.assert_complete()
        except ReplayDivergence as exc:
            report.divergence = str(exc)
    if report.divergence is None and seen < len(expected):
        nxt = expected[seen]
        report.divergence = (
            f"step {nxt.step}: the replay stopped after {seen} of {len(expected)} recorded actions"
        )
    return report


# --- action replay ------------------------------------------------------------------------


def _thumb_diff(a: Frame, b: Frame) -> float:
    """Share of a coarse grayscale grid that differs clearly (0 = same picture)."""
    from PIL import ImageChops

    size = (160, 100)
    ga = a.pil().convert("L").resize(size)
    gb = b.pil().convert("L").resize(size)
    diff = ImageChops.difference(ga, gb).point(lambda v: 255 if v > 32 else 0)
    hist = diff.histogram()
    return hist[255] / float(size[0] * size[1])


def _save_pair(out: Path, step: int, recorded: Frame | None, live: Frame) -> tuple[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    rec_path = out / f"step-{step:04d}-recorded.png"
    live_path = out / f"step-{step:04d}-live.png"
    if recorded is not None:
        recorded.pil().save(rec_path)
    live.pil().save(live_path)
    return (str(rec_path), str(live_path))


def _execute(computer: Computer, a: Action) -> None:
    if a.kind not in COMPUTER_ACTIONS:
        return  # wait_for / done / fail: nothing to do on the computer
    try:
        execute_action(computer, a)
    except UnsupportedAction as exc:
        raise RecordingError(f"cannot replay this step: {exc}") from exc


def _relocate(a: Action, dx: int, dy: int) -> Action:
    if a.x is not None and a.y is not None:
        return replace(a, x=a.x + dx, y=a.y + dy)
    if a.path:
        return replace(a, path=tuple((x + dx, y + dy) for x, y in a.path))
    return a


def action_replay(
    session: Session,
    computer: Computer,
    grounder: Grounder,
    *,
    out: Path | None = None,
    diff_threshold: float = 0.10,
    settle_timeout: float = 2.0,
    find_timeout: float = 5.0,
) -> ReplayReport:
    """Re-execute the recorded actions on ``computer`` with no model.

    Before each action with a text ``target`` the grounder looks for it on the live screen:
    found where it was recorded = matched; found elsewhere = relocated (the action is shifted
    there; the click of ``type ... into: LABEL`` looks for the field LABEL names, as the loop
    did); not found within ``find_timeout`` seconds = diverged. After each action: an
    action that fails, or that changes nothing on screen where the recorded one changed
    something, or whose settled screen is clearly different from the recorded one (as a
    whole, or in the region the recorded action changed) is a divergence. Diverged steps save
    both frames under ``out``.
    """
    session.require_complete()
    report = ReplayReport("action", str(session.folder))
    out = out or Path(session.folder).parent / f"{session.folder.name}.action-replay"
    denied: set[int] = {
        e.step.step
        for e in session.events
        if isinstance(e.step, PolicyStep) and e.step.decision in ("denied", "rejected")
    }
    events = session.events
    t0 = time.perf_counter()
    live = computer.screenshot()
    for i, ev in enumerate(events):
        step = ev.step
        if not isinstance(step, ActionStep) or step.action.kind in _NOT_REPLAYED:
            continue
        if step.step in denied:
            continue
        recorded_frame = _frame_before(session, i)
        action, status, detail = _place(
            step.action, grounder, computer, live, _hint_for(events, i), find_timeout
        )
        why = detail if status == "diverged" else None
        before = live
        if why is None:
            try:
                _execute(computer, action)
            except SandboxError as exc:
                why = f"the action failed: {exc}"
        if why is None:
            settled = computer.settle(settle_timeout, since=before)
            live = settled.frame
            why = _screen_divergence(
                session, i, (recorded_frame, before), settled, diff_threshold, status == "matched"
            )
        if why is not None:
            frames = _save_pair(out, step.step, _frame_after(session, i) or recorded_frame, live)
            report.outcomes.append(StepOutcome(step.step, "diverged", why, frames))
            break
        report.outcomes.append(StepOutcome(step.step, status, detail))
    report.records = len(events)
    report.elapsed_s = time.perf_counter() - t0
    return report


_NOT_REPLAYED = frozenset({"done", "fail", "wait_for", "zoom", "request_help"})


def _hint_for(events: list[Event], index: int) -> Hint:
    """How to look for action ``index``'s target (a click of ``type ... into`` seeks a field).

    The click of ``type ... into: LABEL`` aimed at the field LABEL names, as the loop found
    it, not at the label's words.
    """
    step = events[index].step
    assert isinstance(step, ActionStep)
    nxt = next((e.step for e in events[index + 1 :] if isinstance(e.step, ActionStep)), None)
    a = step.action
    into = nxt.action.into if nxt is not None and nxt.action.kind == "type" else None
    if a.kind == "click" and into is not None and into == a.target:
        return Hint(role="field", purpose="act")
    return Hint()


def _place(
    action: Action,
    grounder: Grounder,
    computer: Computer,
    live: Frame,
    hint: Hint,
    find_s: float,
) -> tuple[Action, StepStatus, str]:
    """Where the recorded action goes on the live screen: (action, status, detail).

    A target not on ``live`` is looked for on fresh screens for up to ``find_s`` seconds.
    """
    if not (action.target and action.x is not None and action.y is not None):
        return action, "matched", ""
    cands = grounder.locate(live, action.target, hint)
    deadline = time.monotonic() + find_s
    while not cands and time.monotonic() < deadline:
        # An app still drawing (or a page still loading) shows its target a moment later.
        time.sleep(0.1)
        quick = replace(hint, thorough=False)
        cands = grounder.locate(computer.screenshot(), action.target, quick)
    if not cands:
        cands = grounder.locate(computer.screenshot(), action.target, hint)
    if not cands:
        return action, "diverged", f"target {action.target!r} not found on screen"
    box = cands[0].box
    if box.contains(action.x, action.y):
        return action, "matched", ""
    moved = _relocate(action, box.center[0] - action.x, box.center[1] - action.y)
    return (
        moved,
        "relocated",
        f"{action.target!r} moved from ({action.x}, {action.y}) to ({moved.x}, {moved.y})",
    )


def _recorded_result(session: Session, index: int, step: int) -> ActionResultStep | None:
    for ev in session.events[index + 1 :]:
        if isinstance(ev.step, ActionResultStep) and ev.step.step == step:
            return ev.step
        if isinstance(ev.step, ActionStep) and ev.step.step != step:
            return None
    return None


def _screen_divergence(
    session: Session,
    index: int,
    befores: tuple[Frame | None, Frame],
    settled: SettleResult,
    threshold: float,
    matched: bool,
) -> str | None:
    """Why the live screen after action ``index`` is not what the recording shows, if so.

    ``befores`` are the recorded and the live frames the action started from.
    """
    step = session.events[index].step
    assert isinstance(step, ActionStep)
    result = _recorded_result(session, index, step.step)
    rec_changed = result.changed if result is not None and result.ok else None
    if rec_changed is not None and settled.changed is None:
        b = rec_changed
        return (
            "the action changed nothing on screen; when recorded it changed the region at "
            f"({b.x}, {b.y}, {b.w}x{b.h})"
        )
    after = _frame_after(session, index)
    if not matched or after is None or after.size != settled.frame.size:
        return None
    share = _thumb_diff(after, settled.frame)
    if share > threshold:
        return f"screen after the action differs from the recording ({share:.0%})"
    rec_before, live_before = befores
    if rec_changed is not None and rec_before is not None and rec_before.size == after.size:
        local = _effect_diff((rec_before, after), (live_before, settled.frame), rec_changed)
        if local > _REGION_THRESHOLD:
            return (
                f"the region the action changed holds {local:.0%} more or less drawn than "
                f"recorded, at ({rec_changed.x}, {rec_changed.y}, "
                f"{rec_changed.w}x{rec_changed.h})"
            )
    return None


#: How much the amount drawn in the changed region may differ (a blinking caret, a font's
#: hinting) before the action's own effect counts as different.
_REGION_THRESHOLD = 0.5
#: Fewer drawn pixels than this (at half resolution) in the region: no local comparison.
_MIN_INK = 30


def _effect_diff(recorded: tuple[Frame, Frame], live: tuple[Frame, Frame], box: Box) -> float:
    """How differently an action left the amount drawn in ``box``, recorded vs live.

    Each pair is (before, after). Two measures, and the smaller counts: what the region holds
    after the action, and how much ink the action added or removed there. Typed text that
    never landed differs in both. A title bar showing the sandbox home's path (another home,
    another length) differs in what it holds but not in what a save changed; a view scrolled
    back by a slightly different amount differs in what changed but not in what it shows.
    0 = alike; 1 = drawn in one and not at all in the other. Amounts, not pixel positions:
    the same text a pixel lower (another font hinting) draws as much.
    """
    after_rec, after_live = _ink_in(recorded[1], box), _ink_in(live[1], box)
    d_rec = after_rec - _ink_in(recorded[0], box)
    d_live = after_live - _ink_in(live[0], box)
    return min(_ratio(after_rec, after_live), _ratio(d_rec, d_live))


def _ratio(a: int, b: int) -> float:
    most = max(abs(a), abs(b))
    if most < _MIN_INK:
        return 0.0  # a caret or a focus dot: too little to tell a blink from a difference
    return abs(a - b) / float(most)


def _ink_in(frame: Frame, box: Box) -> int:
    area = (box.x, box.y, box.x + box.w, box.y + box.h)
    size = (max(1, box.w // 2), max(1, box.h // 2))
    return _ink(frame.pil().convert("L").crop(area).resize(size))


def _ink(g: Any) -> int:
    """Pixels clearly away from the region's most common shade."""
    hist = g.histogram()
    bg = max(range(256), key=lambda v: hist[v])
    return sum(n for v, n in enumerate(hist) if abs(v - bg) > 48)


def _frame_before(session: Session, index: int) -> Frame | None:
    for ev in reversed(session.events[:index]):
        if isinstance(ev.step, ObservationStep) and ev.refs.get("frame"):
            return session.frame(ev.refs["frame"])
    return None


def _frame_after(session: Session, index: int) -> Frame | None:
    for ev in session.events[index + 1 :]:
        if isinstance(ev.step, ActionStep):
            return None
        if isinstance(ev.step, ObservationStep) and ev.refs.get("frame"):
            return session.frame(ev.refs["frame"])
        if isinstance(ev.step, ActionResultStep) and not ev.step.ok:
            return None
    return None


# --- regrade ------------------------------------------------------------------------------


def _recorded_checks(session: Session) -> dict[str, str]:
    recorded = {str(c.get("name")): str(c.get("status")) for c in session.checks}
    if not recorded:
        recorded = {
            e.step.name: e.step.status for e in session.events if isinstance(e.step, CheckStep)
        }
    return recorded


def success_tree(session: Session) -> Any:
    """The task's success-check tree from the manifest's ``task_spec`` (``success``/``checks``)."""
    spec = session.manifest.get("task_spec")
    if not isinstance(spec, dict):
        return None
    return spec.get("success", spec.get("checks"))


_OFFLINE_IMPOSSIBLE = frozenset({"http", "command", "llm_judge"})


def _combine(tree: Any, statuses: Iterator[str]) -> Any:
    """The verdict of ``tree`` from its leaves' statuses in depth-first order (as checks.py)."""
    dump = getattr(tree, "model_dump", None)
    node = dump(by_alias=True, exclude_none=True) if callable(dump) else tree
    if isinstance(node, Mapping):
        for key in ("all", "any"):
            if isinstance(node.get(key), list):
                got = [_combine(c, statuses) for c in node[key]]
                if key == "all":
                    return "fail" if "fail" in got else "error" if "error" in got else "pass"
                return "pass" if "pass" in got else "error" if "error" in got else "fail"
        if "not" in node:
            inner = _combine(node["not"], statuses)
            return {"pass": "fail", "fail": "pass"}.get(inner, inner)
    return next(statuses, "error")


def regrade(
    session: Session,
    *,
    grounder: Grounder | None = None,
    read_text: Callable[[Any], str] | None = None,
    tree: Any = None,
) -> ReplayReport:
    """Re-evaluate the success checks on the recorded final state and compare verdicts.

    The final state is what the recording kept: the last frame (for ``screen_contains``,
    through ``grounder`` or ``read_text``), the files added with ``add_final_file`` (restored
    into a scratch home for ``file_*`` checks) and the final URL. A check whose verdict
    differs from the recorded one diverges; a check the recording holds no state for scores
    ``error`` and diverges only if it was recorded as something else.
    """
    import tempfile

    from agentcorp.checks import CheckContext, evaluate
    from agentcorp.sandbox.recorded import RecordedFramesComputer

    session.require_complete()
    tree = tree if tree is not None else success_tree(session)
    if tree is None:
        raise RecordingError(
            f"{session.folder / 'manifest.json'}: task_spec has no success checks to regrade"
        )
    report = ReplayReport("regrade", str(session.folder))
    t0 = time.perf_counter()
    state = session.manifest.get("final_state")
    state = state if isinstance(state, dict) else {}
    raw_files = state.get("files")
    files: dict[str, str] = raw_files if isinstance(raw_files, dict) else {}
    url = state.get("url") if isinstance(state.get("url"), str) else None
    computer = RecordedFramesComputer(session) if session.observations else None
    if computer is not None:
        computer.seek_end()
    with tempfile.TemporaryDirectory(prefix="agentcorp-regrade-") as tmp:
        home = Path(tmp)
        for name, sha in files.items():
            rel = name[2:] if name.startswith("~/") else name.lstrip("/")
            dest = (home / rel).resolve()
            if home.resolve() not in dest.parents:
                raise RecordingError(f"{session.folder}: final file {name!r} escapes the home")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(session.blob(sha))
        ctx = CheckContext(
            home=home, computer=computer, grounder=grounder, url=lambda: url, read_text=read_text
        )
        status, leaves = evaluate(tree, ctx)
    recorded = _recorded_checks(session)
    kinds = [str(leaf.get("check")) for leaf in _check_leaves(tree)]
    impossible = set(_OFFLINE_IMPOSSIBLE)
    if url is None:
        impossible.add("url_matches")
    if not state.get("captured") and not files:
        # Recorded without capture_final_state: the files were never kept.
        impossible.update({"file_exists", "file_contains", "sqlite"})
    results: list[tuple[str, str, str]] = []
    kept: set[str] = set()
    for i, o in enumerate(leaves):
        kind = kinds[i] if len(kinds) == len(leaves) else ""
        if kind in impossible and o.name in recorded:
            # Needs a live service, command or model, or state the recording did not keep:
            # the recorded verdict stands.
            kept.add(o.name)
            results.append(
                (
                    o.name,
                    recorded[o.name],
                    f"kept: this {kind} check cannot be re-evaluated from the recording",
                )
            )
        else:
            results.append((o.name, o.status, o.detail))
    if kept and len(kinds) == len(leaves):
        status = _combine(tree, iter([r[1] for r in results]))
    results.append(("success", status, ""))
    for i, (name, now, detail) in enumerate(results):
        want = recorded.get(name)
        if want is not None and want != now:
            report.outcomes.append(
                StepOutcome(i, "diverged", f"check {name!r}: now {now}, recorded {want}: {detail}")
            )
        else:
            report.outcomes.append(StepOutcome(i, "matched", f"check {name!r}: {now} {detail}"))
    report.records = len(results)
    report.elapsed_s = time.perf_counter() - t0
    return report
