"""Reading a recorded session: ``open_session(folder) -> Session``.

The reader never crashes on a damaged folder. An interrupted recording (no manifest, a last
line cut short, an events file shorter or different than the manifest says) opens with
``complete = False`` and a one-line ``reason`` naming the file and line; only what cannot be
trusted at all (an unknown format version, a corrupt manifest, a garbled line in the middle of
events.jsonl, a blob whose bytes do not match its name) raises ``RecordingError``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from agentcorp._io import UnsafeRead, check_image_size, read_bounded
from agentcorp.errors import RecordingError
from agentcorp.record.canonical import internalize_images
from agentcorp.record.format import (
    BLOBS,
    DELTA_KEY,
    EVENTS,
    FORMAT_VERSION,
    MANIFEST,
    MIGRATIONS,
    Migration,
    manifest_version,
    migrate,
)
from agentcorp.sandbox.base import Frame
from agentcorp.types import ModelCallStep, ObservationStep, PlanStep, Step, step_from_dict

# Caps on what a session folder may make us read: far above anything a real run writes.
MAX_MANIFEST_BYTES = 16 << 20
MAX_EVENTS_BYTES = 512 << 20
MAX_BLOB_BYTES = 64 << 20

__all__ = ["Event", "Session", "open_session"]


@dataclass(frozen=True, slots=True)
class Event:
    """One line of events.jsonl: its 1-based line number, the step record, its blob refs."""

    line: int
    step: Step
    refs: dict[str, str] = field(default_factory=dict)


class Session:
    """A recorded session folder, opened read-only. Use ``open_session`` to get one."""

    def __init__(
        self,
        folder: Path,
        manifest: dict[str, Any] | None,
        events: list[Event],
        complete: bool,
        reason: str | None,
        version: int,
    ) -> None:
        self.folder = folder
        self.manifest: dict[str, Any] = manifest or {}
        self.events: list[Event] = events
        self.complete = complete
        self.reason = reason
        self.version = version
        # Lines left out by ``actor_part`` (0 for a whole session).
        self.skipped_lines = 0
        self._frames: dict[str, Frame] = {}

    # --- manifest accessors -------------------------------------------------------------
    @property
    def session_id(self) -> str:
        """The session id from the manifest, or the folder name when it is missing."""
        return str(self.manifest.get("session_id") or self.folder.name)

    @property
    def task_id(self) -> str:
        """The task id (empty when the manifest is missing)."""
        return str(self.manifest.get("task_id", ""))

    @property
    def spec_hash(self) -> str:
        """The hash of the canonical task spec (empty when the manifest is missing)."""
        return str(self.manifest.get("spec_hash", ""))

    @property
    def outcome(self) -> dict[str, Any]:
        """``{"status": ..., "reason": ...}`` as recorded (empty when incomplete)."""
        out = self.manifest.get("outcome")
        return out if isinstance(out, dict) else {}

    @property
    def checks(self) -> list[dict[str, Any]]:
        """Each check's recorded result (``name``, ``status``, ``detail``)."""
        out = self.manifest.get("checks")
        return [c for c in out if isinstance(c, dict)] if isinstance(out, list) else []

    # --- steps and blobs ----------------------------------------------------------------
    def steps(self) -> list[Step]:
        """Every step record, in order."""
        return [e.step for e in self.events]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps())

    def require_complete(self) -> None:
        """Raise ``RecordingError`` (exit 2) unless the session finished writing."""
        if not self.complete:
            raise RecordingError(f"{self.folder}: incomplete session: {self.reason}")

    def blob_path(self, name: str) -> Path:
        """Where blob ``name`` lives (it may not exist)."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise RecordingError(f"{self.folder}: invalid blob name {name!r}")
        return self.folder / BLOBS / name

    def blob(self, sha: str) -> bytes:
        """The bytes of blob ``sha``; ``RecordingError`` if missing or not matching its hash."""
        path = self.blob_path(sha)
        try:
            data = read_bounded(path, MAX_BLOB_BYTES, root=self.folder / BLOBS, what="blob")
        except FileNotFoundError as exc:
            raise RecordingError(f"{path}: blob missing ({exc.strerror})") from exc
        except UnsafeRead as exc:
            raise RecordingError(str(exc)) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise RecordingError(f"{path}: blob tampered: content hash is {actual[:12]}…")
        return data

    def frame(self, pixel_sha: str, _depth: int = 0) -> Frame:
        """The lossless frame whose pixels hash to ``pixel_sha`` (``Frame.sha256``)."""
        from PIL import Image, UnidentifiedImageError

        cached = self._frames.get(pixel_sha)
        if cached is not None:
            return cached
        path = self.blob_path(f"{pixel_sha}.png")
        try:
            raw = read_bounded(path, MAX_BLOB_BYTES, root=self.folder / BLOBS, what="frame")
            check_image_size(raw, where=str(path))
        except FileNotFoundError as exc:
            raise RecordingError(f"{path}: frame missing ({exc.strerror})") from exc
        except UnsafeRead as exc:
            detail = str(exc).removeprefix(f"{path}: ")
            raise RecordingError(f"{path}: frame unreadable: {detail}") from None
        try:
            with Image.open(io.BytesIO(raw)) as img:
                delta = img.info.get(DELTA_KEY)
                piece = img.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise RecordingError(f"{path}: frame unreadable: {exc}") from exc
        if delta is not None:
            parts = str(delta).split()
            if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit() or (_depth > 64):
                raise RecordingError(f"{path}: frame tampered: bad {DELTA_KEY} {delta!r}")
            base = self.frame(parts[0], _depth + 1).pil().copy()
            base.paste(piece, (int(parts[1]), int(parts[2])))
            piece = base
        frame = Frame.from_pil(piece)
        if frame.sha256 != pixel_sha:
            raise RecordingError(f"{path}: frame tampered: pixel hash is {frame.sha256[:12]}…")
        if len(self._frames) >= 8:  # replays read frames in order: a few recent ones suffice
            self._frames.pop(next(iter(self._frames)))
        self._frames[pixel_sha] = frame
        return frame

    def observation_frame(self, event: Event) -> Frame | None:
        """The stored (redacted) lossless frame of an observation event, if one was kept."""
        sha = event.refs.get("frame")
        return self.frame(sha) if sha else None

    def observation_image(self, event: Event) -> bytes | None:
        """The exact encoded image the model was sent for this observation, if recorded."""
        sha = event.refs.get("image")
        return self.blob(sha) if sha else None

    def request_body(self, event: Event, *, inline_images: bool = False) -> dict[str, Any]:
        """The recorded (redacted) request body of a model-call event.

        Images stay ``blob:sha256:`` references unless ``inline_images`` is true.
        """
        step = event.step
        if not isinstance(step, ModelCallStep):
            raise RecordingError(f"{self.folder / EVENTS}:{event.line}: not a model call")
        sha = event.refs.get("request")
        if not sha:
            return step.request
        try:
            body = json.loads(self.blob(sha))
        except ValueError as exc:
            raise RecordingError(f"{self.blob_path(sha)}: request body is not JSON") from exc
        if not isinstance(body, dict):
            raise RecordingError(f"{self.blob_path(sha)}: request body is not an object")
        return internalize_images(body, self.blob) if inline_images else body

    @cached_property
    def observations(self) -> list[Event]:
        """The observation events, in order."""
        return [e for e in self.events if isinstance(e.step, ObservationStep)]

    def actor_part(self) -> Session:
        """The events of the last actor episode: everything after the last planner event.

        A planned run records the planner's calls (``purpose != "act"``) and ``PlanStep``s
        before each episode; the actor loop alone replays only the last episode. Sessions
        without planner events are returned as they are.
        """
        last = 0
        for e in self.events:
            st = e.step
            if isinstance(st, PlanStep) or (isinstance(st, ModelCallStep) and st.purpose != "act"):
                last = e.line
        if not last:
            return self
        part = Session(
            self.folder,
            self.manifest,
            [e for e in self.events if e.line > last],
            self.complete,
            self.reason,
            self.version,
        )
        part.skipped_lines = last
        return part

    def verify(self, *, frames: bool = True) -> None:
        """Check every referenced blob against its hash; raises ``RecordingError`` on the first.

        ``frames=False`` skips decoding lossless frames (they are checked when first shown).
        """
        for event in self.events:
            for key, sha in event.refs.items():
                if key == "frame":
                    if frames:
                        self.frame(sha)
                elif key in ("image", "request"):
                    self.blob(sha)


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    try:
        text = read_bounded(path, MAX_MANIFEST_BYTES, root=folder, what="manifest").decode()
    except FileNotFoundError:
        return None
    except UnsafeRead as exc:
        raise RecordingError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise RecordingError(f"{path}: unreadable: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordingError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    except RecursionError:
        raise RecordingError(f"{path}: nested too deeply") from None
    if not isinstance(data, dict):
        raise RecordingError(f"{path}: must hold a JSON object, got {type(data).__name__}")
    return data


def _check_version(path: Path, version: Any) -> int:
    if isinstance(version, bool) or not isinstance(version, int):
        raise RecordingError(f"{path}: format_version must be an integer, got {version!r}")
    oldest = min([FORMAT_VERSION, *MIGRATIONS])
    if not oldest <= version <= FORMAT_VERSION:
        hint = (
            "upgrade agentcorp to read newer sessions"
            if version > FORMAT_VERSION
            else ("no migration exists for it")
        )
        raise RecordingError(
            f"{path}: format version {version} is not supported "
            f"(this agentcorp reads versions {oldest}–{FORMAT_VERSION}; {hint})"
        )
    return version


def _parse_events(
    path: Path, data: bytes, migrations: list[Migration]
) -> tuple[list[Event], str | None]:
    """Events from the bytes of events.jsonl, and why it is incomplete (``None`` when whole)."""
    events: list[Event] = []
    reason: str | None = None
    lines = data.split(b"\n")
    last = len(lines) - 1
    for i, raw in enumerate(lines):
        lineno = i + 1
        if i == last:
            if raw:
                # Writers end every line with "\n": a final fragment is a cut-short write.
                reason = f"{path}:{lineno}: last line cut short ({len(raw)} bytes, no newline)"
            break
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise RecordingError(f"{path}:{lineno}: not a JSON line: {exc}") from None
        if not isinstance(obj, dict):
            raise RecordingError(f"{path}:{lineno}: event must be a JSON object")
        for m in migrations:
            obj = m.event(obj)
        refs = obj.pop("_ref", None) or {}
        if not isinstance(refs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in refs.items()
        ):
            raise RecordingError(f"{path}:{lineno}: _ref must map names to blob hashes")
        try:
            step = step_from_dict(obj)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise RecordingError(f"{path}:{lineno}: {exc}") from None
        events.append(Event(lineno, step, refs))
    return events, reason


def open_session(folder: str | os.PathLike[str]) -> Session:
    """Open a session folder for reading.

    Raises ``RecordingError`` for a missing folder, a corrupt manifest, an unknown format
    version or a garbled event line. An interrupted session opens with ``complete=False``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise RecordingError(f"{root}: no such session folder")
    manifest = _read_manifest(root)
    reason: str | None = None
    version = FORMAT_VERSION
    if manifest is None:
        reason = f"{root / MANIFEST}: missing: the recording was interrupted before it finished"
    else:
        version = _check_version(root / MANIFEST, manifest_version(manifest))
    migrations = migrate(version)
    for m in migrations:
        manifest = m.manifest(manifest or {})

    events_path = root / EVENTS
    try:
        data = read_bounded(events_path, MAX_EVENTS_BYTES, root=root, what="event log")
    except FileNotFoundError:
        data = b""
        reason = reason or f"{events_path}: missing"
    except UnsafeRead as exc:
        raise RecordingError(str(exc)) from None
    events, cut = _parse_events(events_path, data, migrations)
    reason = reason or cut

    if manifest is not None and reason is None:
        reason = _check_events_summary(events_path, manifest, data, len(events))
    return Session(root, manifest, events, reason is None, reason, version)


def _check_events_summary(
    path: Path, manifest: dict[str, Any], data: bytes, lines: int
) -> str | None:
    """Compare events.jsonl with what the manifest says was written (catches later damage)."""
    summary = manifest.get("events")
    if not isinstance(summary, dict):
        return None
    want_bytes, want_lines = summary.get("bytes"), summary.get("lines")
    if isinstance(want_bytes, int) and want_bytes != len(data):
        return f"{path}:{lines + 1}: {len(data)} bytes, manifest says {want_bytes} (truncated)"
    if isinstance(want_lines, int) and want_lines != lines:
        return f"{path}:{lines}: {lines} lines, manifest says {want_lines}"
    want_sha = summary.get("sha256")
    if isinstance(want_sha, str) and hashlib.sha256(data).hexdigest() != want_sha:
        return f"{path}: content differs from the sha256 in the manifest"
    return None
