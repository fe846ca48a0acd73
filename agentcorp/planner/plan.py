"""The planner: a task in, a ``Plan`` out, through structured output with bounded re-asks.

The model is asked for JSON matching ``Plan``'s JSON Schema. How depends on what the server
takes (``agentcorp.llm.structured``): ``response_format`` of type ``json_schema``, else
``json_object`` with the schema in the prompt, else a plain prompt with strict extraction of
the one JSON object in the reply; the first that works is remembered per endpoint and model for
the run. A reply that does not validate is sent back with the validation error, at most
``max_reasks`` times; then ``PlanError`` says what was wrong.
``replan`` asks again from the current state after the actor reports a failed step.
Both are generators of step records (``ModelCallStep``, ``PlanStep``) returning the plan, so
the recorder sees every planner round trip.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentcorp.errors import LLMError
from agentcorp.llm.retry import RequestRejected
from agentcorp.llm.structured import (
    JsonNotFound,
    OutputMode,
    OutputModes,
    endpoint_of,
    extract_json,
    output_modes,
    shape_request,
)
from agentcorp.record.canonical import canonical_request_hash, request_body
from agentcorp.spec import models as spec
from agentcorp.types import ChatModel, ChatRequest, ModelCallStep, PlanStep, Step

__all__ = ["Plan", "PlanError", "PlanTask", "Planner", "ask_json"]

T = TypeVar("T")


class Plan(BaseModel):
    """An ordered list of concrete steps plus free-text subgoals for the vision model.

    ``steps`` are the spec's own step models (one vocabulary: the JSON Schema the model is
    given is derived from them); they are executed first, grounded locally. ``subgoals``
    describe what remains for the model (empty when the steps do the whole task).
    """

    model_config = ConfigDict(extra="forbid")

    subgoals: list[str] = Field(default_factory=list, max_length=50)
    steps: list[spec.Step] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _not_empty(self) -> Plan:
        if not self.subgoals and not self.steps:
            raise ValueError("a plan needs at least one step or subgoal")
        return self


class PlanError(LLMError):
    """The planner model did not produce a valid plan within the allowed re-asks."""


@dataclass(frozen=True, slots=True)
class PlanTask:
    """What the planner is told about a task (all plain text and JSON-ready values)."""

    task_id: str
    description: str
    role: str = ""
    sandbox: str = ""
    success: Any = None
    suggested_steps: Sequence[Any] = ()
    inputs: dict[str, Any] = field(default_factory=dict)


SYSTEM = """\
You plan computer work for one role in a company. Reply with JSON only, matching the schema. \
'steps' are concrete UI steps in this vocabulary, one action key each: click / double_click / \
right_click (visible text or [x, y]), type (text, optional 'into' field label), key (combo \
like ctrl+s), scroll {direction, amount, at}, drag {from, to}, wait_for (visible text, \
optional timeout), open_url, and wait (seconds; only as a last resort, when no text on screen \
shows the wait is over). Prefer clicking visible text. 'subgoals' describe in words what a vision \
model must still do after the steps (leave empty if the steps complete the task). Secrets are \
written as ${secrets.NAME}; never invent their values."""


class Planner:
    """Turns tasks into ``Plan`` values with a ``ChatModel``.

    ``modes`` is the run's ``OutputModes`` (default: the one kept in the client's ``notes``).
    ``max_tokens`` bounds each reply (None: the server's default), so a small local model
    cannot ramble for minutes.
    """

    def __init__(
        self,
        model: ChatModel,
        *,
        model_name: str,
        max_reasks: int = 2,
        temperature: float | None = 0.0,
        modes: OutputModes | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self.model = model
        self.model_name = model_name
        self.max_reasks = max_reasks
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.revision = 0
        # The run's memory of which structured-output mode works: the client's, shared by
        # every task, unless given.
        self.modes = modes if modes is not None else output_modes(model)

    def plan(self, task: PlanTask) -> Generator[Step, None, Plan]:
        """Ask for a plan of ``task``."""
        return self._ask(task, _describe(task))

    def replan(
        self, task: PlanTask, plan: Plan, failed_step: str, observation_summary: str
    ) -> Generator[Step, None, Plan]:
        """Ask for a new plan from the current state after ``failed_step`` failed."""
        prompt = (
            f"{_describe(task)}\n\nThe previous plan was:\n{plan.model_dump_json(by_alias=True)}"
            f"\n\nThis step failed: {failed_step}\nThe screen now: {observation_summary}\n"
            "Plan the rest of the task from the current state."
        )
        return self._ask(task, prompt)

    def _ask(self, task: PlanTask, prompt: str) -> Generator[Step, None, Plan]:
        base: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": prompt},
        ]
        plan: Plan = yield from ask_json(
            self.model,
            base,
            Plan.model_json_schema(by_alias=True),
            _read_plan,
            model_name=self.model_name,
            modes=self.modes,
            max_reasks=self.max_reasks,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            name="plan",
            who=f"planner for task {task.task_id!r}",
        )
        dump = plan.model_dump(mode="json", by_alias=True, exclude_none=True)
        yield PlanStep(0, time.time(), dump, self.revision)
        self.revision += 1
        return plan


def _read_plan(raw: str) -> Plan | str:
    try:
        return Plan.model_validate_json(raw)
    except ValidationError as exc:
        return _first_errors(exc)


def ask_json(
    model: ChatModel,
    base: list[dict[str, Any]],
    schema: dict[str, Any],
    read: Callable[[str], T | str],
    *,
    model_name: str,
    modes: OutputModes,
    max_reasks: int = 2,
    temperature: float | None = 0.0,
    max_tokens: int | None = None,
    name: str = "plan",
    who: str = "planner",
) -> Generator[Step, None, T]:
    """Ask ``model`` for JSON matching ``schema``; ``read`` makes a value (or a problem) of it.

    The structured-output mode is negotiated (``agentcorp.llm.structured``) and remembered in
    ``modes``; every problem ``read`` names goes back to the model, at most ``max_reasks``
    times, then ``PlanError`` names ``who`` and the last problem. Each round trip is yielded
    as a ``ModelCallStep`` (purpose ``name``).
    """
    endpoint = endpoint_of(model)
    problem = ""
    turns: list[dict[str, Any]] = []  # the re-ask exchange after the base prompt
    replies = 0
    while replies <= max_reasks:
        candidates = modes.candidates(endpoint, model_name)
        if not candidates:
            break
        mode = candidates[0]
        messages, fmt = shape_request(mode, base, schema, name)
        request = ChatRequest(
            model=model_name,
            messages=messages + turns,
            response_format=fmt,
            temperature=temperature,
            max_tokens=max_tokens,
            purpose=name,
        )
        try:
            reply = model.complete(request)
        except RequestRejected as exc:
            if mode == "prompt":
                raise  # even a plain request is refused: not a structured-output matter
            modes.fails(endpoint, model_name, mode, f"HTTP {exc.status}: {exc.detail}")
            turns = []
            continue
        body = request_body(request)
        yield ModelCallStep(
            0,
            time.time(),
            name,
            reply.model or model_name,
            canonical_request_hash(body),
            body,
            {"content": reply.content},
            reply.usage,
            reply.latency_ms,
            reply.request_id,
        )
        text = reply.content or ""
        outcome = _read_reply(text, mode, reply.finish_reason, endpoint, model_name, modes, read)
        if outcome is None:
            turns = []  # the mode did not work; the next one starts afresh
            continue
        replies += 1
        if not isinstance(outcome, _Problem):
            return outcome
        problem = outcome.text
        if replies <= max_reasks:
            turns = [
                {"role": "assistant", "content": text},
                {
                    "role": "user",
                    "content": f"That reply is invalid: {problem}. Reply again with JSON "
                    "only, matching the schema.",
                },
            ]
    if not problem:
        problem = "the server refused every structured-output mode"
    raise PlanError(f"{who}: no valid plan after {replies} attempts; last problem: {problem}")


@dataclass(frozen=True, slots=True)
class _Problem:
    text: str


def _read_reply(
    text: str,
    mode: OutputMode,
    finish: str | None,
    endpoint: str,
    model_name: str,
    modes: OutputModes,
    read: Callable[[str], T | str],
) -> T | _Problem | None:
    """A reply read in ``mode``: the value, the problem to re-ask about, or None.

    None means the reply shows the server ignored the mode; it is then given up for the run.
    """
    strict = mode != "prompt"
    try:
        raw = extract_json(text, strict=strict)
    except JsonNotFound as exc:
        if strict and finish != "length":
            # A server that honours the mode cannot send this: it dropped the field.
            modes.fails(endpoint, model_name, mode, f"reply was not JSON: {exc}")
            return None
        return _Problem(str(exc))
    modes.works(endpoint, model_name, mode)
    value = read(raw)
    return _Problem(value) if isinstance(value, str) else value


def _first_errors(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for e in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        parts.append(f"{loc}: {e['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _describe(task: PlanTask) -> str:
    lines = [f"Task {task.task_id}: {task.description}"]
    if task.role:
        lines.append(f"Role: {task.role}")
    if task.sandbox:
        lines.append(f"Sandbox: {task.sandbox}")
    if task.inputs:
        lines.append(f"Inputs: {json.dumps(task.inputs, sort_keys=True)}")
    if task.success is not None:
        lines.append(f"Success is checked by: {json.dumps(task.success, sort_keys=True)}")
    if task.suggested_steps:
        lines.append(
            "Known working steps (use them unless the screen differs): "
            f"{json.dumps(list(task.suggested_steps))}"
        )
    return "\n".join(lines)
