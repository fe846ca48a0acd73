"""Success checks: evaluate a task's ``success`` tree in its sandbox's context.

The tree is the spec's (``all`` / ``any`` / ``not`` with leaf checks ``file_exists``,
``file_contains``, ``screen_contains``, ``url_matches``, ``command``, ``http``, ``sqlite``,
``llm_judge``, and on browser sandboxes ``dom`` and ``js``), given as spec models or the
equivalent plain mappings; ``{inputs.NAME}`` in a check's strings is filled from
``CheckContext.inputs``. On a computer that can read its page (``PageReader``: the browser),
``screen_contains`` reads the page's rendered text instead of recognising pixels. ``~`` in
paths means the sandbox's home. A check that cannot be evaluated scores ``"error"`` with the
reason; nothing here raises for a bad check or a broken sandbox.

Combinators: ``all`` fails if a child fails, else errors if a child errors; ``any`` passes if a
child passes, else errors if a child errors; ``not`` swaps pass and fail and keeps error.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel

from agentcorp._io import UnsafeRead, read_bounded
from agentcorp._text import drop_format, visible
from agentcorp.grounding.base import Grounder
from agentcorp.sandbox.base import Computer
from agentcorp.spec import render_template
from agentcorp.types import ChatModel, ChatRequest, CheckStep

__all__ = [
    "CheckContext",
    "CheckOutcome",
    "CheckStatus",
    "PageReader",
    "evaluate",
    "evaluate_steps",
]

CheckStatus = Literal["pass", "fail", "error"]

# A checked file is read whole; a sandbox file this big is not something a check reads.
MAX_CHECKED_FILE_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class CheckContext:
    """Where checks look: the sandbox home, its screen, its URL, a command environment."""

    home: Path
    computer: Computer | None = None
    grounder: Grounder | None = None
    url: Callable[[], str | None] | None = None
    read_text: Callable[[Any], str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    judge: ChatModel | None = None
    judge_model: str = ""
    inputs: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class PageReader(Protocol):
    """A computer that can read its own page (the browser backend implements this).

    ``dom_read`` raises ``ValueError`` for a selector the page rejects; ``js_eval`` raises
    ``ValueError`` with the page's message when the expression throws.
    """

    def page_text(self) -> str:
        """The page's rendered text, form fields' values included."""
        ...

    def dom_read(self, selector: str, read: str, attribute: str | None = None) -> list[Any]:
        """Per matching element: its text, value or ``attribute`` (None when absent)."""
        ...

    def js_eval(self, expression: str) -> Any:
        """The expression's value, as JSON-compatible data."""
        ...


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """One leaf's (or the root's) result."""

    name: str
    status: CheckStatus
    detail: str = ""


class _CheckFailed(Exception):
    """The check ran and the condition does not hold (``str`` says why)."""


def _as_dict(node: Any) -> dict[str, Any]:
    if isinstance(node, BaseModel):
        dumped = node.model_dump(by_alias=True, exclude_none=True)
        return dict(dumped)
    if isinstance(node, Mapping):
        return dict(node)
    raise ValueError(f"a check must be a mapping, got {type(node).__name__}")


def _path(ctx: CheckContext, raw: Any) -> Path:
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"expected a path, got {raw!r}")
    if raw == "~" or raw.startswith("~/"):
        return ctx.home / raw[2:]
    p = Path(raw)
    return p if p.is_absolute() else ctx.home / p


def _label(d: Mapping[str, Any]) -> str:
    """A short readable name: the check's own ``name``, else its kind and what it looks at."""
    if d.get("name"):
        return str(d["name"])
    parts = [str(d.get("check", "?"))]
    for key in (
        "path",
        "database",
        "url",
        "selector",
        "expression",
        "text",
        "regex",
        "query",
        "question",
    ):
        if d.get(key) is not None:
            value = " ".join(str(d[key]).split())
            parts.append(value if len(value) <= 48 else value[:47] + "…")
    if isinstance(d.get("argv"), list):
        parts.append(" ".join(str(a) for a in d["argv"])[:48])
    return " ".join(parts)


def evaluate(tree: Any, ctx: CheckContext) -> tuple[CheckStatus, list[CheckOutcome]]:
    """Evaluate ``tree``; the overall status and every leaf's outcome, in order."""
    leaves: list[CheckOutcome] = []
    try:
        status = _node(tree, ctx, leaves)
    except ValueError as exc:
        leaves.append(CheckOutcome("success", "error", f"invalid check tree: {exc}"))
        return "error", leaves
    return status, leaves


#: Checks that only read (files, databases, the screen, the page): reading again is harmless.
PASSIVE = frozenset(
    {"file_exists", "file_contains", "screen_contains", "url_matches", "sqlite", "dom", "js"}
)
#: How long a task's failing checks are read again when they only read: an app may write its
#: file or database a moment after the last action's screen settled.
CHECK_GRACE_S = 2.0


def passive(tree: Any) -> bool:
    """Whether every leaf of ``tree`` only reads (no command, request or model is run)."""
    d = _as_dict(tree)
    for key in ("all", "any"):
        if key in d:
            return all(passive(c) for c in d[key] or [])
    if "not" in d:
        return passive(d["not"])
    return d.get("check") in PASSIVE


def evaluate_steps(
    tree: Any, ctx: CheckContext, step: int = 0, grace_s: float = 0.0
) -> tuple[CheckStatus, list[CheckStep]]:
    """``evaluate`` as ``CheckStep`` records, the last one (``success``) being the verdict.

    With ``grace_s``, a tree that fails and only reads (``passive``) is read again until it
    passes or ``grace_s`` has passed; a check that runs something is run once.
    """
    status, leaves = evaluate(tree, ctx)
    if status == "fail" and grace_s > 0 and passive(tree):
        deadline = time.monotonic() + grace_s
        while status == "fail" and time.monotonic() < deadline:
            time.sleep(0.2)  # polling what the app writes, not settling a screen
            status, leaves = evaluate(tree, ctx)
    now = time.time()
    steps = [CheckStep(step, now, o.name, o.status, o.detail) for o in leaves]
    steps.append(
        CheckStep(
            step,
            now,
            "success",
            status,
            f"{sum(o.status == 'pass' for o in leaves)}/{len(leaves)} passed",
        )
    )
    return status, steps


def _node(node: Any, ctx: CheckContext, out: list[CheckOutcome]) -> CheckStatus:
    d = _as_dict(node)
    if "all" in d or "any" in d:
        key = "all" if "all" in d else "any"
        children = d[key]
        if not isinstance(children, list) or not children:
            raise ValueError(f"'{key}' needs a non-empty list")
        results = [_node(c, ctx, out) for c in children]
        if key == "all":
            return "fail" if "fail" in results else "error" if "error" in results else "pass"
        return "pass" if "pass" in results else "error" if "error" in results else "fail"
    if "not" in d:
        inner = _node(d["not"], ctx, out)
        return {"pass": "fail", "fail": "pass", "error": "error"}[inner]  # type: ignore[return-value]
    if ctx.inputs:
        d = {k: _render(v, ctx.inputs) for k, v in d.items()}
    kind = d.get("check")
    fn = _LEAVES.get(kind) if isinstance(kind, str) else None
    label = _label(d)
    if fn is None:
        out.append(CheckOutcome(label, "error", f"unknown check {kind!r}"))
        return "error"
    try:
        detail = fn(d, ctx)
        status: CheckStatus = "pass"
    except _CheckFailed as exc:
        status, detail = "fail", str(exc)
    except Exception as exc:  # a broken check scores "error", never crashes the run
        status, detail = "error", f"{type(exc).__name__}: {exc}"
    out.append(CheckOutcome(label, status, detail))
    return status


def _render(value: Any, inputs: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        try:
            return render_template(value, inputs)
        except KeyError as exc:
            raise ValueError(f"template variable {{inputs.{exc.args[0]}}} has no input") from None
    if isinstance(value, list):
        return [_render(v, inputs) for v in value]
    return value


# --- leaves: return a detail on pass, raise _CheckFailed on fail, anything else = error ---


def _file_exists(d: Mapping[str, Any], ctx: CheckContext) -> str:
    p = _path(ctx, d.get("path"))
    if not p.exists():
        raise _CheckFailed(f"{d.get('path')} does not exist")
    return f"{d.get('path')} exists"


def _file_contains(d: Mapping[str, Any], ctx: CheckContext) -> str:
    p = _path(ctx, d.get("path"))
    if not p.exists():
        raise _CheckFailed(f"{d.get('path')} does not exist")
    try:
        content = read_bounded(p, MAX_CHECKED_FILE_BYTES).decode("utf-8", errors="replace")
    except (OSError, UnsafeRead) as exc:
        raise _CheckFailed(f"{d.get('path')}: {exc}") from None
    if d.get("text") is not None:
        if str(d["text"]) not in content:
            raise _CheckFailed(f"{d.get('path')} does not contain {d['text']!r}")
        return f"{d.get('path')} contains {d['text']!r}"
    if d.get("regex") is None:
        raise ValueError("file_contains needs 'text' or 'regex'")
    if not re.search(str(d["regex"]), content, re.MULTILINE):
        raise _CheckFailed(f"{d.get('path')} has no match for /{d['regex']}/")
    return f"{d.get('path')} matches /{d['regex']}/"


def _screen_contains(d: Mapping[str, Any], ctx: CheckContext) -> str:
    if ctx.computer is None:
        raise ValueError("screen_contains needs a live screen")
    if d.get("text") is not None and not visible(str(d["text"])):
        # A page's text may well hold a zero-width space: finding one checks nothing seen.
        raise ValueError(f"text {d['text']!r} has no visible character: no screen can show it")
    if isinstance(ctx.computer, PageReader):
        # A page knows its text exactly; recognising its pixels could only lose some.
        return _text_matches(d, ctx.computer.page_text(), "page")
    frame = ctx.computer.screenshot()
    if d.get("text") is not None and ctx.grounder is not None:
        if ctx.grounder.locate(frame, str(d["text"])):
            return f"screen shows {d['text']!r}"
        if ctx.read_text is None:
            raise _CheckFailed(f"screen does not show {d['text']!r}")
    if ctx.read_text is None:
        raise ValueError("screen_contains needs a grounder or a text reader")
    return _text_matches(d, ctx.read_text(frame), "screen")


def _text_matches(d: Mapping[str, Any], text: str, where: str) -> str:
    if d.get("text") is not None:
        # Compared as shown: case and spacing aside, and without the characters that draw
        # nothing ("one\u200bword" on a page reads "oneword").
        want = " ".join(drop_format(str(d["text"])).lower().split())
        if want not in " ".join(drop_format(text).lower().split()):
            raise _CheckFailed(f"{where} does not show {d['text']!r}")
        return f"{where} shows {d['text']!r}"
    if not re.search(str(d.get("regex")), text):
        raise _CheckFailed(f"no match for /{d.get('regex')}/ on the {where}")
    return f"{where} matches /{d.get('regex')}/"


def _page(ctx: CheckContext, kind: str) -> PageReader:
    if ctx.computer is None or not isinstance(ctx.computer, PageReader):
        raise ValueError(f"{kind} needs a browser sandbox")
    return ctx.computer


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip().replace(",", ""))
    except ValueError:
        return None


def _dom(d: Mapping[str, Any], ctx: CheckContext) -> str:
    selector, read = str(d.get("selector")), str(d.get("read", "text"))
    values = _page(ctx, "dom").dom_read(selector, read, d.get("attribute"))
    if read == "count":
        got: Any = len(values)
    elif not values:
        raise _CheckFailed(f"no element matches {selector!r}")
    else:
        got = values[0]
    what = f"{selector} {read}" + (f" {d['attribute']}" if d.get("attribute") else "")
    conditions = [k for k in ("equals", "contains", "regex", "at_least", "at_most") if k in d]
    if not conditions and read == "count" and got == 0:
        raise _CheckFailed(f"no element matches {selector!r}")
    for cond in conditions:
        _compare(what, got, cond, d[cond])
    return f"{what} is {json.dumps(got)[:120]}"


def _compare(what: str, got: Any, cond: str, want: Any) -> None:
    """Raise ``_CheckFailed`` unless ``got`` meets ``cond`` (numbers compare as numbers)."""
    shown = json.dumps(got)[:120]
    if cond == "contains":
        if got is None or str(want) not in str(got):
            raise _CheckFailed(f"{what} is {shown}, which does not contain {want!r}")
        return
    if cond == "regex":
        if got is None or not re.search(str(want), str(got)):
            raise _CheckFailed(f"{what} is {shown}, no match for /{want}/")
        return
    n, w = _number(got), _number(want)
    if cond == "equals":
        same = (n == w) if n is not None and w is not None and not isinstance(want, str) else None
        if same is None:
            same = got is not None and str(got).strip() == str(want).strip()
        if not same:
            raise _CheckFailed(f"{what} is {shown}, expected {want!r}")
        return
    if n is None or w is None:
        raise _CheckFailed(f"{what} is {shown}, not a number")
    if (cond == "at_least" and n < w) or (cond == "at_most" and n > w):
        raise _CheckFailed(f"{what} is {shown}, expected {cond.replace('_', ' ')} {want}")


def _js(d: Mapping[str, Any], ctx: CheckContext) -> str:
    expression = str(d.get("expression"))
    page = _page(ctx, "js")
    try:
        value = page.js_eval(expression)
    except ValueError as exc:  # the expression threw: the page says no, with its reason
        raise _CheckFailed(f"the expression threw: {exc}") from None
    shown = json.dumps(value)[:120]
    if not value:
        raise _CheckFailed(f"the expression is {shown} (falsy)")
    return f"the expression is {shown}"


def _url_matches(d: Mapping[str, Any], ctx: CheckContext) -> str:
    url = ctx.url() if ctx.url is not None else None
    if url is None:
        raise ValueError("url_matches needs a browser sandbox")
    if d.get("url") is not None:
        ok = fnmatch.fnmatchcase(url, str(d["url"]))
        pattern = str(d["url"])
    else:
        ok = re.search(str(d.get("regex")), url) is not None
        pattern = f"/{d.get('regex')}/"
    if not ok:
        raise _CheckFailed(f"URL {url} does not match {pattern}")
    return f"URL {url} matches {pattern}"


def _command(d: Mapping[str, Any], ctx: CheckContext) -> str:
    argv = d.get("argv")
    if not isinstance(argv, list) or not argv:
        raise ValueError("command needs a non-empty argv")
    args = [
        str(_path(ctx, a)) if isinstance(a, str) and a.startswith("~/") else str(a) for a in argv
    ]
    env = {**os.environ, "HOME": str(ctx.home), **ctx.env}
    timeout = float(d.get("timeout", 30.0))
    r = subprocess.run(
        args, cwd=ctx.home, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    expected = int(d.get("exit_code", 0))
    if r.returncode != expected:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or [""]
        raise _CheckFailed(f"exit code {r.returncode}, expected {expected}: {tail[0][:200]}")
    if d.get("stdout_contains") is not None and str(d["stdout_contains"]) not in r.stdout:
        raise _CheckFailed(f"stdout does not contain {d['stdout_contains']!r}")
    if d.get("stdout_regex") is not None and not re.search(str(d["stdout_regex"]), r.stdout):
        raise _CheckFailed(f"stdout has no match for /{d['stdout_regex']}/")
    return f"exit code {r.returncode}"


def _json_at(body: Any, path: str) -> Any:
    for part in path.split("."):
        if (
            isinstance(body, list)
            and part.lstrip("-").isdigit()
            and -len(body) <= int(part) < len(body)
        ):
            body = body[int(part)]
        elif isinstance(body, dict) and part in body:
            body = body[part]
        else:
            raise _CheckFailed(f"JSON path {path!r} not found (at {part!r})")
    return body


def _http(d: Mapping[str, Any], ctx: CheckContext) -> str:
    url = str(d.get("url"))
    r = httpx.get(url, timeout=float(d.get("timeout", 10.0)), follow_redirects=True)
    want = int(d.get("status", 200))
    if r.status_code != want:
        raise _CheckFailed(f"GET {url} answered {r.status_code}, expected {want}")
    if d.get("json_path"):
        got = _json_at(r.json(), str(d["json_path"]))
        if got != d.get("value"):
            raise _CheckFailed(f"{d['json_path']} is {got!r}, expected {d.get('value')!r}")
    return f"GET {url} answered {r.status_code}"


def _sqlite(d: Mapping[str, Any], ctx: CheckContext) -> str:
    p = _path(ctx, d.get("database"))
    if not p.exists():
        raise _CheckFailed(f"database {d.get('database')} does not exist")
    # Read-only URI so a check can never change the state it grades.
    with sqlite3.connect(f"{p.as_uri()}?mode=ro", uri=True, timeout=5.0) as conn:
        rows = [list(r) for r in conn.execute(str(d.get("query"))).fetchall()]
    expected = [list(r) for r in d.get("rows") or []]
    if rows != expected:
        raise _CheckFailed(
            f"query returned {json.dumps(rows)[:200]}, expected {json.dumps(expected)[:200]}"
        )
    return f"{len(rows)} row(s) as expected"


def _llm_judge(d: Mapping[str, Any], ctx: CheckContext) -> str:
    if ctx.judge is None:
        raise ValueError("llm_judge needs a model; none is configured")
    if ctx.computer is None:
        raise ValueError("llm_judge needs a live screen")
    import base64
    import io

    buf = io.BytesIO()
    ctx.computer.screenshot().pil().save(buf, "PNG")
    image = base64.b64encode(buf.getvalue()).decode("ascii")
    question = str(d.get("question"))
    reply = ctx.judge.complete(
        ChatRequest(
            model=str(d.get("model") or ctx.judge_model),
            messages=[
                {
                    "role": "system",
                    "content": 'Answer with JSON: {"answer": "yes"|"no", "reason": "..."}',
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": question},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{image}"},
                        },
                    ],
                },
            ],
            response_format={"type": "json_object"},
            temperature=0.0,
            purpose="judge",
        )
    )
    try:
        verdict = json.loads(reply.content or "")
        answer = str(verdict["answer"]).strip().lower()
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"judge reply is not {{answer, reason}} JSON: {exc}") from None
    reason = str(verdict.get("reason", ""))
    if answer != "yes":
        raise _CheckFailed(f"judge said {answer}: {reason}")
    return f"judge said yes: {reason}"


_LEAVES: dict[str, Callable[[Mapping[str, Any], CheckContext], str]] = {
    "file_exists": _file_exists,
    "file_contains": _file_contains,
    "screen_contains": _screen_contains,
    "url_matches": _url_matches,
    "command": _command,
    "http": _http,
    "sqlite": _sqlite,
    "llm_judge": _llm_judge,
    "dom": _dom,
    "js": _js,
}
