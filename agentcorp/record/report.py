"""The trace viewer: one self-contained HTML file per session, and a GIF/WebP animation.

``write_report(session, out)`` writes a single HTML file with no network references: frames
are ``data:`` URIs (each distinct frame once), CSS and JS are inline. Every page is rendered
from a Jinja2 template with autoescaping (so every value is escaped by construction, whatever
a manifest or a model put in it) under a Content-Security-Policy that runs only the page's own
script, by hash: no ``unsafe-inline`` for script. ``render_run_index(rows)`` renders a run's
index page the same way. It shows a timeline of
the session's actions; for each, the frame the actor saw with the action drawn on it (click
point, drag path, scroll arrow, typed text or keys), the model's reasoning and tool call,
timings, tokens and cost; the outcome and check results; and ←/→ (Home/End) navigation.

``write_animation(session, out)`` writes the same sequence as an animated GIF or WebP (by the
file's suffix) with Pillow.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from agentcorp._io import UnsafeRead, check_image_size
from agentcorp.errors import ConfigError, RecordingError
from agentcorp.record.session import Event, Session
from agentcorp.types import (
    Action,
    ActionResultStep,
    ActionStep,
    CheckStep,
    ErrorStep,
    ModelCallStep,
    ObservationStep,
    PolicyStep,
)

__all__ = [
    "IndexRow",
    "TraceStep",
    "render_html",
    "render_run_index",
    "trace_steps",
    "write_animation",
    "write_report",
]


@dataclass(slots=True)
class TraceStep:
    """One action of the session with everything shown next to it."""

    index: int
    step: int
    action: Action
    source: str
    frame: Event | None
    reasoning: str | None = None
    tool_call: str | None = None
    model: str | None = None
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    ok: bool | None = None
    error: str | None = None
    duration_ms: float = 0.0
    settle_ms: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    policy: str | None = None
    notes: list[str] = field(default_factory=list)


def trace_steps(session: Session) -> list[TraceStep]:
    """The session's actions, each joined with its frame, model call, policy and result."""
    out: list[TraceStep] = []
    frame: Event | None = None
    call: ModelCallStep | None = None
    notes: list[str] = []
    current: TraceStep | None = None
    last_call: ModelCallStep | None = None  # the call whose cost is already shown
    for ev in session.events:
        s = ev.step
        if isinstance(s, ObservationStep):
            frame = ev
        elif isinstance(s, ModelCallStep):
            call = s
        elif isinstance(s, ActionStep):
            current = TraceStep(len(out), s.step, s.action, s.source, frame, s.reasoning)
            current.notes = notes
            notes = []
            if call is not None and s.source == "model":
                _join_call(current, call, s.tool_call_id, first=call is not last_call)
                last_call = call
            out.append(current)
        elif isinstance(s, PolicyStep) and current is not None:
            current.policy = s.decision + (f" ({s.rule})" if s.rule else "")
        elif isinstance(s, ActionResultStep) and current is not None:
            current.ok, current.error = s.ok, s.error
            current.duration_ms, current.settle_ms = s.duration_ms, s.settle_ms
            current.phases = dict(s.phases)
            current.notes.extend(s.notes)  # what the page did meanwhile (a dialog, a new tab)
        elif isinstance(s, ErrorStep):
            (current.notes if current is not None else notes).append(
                f"error {s.error_type}: {s.message}"
            )
    if frame is not None and (not out or out[-1].frame is not frame):
        # The screen after the last action, so the final state is visible too.
        final = TraceStep(len(out), frame.step.step, Action("wait"), "final", frame)
        final.notes = ["final screen", *notes]
        out.append(final)
    return out


def _join_call(t: TraceStep, call: ModelCallStep, call_id: str | None, *, first: bool) -> None:
    """Show the model call an action came from; one reply's cost only on its first action."""
    t.model = call.model
    if first:
        t.latency_ms = call.latency_ms
        t.prompt_tokens = call.usage.prompt_tokens
        t.completion_tokens = call.usage.completion_tokens
        t.cost_usd = call.usage.cost_usd
    calls = [c for c in call.response.get("tool_calls") or [] if isinstance(c, dict)]
    # Several calls per reply: the action names its call; older recordings had one call.
    mine = next((c for c in calls if call_id is not None and c.get("id") == call_id), None)
    c = mine or (calls[0] if calls and call_id is None else None)
    if c is not None:
        name = c.get("name") or (c.get("function") or {}).get("name")
        args = c.get("arguments") or (c.get("function") or {}).get("arguments")
        t.tool_call = f"{name}({args})"
        if len(calls) > 1:
            t.notes.append(f"call {calls.index(c) + 1} of {len(calls)} in one model reply")
    if t.reasoning is None and isinstance(call.response.get("content"), str):
        t.reasoning = call.response["content"]


def _frame_png(session: Session, ev: Event) -> tuple[str, bytes] | None:
    """(media type, bytes) to show for an observation: the model image, else the frame."""
    image = session.observation_image(ev)
    if image:
        try:
            check_image_size(image, where=f"{session.folder}: image of step {ev.step.step}")
        except UnsafeRead as exc:
            raise RecordingError(str(exc)) from None
        media = "image/png" if image.startswith(b"\x89PNG") else "image/jpeg"
        return media, image
    frame = session.observation_frame(ev)
    if frame is None:
        return None
    buf = io.BytesIO()
    frame.pil().save(buf, format="PNG", compress_level=6)
    return "image/png", buf.getvalue()


def _action_json(a: Action) -> dict[str, Any]:
    return {
        "kind": a.kind,
        "x": a.x,
        "y": a.y,
        "path": [list(p) for p in a.path],
        "dx": a.dx,
        "dy": a.dy,
        "text": a.text,
        "keys": a.keys,
        "url": a.url,
        "target": a.target,
        "summary": a.summary,
        "intent": a.intent,
        "region": list(a.region) if a.region else None,
    }


def _data(session: Session) -> dict[str, Any]:
    steps = trace_steps(session)
    frames: dict[str, str] = {}
    out_steps: list[dict[str, Any]] = []
    size = [1280, 800]
    for t in steps:
        key = None
        if t.frame is not None:
            obs = t.frame.step
            assert isinstance(obs, ObservationStep)
            size = list(obs.size)
            key = t.frame.refs.get("image") or t.frame.refs.get("frame")
            if key and key not in frames:
                try:
                    got = _frame_png(session, t.frame)
                except RecordingError as exc:
                    # An interrupted or damaged session still gets a trace, minus this frame.
                    t.notes.append(f"frame not shown: {exc}")
                    got = None
                if got is None:
                    key = None
                else:
                    media, data = got
                    frames[key] = f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"
        out_steps.append(
            {
                "i": t.index,
                "step": t.step,
                "source": t.source,
                "frame": key,
                "size": size,
                "action": _action_json(t.action),
                "reasoning": t.reasoning,
                "tool": t.tool_call,
                "model": t.model,
                "latency_ms": round(t.latency_ms, 1),
                "prompt_tokens": t.prompt_tokens,
                "completion_tokens": t.completion_tokens,
                "cost_usd": t.cost_usd,
                "ok": t.ok,
                "error": t.error,
                "duration_ms": round(t.duration_ms, 1),
                "settle_ms": round(t.settle_ms, 1),
                "phases": {k: round(v, 1) for k, v in t.phases.items()},
                "policy": t.policy,
                "notes": t.notes,
            }
        )
    checks = session.checks or [
        {"name": e.step.name, "status": e.step.status, "detail": e.step.detail}
        for e in session.events
        if isinstance(e.step, CheckStep)
    ]
    m = session.manifest
    return {
        "session": session.session_id,
        "task": session.task_id,
        "complete": session.complete,
        "reason": session.reason,
        "outcome": session.outcome,
        "checks": checks,
        "models": m.get("models", {}),
        "started": m.get("started_at"),
        "ended": m.get("ended_at"),
        "steps": out_steps,
        "frames": frames,
    }


_ASSETS = Path(__file__).parent / "assets"


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


@functools.cache
def _templates() -> jinja2.Environment:
    # autoescape=True for every template: a value is markup only if it is Markup already.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_ASSETS),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _csp(*, script: str | None, style: str) -> str:
    """A policy that loads nothing from anywhere and runs only ``script``, by its hash."""
    scripts = _sha256(script) if script is not None else "'none'"
    return (
        "default-src 'none'; img-src data:; "
        f"style-src {_sha256(style)}; "
        f"script-src {scripts}; "
        "base-uri 'none'; form-action 'none'"
    )


def _safe_json(data: Any) -> str:
    # Inside <script>, "</script>" or "<!--" in the data would change how HTML parses it;
    # JSON's \u escapes keep every "<", ">" and "&" out of the markup entirely.
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(session: Session) -> str:
    """The trace of ``session`` as one self-contained HTML document."""
    data = _data(session)
    outcome = data["outcome"] if isinstance(data["outcome"], dict) else {}
    status = str(outcome.get("status", "incomplete" if not data["complete"] else "?"))
    reason = str(outcome.get("reason") or data["reason"] or "")
    css, script = _asset("trace.css"), _asset("trace.js")
    return (
        _templates()
        .get_template("trace.html")
        .render(
            csp=_csp(script=script, style=css),
            title=f"agentcorp trace: {data['task'] or data['session']}",
            css=Markup(css),  # our own file, and CSS text must not be entity-escaped
            session=str(data["session"]),
            status=status,
            reason=reason,
            n_steps=len(data["steps"]),
            started=str(data["started"] or ""),
            data=Markup(_safe_json(data)),  # JSON with every <, > and & \u-escaped
            script=Markup(script),
        )
    )


@dataclass(frozen=True, slots=True)
class IndexRow:
    """One task of a run, as the index page lists it (``link``: its trace, relative)."""

    task: str
    status: str
    mode: str
    detail: str
    link: str | None = None


def render_run_index(rows: Iterable[IndexRow]) -> str:
    """A run's index page: one row per task, linking its trace; every value escaped."""
    css = _asset("run_index.css")
    safe = [
        r if _relative_link(r.link) else IndexRow(r.task, r.status, r.mode, r.detail) for r in rows
    ]
    return (
        _templates()
        .get_template("run_index.html")
        .render(csp=_csp(script=None, style=css), css=Markup(css), rows=safe)
    )


def _relative_link(link: str | None) -> bool:
    # Only a relative path to a file beside the index: never a scheme (javascript:, data:).
    return bool(link) and ":" not in str(link).split("/", 1)[0] and not str(link).startswith("//")


def write_report(session: Session, out: str | Path) -> Path:
    """Write the HTML trace of ``session`` to ``out`` and return its path."""
    path = Path(out)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give the HTML file to write")
    page = render_html(session)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the trace: {exc.strerror or exc}") from None
    return path


def _draw_action(img: Any, a: Action, scale: float) -> None:
    from PIL import ImageDraw

    d = ImageDraw.Draw(img)
    red = (255, 45, 85)
    if a.kind == "zoom" and a.region is not None:
        zx, zy, zw, zh = (v * scale for v in a.region)
        d.rectangle((zx, zy, zx + zw, zy + zh), outline=red, width=3)
    elif a.x is not None and a.y is not None:
        x, y = a.x * scale, a.y * scale
        d.ellipse((x - 10, y - 10, x + 10, y + 10), outline=red, width=3)
        d.line((x - 16, y, x + 16, y), fill=red, width=2)
        d.line((x, y - 16, x, y + 16), fill=red, width=2)
    if a.kind == "drag" and a.path:
        d.line([(px * scale, py * scale) for px, py in a.path], fill=red, width=4)
    text = {"type": f"type: {a.text}", "key": f"key: {a.keys}"}.get(a.kind)
    if text:
        d.rectangle(
            (4, img.height - 28, min(img.width - 4, 14 + 7 * len(text)), img.height - 4),
            fill=(0, 0, 0),
        )
        d.text((10, img.height - 24), text, fill=(255, 255, 255))


def write_animation(
    session: Session, out: str | Path, *, width: int = 640, ms_per_step: int = 800
) -> Path:
    """Write the session's steps as an animated GIF (``.gif``) or WebP (``.webp``)."""
    from PIL import Image

    path = Path(out)
    fmt = {".gif": "GIF", ".webp": "WEBP"}.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: animation must end in .gif or .webp")
    images: list[Image.Image] = []
    for t in trace_steps(session):
        if t.frame is None:
            continue
        try:
            frame = session.observation_frame(t.frame)
            raw = None if frame is not None else session.observation_image(t.frame)
        except RecordingError:
            continue  # a frame an interrupted session never finished writing
        if frame is not None:
            img = frame.pil().convert("RGB")
        elif raw:
            try:
                check_image_size(raw, where=f"{session.folder}: frame of step {t.step}")
            except UnsafeRead:
                continue  # shown as missing, like an unreadable frame
            with Image.open(io.BytesIO(raw)) as src:
                img = src.convert("RGB")
        else:
            continue
        obs = t.frame.step
        assert isinstance(obs, ObservationStep)
        scale = width / max(1, obs.size[0])
        img = img.resize((width, max(1, round(img.height * width / img.width))))
        _draw_action(img, t.action, scale)
        images.append(img)
    if not images:
        raise ConfigError(f"{session.folder}: no frames to animate")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _save_animation(images, path, fmt, ms_per_step)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the animation: {exc.strerror or exc}") from None
    return path


def _save_animation(images: list[Any], path: Path, fmt: str, ms_per_step: int) -> None:
    first, rest = images[0], images[1:]
    if fmt == "GIF":
        frames = [im.quantize(colors=128) for im in images]
        frames[0].save(
            path,
            save_all=True,
            append_images=frames[1:],
            duration=ms_per_step,
            loop=0,
            optimize=False,
        )
    else:
        first.save(
            path,
            format="WEBP",
            save_all=True,
            append_images=rest,
            duration=ms_per_step,
            loop=0,
            quality=70,
        )
