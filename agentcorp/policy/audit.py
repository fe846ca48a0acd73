"""The audit log: an append-only, hash-chained JSONL file per company run.

Each line is one JSON object with ``seq`` (0, 1, 2, ...), ``prev`` (the previous entry's hash,
64 zeros for the first) and ``hash`` = sha256 of the entry's canonical JSON without ``hash``
(sorted keys, no whitespace, UTF-8). Changing, inserting or removing a line breaks the chain at
that line; ``verify`` finds it. Removing lines from the *end* is only visible against a head
hash kept elsewhere (``AuditLog.head()``, e.g. in a session manifest): pass it as
``expect_head``.

Appends are safe across threads and processes: one ``write`` of the whole line on an
``O_APPEND`` descriptor, under an exclusive ``flock`` held while the previous hash is read,
then ``fsync``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentcorp._io import UnsafeRead, read_bounded
from agentcorp.errors import RecordingError
from agentcorp.policy.secrets import Redactor

__all__ = ["GENESIS", "AuditLog", "AuditProblem", "canonical_json", "entry_hash", "verify"]

GENESIS = "0" * 64
_TAIL_CHUNK = 8192


def canonical_json(obj: Any) -> str:
    """The one serialisation hashes are taken over."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def entry_hash(entry: Mapping[str, Any]) -> str:
    """sha256 of the entry's canonical JSON without its own ``hash`` field."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One thing wrong with an audit file, at a 1-based line number."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class AuditLog:
    """Appends hash-chained entries to ``path`` (created 0600 with its folder if missing).

    Every value is passed through ``redactor`` before it is hashed and written, so a secret
    can never land here even if a caller passes one by mistake.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        run_id: str | None = None,
        redactor: Redactor | None = None,
        fsync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self._redactor = redactor
        self._fsync = fsync
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._head = GENESIS

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one entry of ``kind`` with ``fields``; returns it with ``seq``/``prev``/``hash``.

        Raises ``OSError`` when the entry could not be written durably: callers that gate
        actions treat that as a reason to refuse the action.
        """
        body: dict[str, Any] = dict(fields)
        if self._redactor is not None:
            body = self._redactor.redact_json(body)
        body["kind"] = kind
        body["t"] = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        body["pid"] = os.getpid()
        if self.run_id is not None:
            body["run"] = self.run_id
        with self._lock:
            fd = self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                seq, prev, dangling = _tail(fd)
                body["seq"] = seq + 1
                body["prev"] = prev
                body["hash"] = entry_hash(body)
                data = (canonical_json(body) + "\n").encode("utf-8")
                if dangling:
                    # A writer died mid-line: end that line so ours stays parseable;
                    # verify still reports the broken one.
                    data = b"\n" + data
                _write_all(fd, data)
                if self._fsync:
                    os.fsync(fd)
                self._head = body["hash"]
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        return body

    def head(self) -> str:
        """The hash of the last entry this process wrote (the chain's head as it knows it)."""
        return self._head

    def close(self) -> None:
        """Close the file. Safe to call twice."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _tail(fd: int) -> tuple[int, str, bool]:
    """(seq, hash) of the last complete entry and whether the file ends mid-line."""
    size = os.fstat(fd).st_size
    if size == 0:
        return -1, GENESIS, False
    dangling = os.pread(fd, 1, size - 1) != b"\n"
    buf = b""
    pos = size
    while True:
        start = max(0, pos - _TAIL_CHUNK)
        buf = os.pread(fd, pos - start, start) + buf
        pos = start
        body = buf
        if dangling:
            cut = body.rfind(b"\n")
            if cut < 0:
                if pos == 0:
                    return -1, GENESIS, True
                continue
            body = body[: cut + 1]
        inner = body[:-1]
        nl = inner.rfind(b"\n")
        if nl >= 0 or pos == 0:
            seq, h = _seq_hash(inner[nl + 1 :])
            return seq, h, dangling


def _seq_hash(line: bytes) -> tuple[int, str]:
    try:
        entry = json.loads(line)
        seq, h = entry["seq"], entry["hash"]
        if isinstance(seq, int) and isinstance(h, str):
            return seq, h
    except (ValueError, KeyError, TypeError):
        pass
    # The last line is damaged: chain to its raw bytes so verify still points at it.
    return -1, hashlib.sha256(line).hexdigest()


# An audit log is read whole to verify it; this is far beyond any run's log.
MAX_AUDIT_BYTES = 1 << 30


def _check_entry(
    n: int, line: bytes, prev: str, want_seq: int
) -> tuple[dict[str, Any] | None, AuditProblem | None]:
    """Line ``n`` parsed, and the first problem with it (or ``None``)."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):
        return None, AuditProblem(n, "not valid JSON")
    if not isinstance(entry, dict):
        return None, AuditProblem(n, "not a JSON object")
    missing = [k for k in ("seq", "prev", "hash", "kind") if k not in entry]
    if missing:
        return None, AuditProblem(n, f"missing field {missing[0]!r}")
    try:
        actual = entry_hash(entry)
    except ValueError:
        actual = ""
    if entry["hash"] != actual:
        return entry, AuditProblem(n, "hash mismatch: the entry was changed")
    if entry["prev"] != prev:
        return entry, AuditProblem(
            n,
            "prev does not match the previous entry's hash: an entry was "
            "removed, inserted or rewritten before this line",
        )
    if entry["seq"] != want_seq:
        return entry, AuditProblem(n, f"seq is {entry['seq']!r}, expected {want_seq}")
    return entry, None


def _read_lines(path: str | os.PathLike[str]) -> tuple[list[bytes], list[AuditProblem]]:
    try:
        raw = read_bounded(path, MAX_AUDIT_BYTES, root=Path(path).parent, what="audit log")
    except UnsafeRead as exc:
        raise RecordingError(f"{exc} (cannot read audit log)") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read audit log: {exc.strerror or exc}") from exc
    problems: list[AuditProblem] = []
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines and lines != [b""]:
        problems.append(AuditProblem(len(lines), "incomplete last entry (no newline)"))
    else:
        lines = []
    if not lines:
        # Every log starts with its run's first entry: an empty one proves nothing.
        problems.append(AuditProblem(1, "empty: no entries (an audit log is never empty)"))
    return lines, problems


def verify(
    path: str | os.PathLike[str],
    expect_head: str | None = None,
    checkpoints: Iterable[str] = (),
) -> list[AuditProblem]:
    """Every problem in the audit file at ``path``, in line order; empty means intact.

    ``checkpoints`` are entry hashes kept elsewhere (each session manifest's ``audit.head``):
    each must be the hash of an intact entry of the chain, so a log cut off before one shows.
    Raises ``RecordingError`` when the file cannot be read at all (missing, not a regular
    file, too big).
    """
    lines, problems = _read_lines(path)
    seen: set[str] = set()
    prev = GENESIS
    want_seq = 0
    for n, line in enumerate(lines, start=1):
        entry, problem = _check_entry(n, line, prev, want_seq)
        if problem is not None and not any(p.line == n for p in problems):
            problems.append(problem)
        if entry is None:
            continue
        stated = entry["hash"]
        if isinstance(stated, str) and stated == _safe_hash(entry):
            seen.add(stated)
        prev = stated if isinstance(stated, str) else ""
        want_seq = (entry["seq"] + 1) if isinstance(entry["seq"], int) else want_seq + 1
    last = max(len(lines), 1)
    if expect_head is not None and prev != expect_head:
        problems.append(
            AuditProblem(
                last,
                "the log does not end at the expected head hash "
                "(entries were removed from the end or rewritten)",
            )
        )
    for c in (c for c in checkpoints if c):
        if c not in seen:
            problems.append(
                AuditProblem(
                    last,
                    f"checkpoint {c[:12]}… is not an intact entry of "
                    "the log (entries were removed from the end or rewritten)",
                )
            )
    return sorted(problems, key=lambda p: p.line)


def _safe_hash(entry: dict[str, Any]) -> str:
    try:
        return entry_hash(entry)
    except ValueError:
        return ""
