"""Writing a session: ``SessionRecorder(folder, ...)``, ``.write(step)``, ``.finish(...)``.

Cheap on the loop's thread: an event line is redacted, dumped and flushed at once (so a killed
process loses at most the line being written); frame PNG encoding and blob writes happen on one
background thread, each blob written to a temporary name and renamed, so a blob that exists is
whole. ``finish`` drains that thread and then writes ``manifest.json`` atomically: a session
without a manifest is, visibly, an interrupted one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import struct
import threading
import time
import uuid
import weakref
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentcorp._io import UnsafeRead, read_bounded
from agentcorp.errors import RecordingError
from agentcorp.record.canonical import canonical_json, externalize_images
from agentcorp.record.format import BLOBS, DELTA_KEY, EVENTS, FORMAT_VERSION, MANIFEST
from agentcorp.record.redact import Redactor
from agentcorp.sandbox.base import Frame
from agentcorp.types import (
    ActionResultStep,
    ActionStep,
    Box,
    CheckStep,
    ModelCallStep,
    ObservationStep,
    Step,
    step_to_dict,
)

__all__ = ["SessionRecorder", "finish_open_sessions", "write_atomic"]

_STOP = object()
# A whole frame at least every this many stored frames, so reading one never chains far.
_MAX_CHAIN = 16
# Margin around a field a secret was typed into, so the caret and field edges go too.
_SECRET_MARGIN = 6


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either nothing or all of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _agentcorp_version() -> str:
    from agentcorp import __version__

    return __version__


class SessionRecorder:
    """Records one task attempt into ``folder`` (created; must be empty or absent).

    ``secrets`` are literal values to redact everywhere (text, request bodies, and the screen
    region of any field a secret was typed into). ``sandbox_info``, ``models``, ``seeds``,
    ``budgets`` and ``extra`` go into the manifest as given (after redaction); ``task_spec`` is
    the canonical task spec dict, kept so replays can rebuild the task without the YAML.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        task_id: str,
        spec_hash: str,
        sandbox_info: Mapping[str, Any],
        models: Mapping[str, Any],
        secrets: Sequence[str] = (),
        seeds: Mapping[str, Any] | None = None,
        budgets: Mapping[str, Any] | None = None,
        task_spec: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
        background: bool = True,
    ) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and any(self.folder.iterdir()):
            raise RecordingError(f"{self.folder}: session folder is not empty")
        (self.folder / BLOBS).mkdir(parents=True, exist_ok=True)
        self.redactor = Redactor(secrets)
        self.session_id = session_id or uuid.uuid4().hex
        self._meta: dict[str, Any] = {
            "task_id": task_id,
            "spec_hash": spec_hash,
            "sandbox": dict(sandbox_info),
            "models": dict(models),
            "seeds": dict(seeds or {}),
            "budgets": dict(budgets or {}),
            "task_spec": dict(task_spec) if task_spec is not None else None,
            **dict(extra or {}),
        }
        self.started_at = _now_iso()
        self._t0 = time.monotonic()
        self._events = open(self.folder / EVENTS, "wb")  # noqa: SIM115  (closed in finish)
        self._events_hash = hashlib.sha256()
        self._events_bytes = 0
        self._lines = 0
        self._stored: set[str] = set()
        self._prev_frame: Frame | None = None
        self._chain = 0  # deltas since the last whole frame
        self._secret_boxes: list[Box] = []
        # Model images that were blanked: original sha -> sha of the stored, blanked copy.
        self._image_alias: dict[str, str] = {}
        self._aliased = False
        with _OPEN_LOCK:
            _OPEN.add(self)
        # data: URL -> blob reference; the same screenshots ride along in every request.
        self._url_cache: dict[str, str] = {}
        self._pending_secret: ActionStep | None = None
        self._checks: list[dict[str, Any]] = []
        self._final_files: dict[str, str] = {}
        self._final_url: str | None = None
        self.final_state_captured = False
        self._error: BaseException | None = None
        self._finished = False
        self._queue: queue.Queue[Any] | None = None
        self._thread: threading.Thread | None = None
        if background:
            # Bounded so a loop outrunning the disk waits instead of holding every frame in memory
            # (each queued frame is ~3 MB of pixels at 1280x800).
            self._queue = queue.Queue(maxsize=64)
            self._thread = threading.Thread(
                target=self._drain, name=f"recorder-{self.session_id[:8]}", daemon=True
            )
            self._thread.start()

    # --- blobs ---------------------------------------------------------------------------
    def _put_blob(self, name: str, data: bytes) -> None:
        path = self.folder / BLOBS / name
        if not path.exists():
            write_atomic_nosync(path, data)

    def _store_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        if sha not in self._stored:
            self._stored.add(sha)
            self._submit(self._put_blob, sha, data)
        return sha

    def _store_frame(self, frame: Frame) -> str:
        sha = frame.sha256
        if sha not in self._stored:
            self._stored.add(sha)
            self._encode_frame(sha, frame)
        # The next frame is stored as a change against this one, stored or not.
        self._prev_frame = frame
        return sha

    def _encode_frame(self, sha: str, frame: Frame) -> None:
        prev = self._prev_frame
        box = None
        if prev is not None and prev.size == frame.size and self._chain < _MAX_CHAIN:
            box = _changed_box(prev.rgb, frame.rgb, frame.width, frame.height)
        if box is not None and box.w * box.h * 2 <= frame.width * frame.height:
            # Only the changed rectangle, named by the whole frame's pixel hash; the reader
            # pastes it onto the previous frame and checks the hash of the result.
            assert prev is not None
            crop = frame.crop(box)
            delta = f"{prev.sha256} {box.x} {box.y}"
            self._put_blob(f"{sha}.png", fast_png(crop.rgb, crop.width, crop.height, delta))
            self._chain += 1
            return
        self._put_blob(f"{sha}.png", fast_png(frame.rgb, frame.width, frame.height))
        self._chain = 0

    def _submit(self, fn: Any, *args: Any) -> None:
        # Steps are processed on the writer thread already, so blob work runs right here.
        fn(*args)

    def _drain(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if self._error is None:  # after a failure, write nothing more (no gaps)
                    fn, args = item
                    fn(*args)
            except BaseException as exc:  # surfaced on the next write/flush/finish
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise RecordingError(f"{self.folder}: recording failed: {self._error}") from (
                self._error
            )

    def flush(self) -> None:
        """Wait until every step written so far is on disk (its line flushed, blobs stored)."""
        if self._queue is not None:
            self._queue.join()
        self._raise_if_failed()

    # --- secrets in frames ---------------------------------------------------------------
    def _note_secret_typing(self, step: Step) -> None:
        if isinstance(step, ActionStep):
            text = step.action.text or ""
            self._pending_secret = (
                step if step.action.kind == "type" and self.redactor.contains_secret(text) else None
            )
        elif isinstance(step, ActionResultStep) and self._pending_secret is not None:
            action = self._pending_secret.action
            box = step.changed
            if box is None and action.x is not None and action.y is not None:
                box = Box(action.x - 200, action.y - 20, 400, 40)
            if box is not None:
                self._secret_boxes.append(box)
            self._pending_secret = None

    def _blank(self, frame: Frame) -> Frame:
        from PIL import ImageDraw

        img = frame.pil().copy()
        draw = ImageDraw.Draw(img)
        for b in self._secret_boxes:
            g = b.expand(_SECRET_MARGIN, frame.width, frame.height)
            draw.rectangle((g.x, g.y, g.right - 1, g.bottom - 1), fill=(0, 0, 0))
        return Frame.from_pil(img, frame.origin, frame.t)

    def _blank_image(self, image: bytes, step: ObservationStep) -> bytes:
        from PIL import Image, ImageDraw

        with Image.open(io.BytesIO(image)) as src:
            fmt = src.format or "PNG"
            img = src.convert("RGB")
        sx = img.width / max(1, step.size[0])
        sy = img.height / max(1, step.size[1])
        draw = ImageDraw.Draw(img)
        for b in self._secret_boxes:
            g = b.expand(_SECRET_MARGIN, step.size[0], step.size[1])
            draw.rectangle(
                (int(g.x * sx), int(g.y * sy), int(g.right * sx) + 1, int(g.bottom * sy) + 1),
                fill=(0, 0, 0),
            )
        out = io.BytesIO()
        img.save(out, format=fmt)
        return out.getvalue()

    # --- events --------------------------------------------------------------------------
    def write(self, step: Step) -> None:
        """Record one step record (redacted; blobs stored once; its line flushed).

        With ``background=True`` (the default) the work happens on the recorder's thread, in
        order, so the loop only pays for a queue put. Step records are frozen; their payloads
        (request dicts, frames) must not be mutated after they were yielded.
        """
        if self._finished:
            raise RecordingError(f"{self.folder}: session already finished")
        self._raise_if_failed()
        if self._queue is not None:
            self._queue.put((self._process, (step,)))
        else:
            self._process(step)

    def _process(self, step: Step) -> None:
        self._note_secret_typing(step)
        # asdict() deep-copies; the request body (the whole conversation) is replaced below
        # anyway, so it is left out of the copy.
        if isinstance(step, ModelCallStep):
            d = step_to_dict(replace(step, request={}))
        elif isinstance(step, ObservationStep):
            d = step_to_dict(replace(step, frame=None, image=None))
        else:
            d = step_to_dict(step)
        refs: dict[str, str] = {}
        if isinstance(step, ObservationStep):
            frame, image = step.frame, step.image
            if self._secret_boxes:
                frame = self._blank(frame) if isinstance(frame, Frame) else frame
                if image:
                    original = hashlib.sha256(image).hexdigest()
                    image = self._blank_image(image, step)
                    self._image_alias[original] = hashlib.sha256(image).hexdigest()
                refs["blanked"] = "1"
            if isinstance(frame, Frame):
                refs["frame"] = self._store_frame(frame)
            if image:
                refs["image"] = self._store_bytes(image)
        elif isinstance(step, ModelCallStep):
            self._aliased = False
            body = self.redactor.value(
                externalize_images(step.request, self._store_image, self._url_cache)
            )
            if len(self._url_cache) > 256:
                self._url_cache.clear()
            text = canonical_json(body).encode()
            refs["request"] = self._store_bytes(text)
            refs["request_hash"] = hashlib.sha256(text).hexdigest()
            if self._aliased:
                # The model saw pixels of a secret that the recording blanked: replays compare
                # this request's text only.
                refs["images_redacted"] = "1"
            d["request"] = {"$blob": refs["request"]}
        elif isinstance(step, CheckStep):
            detail = self.redactor.text(step.detail)
            self._checks.append({"name": step.name, "status": step.status, "detail": detail})
        d = self.redactor.value(d)
        if refs:
            d["_ref"] = refs
        line = (json.dumps(d, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
        self._events.write(line)
        self._events.flush()
        self._events_hash.update(line)
        self._events_bytes += len(line)
        self._lines += 1

    def _store_image(self, data: bytes, media: str) -> str:
        sha = hashlib.sha256(data).hexdigest()
        alias = self._image_alias.get(sha)
        if alias is not None:
            # Never store the original: it shows a typed secret.
            self._aliased = True
            return alias
        return self._store_bytes(data)

    def add_final_file(self, name: str, data: bytes) -> str:
        """Keep a file of the final state (say ``~/report.csv``) so ``regrade`` can read it.

        Text content is redacted like everything else; returns the blob's sha256.
        """
        if self._finished:
            raise RecordingError(f"{self.folder}: session already finished")
        if self.redactor.secrets:
            try:
                data = self.redactor.text(data.decode("utf-8")).encode("utf-8")
            except UnicodeDecodeError:
                for secret in self.redactor.secrets:
                    data = data.replace(secret.encode(), b"[REDACTED]")
        sha = hashlib.sha256(data).hexdigest()
        # Blob bookkeeping belongs to the writer thread; hand the bytes over like a step.
        if self._queue is not None:
            self._raise_if_failed()
            self._queue.put((self._store_bytes, (data,)))
        else:
            self._store_bytes(data)
        self._final_files[self.redactor.text(name)] = sha
        return sha

    def set_final_url(self, url: str | None) -> None:
        """Keep the browser's final URL (for ``url_matches`` checks on regrade)."""
        self._final_url = self.redactor.text(url) if url is not None else None

    def finish(
        self,
        outcome: Mapping[str, Any] | str,
        checks: Sequence[Mapping[str, Any]] | None = None,
        **extra: Any,
    ) -> Path:
        """Drain blob writes, then write the manifest atomically. Returns the folder.

        ``outcome`` is ``{"status": "pass"|"fail"|"error"|"budget_exceeded", "reason": ...}``
        or just the status; ``checks`` defaults to the ``CheckStep`` records written.
        """
        if self._finished:
            raise RecordingError(f"{self.folder}: session already finished")
        self._finished = True
        with _OPEN_LOCK:
            _OPEN.discard(self)
        self._close_writer()
        self._raise_if_failed()
        self._events.flush()
        os.fsync(self._events.fileno())
        self._events.close()
        if isinstance(outcome, str):
            outcome = {"status": outcome, "reason": ""}
        manifest = {
            "format_version": FORMAT_VERSION,
            "session_id": self.session_id,
            "agentcorp_version": _agentcorp_version(),
            **self._meta,
            "started_at": self.started_at,
            "ended_at": _now_iso(),
            "duration_s": round(time.monotonic() - self._t0, 3),
            "outcome": dict(outcome),
            "checks": [dict(c) for c in checks] if checks is not None else self._checks,
            "final_state": {
                "files": self._final_files,
                "url": self._final_url,
                "captured": self.final_state_captured,
            },
            "events": {
                "lines": self._lines,
                "bytes": self._events_bytes,
                "sha256": self._events_hash.hexdigest(),
            },
            **extra,
        }
        data = json.dumps(self.redactor.value(manifest), indent=2, ensure_ascii=False)
        write_atomic(self.folder / MANIFEST, data.encode() + b"\n")
        return self.folder

    def _close_writer(self) -> None:
        if self._queue is not None and self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._queue = None

    def abort(self) -> None:
        """Stop without a manifest (the session stays visibly incomplete)."""
        if not self._finished:
            self._finished = True
            with _OPEN_LOCK:
                _OPEN.discard(self)
            self._close_writer()
            self._events.close()

    def finish_aborted(self, reason: str, **extra: Any) -> Path | None:
        """Finish with outcome ``aborted`` (Ctrl-C, SIGTERM): what ran stays replayable.

        Returns the folder, or ``None`` if the session was already finished or the manifest
        could not be written (the session then stays visibly incomplete).
        """
        if self._finished:
            return None
        try:
            return self.finish({"status": "aborted", "reason": reason}, **extra)
        except (RecordingError, OSError, ValueError):
            return None

    def __enter__(self) -> SessionRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.finish_aborted("interrupted (Ctrl-C or SIGTERM)")
        else:
            self.abort()


# Every recorder not yet finished, so an abort can finalise the sessions of every thread.
_OPEN: weakref.WeakSet[SessionRecorder] = weakref.WeakSet()
_OPEN_LOCK = threading.Lock()


def finish_open_sessions(reason: str) -> list[Path]:
    """Finish every open session of this process with outcome ``aborted``; their folders."""
    with _OPEN_LOCK:
        open_now = list(_OPEN)
    return [p for p in (r.finish_aborted(reason) for r in open_now) if p is not None]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _changed_box(a: bytes, b: bytes, width: int, height: int) -> Box | None:
    """The bounding box of the pixels that differ between two same-size RGB frames."""
    import numpy as np

    diff = np.frombuffer(a, dtype=np.uint8) != np.frombuffer(b, dtype=np.uint8)
    grid = diff.reshape(height, width * 3)
    rows = np.flatnonzero(grid.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(grid[rows[0] : rows[-1] + 1].any(axis=0)) // 3
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    return Box(x0, int(rows[0]), x1 - x0, int(rows[-1]) + 1 - int(rows[0]))


def fast_png(rgb: bytes, width: int, height: int, delta: str | None = None) -> bytes:
    """A valid, lossless RGB PNG of raw pixels, written for speed rather than size.

    Every row uses PNG filter 0 and zlib level 1: about a third of Pillow's time for a
    1280x800 screen (Pillow tries every filter on every row) at a similar size, and zlib
    releases the GIL while it compresses, so the loop's thread keeps running. ``delta``
    (``"<parent sha> <x> <y>"``) marks the image as a changed rectangle of another frame.
    """
    import numpy as np

    rows = np.zeros((height, width * 3 + 1), dtype=np.uint8)
    rows[:, 1:] = np.frombuffer(rgb, dtype=np.uint8).reshape(height, width * 3)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    text = _png_chunk(b"tEXt", DELTA_KEY.encode() + b"\0" + delta.encode()) if delta else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + text
        + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
        + _png_chunk(b"IEND", b"")
    )


def write_atomic_nosync(path: Path, data: bytes) -> None:
    """Write via a temporary name and rename (no fsync: blobs are synced by ``finish``'s order)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


_FILE_KEYS = {"file_exists": "path", "file_contains": "path", "sqlite": "database"}
_MAX_FINAL_FILE = 20 * 1024 * 1024


def _check_leaves(tree: Any) -> list[dict[str, Any]]:
    """The leaf checks of a success tree, depth first (the order checks are evaluated in)."""
    dump = getattr(tree, "model_dump", None)
    if callable(dump):
        tree = dump(by_alias=True, exclude_none=True)
    if not isinstance(tree, Mapping):
        return []
    for key in ("all", "any"):
        if isinstance(tree.get(key), list):
            return [leaf for child in tree[key] for leaf in _check_leaves(child)]
    if "not" in tree:
        return _check_leaves(tree["not"])
    return [dict(tree)]


def capture_final_state(
    recorder: SessionRecorder, success: Any, home: Path, url: str | None = None
) -> list[str]:
    """Keep what ``regrade`` needs: every file the success checks read, and the final URL.

    Call after the run and before ``finish``. ``success`` is the task's check tree (spec
    models or mappings); ``~`` in check paths is ``home``. Returns the paths kept.
    """
    kept: list[str] = []
    for leaf in _check_leaves(success):
        key = _FILE_KEYS.get(str(leaf.get("check")))
        raw = leaf.get(key) if key else None
        if not isinstance(raw, str) or not raw:
            continue
        path = home / raw[2:] if raw.startswith("~/") else Path(raw)
        if not path.is_absolute():
            path = home / raw
        try:
            # Bounded, and never through a link out of the file's folder: a sandbox file
            # linked to /etc/shadow must not land in the recording.
            data = read_bounded(path, _MAX_FINAL_FILE, what="final file")
        except (OSError, UnsafeRead):
            continue
        recorder.add_final_file(raw, data)
        kept.append(raw)
    if url is not None:
        recorder.set_final_url(url)
    recorder.final_state_captured = True
    return kept
