"""The company spec as pydantic v2 models: field names here are the YAML contract.

Every model forbids unknown keys, so a typo is an error with a did-you-mean, never a silently
ignored field. Durations are normalised to seconds (``90s``, ``10m``, ``2h`` or a number).
"""

from __future__ import annotations

import difflib
import heapq
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

__all__ = [
    "MAX_STEP_WAIT",
    "STEP_KINDS",
    "AllCheck",
    "AnyCheck",
    "App",
    "Approver",
    "Attempts",
    "Budgets",
    "Check",
    "ClickStep",
    "CommandCheck",
    "Company",
    "Defaults",
    "DomCheck",
    "DoubleClickStep",
    "Drag",
    "DragStep",
    "FileContainsCheck",
    "FileExistsCheck",
    "HttpCheck",
    "JsCheck",
    "KeyStep",
    "LlmJudgeCheck",
    "Models",
    "NotCheck",
    "Objective",
    "OpenUrlStep",
    "Policy",
    "Retry",
    "RightClickStep",
    "Role",
    "Sandbox",
    "ScreenContainsCheck",
    "Scroll",
    "ScrollStep",
    "SecretSpec",
    "Service",
    "SqliteCheck",
    "Step",
    "Task",
    "TypeStep",
    "UrlMatchesCheck",
    "WaitForStep",
    "WaitStep",
    "parse_duration",
    "step_kind",
    "validate_step",
]

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """``90s`` → 90.0, ``10m`` → 600.0, ``2h`` → 7200.0, ``1.5`` → 1.5 (seconds).

    Raises ``ValueError`` with a one-line reason for anything else (including booleans and
    negative numbers).
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use seconds or a string like 90s, 10m, 2h")
    if isinstance(value, int | float):
        if value < 0 or value != value or value in (float("inf"),):
            raise ValueError(f"invalid duration {value!r}: must be a finite number >= 0")
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(f"invalid duration {value!r}: use seconds or a string like 90s, 10m, 2h")


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"},
            ],
            "description": "A duration: seconds, or a string such as 90s, 10m, 2h.",
        }
    ),
]


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return pattern


Regex = Annotated[str, AfterValidator(_compiles)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
SecretName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Point = tuple[int, int]

#: The longest a step may wait (``wait``, ``wait_for``'s ``timeout``): a script never hangs.
MAX_STEP_WAIT = 3600.0


def _step_wait(value: float) -> float:
    if value > MAX_STEP_WAIT:
        raise ValueError(f"duration {value:g}s is over the {MAX_STEP_WAIT:g}s limit for a step")
    return value


# Bounded like every wait of a step; the JSON Schema says so too (the planner's model sees it).
StepDuration = Annotated[
    float,
    BeforeValidator(parse_duration),
    AfterValidator(_step_wait),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": MAX_STEP_WAIT},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"},
            ],
            "description": f"A duration of at most {MAX_STEP_WAIT:g}s: seconds, or 5s, 2m.",
        }
    ),
]


def _visible(text: str) -> str:
    if not text.strip():
        raise ValueError("expected visible text, not blank text")
    return text


# A screen point as a plain two-integer array (no tuple keywords such as prefixItems), so the
# planner's structured-output schema stays within what OpenAI-compatible servers accept.
StepPoint = Annotated[
    Point,
    WithJsonSchema(
        {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
    ),
]
#: What kind of element a text target is; the same words on a button and a link differ.
TargetRole = Literal["button", "link", "field", "menu", "text"]
_ROLE_DOC = "What the target is (button, link, field, menu, text) when the same words show twice."
# Visible text to aim at, or [x, y] screen pixels.
Target = Annotated[str, AfterValidator(_visible)] | StepPoint


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, str_strip_whitespace=False
    )


# --- company-level pieces --------------------------------------------------------------------


class Models(_Model):
    """Which model names the planner and the actor use (any OpenAI-compatible endpoint)."""

    planner: str | None = Field(default=None, description="Model that plans a task, e.g. grok-4.")
    actor: str | None = Field(
        default=None, description="Model that drives the screen, e.g. grok-4-fast."
    )
    judge: str | None = Field(default=None, description="Model for explicit llm_judge checks.")


class Budgets(_Model):
    """Hard limits for a run; a task's budget may not exceed the company's."""

    steps: int | None = Field(default=None, ge=1, description="Most actor steps.")
    tokens: int | None = Field(
        default=None, ge=1, description="Most model tokens (prompt + completion)."
    )
    usd: float | None = Field(default=None, gt=0, description="Most money spent on models, in USD.")
    wall_clock: Duration | None = Field(default=None, description="Longest run time.")


class Approver(_Model):
    """Who approves an action matched by ``confirm``."""

    kind: Literal["deny", "allow", "prompt", "webhook", "console"] = Field(
        default="deny",
        description="deny (default), allow, prompt (ask on the terminal), webhook, or console "
        "(the run's operator console, `agentcorp run --console`; deny when none is running).",
    )
    url: str | None = Field(default=None, description="Webhook URL (kind: webhook).")
    timeout: Duration = Field(
        default=60.0, description="How long to wait for an answer, then deny."
    )

    @model_validator(mode="after")
    def _webhook_needs_url(self) -> Approver:
        if self.kind == "webhook" and not self.url:
            raise ValueError("approver kind 'webhook' needs a 'url'")
        return self


class Policy(_Model):
    """What actions may do. Unset fields inherit; see ``effective_policy`` for the merge."""

    allow_apps: list[str] | None = Field(
        default=None, description="Window classes actions may target (None: any)."
    )
    allow_urls: list[str] | None = Field(
        default=None, description="URL globs a browser may visit (None: any)."
    )
    forbid_keys: list[str] | None = Field(
        default=None, description="Key combos never sent, e.g. ctrl+alt+Delete."
    )
    forbid_text: list[Regex] | None = Field(
        default=None, description="Regexes typed text may never match."
    )
    confirm: list[Regex] | None = Field(
        default=None, description="Regexes on target text/context that need the approver's yes."
    )
    approver: Approver | None = Field(default=None, description="Who answers confirm requests.")
    max_type_chars: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="Longest text one type action may carry (None: 10000).",
    )


class SecretSpec(_Model):
    """A secret's name and where its value may be typed (the value comes from the environment)."""

    name: SecretName = Field(description="Environment variable holding the value.")
    description: str = Field(default="", description="What the secret is for.")
    allow_domains: list[str] = Field(
        default_factory=list, description="Host[:port] globs where it may be typed (empty: any)."
    )
    allow_fields: list[str] = Field(
        default_factory=list, description="Field labels it may be typed into (empty: any)."
    )
    if_missing: Literal["error", "generate"] = Field(
        default="error",
        description=(
            "When the environment variable is unset: error (refuse to run) or generate "
            "(a fresh random value for this run, never shown; for sandboxes the run "
            "provisions itself, such as a demo back office)."
        ),
    )


class Defaults(_Model):
    """Company-wide defaults."""

    models: Models = Field(default_factory=Models, description="Default model names.")
    budgets: Budgets = Field(
        default_factory=Budgets, description="Company budgets: the ceiling for every task."
    )


class Role(_Model):
    """A job in the company: what the agent in it is and does."""

    title: str = Field(description="Job title, e.g. Bookkeeper.")
    goal: str = Field(default="", description="What the role is for.")
    instructions: str = Field(default="", description="Standing instructions given to the planner.")
    sandbox: str | None = Field(default=None, description="Default sandbox for the role's tasks.")
    policy: Policy | None = Field(default=None, description="Overrides of the company policy.")
    models: Models | None = Field(default=None, description="Overrides of the default models.")


class App(_Model):
    """A desktop application started in a desktop sandbox."""

    name: Name = Field(description="A short name for the app.")
    command: list[str] = Field(min_length=1, description="argv; ~ is the sandbox home.")
    wait_for_window: str | None = Field(
        default=None,
        description="Start is complete when a window whose title contains this appears.",
    )
    timeout: Duration = Field(default=30.0, description="How long to wait for the window.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment for the app (it gets a clean one, never agentcorp's).",
    )
    type_delay: Duration | None = Field(
        default=None,
        description="Pause after each key typed into this app (e.g. 50ms); default adaptive.",
    )

    @field_validator("type_delay")
    @classmethod
    def _delay_range(cls, v: float | None) -> float | None:
        return _check_type_delay(v)


def _check_type_delay(v: float | None) -> float | None:
    if v is not None and not 0 <= v <= 5:
        raise ValueError(f"type_delay must be between 0 and 5s, got {v:g}s")
    return v


class Service(_Model):
    """A helper process started before the sandbox (e.g. a local web back office)."""

    name: Name = Field(description="A short name for the service.")
    command: list[str] = Field(min_length=1, description="argv of the service.")
    cwd: str | None = Field(
        default=None, description="Working folder, relative to the company file's folder."
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Extra environment; values may use ${secrets.NAME}.",
    )
    ready_url: str | None = Field(default=None, description="Ready once this URL answers HTTP.")
    ready_timeout: Duration = Field(default=30.0, description="How long to wait for ready_url.")


class Sandbox(_Model):
    """A computer agents work in: an Xvfb desktop with apps, or a Chromium browser."""

    kind: Literal["desktop", "browser"] = Field(description="desktop or browser.")
    screen: Point = Field(default=(1280, 800), description="[width, height] in pixels.")
    apps: list[App] = Field(default_factory=list, description="Apps started on a desktop.")
    files: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Sandbox path (~/...) → source file relative to the company file's folder. In a"
            " browser sandbox's home they are the files a page's file field can be given."
        ),
    )
    start_url: str | None = Field(default=None, description="First page of a browser sandbox.")
    allow_urls: list[str] | None = Field(
        default=None,
        description="URL globs the browser may visit (shorthand for policy.allow_urls).",
    )
    services: list[Service] = Field(
        default_factory=list, description="Processes started before the sandbox."
    )
    policy: Policy | None = Field(default=None, description="Overrides of the role's policy.")
    type_delay: Duration | None = Field(
        default=None,
        description="Pause after each typed key on this desktop (e.g. 50ms); default adaptive.",
    )
    dialogs: Literal["accept", "dismiss"] | None = Field(
        default=None,
        description=(
            "How a browser answers the page's own dialogs (alert, confirm, prompt,"
            " beforeunload): accept (OK, a prompt gets its default value; the default) or"
            " dismiss (Cancel). Each one is noted in the step's result and audited."
        ),
    )

    @field_validator("type_delay")
    @classmethod
    def _delay_range(cls, v: float | None) -> float | None:
        return _check_type_delay(v)

    @model_validator(mode="after")
    def _consistent(self) -> Sandbox:
        w, h = self.screen
        if not (64 <= w <= 7680 and 64 <= h <= 4320):
            raise ValueError(f"screen {w}x{h} is out of range (64..7680 x 64..4320)")
        if self.kind == "browser" and self.apps:
            raise ValueError("apps run on desktop sandboxes; a browser sandbox uses start_url")
        if self.kind == "desktop" and self.dialogs is not None:
            raise ValueError("dialogs is for browser sandboxes (the page's alert/confirm/prompt)")
        if self.allow_urls is not None and self.policy and self.policy.allow_urls is not None:
            raise ValueError("set allow_urls once: either on the sandbox or in its policy")
        return self


# --- steps --------------------------------------------------------------------------------------


class ClickStep(_Model):
    """Click a visible text or a point."""

    click: Target
    role: TargetRole | None = Field(default=None, description=_ROLE_DOC)


class DoubleClickStep(_Model):
    """Double-click a visible text or a point."""

    double_click: Target
    role: TargetRole | None = Field(default=None, description=_ROLE_DOC)


class RightClickStep(_Model):
    """Right-click a visible text or a point."""

    right_click: Target
    role: TargetRole | None = Field(default=None, description=_ROLE_DOC)


class TypeStep(_Model):
    """Type text; ``${secrets.NAME}`` is allowed here (only the sandbox resolves it)."""

    type: str = Field(description="Text to type; may contain ${secrets.NAME} and {inputs.x}.")
    into: Annotated[str, AfterValidator(_visible)] | None = Field(
        default=None, description="Label of the field to click first."
    )


class KeyStep(_Model):
    """Press a key combination such as ctrl+s."""

    key: Annotated[str, AfterValidator(_visible)] = Field(
        description="Key combo, e.g. ctrl+s, Return, ctrl+End."
    )


class Scroll(_Model):
    """How to scroll."""

    direction: Literal["up", "down", "left", "right"] = "down"
    amount: int = Field(default=3, ge=1, le=100, description="Wheel notches.")
    at: Target | None = Field(default=None, description="Where to scroll (default: screen centre).")


class ScrollStep(_Model):
    """Scroll the wheel."""

    scroll: Scroll


class Drag(_Model):
    """Where a drag starts and ends."""

    from_: Target = Field(alias="from")
    to: Target


class DragStep(_Model):
    """Drag from one target to another."""

    drag: Drag


class WaitForStep(_Model):
    """Wait until a text is visible once the screen has settled.

    The screen settles first (a page the last action started loading has loaded), so a text
    still showing on the page being left never counts; a text already visible on the settled
    screen returns at once. To let time pass instead, use ``wait``.
    """

    wait_for: Annotated[str, AfterValidator(_visible)] = Field(
        description="Text that must appear on screen."
    )
    timeout: StepDuration = Field(default=10.0, description="Give up after this long.")


class OpenUrlStep(_Model):
    """Open a URL (browser sandboxes)."""

    open_url: str = Field(min_length=1)


class WaitStep(_Model):
    """Pause for a fixed time: the last resort, when there is no text to ``wait_for``."""

    wait: StepDuration = Field(
        description="How long to pause; prefer wait_for, which ends as soon as the screen is ready."
    )


STEP_KINDS: dict[str, type[_Model]] = {
    "click": ClickStep,
    "double_click": DoubleClickStep,
    "right_click": RightClickStep,
    "type": TypeStep,
    "key": KeyStep,
    "scroll": ScrollStep,
    "drag": DragStep,
    "wait_for": WaitForStep,
    "open_url": OpenUrlStep,
    "wait": WaitStep,
}


def step_kind(value: Any) -> str | None:
    """The step's action key, or None when there is not exactly one."""
    if isinstance(value, BaseModel):
        names = [k for k in STEP_KINDS if k in type(value).model_fields]
        return names[0] if names else None
    if isinstance(value, dict):
        found = [k for k in value if k in STEP_KINDS]
        return found[0] if len(found) == 1 else None
    return None


Step: TypeAlias = Annotated[
    Annotated[ClickStep, Tag("click")]
    | Annotated[DoubleClickStep, Tag("double_click")]
    | Annotated[RightClickStep, Tag("right_click")]
    | Annotated[TypeStep, Tag("type")]
    | Annotated[KeyStep, Tag("key")]
    | Annotated[ScrollStep, Tag("scroll")]
    | Annotated[DragStep, Tag("drag")]
    | Annotated[WaitForStep, Tag("wait_for")]
    | Annotated[OpenUrlStep, Tag("open_url")]
    | Annotated[WaitStep, Tag("wait")],
    Discriminator(
        step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step is one mapping with exactly one action: "
        "click, double_click, right_click, type, key, scroll, drag, wait_for, open_url or wait",
    ),
]

_STEP_ADAPTER: TypeAdapter[Step] = TypeAdapter(Step)
_STEP_PARTS: tuple[type[_Model], ...] = (*STEP_KINDS.values(), Scroll, Drag)
_STEP_FIELDS = frozenset({n for m in _STEP_PARTS for n in m.model_fields} | {"from"})


def validate_step(value: Any, where: str = "step") -> Step:
    """One step of the vocabulary (a mapping or a step model), validated.

    Raises ``ValueError`` with one line naming ``where`` and what is wrong; this is the check
    every reader of steps shares (the loader reports richer, located errors for whole files).
    """
    if isinstance(value, BaseModel) and not isinstance(value, tuple(STEP_KINDS.values())):
        value = value.model_dump(by_alias=True, exclude_none=True)
    try:
        return _STEP_ADAPTER.validate_python(value)
    except ValidationError as exc:
        raise ValueError(f"{where}{_step_problem(exc, value)}") from None


def _step_problem(exc: ValidationError, value: Any) -> str:
    err = exc.errors()[0]
    if err["type"] == "step_kind":
        keys = sorted(map(str, value)) if isinstance(value, dict) else type(value).__name__
        return f": expected exactly one of {', '.join(STEP_KINDS)}, got {keys}"
    parts = err["loc"][1:]  # the first is the discriminator's tag
    if err["type"] == "extra_forbidden":
        where = "".join(f".{p}" for p in parts[:-1])
        return f"{where}: unknown key {str(parts[-1])!r}"
    # Union branches and validators label the location too: keep only the field names.
    fields = [str(p) for p in parts if str(p) in _STEP_FIELDS]
    where = "".join(f".{p}" for p in fields)
    if len(fields) < len(parts) and err["type"] != "value_error":
        msg = "expected visible text or [x, y]"  # a Target matching neither branch
    else:
        msg = str(err["msg"]).removeprefix("Value error, ")
    got = repr(err["input"])
    return f"{where}: {msg}, got {got if len(got) <= 60 else got[:57] + '...'}"


# --- success checks ------------------------------------------------------------------------------


class _Leaf(_Model):
    name: str | None = Field(default=None, description="A label for reports (default: the check).")


class FileExistsCheck(_Leaf):
    """A file exists in the sandbox."""

    check: Literal["file_exists"]
    path: str = Field(description="Path in the sandbox, e.g. ~/books.csv.")


class FileContainsCheck(_Leaf):
    """A file contains a text or matches a regex."""

    check: Literal["file_contains"]
    path: str = Field(description="Path in the sandbox.")
    text: str | None = Field(default=None, description="Substring that must be present.")
    regex: Regex | None = Field(default=None, description="Regex that must match somewhere.")

    @model_validator(mode="after")
    def _one(self) -> FileContainsCheck:
        if (self.text is None) == (self.regex is None):
            raise ValueError("file_contains needs exactly one of 'text' or 'regex'")
        return self


class ScreenContainsCheck(_Leaf):
    """The screen shows a text (or a regex matches the recognised text)."""

    check: Literal["screen_contains"]
    text: str | None = None
    regex: Regex | None = None

    @model_validator(mode="after")
    def _one(self) -> ScreenContainsCheck:
        if (self.text is None) == (self.regex is None):
            raise ValueError("screen_contains needs exactly one of 'text' or 'regex'")
        return self


class UrlMatchesCheck(_Leaf):
    """The browser's current URL matches a glob or regex."""

    check: Literal["url_matches"]
    url: str | None = Field(default=None, description="Glob, e.g. http://127.0.0.1:8765/admin/*.")
    regex: Regex | None = None

    @model_validator(mode="after")
    def _one(self) -> UrlMatchesCheck:
        if (self.url is None) == (self.regex is None):
            raise ValueError("url_matches needs exactly one of 'url' or 'regex'")
        return self


class CommandCheck(_Leaf):
    """A command run in the sandbox exits as expected (and its stdout matches)."""

    check: Literal["command"]
    argv: list[str] = Field(min_length=1)
    exit_code: int = Field(default=0, description="Expected exit status.")
    stdout_contains: str | None = None
    stdout_regex: Regex | None = None
    timeout: Duration = 30.0


class HttpCheck(_Leaf):
    """An HTTP GET answers with a status (and optionally a JSON value)."""

    check: Literal["http"]
    url: str
    status: int = Field(default=200, ge=100, le=599)
    json_path: str | None = Field(
        default=None, description="Dotted path into the JSON body, e.g. items.0.status."
    )
    value: Any = Field(default=None, description="Expected value at json_path.")
    timeout: Duration = 10.0


class SqliteCheck(_Leaf):
    """A query against a SQLite file in the sandbox returns the expected rows."""

    check: Literal["sqlite"]
    database: str = Field(description="Path in the sandbox, e.g. ~/backoffice.sqlite3.")
    query: str = Field(min_length=1, description="A read-only SELECT.")
    rows: list[list[str | int | float | bool | None]] = Field(
        description="Expected rows, in order."
    )


class LlmJudgeCheck(_Leaf):
    """A model judges the final screen (only when a task asks for it explicitly)."""

    check: Literal["llm_judge"]
    question: str = Field(min_length=1, description="Yes/no question about the final screen.")
    model: str | None = None


def _css_selector(selector: str) -> str:
    import cssselect  # type: ignore[import-untyped]

    try:
        cssselect.parse(selector)
    except Exception as exc:  # SelectorSyntaxError, and on odd input a few others
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"invalid CSS selector {selector!r}: {first}") from None
    return selector


CssSelector = Annotated[str, Field(min_length=1), AfterValidator(_css_selector)]
Number = int | float


class DomCheck(_Leaf):
    """Elements of the page (browser sandboxes): a selector's text, value, attribute or count.

    With no condition the check passes when the selector matches at least one element.
    """

    check: Literal["dom"]
    selector: CssSelector = Field(description="CSS selector, e.g. '#result' or 'ul.items > li'.")
    read: Literal["text", "value", "attribute", "count"] = Field(
        default="text", description="What to read from the first match (count: how many match)."
    )
    attribute: str | None = Field(default=None, description="Attribute name when read: attribute.")
    equals: str | int | float | bool | None = Field(
        default=None, description="Exact value (numbers compare as numbers)."
    )
    contains: str | None = Field(default=None, description="Substring that must be present.")
    regex: Regex | None = Field(default=None, description="Regex that must match the value.")
    at_least: Number | None = Field(default=None, description="The value as a number is >= this.")
    at_most: Number | None = Field(default=None, description="The value as a number is <= this.")

    @model_validator(mode="after")
    def _fields(self) -> DomCheck:
        if (self.read == "attribute") != (self.attribute is not None):
            raise ValueError("dom: 'attribute' is needed with read: attribute, and only then")
        if self.read == "count" and (self.contains is not None or self.regex is not None):
            raise ValueError("dom: read: count compares numbers (equals, at_least, at_most)")
        return self


class JsCheck(_Leaf):
    """A JavaScript expression evaluated in the page (browser sandboxes); truthy passes.

    An expression that throws is a failure carrying the error's message.
    """

    check: Literal["js"]
    expression: str = Field(
        min_length=1, description="Expression, e.g. document.title === 'Done' or a page global."
    )


class AllCheck(_Model):
    """Every child passes."""

    all: list[Check] = Field(min_length=1)


class AnyCheck(_Model):
    """At least one child passes."""

    any: list[Check] = Field(min_length=1)


class NotCheck(_Model):
    """The child fails."""

    not_: Check = Field(alias="not")


LEAF_CHECKS: dict[str, type[_Model]] = {
    "file_exists": FileExistsCheck,
    "file_contains": FileContainsCheck,
    "screen_contains": ScreenContainsCheck,
    "url_matches": UrlMatchesCheck,
    "command": CommandCheck,
    "http": HttpCheck,
    "sqlite": SqliteCheck,
    "llm_judge": LlmJudgeCheck,
    "dom": DomCheck,
    "js": JsCheck,
}
_COMBINATORS = ("all", "any", "not")


def check_kind(value: Any) -> str | None:
    """The check tree node's tag: a leaf check name, all, any or not; None when unknown."""
    if isinstance(value, BaseModel):
        if isinstance(value, AllCheck):
            return "all"
        if isinstance(value, AnyCheck):
            return "any"
        if isinstance(value, NotCheck):
            return "not"
        return str(getattr(value, "check", "")) or None
    if isinstance(value, dict):
        if "check" in value:
            name = value["check"]
            return name if isinstance(name, str) and name in LEAF_CHECKS else None
        found = [k for k in _COMBINATORS if k in value]
        return found[0] if len(found) == 1 else None
    return None


Check: TypeAlias = Annotated[
    Annotated[AllCheck, Tag("all")]
    | Annotated[AnyCheck, Tag("any")]
    | Annotated[NotCheck, Tag("not")]
    | Annotated[FileExistsCheck, Tag("file_exists")]
    | Annotated[FileContainsCheck, Tag("file_contains")]
    | Annotated[ScreenContainsCheck, Tag("screen_contains")]
    | Annotated[UrlMatchesCheck, Tag("url_matches")]
    | Annotated[CommandCheck, Tag("command")]
    | Annotated[HttpCheck, Tag("http")]
    | Annotated[SqliteCheck, Tag("sqlite")]
    | Annotated[LlmJudgeCheck, Tag("llm_judge")]
    | Annotated[DomCheck, Tag("dom")]
    | Annotated[JsCheck, Tag("js")],
    Discriminator(
        check_kind,
        custom_error_type="check_kind",
        custom_error_message="a check is {check: NAME, ...} or all/any/not",
    ),
]

AllCheck.model_rebuild()
AnyCheck.model_rebuild()
NotCheck.model_rebuild()


# --- tasks and the company ---------------------------------------------------------------------


class Retry(_Model):
    """How often a failed task is tried again."""

    max_attempts: int = Field(
        default=1, ge=1, le=20, description="Total attempts, including the first."
    )
    backoff: Duration = Field(default=0.0, description="Pause between attempts.")


Scalar = str | int | float | bool


class Attempts(_Model):
    """Best-of-N: independent rollouts in separate copies of the sandbox; first to pass wins."""

    n: int = Field(default=1, ge=1, le=16, description="How many rollouts.")
    parallel: bool = Field(
        default=True, description="Run them at once (else one after another, stopping at a pass)."
    )


class Task(_Model):
    """One unit of work for a role, on a sandbox."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=100,
        description="Unique id: letters, digits, '-', '_', '.'.",
    )
    role: str = Field(description="Key of a role.")
    sandbox: str | None = Field(default=None, description="Key of a sandbox (default: the role's).")
    description: str = Field(description="What to do; may use {inputs.name} variables.")
    inputs: dict[str, Scalar] = Field(default_factory=dict, description="Template values.")
    depends_on: list[str] = Field(default_factory=list, description="Ids of tasks run first.")
    steps: list[Step] | None = Field(
        default=None, description="Scripted steps the actor can run without a model."
    )
    success: Check | None = Field(default=None, description="Check tree deciding pass/fail.")
    budgets: Budgets | None = Field(default=None, description="Task budgets (<= the company's).")
    retry: Retry = Field(default_factory=Retry, description="Retry policy.")
    attempts: Attempts | None = Field(
        default=None,
        description="Best-of-N rollouts: the first to pass the deterministic success checks "
        "wins, else a judge model picks (only on a desktop sandbox without services: effects "
        "must stay inside the sandbox).",
    )


class Objective(_Model):
    """What the company wants done; the manager turns it into a plan of tasks and runs it."""

    id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=100,
        description="Unique id: letters, digits, '-', '_', '.'.",
    )
    goal: str = Field(min_length=1, description="What to achieve; may use {inputs.name} variables.")
    inputs: dict[str, Scalar] = Field(default_factory=dict, description="Template values.")
    roles: list[str] = Field(
        default_factory=list, description="Keys of the roles its plan may use (empty: any role)."
    )
    budgets: Budgets | None = Field(
        default=None,
        description="The most the whole plan may budget (<= the company's); the sum of its "
        "tasks' budgets must fit.",
    )
    approval: bool = Field(
        default=False, description="The plan waits for the company's approver before it runs."
    )
    max_rounds: int = Field(
        default=2,
        ge=1,
        le=10,
        description="Plan rounds: the first plan plus replans after failures.",
    )


class Company(_Model):
    """A whole AI-only company: roles, sandboxes, secrets, policy, tasks and objectives."""

    version: Literal[1] = Field(description="Spec version; always 1.")
    company: Name = Field(description="The company's name.")
    description: str = Field(default="", description="What the company does.")
    defaults: Defaults = Field(default_factory=Defaults, description="Models and budgets.")
    secrets: list[SecretName | SecretSpec] = Field(
        default_factory=list,
        description="Secret names (values come from the environment at run time).",
    )
    policy: Policy | None = Field(default=None, description="Company-wide action policy.")
    roles: dict[str, Role] = Field(min_length=1, description="Roles by key.")
    sandboxes: dict[str, Sandbox] = Field(min_length=1, description="Sandboxes by key.")
    tasks: list[Task] = Field(min_length=1, description="The work, in file order.")
    objectives: list[Objective] = Field(
        default_factory=list, description="Goals the manager plans into tasks (docs/manager.md)."
    )

    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)
    _source: Path | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        """The folder relative paths (files, service cwd) are resolved against."""
        return self._base_dir

    @property
    def source(self) -> Path | None:
        """The company file this was loaded from, if any."""
        return self._source

    @property
    def secret_specs(self) -> dict[str, SecretSpec]:
        """Every declared secret by name, short forms expanded."""
        out: dict[str, SecretSpec] = {}
        for s in self.secrets:
            spec = SecretSpec(name=s) if isinstance(s, str) else s
            out[spec.name] = spec
        return out

    def task(self, task_id: str) -> Task:
        """The task with this id; ``KeyError`` (with a did-you-mean) when there is none."""
        for t in self.tasks:
            if t.id == task_id:
                return t
        close = difflib.get_close_matches(task_id, [t.id for t in self.tasks], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"unknown task {task_id!r}{hint}")

    def objective(self, objective_id: str) -> Objective:
        """The objective with this id; ``KeyError`` (with a did-you-mean) when there is none."""
        for o in self.objectives:
            if o.id == objective_id:
                return o
        close = difflib.get_close_matches(objective_id, [o.id for o in self.objectives], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"unknown objective {objective_id!r}{hint}")

    def task_sandbox(self, task: Task) -> str:
        """The sandbox key a task runs on: its own, else its role's."""
        name = task.sandbox or self.roles[task.role].sandbox
        if name is None:
            raise KeyError(f"task {task.id!r} has no sandbox")
        return name

    def task_order(self) -> list[Task]:
        """Tasks in dependency order; ties keep file order (the spec has no cycles)."""
        index = {t.id: i for i, t in enumerate(self.tasks)}
        indegree = {t.id: len(set(t.depends_on)) for t in self.tasks}
        children: dict[str, list[str]] = {t.id: [] for t in self.tasks}
        for t in self.tasks:
            for d in set(t.depends_on):
                children[d].append(t.id)
        ready = [index[t.id] for t in self.tasks if indegree[t.id] == 0]
        heapq.heapify(ready)
        order: list[Task] = []
        while ready:
            task = self.tasks[heapq.heappop(ready)]
            order.append(task)
            for c in children[task.id]:
                indegree[c] -= 1
                if indegree[c] == 0:
                    heapq.heappush(ready, index[c])
        return order
