"""The actor loop: observe, decide, gate, act, settle, repeat; one typed step record per event.

``Actor.run(task)`` is a generator of ``agentcorp.types`` step records whose return value is an
``EpisodeResult``. Scripted steps with a text target are grounded locally and never reach a
model; when grounding cannot decide and a model exists, that one step becomes a short model
episode. Every action, from any source, passes ``gate.check`` before the ``Computer`` sees it.
Model mistakes (bad JSON, unknown tool, missing argument, off-screen point, no tool call) are
returned to the model as tool errors, at most ``max_tool_errors`` in a row. A reply may carry
several tool calls: they run in order through the gate, stop at the first failure or stale
screen, and every call gets a tool result (docs/model_contract.md). Text read off the screen
reaches the model only wrapped as untrusted (``agentcorp.llm.untrusted``).
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from agentcorp.actor.budget import BudgetMeter, Budgets
from agentcorp.actor.script import ScriptStep, Target, parse_step, step_text
from agentcorp.actor.tools import HELP_SCHEMA, TOOL_SCHEMAS, ToolError, parse_tool_call
from agentcorp.errors import ActionInterrupted, AgentcorpError, BudgetExceeded, SetupError
from agentcorp.grounding.base import Candidate, Grounder, Hint, NullGrounder
from agentcorp.grounding.resolve import resolve
from agentcorp.grounding.text import matchable
from agentcorp.llm.untrusted import new_nonce, untrusted_notice, wrap_screen_text
from agentcorp.policy.base import ActionGate, GateContext
from agentcorp.record.canonical import canonical_request_hash, request_body
from agentcorp.sandbox.base import Computer, Frame, execute_action
from agentcorp.sandbox.coords import ScreenMap
from agentcorp.sandbox.encode import encode_observation
from agentcorp.types import (
    Action,
    ActionResultStep,
    ActionSource,
    ActionStep,
    Box,
    ChatModel,
    ChatRequest,
    ChatResponse,
    ErrorStep,
    ModelCallStep,
    ObservationStep,
    PolicyStep,
    Step,
    ToolCall,
)

__all__ = ["Actor", "ActorConfig", "EpisodeResult", "EpisodeTask", "run_episode"]

SYSTEM_PROMPT = """\
You operate a computer to do one task for a company. You see screenshots of the screen; \
coordinates are pixels of the screenshot you were shown. Act with tool calls: a reply may hold \
several, which run in order until one fails or the screen changes in a way that makes the \
screenshot stale; every call's result says whether it ran. Each action may carry an intent: \
one short sentence on why. zoom(x, y, w, h) shows a region of the screenshot at full \
resolution. When the task is complete call done(summary); if it cannot be done call \
fail(reason). Type secrets only as ${secrets.NAME} placeholders; you never see their values."""

#: The hint of a target that will be clicked, dragged or scrolled at.
_ACT = Hint(purpose="act")
#: How often a step scrolls to bring its target into view before it gives up on it.
_MAX_REVEAL_SCROLLS = 3
#: A look that a later one will repeat (``wait_for``'s polling): no costly "not found" checks.
_POLL = Hint(thorough=False)
#: How long a ``wait_for`` waits for a target the accessibility tree knows to be drawn.
_DRAW_GRACE_S = 1.0

Status = Literal["done", "failed", "budget_exceeded", "error"]


@dataclass(frozen=True, slots=True)
class ActorConfig:
    """How the loop behaves; every knob has a sensible default.

    ``image_history`` is how many of the latest screenshots the model sees as images (at least
    one: the current screen); older ones become one-line text notes.
    """

    model: str = ""
    image_history: int = 3
    long_side: int = 1024
    # The legible palette PNG (agentcorp.sandbox.encode): about a quarter of a lossless PNG's
    # bytes with OCR still reading >= 95 % of the words (bench/step_latency.py).
    image_format: Literal["jpeg", "png"] = "png"
    image_quality: int = 50
    max_tool_errors: int = 3
    settle_timeout: float = 2.0
    find_timeout: float = 3.0
    ambiguity_margin: float = 0.05
    max_tokens: int | None = 1024
    temperature: float | None = 0.0
    system_prompt: str = SYSTEM_PROMPT
    # Marks screen text sent to the model as untrusted (agentcorp.llm.untrusted). Fresh per
    # config, so per run; kept in the session manifest so a decision replay sends the same.
    untrusted_nonce: str = field(default_factory=new_nonce)
    #: ``ask_help(task_id, question) -> answer``: who answers ``request_help`` (the run's
    #: operator console); ``None`` keeps the tool off the model's list.
    ask_help: Callable[[str, str], str] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class EpisodeTask:
    """What one episode must do: a goal for the model and/or scripted steps."""

    task_id: str
    goal: str
    role: str = ""
    sandbox: str = ""
    steps: Sequence[Any] = ()
    then_model: bool = False  # after the steps, let the model finish the goal


@dataclass(frozen=True, slots=True)
class EpisodeResult:
    """How an episode ended; ``failed_step`` indexes ``EpisodeTask.steps`` when one failed."""

    status: Status
    reason: str = ""
    summary: str = ""
    failed_step: int | None = None
    steps_done: int = 0


@dataclass(slots=True)
class _Turn:
    """One model turn in the conversation memory."""

    assistant: dict[str, Any]
    results: list[dict[str, Any]]
    image: str | None = None  # data URL of the observation that followed, if any
    note: str = ""  # text that stands in for the image once it ages out
    # (label, data URL) per zoom; shown in the next request only, then noted as omitted.
    zooms: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Batch:
    """How a reply's tool calls went."""

    progress: bool = False  # some action ran
    error: bool = False  # some call was invalid, refused or failed
    result: EpisodeResult | None = None  # set by an allowed done/fail
    # (before, after) frames of each action that ran, diffed only when a later call needs
    # it (a one-call reply pays nothing), into the boxes each one changed.
    ran: list[tuple[Frame, Frame]] = field(default_factory=list)
    changes: list[Box] = field(default_factory=list)


@dataclass(slots=True)
class _State:
    frame: Frame
    image: bytes
    shown: Frame | None = None  # ``frame`` as policy lets it leave the loop (secrets blanked)
    step: int = 0
    memory: list[_Turn] = field(default_factory=list)
    last_box: Box | None = None  # the box of the last grounded target
    grounded: list[str] = field(default_factory=list)  # how this step's targets were found
    typing_into: tuple[str, Box | None] | None = None  # label and box of the field being typed in
    # Why the last action failed, for the model: our prefix and the environment's own text.
    failure: tuple[str, str] = ("", "")
    ground_ms: float = 0.0  # grounding time not yet charged to an action's phases
    notes: list[str] = field(default_factory=list)  # what the screen did beyond the last action
    model_ms: float = 0.0  # the model call that chose the next action


class Actor:
    """Drives one ``Computer``; construct once per task, call ``run(task)`` once."""

    def __init__(
        self,
        computer: Computer,
        *,
        gate: ActionGate,
        model: ChatModel | None = None,
        grounder: Grounder | None = None,
        meter: BudgetMeter | None = None,
        config: ActorConfig | None = None,
    ) -> None:
        self.computer = computer
        self.gate = gate
        self.model = model
        self.grounder = grounder or NullGrounder()
        self.meter = meter or BudgetMeter(Budgets())
        self.config = config or ActorConfig()
        self.map = ScreenMap.fit(computer.size, self.config.long_side)

    # --- the episode ------------------------------------------------------------------

    def run(self, task: EpisodeTask) -> Generator[Step, None, EpisodeResult]:
        """Yield step records until the task is done, failed or out of budget."""
        self._task = task
        try:
            script = [parse_step(s, f"steps[{i}]") for i, s in enumerate(task.steps)]
        except ValueError as exc:
            yield ErrorStep(0, time.time(), "ValueError", str(exc))
            return EpisodeResult("error", str(exc))
        st = _State(frame=self.computer.screenshot(), image=b"")
        yield self._observe(st, st.frame, None)
        try:
            for i, sstep in enumerate(script):
                unseen = _unseen_target(sstep)
                if unseen is not None:
                    # Bad input, not a grounding miss: no model could find it either.
                    why = f"steps[{i}] ({step_text(sstep)}): {unseen}"
                    return EpisodeResult("failed", why, failed_step=i, steps_done=i)
                result = yield from self._scripted(st, sstep)
                if result is not None:
                    return replace(result, failed_step=i, steps_done=i)
            if script and not (task.then_model and self.model is not None):
                return EpisodeResult(
                    "done", summary="scripted steps completed", steps_done=len(script)
                )
            if self.model is None:
                return EpisodeResult("failed", "no scripted steps and no model configured")
            return (yield from self._model_loop(st, task.goal))
        except BudgetExceeded as exc:
            # The model client stops spending on its own (deadline, token or USD check).
            yield self.meter.snapshot(st.step, time.time(), exc.reason)
            return EpisodeResult("budget_exceeded", exc.reason)
        except AgentcorpError as exc:
            yield ErrorStep(st.step, time.time(), type(exc).__name__, str(exc))
            if isinstance(exc, SetupError):
                raise
            return EpisodeResult("error", f"{type(exc).__name__}: {exc}")

    # --- scripted steps ---------------------------------------------------------------

    def _scripted(self, st: _State, s: ScriptStep) -> Generator[Step, None, EpisodeResult | None]:
        """Run one scripted step; ``None`` when it worked, else why the episode ends."""
        over = yield from self._budget(st)
        if over is not None:
            return over
        st.grounded = []
        if s.kind == "wait_for":
            assert isinstance(s.target, str)
            found = yield from self._wait_for(st, s.target, s.timeout)
            if found:
                return None
            why = f"'{s.target}' did not appear within {s.timeout:g}s"
            return EpisodeResult("failed", f"{step_text(s)}: {why}")
        actions, problem = yield from self._script_actions(st, s)
        if problem is not None:
            if self.model is None:
                return EpisodeResult("failed", f"{step_text(s)}: {problem} (no model configured)")
            goal = (
                f"Do exactly this one step of the task '{self._task.goal}': {step_text(s)}. "
                "Local grounding could not do it: "
                f"{self._untrusted(problem, 'grounding')}. Call done when it is done."
            )
            sub = yield from self._model_loop(st, goal)
            return None if sub.status == "done" else sub
        grounded = "; ".join(st.grounded) or None
        st.grounded = []
        for action in actions:
            error = yield from self._act(st, action, "script", grounded)
            if error is not None:
                return EpisodeResult("failed", f"{step_text(s)}: {error}")
        return None

    def _script_actions(
        self, st: _State, s: ScriptStep
    ) -> Generator[Step, None, tuple[list[Action], str | None]]:
        """The actions of one scripted step with its targets grounded, or the problem."""
        if s.kind in ("click", "double_click", "right_click"):
            hint = Hint(role=s.role, purpose="act") if s.role else _ACT
            xy, problem = yield from self._resolve(st, s.target, hint)
            return ([Action(s.kind, x=xy[0], y=xy[1], target=_text(s.target))] if xy else []), (
                problem
            )
        if s.kind == "type":
            return (yield from self._script_type(st, s))
        if s.kind == "key":
            return [Action("key", keys=s.keys)], None
        if s.kind == "scroll":
            return (yield from self._script_scroll(st, s))
        if s.kind == "drag":
            a, problem = yield from self._resolve(st, s.target, _ACT)
            b: tuple[int, int] | None = None
            if a:
                b, problem = yield from self._resolve(st, s.to, _ACT)
            return ([Action("drag", path=(a, b), target=_text(s.target))] if a and b else []), (
                problem
            )
        if s.kind == "open_url":
            return [Action("open_url", url=s.url)], None
        return [Action("wait", seconds=s.seconds)], None

    def _script_type(
        self, st: _State, s: ScriptStep
    ) -> Generator[Step, None, tuple[list[Action], str | None]]:
        assert s.text is not None
        actions: list[Action] = []
        if s.into:
            xy, problem = yield from self._resolve(st, s.into, Hint(role="field", purpose="act"))
            if problem is not None or xy is None:
                return [], problem
            actions = [Action("click", x=xy[0], y=xy[1], target=s.into)]
            st.typing_into = (s.into, st.last_box)
        actions.append(Action("type", text=s.text, into=s.into))
        return actions, None

    def _script_scroll(
        self, st: _State, s: ScriptStep
    ) -> Generator[Step, None, tuple[list[Action], str | None]]:
        w, h = self.computer.size
        xy: tuple[int, int] | None = (w // 2, h // 2)
        problem: str | None = None
        if s.target is not None:
            xy, problem = yield from self._resolve(st, s.target, _ACT)
        if not xy:
            return [], problem
        ux, uy = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}[s.direction]
        action = Action(
            "scroll",
            x=xy[0],
            y=xy[1],
            dx=ux * s.amount,
            dy=uy * s.amount,
            target=_text(s.target),
        )
        return [action], problem

    def _resolve(
        self, st: _State, target: Target | None, hint: Hint | None = None
    ) -> Generator[Step, None, tuple[tuple[int, int] | None, str | None]]:
        """Screen point of ``target``, polling briefly while it is absent; or the problem."""
        if target is None:
            return None, "no target given"
        if not isinstance(target, str):
            return (int(target[0]), int(target[1])), None
        t0 = time.perf_counter()
        deadline = time.monotonic() + self.config.find_timeout
        scrolls = 0
        try:
            while True:
                # The last look starts after the deadline: a slow look (a grounder loading
                # its model) must not use up the whole wait on a screen from before it.
                expired = time.monotonic() >= deadline
                cands = self.grounder.locate(st.frame, target, hint)
                if cands:
                    return self._pick(st, target, cands, hint)
                if scrolls < _MAX_REVEAL_SCROLLS and (yield from self._reveal(st, target, hint)):
                    scrolls += 1
                    continue
                if expired or isinstance(self.grounder, NullGrounder):
                    if hint is not None and hint.role == "field":
                        return None, f"no field labelled '{target}' found on screen"
                    return None, self._not_found(target)
                yield from self._refresh(st, 0.2)
        finally:
            st.ground_ms += (time.perf_counter() - t0) * 1000.0

    def _reveal(self, st: _State, target: str, hint: Hint | None) -> Generator[Step, None, bool]:
        """Scroll a target to be acted on into view when it is on the page but out of view.

        As a person scrolls to a button below the fold before clicking it: one ``scroll``
        action, gated and recorded like any other. True when it ran.
        """
        if hint is None or hint.purpose != "act":
            return False
        try:
            found = self.grounder.reveal(target, hint)
        except AgentcorpError:
            found = None
        if found is None:
            return False
        x, y, dx, dy = found
        action = Action("scroll", x=x, y=y, dx=dx, dy=dy, target=target)
        return (yield from self._act(st, action, "script")) is None

    def _pick(
        self, st: _State, target: str, cands: list[Candidate], hint: Hint | None
    ) -> tuple[tuple[int, int] | None, str | None]:
        """One candidate to act on, or why there is none (never a silent guess)."""
        chosen = resolve(cands, hint, target, self.config.ambiguity_margin)
        if not isinstance(chosen, Candidate):
            return None, str(chosen)
        st.last_box = chosen.box
        b = chosen.box
        st.grounded.append(
            f"'{target}' found by {chosen.source} at ({b.x}, {b.y}, {b.w}x{b.h}),"
            f" score {chosen.score:g}"
        )
        return chosen.box.center, None

    def _not_found(self, target: str) -> str:
        """Why ``target`` was not found: the grounder's explanation when it has one."""
        try:
            why = self.grounder.why_not(target)
        except AgentcorpError:
            why = None
        return why or f"'{target}' not found on screen"

    def _untrusted(self, text: str, source: str) -> str:
        """Environment text (it may quote the screen) as the model must get it."""
        return wrap_screen_text(text, self.config.untrusted_nonce, source)

    def _wait_for(self, st: _State, target: str, timeout: float) -> Generator[Step, None, bool]:
        """Whether ``target`` is visible on a settled screen within ``timeout``.

        The screen settles first (a navigation the last action started has loaded), so a
        text still showing on the page being left never counts; a text already visible on
        the settled screen returns at once. To let time pass, use ``wait``.
        """
        deadline = time.monotonic() + timeout
        settled = self.computer.settle(min(timeout, self.config.settle_timeout), since=st.frame)
        if settled.frame.sha256 != st.frame.sha256:
            yield self._observe(st, settled.frame, settled.changed)
        looked: str | None = None
        thorough: str | None = None
        undrawn: float | None = None  # when the target was first known but not yet drawn
        while True:
            now = time.monotonic()
            expired = now >= deadline
            if undrawn is not None and (expired or now - undrawn >= _DRAW_GRACE_S):
                return True  # the app says it is there; its drawing is late or unreadable
            # A frame is first looked at the quick way (a poll); once the screen stays the
            # same (or the time is up) it is looked at the thorough way, once. Reading an
            # unchanged screen again finds nothing new and takes CPU from the app that is
            # about to draw the text (OCR on a busy desktop).
            sha = st.frame.sha256
            found: list[Candidate] = []
            if sha != looked:
                looked = sha
                found = self.grounder.locate(st.frame, target, _POLL)
                still = False
            else:
                still = True
            if not found and (still or expired) and thorough != sha:
                thorough = sha
                found = self.grounder.locate(st.frame, target, None)
            if found:
                # Ends only on a frame that shows it, so the next action meets what the
                # recording shows (and a replay on the recorded frames finds it too).
                if self.grounder.drawn(st.frame, target, found):
                    return True
                undrawn = now if undrawn is None else undrawn
            if expired:
                return undrawn is not None
            yield from self._refresh(st, 0.2)

    def _refresh(self, st: _State, pause: float) -> Generator[Step, None, None]:
        """Let a little time pass (the Computer's own wait) and observe again."""
        self.computer.wait(pause)
        before = st.frame
        frame = self.computer.screenshot()
        if frame.sha256 != before.sha256:
            yield self._observe(st, frame, None)

    # --- the model --------------------------------------------------------------------

    def _model_loop(self, st: _State, goal: str) -> Generator[Step, None, EpisodeResult]:
        assert self.model is not None
        cfg = self.config
        first_image = _data_url(st.image, cfg)
        st.memory = []
        errors = 0
        while True:
            over = yield from self._budget(st)
            if over is not None:
                return over
            reply = yield from self._ask(st, goal, first_image)
            turn = _Turn(assistant=_assistant_msg(reply.content, reply.tool_calls), results=[])
            st.memory.append(turn)
            if not reply.tool_calls:
                # A text-only reply must still be answered, as a user turn since no tool ran.
                turn.note = "Error: reply with at least one tool call (see the tools)."
                errors += 1
            else:
                batch = yield from self._run_calls(st, turn, reply)
                if batch.result is not None:
                    return batch.result
                # Errors in a row: a reply that moved the task on starts the count afresh.
                errors = (0 if batch.progress else errors) + (1 if batch.error else 0)
            if errors >= cfg.max_tool_errors:
                last = next(
                    (r["content"] for r in turn.results if r["content"].startswith("Error")),
                    turn.note,
                )
                return EpisodeResult(
                    "failed", f"model made {errors} unusable replies in a row; last: {last}"
                )

    def _ask(self, st: _State, goal: str, first_image: str) -> Generator[Step, None, ChatResponse]:
        """One model call with the conversation so far, recorded as a ``ModelCallStep``."""
        assert self.model is not None
        cfg = self.config
        request = ChatRequest(
            model=cfg.model,
            messages=self._messages(goal, first_image, st.memory),
            tools=[*TOOL_SCHEMAS, HELP_SCHEMA] if cfg.ask_help is not None else TOOL_SCHEMAS,
            tool_choice="auto",
            temperature=cfg.temperature,
            max_tokens=cfg.max_tokens,
        )
        reply = self.model.complete(request)
        self.meter.charge(reply.usage)
        st.model_ms = reply.latency_ms  # charged to the first action the reply leads to
        body = request_body(request)
        yield ModelCallStep(
            st.step,
            time.time(),
            "act",
            reply.model or cfg.model,
            canonical_request_hash(body),
            body,
            _response_dict(reply.content, reply.tool_calls),
            reply.usage,
            reply.latency_ms,
            reply.request_id,
        )
        return reply

    def _run_calls(
        self, st: _State, turn: _Turn, reply: ChatResponse
    ) -> Generator[Step, None, _Batch]:
        """Run a reply's tool calls in order; each gets a result saying what became of it.

        The batch stops at the first call that is invalid, refused or fails, and before any
        call the screen may have made stale (see ``_unforeseen``); later calls are answered
        "not run" with the reason, so the model knows exactly where it stopped.
        """
        batch = _Batch()
        results: list[str] = []
        stop: str | None = None
        for i, call in enumerate(reply.tool_calls, 1):
            if stop is not None:
                results.append(f"not run: {stop}")
                continue
            text, outcome = yield from self._one_call(st, turn, reply, call, batch)
            results.append(text)
            if outcome == "error":
                batch.error = True
                stop = f"call {i} ({call.name}) did not succeed"
            elif outcome == "stale":
                stop = text.removeprefix("not run: ")
            elif batch.result is not None:
                stop = f"the episode ended with call {i} ({call.name})"
        turn.results = [_tool_msg(c, r) for c, r in zip(reply.tool_calls, results, strict=True)]
        if batch.progress:
            turn.image = _data_url(st.image, self.config)
            turn.note = f"(screenshot after step {st.step} omitted)"
        return batch

    def _one_call(
        self,
        st: _State,
        turn: _Turn,
        reply: ChatResponse,
        call: ToolCall,
        batch: _Batch,
    ) -> Generator[Step, None, tuple[str, Literal["ok", "error", "stale"]]]:
        """One tool call of a batch: its result text and how it went."""
        parsed = parse_tool_call(call, self.map.model_size)
        if isinstance(parsed, ToolError):
            return f"Error: {parsed.message}", "error"
        action = self._to_screen(parsed.action)
        if action.kind == "done" and batch.progress:
            # Done is claimed on a screen the model has seen, never on one it only expects.
            return "not run: call done in a later reply, once you have seen the screen", "stale"
        if action.kind in ("done", "fail"):
            refusal = yield from self._finish(st, action, reply.content, call.id, batch)
            return (f"Error: {refusal}", "error") if refusal else ("ok", "ok")
        if action.kind == "zoom":
            text = yield from self._zoom(st, turn, action, reply.content, call.id)
            return text, "ok"
        if action.kind == "request_help":
            text = yield from self._help(st, action, reply.content, call.id)
            return text, "ok"
        if batch.progress:
            batch.changes += [b for a, z in batch.ran if (b := _diff_box(a, z)) is not None]
            batch.ran.clear()
            why = self._unforeseen(action, batch.changes)
            if why is not None:
                return f"not run: {why}", "stale"
        before = st.shown or st.frame
        if not batch.progress:
            # The model call is charged to the first action of its batch.
            st.model_ms = reply.latency_ms
        error = yield from self._act(st, action, "model", reply.content, call.id)
        if error is not None:
            # Refusals and sandbox errors may quote the screen (a label, a title, what a field
            # holds): the model gets them as untrusted text, after our own prefix.
            prefix, raw = st.failure
            source = "policy" if prefix else "computer"
            return f"Error: {prefix}{self._untrusted(raw, source)}{self._noted(st)}", "error"
        batch.progress = True
        batch.ran.append((before, st.shown or st.frame))
        return f"ok: {_describe(action)}{self._noted(st)}", "ok"

    def _noted(self, st: _State) -> str:
        """The last action's notes (a dialog the page showed, a new tab) as the model gets them."""
        if not st.notes:
            return ""
        return "; meanwhile " + self._untrusted("; ".join(st.notes), "page")

    def _finish(
        self, st: _State, action: Action, reasoning: str | None, call_id: str, batch: _Batch
    ) -> Generator[Step, None, str | None]:
        """``done``/``fail``: sets ``batch.result`` when allowed, else returns the refusal."""
        yield ActionStep(st.step, time.time(), action, "model", reasoning, call_id)
        # The summary ends up in results, logs and reports: it passes the gate's text checks
        # (a secret's value, forbidden text) like typing.
        verdict = self.gate.check(action, self._context(st, action, "model"))
        yield PolicyStep(st.step, time.time(), verdict.decision, verdict.rule, verdict.approver)
        if not verdict.allowed:
            why = verdict.message or f"denied by policy rule {verdict.rule or '?'}"
            why = self._untrusted(why, "policy")
            return f"{action.kind} refused: {why}; call it again with another summary"
        status: Status = "done" if action.kind == "done" else "failed"
        batch.result = EpisodeResult(
            status,
            "" if status == "done" else f"model gave up: {action.summary}",
            summary=action.summary or "",
        )
        return None

    def _help(
        self, st: _State, action: Action, reasoning: str | None, call_id: str
    ) -> Generator[Step, None, str]:
        """Park the task on a person's answer; nothing on the computer changes meanwhile."""
        ask = self.config.ask_help
        st.step += 1
        yield ActionStep(st.step, time.time(), action, "model", reasoning, call_id)
        t0 = time.perf_counter()
        answer = ask(self._task.task_id, action.text or "") if ask is not None else "no answer"
        yield ActionResultStep(st.step, time.time(), True, None, (time.perf_counter() - t0) * 1000)
        # A person's words, not ours: marked untrusted like screen text.
        return "answer from a person: " + self._untrusted(answer, "person")

    def _zoom(
        self, st: _State, turn: _Turn, action: Action, reasoning: str | None, call_id: str
    ) -> Generator[Step, None, str]:
        """Answer a zoom from the last local frame (the redacted one): no capture, no action."""
        cfg = self.config
        assert action.region is not None and action.model_xy is not None
        st.step += 1
        yield ActionStep(st.step, time.time(), action, "model", reasoning, call_id)
        t0 = time.perf_counter()
        x, y, w, h = action.region
        crop = (st.shown or st.frame).crop(Box(x, y, w, h))
        image = encode_observation(crop, cfg.long_side, cfg.image_format, cfg.image_quality)
        yield ActionResultStep(st.step, time.time(), True, None, (time.perf_counter() - t0) * 1000)
        mx, my = action.model_xy
        label = (
            f"Zoom ({call_id}) of the screenshot at ({mx}, {my}), at the screen's full "
            f"resolution ({w}x{h} pixels):"
        )
        turn.zooms.append((label, _data_url(image, cfg)))
        return f"ok: the zoomed image follows the tool results ({w}x{h} screen pixels)"

    def _unforeseen(self, action: Action, changes: list[Box]) -> str | None:
        """Why the screen may no longer be the one the model planned ``action`` on, if so.

        The model planned the whole reply on one screenshot. After earlier calls ran, a change
        over half the screen (a new page, window or dialog) or a change where this call points
        makes that screenshot stale for it. Decided from pixels only, so a decision replay on
        the recorded frames stops at the same call.
        """
        w, h = self.computer.size
        if sum(b.w * b.h for b in changes) * 2 > w * h:
            return "most of the screen changed after the calls before it; decide on the new one"
        points = list(action.path)
        if action.x is not None and action.y is not None:
            points.append((action.x, action.y))
        if any(b.contains(px, py) for b in changes for px, py in points):
            return "the screen changed where this call points; decide on the new screenshot"
        return None

    def _messages(self, goal: str, first_image: str, memory: list[_Turn]) -> list[dict[str, Any]]:
        """System prompt, the task with the first screenshot, then the turns so far."""
        cfg = self.config
        newer = sum(1 for t in memory if t.image is not None)
        task: list[dict[str, Any]] = [{"type": "text", "text": f"Task: {goal}"}]
        if newer < max(1, cfg.image_history):
            task.append({"type": "image_url", "image_url": {"url": first_image}})
        else:
            task.append({"type": "text", "text": "(first screenshot omitted)"})
        system = f"{cfg.system_prompt}\n\n{untrusted_notice(cfg.untrusted_nonce)}"
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": task},
            *self._history(memory),
        ]

    def _history(self, memory: list[_Turn]) -> list[dict[str, Any]]:
        """The conversation so far; only the last ``image_history`` screenshots as images.

        Zoomed images are shown once, right after the reply that asked for them.
        """
        # The model always sees the current screen, so at least one image is kept.
        keep = max(1, self.config.image_history)
        with_images = [i for i, t in enumerate(memory) if t.image is not None]
        recent = set(with_images[-keep:])
        out: list[dict[str, Any]] = []
        for i, t in enumerate(memory):
            out.append(t.assistant)
            out.extend(t.results)
            parts: list[dict[str, Any]] = []
            notes: list[str] = []
            if t.zooms and i == len(memory) - 1:
                for label, url in t.zooms:
                    parts.append({"type": "text", "text": label})
                    parts.append({"type": "image_url", "image_url": {"url": url}})
            elif t.zooms:
                notes.append(f"({len(t.zooms)} zoomed image(s) omitted)")
            if t.image is not None and i in recent:
                parts.append({"type": "text", "text": "The screen now:"})
                parts.append({"type": "image_url", "image_url": {"url": t.image}})
            elif t.note:
                notes.insert(0, t.note)
            if notes and parts:
                parts.insert(0, {"type": "text", "text": " ".join(notes)})
            if parts:
                out.append({"role": "user", "content": parts})
            elif notes:
                out.append({"role": "user", "content": " ".join(notes)})
        return out

    def _to_screen(self, action: Action) -> Action:
        """Map the model's frame coordinates to screen pixels (one place: ScreenMap)."""
        if action.region is not None:
            x, y, w, h = action.region
            sx, sy = self.map.scale
            sw, sh = self.computer.size
            left, top = min(int(x * sx), sw - 1), min(int(y * sy), sh - 1)
            right, bottom = min(sw, math.ceil((x + w) * sx)), min(sh, math.ceil((y + h) * sy))
            box = (left, top, max(1, right - left), max(1, bottom - top))
            return replace(action, x=left, y=top, region=box, model_xy=(x, y))
        if action.x is not None and action.y is not None:
            x, y = self.map.to_screen(action.x, action.y)
            return replace(action, x=x, y=y, model_xy=(action.x, action.y))
        if action.path:
            return replace(action, path=tuple(self.map.to_screen(px, py) for px, py in action.path))
        return action

    # --- acting -----------------------------------------------------------------------

    def _act(
        self,
        st: _State,
        action: Action,
        source: ActionSource,
        reasoning: str | None = None,
        call_id: str | None = None,
    ) -> Generator[Step, None, str | None]:
        """Gate, execute and settle one action; the error text on failure, else ``None``."""
        st.step += 1
        yield ActionStep(st.step, time.time(), action, source, reasoning, call_id)
        decision = self.gate.check(action, self._context(st, action, source))
        yield PolicyStep(st.step, time.time(), decision.decision, decision.rule, decision.approver)
        if not decision.allowed:
            why = decision.message or f"denied by policy rule {decision.rule or '?'}"
            yield ActionResultStep(st.step, time.time(), False, why)
            st.failure = ("action denied: ", why)
            return f"action denied: {why}"
        self.meter.charge_step()
        before = st.frame
        phases = {"model": st.model_ms, "ground": st.ground_ms}
        phases = {k: round(v, 2) for k, v in phases.items() if v > 0}
        st.model_ms = st.ground_ms = 0.0
        t0 = time.perf_counter()
        try:
            execute_action(self.computer, action, deadline=self.meter.deadline())
        except AgentcorpError as exc:
            if isinstance(exc, SetupError):
                raise
            act_ms = (time.perf_counter() - t0) * 1000
            st.notes = _take_notes(self.computer)
            yield ActionResultStep(
                st.step,
                time.time(),
                False,
                str(exc),
                act_ms,
                phases={**phases, "act": round(act_ms, 2)},
                notes=st.notes,
            )
            over = self.meter.exceeded() if isinstance(exc, ActionInterrupted) else None
            if over is not None:
                # The budget ran out mid-action: the episode ends as budget_exceeded.
                raise BudgetExceeded(over) from exc
            st.failure = ("", str(exc))
            return str(exc)
        t1 = time.perf_counter()
        settled = self.computer.settle(self.config.settle_timeout, since=before)
        t2 = time.perf_counter()
        st.notes = _take_notes(self.computer)
        observation = self._observe(st, settled.frame, settled.changed)
        phases.update(
            act=(t1 - t0) * 1000,
            settle=max(0.0, settled.elapsed_ms - settled.capture_ms),
            capture=settled.capture_ms,
            encode=(time.perf_counter() - t2) * 1000,
        )
        yield ActionResultStep(
            st.step,
            time.time(),
            True,
            None,
            (t1 - t0) * 1000,
            settled.elapsed_ms,
            settled.changed,
            phases={k: round(v, 2) for k, v in phases.items()},
            notes=st.notes,
        )
        yield observation
        return None

    def _context(self, st: _State, action: Action, source: ActionSource) -> GateContext:
        """What the gate sees: task, sandbox state, and the field text goes into."""
        task, c = self._task, self.computer
        # A click elsewhere moves focus away from the field a script clicked into.
        if action.kind in ("click", "double_click", "right_click") and not (
            st.typing_into and action.target == st.typing_into[0]
        ):
            st.typing_into = None
        label, box = st.typing_into if st.typing_into else (None, None)
        is_password: bool | None = None
        if action.kind == "type":
            focused = _call(c, "focused_field")
            if isinstance(focused, tuple) and len(focused) == 2:
                box, is_password = focused[0], bool(focused[1])
        return GateContext(
            task_id=task.task_id,
            role=task.role,
            sandbox=task.sandbox,
            source=source,
            url=_url(c),
            window_title=_str_or_none(_call(c, "window_title")),
            window_class=_str_or_none(_call(c, "window_class")),
            target_text=action.target or action.into,
            screenshot_jpeg=st.image if self.config.image_format == "jpeg" else None,
            screenshot_png=st.image if self.config.image_format == "png" else None,
            field_box=box,
            field_is_password=is_password,
            field_label=label,
        )

    def _observe(self, st: _State, frame: Frame, changed: Any) -> ObservationStep:
        """Take ``frame`` as the current screen; what leaves the loop is the redacted copy.

        ``st.frame`` keeps the raw pixels for grounding and settling (both stay in this
        process); the model's image and the step record (hence the recording) get the frame
        with every field holding a typed secret blanked, at full size, before encoding.
        """
        cfg = self.config
        st.frame = frame
        shown = st.shown = self.gate.redact_frame(frame, self._task.task_id)
        st.image = encode_observation(shown, cfg.long_side, cfg.image_format, cfg.image_quality)
        return ObservationStep(
            st.step,
            time.time(),
            shown.sha256,
            shown.size,
            self.map.model_size,
            changed,
            frame=shown,
            image=st.image,
        )

    def _budget(self, st: _State) -> Generator[Step, None, EpisodeResult | None]:
        over = self.meter.exceeded()
        if over is None:
            return None
        yield self.meter.snapshot(st.step, time.time(), over)
        return EpisodeResult("budget_exceeded", over)


def run_episode(
    computer: Computer,
    task: EpisodeTask,
    *,
    gate: ActionGate,
    model: ChatModel | None = None,
    grounder: Grounder | None = None,
    meter: BudgetMeter | None = None,
    config: ActorConfig | None = None,
) -> Generator[Step, None, EpisodeResult]:
    """Run one episode; inside another generator use ``result = yield from`` this."""
    actor = Actor(computer, gate=gate, model=model, grounder=grounder, meter=meter, config=config)
    return actor.run(task)


# --- small helpers ------------------------------------------------------------------------


def _unseen_target(s: ScriptStep) -> str | None:
    """Why a step's text target can match nothing (no visible character), or None."""
    for t in (s.target, s.to, s.into):
        if isinstance(t, str) and not matchable(t):
            return (
                f"the target {t!r} has no visible character: no source (accessibility tree,"
                " DOM or OCR) can match it"
            )
    return None


def _text(target: Target | None) -> str | None:
    return target if isinstance(target, str) else None


def _url(computer: Computer) -> str | None:
    url = getattr(computer, "url", None)
    return url if isinstance(url, str) else None


def _call(obj: object, name: str) -> object:
    """An optional backend capability (``focused_field``, ``window_title``...), if present."""
    fn = getattr(obj, name, None)
    if not callable(fn):
        return fn
    try:
        return fn()
    except AgentcorpError:
        return None


def _take_notes(computer: Computer) -> list[str]:
    """The computer's notes since the last action; none when it cannot say."""
    try:
        return [str(n) for n in computer.take_notes()]
    except AgentcorpError:
        return []


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _data_url(image: bytes, cfg: ActorConfig) -> str:
    return f"data:image/{cfg.image_format};base64,{base64.b64encode(image).decode('ascii')}"


def _assistant_msg(content: str | None, calls: Sequence[ToolCall]) -> dict[str, Any]:
    # Never ``None``: several OpenAI-compatible servers reject a null assistant content.
    msg: dict[str, Any] = {"role": "assistant", "content": content or ""}
    if calls:
        msg["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    return msg


def _diff_box(a: Frame, b: Frame) -> Box | None:
    """The box around every pixel that differs between two frames (the whole one if resized)."""
    if a.size != b.size:
        return Box(0, 0, b.width, b.height)
    if a.sha256 == b.sha256:
        return None
    from PIL import ImageChops

    bbox = ImageChops.difference(a.pil(), b.pil()).getbbox()
    return Box(bbox[0], bbox[1], bbox[2] - bbox[0], bbox[3] - bbox[1]) if bbox else None


def _response_dict(content: str | None, calls: Sequence[ToolCall]) -> dict[str, Any]:
    return {
        "content": content,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls],
    }


def _tool_msg(call: ToolCall, text: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call.id, "content": text}


def _describe(a: Action) -> str:
    if a.kind in ("click", "double_click", "right_click"):
        return f"{a.kind} at {a.model_xy}"
    if a.kind == "type":
        return f"typed {a.text!r}"
    if a.kind == "key":
        return f"pressed {a.keys}"
    if a.kind == "scroll":
        return f"scrolled ({a.dx}, {a.dy}) at {a.model_xy}"
    if a.kind == "drag":
        return f"dragged through {len(a.path)} points"
    return a.kind
