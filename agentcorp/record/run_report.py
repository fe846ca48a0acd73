"""The run report: one self-contained HTML page for a whole run of a company.

``load_run(root)`` reads a run folder (``--sessions DIR``): the ledger (tasks, their
dependencies, every attempt with its worker and times), each task's result file and its
recorded session (time per phase, tokens, cost, the last frame). ``render_run_report(run)``
draws it: the task DAG as SVG (laid out here, in layers by longest path, no script), a
timeline of attempts per worker, one row per task (status, mode, actions, time per phase,
tokens, cost, link to its trace), failures first with their last frame and reason.

Every value goes through a Jinja2 template with autoescaping, under a Content-Security-Policy
that loads nothing and runs no script; frames are ``data:`` URIs. Nothing reaches a network.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from agentcorp.errors import AgentcorpError, ConfigError
from agentcorp.record.report import _asset, _csp, _frame_png, _relative_link, _templates
from agentcorp.record.session import Session, open_session
from agentcorp.types import ActionResultStep, ActionStep, ModelCallStep, ObservationStep

__all__ = [
    "Attempt",
    "RunTaskView",
    "RunView",
    "dag_layout",
    "is_run_folder",
    "load_run",
    "overlay_results",
    "render_run_report",
    "write_run_report",
]

_FAILED = {"fail", "error", "budget_exceeded", "aborted", "lost"}
_IMAGE_URIS = ("data:image/png;base64,", "data:image/jpeg;base64,")
PHASES = ("model", "ground", "act", "settle", "capture", "encode")


@dataclass(slots=True)
class Attempt:
    """One attempt of a task on a worker, in seconds since the epoch (``None``: not yet)."""

    task_id: str
    attempt: int
    worker: str
    start: float | None
    end: float | None
    outcome: str


@dataclass(slots=True)
class RunTaskView:
    """What the report shows of one task (``link``: its trace, relative to the report)."""

    id: str
    status: str
    depends_on: tuple[str, ...] = ()
    mode: str = ""
    reason: str = ""
    actions: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    attempts: int = 0
    worker: str = ""
    phases_ms: dict[str, float] = field(default_factory=dict)
    last_frame: str | None = None  # a data: URI
    link: str | None = None

    @property
    def failed(self) -> bool:
        """The task ran and did not pass (pending or running tasks are not failures)."""
        return self.status in _FAILED


@dataclass(slots=True)
class RunView:
    """A run as the report draws it."""

    company: str
    tasks: list[RunTaskView]
    attempts: list[Attempt] = field(default_factory=list)
    title: str = "agentcorp run"


# --- reading a run folder ---------------------------------------------------------------


def is_run_folder(path: str | Path) -> bool:
    """``path`` is a run folder (it has a ledger), not a session."""
    return (Path(path) / ".agentcorp" / "ledger.db").is_file()


def load_run(root: str | Path, *, frames: bool = True) -> RunView:
    """Read the run folder ``root`` (``ConfigError`` when it is not one).

    A session that cannot be read costs its task the phase times and frame, never the report.
    """
    from agentcorp.fleet.ledger import SqliteLedger

    base = Path(root)
    db = base / ".agentcorp" / "ledger.db"
    if not db.is_file():
        raise ConfigError(f"{base}: not a run folder (no .agentcorp/ledger.db)")
    try:
        led = SqliteLedger(db, create=False)
    except (AgentcorpError, OSError, ValueError) as exc:
        raise ConfigError(f"{db}: cannot read the ledger: {exc}") from None
    try:
        rows = led.rows()
        deps = _dependencies(led)
        attempts = [_attempt(a) for a in led.attempts()]
    finally:
        led.close()
    company = rows[0].company if rows else ""
    tasks = []
    for row in rows:
        t = RunTaskView(row.id, _ledger_status(row.state), deps.get(row.id, ()))
        t.reason = row.detail or ""
        t.attempts = row.attempt
        t.cost_usd = float(row.cost or 0.0)
        t.worker = row.worker or ""
        session = _apply_result(t, base / ".agentcorp" / "results" / f"{row.id}.json")
        _apply_session(t, base, session or row.session_path, frames=frames)
        tasks.append(t)
    return RunView(company, tasks, attempts, f"agentcorp run: {company}")


def overlay_results(run: RunView, results: Sequence[Mapping[str, Any]]) -> None:
    """Put a run's own ``TaskRun.to_json()`` rows over what the folder said (by task id)."""
    by_id = {t.id: t for t in run.tasks}
    for r in results:
        t = by_id.get(str(r.get("id")))
        if t is None:
            continue
        t.status = str(r.get("status") or t.status)
        t.mode = str(r.get("mode") or t.mode)
        t.reason = str(r.get("reason") or t.reason)


def _dependencies(led: Any) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for task_id, spec in led._db.execute("SELECT id, spec FROM tasks"):
        try:
            d = json.loads(spec).get("depends_on") or []
        except (ValueError, AttributeError):
            d = []
        out[str(task_id)] = tuple(str(x) for x in d if isinstance(x, str))
    return out


def _attempt(a: Mapping[str, Any]) -> Attempt:
    start = a.get("started") or a.get("leased")
    return Attempt(
        str(a["task_id"]),
        int(a.get("attempt") or 0),
        str(a.get("worker") or "?"),
        float(start) if start is not None else None,
        float(a["ended"]) if a.get("ended") is not None else None,
        str(a.get("outcome") or "running"),
    )


def _ledger_status(state: str) -> str:
    return {"passed": "pass", "failed": "fail"}.get(state, state)


def _apply_result(t: RunTaskView, path: Path) -> str | None:
    """Fill ``t`` from the episode's result file; the session folder it names, if any."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    t.status = str(data.get("status") or t.status)
    t.mode = str(data.get("mode") or "")
    t.reason = str(data.get("reason") or t.reason)
    for name in ("actions", "tokens", "attempts"):
        if isinstance(data.get(name), int):
            setattr(t, name, int(data[name]))
    for name in ("cost_usd", "elapsed_s"):
        if isinstance(data.get(name), int | float):
            setattr(t, name, float(data[name]))
    session = data.get("session")
    return str(session) if isinstance(session, str) else None


def _apply_session(t: RunTaskView, root: Path, session: str | None, *, frames: bool) -> None:
    if not session:
        return
    folder = Path(session)
    folder = folder if folder.is_absolute() else root / folder
    try:
        s = open_session(folder)
    except AgentcorpError:
        return
    _session_totals(t, s)
    trace = folder.with_suffix(".html")
    if trace.is_file():
        try:
            t.link = trace.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            t.link = None
    if frames and t.failed:
        t.last_frame = _last_frame(s)


def _session_totals(t: RunTaskView, s: Session) -> None:
    """Time per phase summed over the session's actions; tokens and cost when not known."""
    phases: dict[str, float] = {}
    tokens, cost, actions = 0, 0.0, 0
    for ev in s.events:
        step = ev.step
        if isinstance(step, ActionResultStep):
            for k, v in step.phases.items():
                phases[k] = phases.get(k, 0.0) + float(v)
        elif isinstance(step, ModelCallStep):
            tokens += step.usage.prompt_tokens + step.usage.completion_tokens
            cost += step.usage.cost_usd
        elif isinstance(step, ActionStep):
            actions += 1
    t.phases_ms = {k: round(v, 1) for k, v in phases.items()}
    t.tokens = t.tokens or tokens
    t.cost_usd = t.cost_usd or cost
    t.actions = t.actions or actions


def _last_frame(s: Session) -> str | None:
    for ev in reversed(s.events):
        if isinstance(ev.step, ObservationStep):
            try:
                got = _frame_png(s, ev)
            except AgentcorpError:
                return None
            if got is None:
                return None
            media, data = got
            return f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"
    return None


# --- layout -----------------------------------------------------------------------------

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 170, 40, 60, 18, 10


@dataclass(frozen=True, slots=True)
class Node:
    """A task's box in the DAG drawing."""

    id: str
    status: str
    x: int
    y: int
    label: str


@dataclass(frozen=True, slots=True)
class Edge:
    """A dependency arrow, from the dependency's right edge to the dependent's left edge."""

    x1: int
    y1: int
    x2: int
    y2: int


def dag_layout(
    tasks: Sequence[tuple[str, str, Sequence[str]]],
) -> tuple[list[Node], list[Edge], int, int]:
    """Boxes and arrows for ``(id, status, depends_on)`` tasks; the drawing's width, height.

    A task's column is its longest chain of dependencies (unknown ones ignored, cycles cut);
    rows keep the tasks' order within a column.
    """
    known = {tid: [d for d in deps if d != tid] for tid, _, deps in tasks}
    depth: dict[str, int] = {}

    def level(tid: str, seen: frozenset[str]) -> int:
        if tid in depth:
            return depth[tid]
        parents = [d for d in known.get(tid, []) if d in known and d not in seen]
        depth[tid] = 1 + max((level(d, seen | {tid}) for d in parents), default=-1)
        return depth[tid]

    rows: dict[int, int] = {}
    nodes: dict[str, Node] = {}
    for tid, status, _ in tasks:
        col = level(tid, frozenset())
        row = rows.get(col, 0)
        rows[col] = row + 1
        x, y = PAD + col * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y)
        label = tid if len(tid) <= 22 else tid[:21] + "…"
        nodes[tid] = Node(tid, status, x, y, label)
    edges = [
        Edge(p.x + NODE_W, p.y + NODE_H // 2, n.x, n.y + NODE_H // 2)
        for n in nodes.values()
        for d in known[n.id]
        if (p := nodes.get(d)) is not None
    ]
    width = PAD * 2 + max((n.x for n in nodes.values()), default=0) + NODE_W
    height = PAD * 2 + max((n.y for n in nodes.values()), default=0) + NODE_H
    return list(nodes.values()), edges, width, height


@dataclass(frozen=True, slots=True)
class Bar:
    """An attempt on the timeline."""

    task_id: str
    outcome: str
    x: float
    y: int
    w: float
    title: str


def timeline_layout(
    attempts: Sequence[Attempt], width: int = 900, lane_h: int = 26
) -> tuple[list[tuple[str, int]], list[Bar], int, float]:
    """Worker lanes (name, y), attempt bars, the drawing's height and its span in seconds."""
    timed = [a for a in attempts if a.start is not None]
    if not timed:
        return [], [], 0, 0.0
    t0 = min(a.start for a in timed if a.start is not None)
    t1 = max(max(a.end or a.start or t0, a.start or t0) for a in timed)
    span = max(t1 - t0, 1e-3)
    label_w = 140
    scale = (width - label_w - PAD) / span
    lanes: dict[str, int] = {}
    for a in timed:
        lanes.setdefault(a.worker, PAD + len(lanes) * lane_h)
    bars = []
    for a in timed:
        assert a.start is not None
        end = a.end if a.end is not None else t1
        secs = max(end - a.start, 0.0)
        bars.append(
            Bar(
                a.task_id,
                a.outcome,
                label_w + (a.start - t0) * scale,
                lanes[a.worker],
                max(secs * scale, 2.0),
                f"{a.task_id} attempt {a.attempt} on {a.worker}: {a.outcome}, {secs:.1f} s",
            )
        )
    return list(lanes.items()), bars, PAD * 2 + len(lanes) * lane_h, span


# --- rendering --------------------------------------------------------------------------


def render_run_report(run: RunView) -> str:
    """The run report of ``run`` as one self-contained HTML document (every value escaped)."""
    css = _asset("run_report.css")
    tasks = [_safe_link(t) for t in run.tasks]
    nodes, edges, w, h = dag_layout([(t.id, t.status, t.depends_on) for t in tasks])
    lanes, bars, th, span = timeline_layout(run.attempts)
    failed = [t for t in tasks if t.failed]
    ordered = failed + [t for t in tasks if not t.failed]
    totals = {
        "tasks": len(tasks),
        "passed": sum(t.status == "pass" for t in tasks),
        "failed": len(failed),
        "actions": sum(t.actions for t in tasks),
        "tokens": sum(t.tokens for t in tasks),
        "cost": sum(t.cost_usd for t in tasks),
    }
    return (
        _templates()
        .get_template("run_report.html")
        .render(
            csp=_csp(script=None, style=css),
            css=Markup(css),  # our own file; CSS text must not be entity-escaped
            title=run.title,
            company=run.company,
            totals=totals,
            nodes=nodes,
            edges=edges,
            dag_w=w,
            dag_h=h,
            node_w=NODE_W,
            node_h=NODE_H,
            lanes=lanes,
            bars=bars,
            timeline_h=th,
            span=span,
            failed=failed,
            tasks=ordered,
            phases=[p for p in PHASES if any(p in t.phases_ms for t in tasks)],
        )
    )


def _safe_link(t: RunTaskView) -> RunTaskView:
    if t.link is not None and not _relative_link(t.link):
        t.link = None
    if t.last_frame is not None and not t.last_frame.startswith(_IMAGE_URIS):
        t.last_frame = None
    return t


def write_run_report(root: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of the run folder ``root`` (default ``ROOT/report.html``)."""
    base = Path(root)
    path = Path(out) if out is not None else base / "report.html"
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give the HTML file to write")
    html = render_run_report(load_run(base))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path
