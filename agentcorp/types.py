"""Shared value types: geometry, actions, model I/O and the step records.

Every module may import this one; it imports nothing else of ours. Step records are the
recording format: the actor loop yields them, the recorder writes them (``step_to_dict``), the
replayer reads them back (``step_from_dict``). They are frozen dataclasses so a record cannot
change after it was yielded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeAlias

from pydantic import TypeAdapter, ValidationError

__all__ = [
    "Action",
    "ActionKind",
    "ActionResultStep",
    "ActionSource",
    "ActionStep",
    "BudgetStep",
    "ChatModel",
    "ChatRequest",
    "ChatResponse",
    "CheckStep",
    "ErrorStep",
    "ModelCallStep",
    "ObservationStep",
    "PlanStep",
    "PolicyStep",
    "Step",
    "ToolCall",
    "Usage",
    "step_from_dict",
    "step_to_dict",
]

Point: TypeAlias = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned rectangle in screen pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    @property
    def center(self) -> Point:
        """The centre point, rounded down."""
        return (self.x + self.w // 2, self.y + self.h // 2)

    @property
    def right(self) -> int:
        """One past the last column."""
        return self.x + self.w

    @property
    def bottom(self) -> int:
        """One past the last row."""
        return self.y + self.h

    def union(self, other: Box) -> Box:
        """The smallest box holding both."""
        x, y = min(self.x, other.x), min(self.y, other.y)
        return Box(x, y, max(self.right, other.right) - x, max(self.bottom, other.bottom) - y)

    def expand(self, margin: int, width: int, height: int) -> Box:
        """Grow by ``margin`` on every side, clipped to a ``width`` x ``height`` screen."""
        x, y = max(0, self.x - margin), max(0, self.y - margin)
        r, b = min(width, self.right + margin), min(height, self.bottom + margin)
        return Box(x, y, max(0, r - x), max(0, b - y))

    def contains(self, x: int, y: int) -> bool:
        """Whether the point lies inside."""
        return self.x <= x < self.right and self.y <= y < self.bottom


ActionKind = Literal[
    "click",
    "double_click",
    "right_click",
    "move",
    "drag",
    "scroll",
    "type",
    "key",
    "wait",
    "wait_for",
    "open_url",
    "zoom",
    "request_help",
    "done",
    "fail",
]
#: Who decided an action: the model, a scripted step, a learned skill, a replayed session.
#: ``cache`` is what sessions recorded before skills called a skill's actions.
ActionSource = Literal["model", "script", "skill", "cache", "replay"]


@dataclass(frozen=True, slots=True)
class Action:
    """One thing the actor does to a computer, in screen coordinates.

    ``target`` is the visible text the action aimed at (when known) so replays can relocate
    it; ``model_xy`` keeps the coordinates as the model gave them, in the frame it saw.
    ``text`` may hold ``${secrets.NAME}`` placeholders; only the sandbox resolves them.
    ``intent`` is the model's one-line reason for this action (recorded and shown in the
    trace, never executed); ``region`` is the screen box ``(x, y, w, h)`` a ``zoom`` looked at.
    """

    kind: ActionKind
    x: int | None = None
    y: int | None = None
    path: tuple[Point, ...] = ()
    dx: int = 0
    dy: int = 0
    text: str | None = None
    keys: str | None = None
    seconds: float | None = None
    url: str | None = None
    target: str | None = None
    into: str | None = None
    model_xy: Point | None = None
    summary: str | None = None
    intent: str | None = None
    region: tuple[int, int, int, int] | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and money for one model call (or a sum of calls).

    ``cached_tokens`` is the part of ``prompt_tokens`` the provider served from its prompt
    cache (priced lower). ``unpriced_calls`` counts calls of models with no known price: their
    cost is not in ``cost_usd``, so while it is non-zero the cost is unknown (``cost_known``),
    never a silent $0.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    images: int = 0
    cost_usd: float = 0.0
    cached_tokens: int = 0
    unpriced_calls: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def cost_known(self) -> bool:
        """Whether every call counted here had a price (else ``cost_usd`` is a lower bound)."""
        return self.unpriced_calls == 0

    def cost_text(self, digits: int = 4) -> str:
        """The cost for people: ``0.0123``, or ``unknown`` when a call had no known price."""
        if self.cost_known:
            return f"{self.cost_usd:.{digits}f}"
        return f"unknown (≥ {self.cost_usd:.{digits}f})" if self.cost_usd else "unknown"

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.images + other.images,
            self.cost_usd + other.cost_usd,
            self.cached_tokens + other.cached_tokens,
            self.unpriced_calls + other.unpriced_calls,
        )


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call as the model sent it; ``arguments`` is the raw JSON text, unparsed."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat-completions request in OpenAI wire shape (messages/tools are plain dicts)."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    purpose: str = "act"


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """What came back: text, tool calls, usage, and where it came from."""

    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Usage()
    model: str = ""
    request_id: str | None = None
    latency_ms: float = 0.0
    finish_reason: str | None = None


class ChatModel(ABC):
    """Anything that answers a chat request: the HTTP client, a scripted fake, a replay."""

    @abstractmethod
    def complete(self, request: ChatRequest) -> ChatResponse:
        """Send one request and return the model's reply (retries are the model's business)."""


# --- step records -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObservationStep:
    """The actor looked at the screen. The frame itself travels in ``frame`` (not serialised)."""

    step: int
    t: float
    frame_sha256: str
    size: Point
    model_size: Point
    changed: Box | None = None
    kind: Literal["observation"] = "observation"
    frame: Any = field(default=None, repr=False, compare=False)
    image: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ModelCallStep:
    """One model round trip; ``request`` is the redacted body, hashed canonically."""

    step: int
    t: float
    purpose: str
    model: str
    request_sha256: str
    request: dict[str, Any]
    response: dict[str, Any]
    usage: Usage
    latency_ms: float
    request_id: str | None = None
    kind: Literal["model_call"] = "model_call"


@dataclass(frozen=True, slots=True)
class ActionStep:
    """The actor decided on an action (before policy and execution).

    ``tool_call_id`` names the model's tool call it came from (one reply may carry several).
    """

    step: int
    t: float
    action: Action
    source: ActionSource
    reasoning: str | None = None
    tool_call_id: str | None = None
    kind: Literal["action"] = "action"


@dataclass(frozen=True, slots=True)
class ActionResultStep:
    """What happened when the action ran; ``error`` is what the model is told on failure.

    ``phases`` are the action's wall times in milliseconds, disjoint, in the order they ran:
    ``model`` (the call that chose it), ``ground`` (finding its target), ``act`` (the
    computer doing it), ``settle`` (waiting for the screen, captures excluded), ``capture``
    (screenshots taken while settling) and ``encode`` (the observation for the model and the
    recording). A phase that did not happen is absent; recordings older than this field
    load with none.
    """

    step: int
    t: float
    ok: bool
    error: str | None = None
    duration_ms: float = 0.0
    settle_ms: float = 0.0
    changed: Box | None = None
    kind: Literal["action_result"] = "action_result"
    phases: dict[str, float] = field(default_factory=dict)
    #: What the screen did beyond the action (``Computer.take_notes``: a dialog the page
    #: showed and how it was answered, a tab that opened or closed); page text, untrusted.
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PolicyStep:
    """A policy decision about an action: allowed, denied, or approved by someone."""

    step: int
    t: float
    decision: Literal["allowed", "denied", "approved", "rejected"]
    rule: str | None = None
    approver: str | None = None
    kind: Literal["policy"] = "policy"


@dataclass(frozen=True, slots=True)
class PlanStep:
    """The planner produced (or revised) a plan."""

    step: int
    t: float
    plan: dict[str, Any]
    revision: int = 0
    kind: Literal["plan"] = "plan"


@dataclass(frozen=True, slots=True)
class CheckStep:
    """One success check's outcome."""

    step: int
    t: float
    name: str
    status: Literal["pass", "fail", "error"]
    detail: str = ""
    kind: Literal["check"] = "check"


@dataclass(frozen=True, slots=True)
class BudgetStep:
    """A snapshot of budget use; ``exceeded`` names the budget that ran out, if any."""

    step: int
    t: float
    steps: int
    tokens: int
    usd: float
    wall_clock_s: float
    exceeded: str | None = None
    kind: Literal["budget"] = "budget"


@dataclass(frozen=True, slots=True)
class ErrorStep:
    """A program or infrastructure error that ended or disturbed the run."""

    step: int
    t: float
    error_type: str
    message: str
    kind: Literal["error"] = "error"


Step: TypeAlias = (
    ObservationStep
    | ModelCallStep
    | ActionStep
    | ActionResultStep
    | PolicyStep
    | PlanStep
    | CheckStep
    | BudgetStep
    | ErrorStep
)

_STEP_TYPES: dict[str, type[Any]] = {
    "observation": ObservationStep,
    "model_call": ModelCallStep,
    "action": ActionStep,
    "action_result": ActionResultStep,
    "policy": PolicyStep,
    "plan": PlanStep,
    "check": CheckStep,
    "budget": BudgetStep,
    "error": ErrorStep,
}
_ADAPTERS: dict[str, TypeAdapter[Any]] = {}
_TRANSIENT = ("frame", "image")


def step_to_dict(step: Step) -> dict[str, Any]:
    """A JSON-ready dict of a step record, without its transient in-memory payloads."""
    d = asdict(step)
    for name in _TRANSIENT:
        d.pop(name, None)
    return d


def step_from_dict(data: Any) -> Step:
    """Read a step record back; raises ``ValueError`` with a one-line reason on bad input."""
    if not isinstance(data, dict):
        raise ValueError(f"step record must be an object, got {type(data).__name__}")
    kind = data.get("kind")
    cls = _STEP_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown step kind {kind!r}")
    adapter = _ADAPTERS.get(kind)  # type: ignore[arg-type]
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(cls)  # type: ignore[index]
    try:
        return adapter.validate_python(data, strict=False)  # type: ignore[no-any-return]
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{kind} step: {loc}: {first['msg']}") from None
