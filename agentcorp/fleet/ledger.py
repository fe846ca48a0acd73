"""The ledger: the durable record of a fleet run, and its in-memory twin for the simulator.

A task moves ``pending → leased → running → passed|failed|error|budget_exceeded``; a lost
lease moves it back to ``pending``. Every lease carries a fencing token (``epoch``) drawn from
one counter that only grows, and every write by a lease holder is a compare-and-set on it:
a worker whose lease was taken away (a zombie on a lost node, an orphan of a killed
coordinator) gets ``FencedOut`` instead of overwriting a newer attempt. Terminal states are
written once: nothing moves a task out of them.

``SqliteLedger`` keeps this in SQLite in WAL mode so coordinator and worker processes can
write concurrently and a coordinator killed at any instant loses nothing committed;
``MemoryLedger`` applies the same transitions to lists, for the simulator.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentcorp.errors import ConfigError, FencedOut, FleetError
from agentcorp.fleet.model import TERMINAL, FleetTask

__all__ = [
    "ALLOWED",
    "Lease",
    "MemoryLedger",
    "SqliteLedger",
    "TaskRow",
    "check_transition",
    "fingerprint",
]

#: The state machine both ledgers enforce.
ALLOWED: dict[str, frozenset[str]] = {
    "pending": frozenset({"leased", "error", "budget_exceeded"}),
    "leased": frozenset({"running", "pending", *TERMINAL}),
    "running": frozenset({"pending", *TERMINAL}),
    **{t: frozenset() for t in TERMINAL},
}

_FORMAT = "agentcorp-ledger/1"


def check_transition(task_id: str, src: str, dst: str) -> None:
    """Raise ``FleetError`` unless ``src → dst`` is a legal move."""
    if dst not in ALLOWED.get(src, frozenset()):
        raise FleetError(f"task {task_id!r}: illegal transition {src} -> {dst}")


def fingerprint(tasks: Sequence[FleetTask]) -> str:
    """A hash of the task graph (ids and dependencies) a ledger belongs to."""
    h = hashlib.sha256()
    for t in sorted(tasks, key=lambda t: t.id):
        h.update(f"{t.id}\0{','.join(sorted(t.depends_on))}\n".encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Lease:
    """A granted lease: the holder writes with ``epoch`` until ``expires``."""

    task_id: str
    attempt: int
    epoch: int
    expires: float


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One task's row as the ledger holds it."""

    id: str
    company: str
    state: str
    attempt: int
    losses: int
    epoch: int
    worker: str | None
    node: str | None
    lease_expires: float | None
    heartbeat: float | None
    detail: str | None
    session_path: str | None
    cost: float | None
    finished: float | None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks(
  id TEXT PRIMARY KEY, company TEXT NOT NULL, spec TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending', attempt INTEGER NOT NULL DEFAULT 0,
  losses INTEGER NOT NULL DEFAULT 0, epoch INTEGER NOT NULL DEFAULT 0,
  worker TEXT, node TEXT, lease_expires REAL, heartbeat REAL,
  detail TEXT, session_path TEXT, cost REAL, finished REAL);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state);
CREATE TABLE IF NOT EXISTS attempts(
  task_id TEXT NOT NULL, attempt INTEGER NOT NULL, epoch INTEGER NOT NULL,
  worker TEXT, node TEXT, leased REAL, started REAL, ended REAL, outcome TEXT,
  PRIMARY KEY(task_id, attempt));
CREATE TABLE IF NOT EXISTS effects(
  key TEXT PRIMARY KEY, task_id TEXT NOT NULL, epoch INTEGER NOT NULL, at REAL NOT NULL,
  outcome TEXT);
CREATE TABLE IF NOT EXISTS buckets(
  name TEXT PRIMARY KEY, tokens REAL NOT NULL, stamp REAL NOT NULL);
CREATE TABLE IF NOT EXISTS drains(node TEXT PRIMARY KEY, leave_at REAL NOT NULL);
"""
_DRAINS = "CREATE TABLE IF NOT EXISTS drains(node TEXT PRIMARY KEY, leave_at REAL NOT NULL)"

_COLS = (
    "id, company, state, attempt, losses, epoch, worker, node, lease_expires, heartbeat, "
    "detail, session_path, cost, finished"
)


class SqliteLedger:
    """The durable ledger of one company run (SQLite, WAL, one file).

    Safe to open from several processes at once; each process opens its own instance.
    ``create=False`` refuses a missing file (for ``fleet status``).
    """

    def __init__(self, path: str | Path, *, create: bool = True, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ConfigError(f"{self.path}: no such ledger")
        if self.path.is_dir():
            raise ConfigError(f"{self.path}: is a folder, not a ledger file")
        try:
            self._db = sqlite3.connect(
                str(self.path), timeout=timeout_s, isolation_level=None, check_same_thread=False
            )
            # Look before writing anything: a foreign or empty file is left as it was.
            fmt = self._meta_get("format") if self._has_meta() else None
            if fmt is None:
                tables = self._db.execute(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type='table'"
                ).fetchone()[0]
                if tables:
                    # Another process may have made the ledger (schema and format in one
                    # transaction) between the two looks: look at the format once more.
                    fmt = self._meta_get("format") if self._has_meta() else None
                if tables and fmt is None:
                    raise ConfigError(f"{self.path}: not an agentcorp ledger (foreign tables)")
                if fmt is None and not create:
                    raise ConfigError(f"{self.path}: not an agentcorp ledger (no format record)")
            if fmt is not None and fmt != _FORMAT:
                raise ConfigError(f"{self.path}: unknown ledger format {fmt!r}")
            self._set_wal(timeout_s)
            # WAL + NORMAL: a commit survives a killed process (only an OS crash can lose
            # the last transactions), at a fraction of FULL's fsync cost.
            self._db.execute("PRAGMA synchronous=NORMAL")
            if fmt is not None:
                self._db.execute(_DRAINS)
                self._add_effect_outcomes()
            if fmt is None:
                # One transaction: a process killed while creating leaves an empty file,
                # never a half-made ledger.
                with self._tx() as db:
                    for stmt in _SCHEMA.split(";"):
                        if stmt.strip():
                            db.execute(stmt)
                    db.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('format', ?), ('epoch', '0')",
                        (_FORMAT,),
                    )
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ConfigError(f"{self.path}: not an agentcorp ledger ({exc})") from exc
        except ConfigError:
            self._db.close()
            raise

    def _add_effect_outcomes(self) -> None:
        """Ledgers made before effect outcomes were kept get the column (NULL: not known)."""
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(effects)")}
        if "outcome" not in cols:
            with contextlib.suppress(sqlite3.OperationalError):  # another process won
                self._db.execute("ALTER TABLE effects ADD COLUMN outcome TEXT")

    def _set_wal(self, timeout_s: float) -> None:
        # Switching a fresh file to WAL needs a moment of exclusive access and ignores the
        # busy timeout, so two processes opening the same new ledger (a `fleet status` while
        # `fleet run` starts) can see "database is locked": retry within the timeout.
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _has_meta(self) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        return row is not None

    def _meta_get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise FleetError(f"{self.path}: cannot lock the ledger: {exc}") from exc
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def close(self) -> None:
        """Close this process's connection."""
        self._db.close()

    # --- setup ------------------------------------------------------------------------

    def ensure_tasks(self, tasks: Sequence[FleetTask], source: str = "") -> None:
        """Record the task graph on first use; on resume, refuse a different graph."""
        fp = fingerprint(tasks)
        with self._tx() as db:
            old = self._meta_get("fingerprint")
            if old is not None and old != fp:
                raise ConfigError(
                    f"{self.path}: ledger belongs to another task graph (fingerprint {old}, "
                    f"this company has {fp})"
                )
            if old is None:
                db.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (fp,))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('source', ?)", (source,))
                db.executemany(
                    "INSERT OR IGNORE INTO tasks(id, company, spec) VALUES (?, ?, ?)",
                    [(t.id, t.company, json.dumps(_task_json(t))) for t in tasks],
                )

    # --- leases -----------------------------------------------------------------------

    def lease(self, task_id: str, worker: str, node: str, lease_s: float) -> Lease:
        """``pending → leased`` under a fresh epoch; the attempt number goes up by one."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='epoch' "
                "RETURNING value"
            ).fetchone()
            epoch = int(row[0])
            got = db.execute(
                "UPDATE tasks SET state='leased', attempt=attempt+1, epoch=?, worker=?, node=?, "
                "lease_expires=?, heartbeat=? WHERE id=? AND state='pending' RETURNING attempt",
                (epoch, worker, node, now + lease_s, now, task_id),
            ).fetchone()
            if got is None:
                state = self._state(task_id)
                raise FleetError(f"task {task_id!r}: cannot lease from state {state}")
            attempt = int(got[0])
            db.execute(
                "INSERT OR REPLACE INTO attempts(task_id, attempt, epoch, worker, node, leased) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (task_id, attempt, epoch, worker, node, now),
            )
        return Lease(task_id, attempt, epoch, now + lease_s)

    def _state(self, task_id: str) -> str:
        row = self._db.execute("SELECT state FROM tasks WHERE id=?", (task_id,)).fetchone()
        return "missing" if row is None else str(row[0])

    def _fenced(self, task_id: str, epoch: int, what: str) -> FencedOut:
        row = self._db.execute("SELECT state, epoch FROM tasks WHERE id=?", (task_id,)).fetchone()
        if row is None:
            return FencedOut(f"task {task_id!r}: {what} for an unknown task")
        return FencedOut(
            f"task {task_id!r}: {what} with epoch {epoch} rejected "
            f"(ledger has epoch {row[1]}, state {row[0]})"
        )

    def start(self, task_id: str, epoch: int) -> None:
        """``leased → running`` by the lease holder."""
        now = time.time()
        cur = self._db.execute(
            "UPDATE tasks SET state='running', heartbeat=? WHERE id=? AND epoch=? "
            "AND state='leased'",
            (now, task_id, epoch),
        )
        if cur.rowcount != 1:
            raise self._fenced(task_id, epoch, "start")
        self._db.execute(
            "UPDATE attempts SET started=? WHERE task_id=? AND epoch=?", (now, task_id, epoch)
        )

    def heartbeat(self, task_id: str, epoch: int, lease_s: float) -> float:
        """Extend the lease by ``lease_s`` from now; returns the new expiry."""
        now = time.time()
        cur = self._db.execute(
            "UPDATE tasks SET heartbeat=?, lease_expires=? WHERE id=? AND epoch=? "
            "AND state IN ('leased', 'running')",
            (now, now + lease_s, task_id, epoch),
        )
        if cur.rowcount != 1:
            raise self._fenced(task_id, epoch, "heartbeat")
        return now + lease_s

    def finish(
        self,
        task_id: str,
        epoch: int,
        status: str,
        *,
        detail: str = "",
        session_path: str | None = None,
        cost: float | None = None,
    ) -> None:
        """Write the result: a compare-and-set on ``epoch``; ``FencedOut`` if superseded."""
        if status not in TERMINAL:
            raise FleetError(f"task {task_id!r}: {status!r} is not a final state")
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE tasks SET state=?, detail=?, session_path=?, cost=?, finished=?, "
                "lease_expires=NULL WHERE id=? AND epoch=? AND state IN ('leased', 'running')",
                (status, detail, session_path, cost, now, task_id, epoch),
            )
            if cur.rowcount != 1:
                raise self._fenced(task_id, epoch, f"result {status!r}")
            db.execute(
                "UPDATE attempts SET ended=?, outcome=? WHERE task_id=? AND epoch=?",
                (now, status, task_id, epoch),
            )

    def requeue(self, task_id: str, epoch: int, reason: str) -> bool:
        """Give a lease back (drain, lost worker): ``leased|running → pending`` if still ours."""
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE tasks SET state='pending', losses=losses+1, lease_expires=NULL, "
                "worker=NULL, node=NULL, detail=? WHERE id=? AND epoch=? "
                "AND state IN ('leased', 'running')",
                (reason, task_id, epoch),
            )
            if cur.rowcount != 1:
                return False
            db.execute(
                "UPDATE attempts SET ended=?, outcome=? WHERE task_id=? AND epoch=?",
                (now, f"lost: {reason}", task_id, epoch),
            )
        return True

    def expire(self, now: float | None = None) -> list[tuple[str, int]]:
        """Re-queue every lease whose expiry passed; returns ``(task_id, old_epoch)`` pairs."""
        t = time.time() if now is None else now
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, epoch FROM tasks WHERE state IN ('leased', 'running') "
                "AND lease_expires < ?",
                (t,),
            ).fetchall()
            for tid, ep in rows:
                db.execute(
                    "UPDATE tasks SET state='pending', losses=losses+1, lease_expires=NULL, "
                    "worker=NULL, node=NULL, detail='lease expired' WHERE id=? AND epoch=?",
                    (tid, ep),
                )
                db.execute(
                    "UPDATE attempts SET ended=?, outcome='lost: lease expired' "
                    "WHERE task_id=? AND epoch=?",
                    (t, tid, ep),
                )
        return [(str(a), int(b)) for a, b in rows]

    def decide(self, task_id: str, status: str, detail: str) -> None:
        """A terminal state chosen without running the task (skipped, over budget)."""
        src = self._state(task_id)
        check_transition(task_id, src, status)
        cur = self._db.execute(
            "UPDATE tasks SET state=?, detail=?, finished=? WHERE id=? AND state=?",
            (status, detail, time.time(), task_id, src),
        )
        if cur.rowcount != 1:
            raise FleetError(f"task {task_id!r}: changed while deciding {status}")

    # --- side effects ---------------------------------------------------------------------

    def record_effect(self, key: str, task_id: str, epoch: int) -> bool:
        """Claim a side effect by its idempotency key; False if it was claimed already.

        Fenced: only the current lease holder may claim, so a zombie cannot act twice. The
        key carries no attempt number, so a claim made by an attempt that died (its worker
        or its coordinator killed between the effect and the result write) is honoured by
        every later attempt: they get False and read ``effect_outcome`` instead of acting.
        """
        with self._tx() as db:
            self._check_holder(db, task_id, epoch, f"side effect {key!r}")
            cur = db.execute(
                "INSERT OR IGNORE INTO effects(key, task_id, epoch, at) VALUES (?, ?, ?, ?)",
                (key, task_id, epoch, time.time()),
            )
            return cur.rowcount == 1

    def complete_effect(self, key: str, task_id: str, epoch: int, outcome: str) -> None:
        """Record what the claimed effect ``key`` did (once; fenced like the claim)."""
        with self._tx() as db:
            self._check_holder(db, task_id, epoch, f"side effect {key!r}")
            cur = db.execute(
                "UPDATE effects SET outcome=? WHERE key=? AND task_id=? AND outcome IS NULL",
                (outcome, key, task_id),
            )
            if cur.rowcount != 1:
                raise FleetError(f"side effect {key!r}: not claimed, or its outcome is recorded")

    def effect_outcome(self, key: str) -> tuple[bool, str | None]:
        """(claimed, recorded outcome): ``(True, None)`` means claimed and never completed."""
        row = self._db.execute("SELECT outcome FROM effects WHERE key=?", (key,)).fetchone()
        return (False, None) if row is None else (True, row[0])

    def _check_holder(self, db: sqlite3.Connection, task_id: str, epoch: int, what: str) -> None:
        row = db.execute(
            "SELECT 1 FROM tasks WHERE id=? AND epoch=? AND state IN ('leased', 'running')",
            (task_id, epoch),
        ).fetchone()
        if row is None:
            raise self._fenced(task_id, epoch, what)

    # --- shared rate limit ------------------------------------------------------------

    def take_token(self, name: str, rate: float, burst: float) -> float:
        """Take one token from the shared bucket ``name``; returns seconds to wait (0: got it).

        One row per bucket, updated in a write transaction, so every worker process on this
        machine draws from the same bucket.
        """
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT tokens, stamp FROM buckets WHERE name=?", (name,)).fetchone()
            tokens, stamp = (burst, now) if row is None else (float(row[0]), float(row[1]))
            tokens = min(burst, tokens + max(0.0, now - stamp) * rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / rate
            db.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)", (name, tokens, now))
        return wait

    # --- availability -----------------------------------------------------------------

    def announce_drain(self, node: str, leave_at: float) -> None:
        """Record that ``node`` leaves at ``leave_at`` (Unix time); coordinators pick it up.

        ``node`` is a local worker name (``w1``), a host name (all its workers) or a Ray node
        id. No new lease whose expected duration overruns ``leave_at`` goes there, and what
        still runs there at ``leave_at`` is re-queued whole.
        """
        if not node:
            raise ConfigError("--node: empty node name")
        self._db.execute("INSERT OR REPLACE INTO drains VALUES (?, ?)", (node, float(leave_at)))

    def drains(self) -> dict[str, float]:
        """Announced departures: node -> Unix time it leaves."""
        cur = self._db.execute("SELECT node, leave_at FROM drains")
        return {str(n): float(t) for n, t in cur.fetchall()}

    # --- reading ----------------------------------------------------------------------

    def rows(self) -> list[TaskRow]:
        """Every task's row, in insertion order."""
        cur = self._db.execute(f"SELECT {_COLS} FROM tasks ORDER BY rowid")
        return [TaskRow(*r) for r in cur.fetchall()]

    def row(self, task_id: str) -> TaskRow | None:
        """One task's row."""
        r = self._db.execute(f"SELECT {_COLS} FROM tasks WHERE id=?", (task_id,)).fetchone()
        return None if r is None else TaskRow(*r)

    def attempts(self) -> list[dict[str, Any]]:
        """Every attempt ever leased, oldest first."""
        cur = self._db.execute(
            "SELECT task_id, attempt, epoch, worker, node, leased, started, ended, outcome "
            "FROM attempts ORDER BY epoch"
        )
        keys = (
            "task_id",
            "attempt",
            "epoch",
            "worker",
            "node",
            "leased",
            "started",
            "ended",
            "outcome",
        )
        return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        """Number of tasks per state."""
        cur = self._db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state")
        return {str(s): int(n) for s, n in cur.fetchall()}

    def meta(self, key: str) -> str | None:
        """A run-level record (``source``, ``fingerprint``, ``format``)."""
        return self._meta_get(key)


def _task_json(t: FleetTask) -> dict[str, Any]:
    d = asdict(t)
    d["payload"] = dict(t.payload)
    return d


class MemoryLedger:
    """The same state machine and fencing in memory, for the simulator (no durability)."""

    def __init__(self, task_ids: Sequence[str]) -> None:
        self._index = {t: i for i, t in enumerate(task_ids)}
        n = len(task_ids)
        self.state: list[str] = ["pending"] * n
        self.epoch: list[int] = [0] * n
        self.attempt: list[int] = [0] * n
        self.terminal_writes: list[int] = [0] * n
        self._counter = 0
        self.effects: set[str] = set()
        self.duplicate_effects = 0
        self.fenced = 0

    def lease(self, task_id: str) -> Lease:
        """``pending → leased`` with a new epoch."""
        i = self._index[task_id]
        if self.state[i] != "pending":
            raise FleetError(f"task {task_id!r}: cannot lease from state {self.state[i]}")
        self._counter += 1
        self.state[i] = "leased"
        self.epoch[i] = self._counter
        self.attempt[i] += 1
        return Lease(task_id, self.attempt[i], self._counter, float("inf"))

    def _cas(self, task_id: str, epoch: int, dst: str, what: str) -> int:
        i = self._index[task_id]
        if self.epoch[i] != epoch or self.state[i] not in ("leased", "running"):
            self.fenced += 1
            raise FencedOut(
                f"task {task_id!r}: {what} with epoch {epoch} rejected "
                f"(ledger has epoch {self.epoch[i]}, state {self.state[i]})"
            )
        check_transition(task_id, self.state[i], dst)
        self.state[i] = dst
        return i

    def start(self, task_id: str, epoch: int) -> None:
        """``leased → running``."""
        self._cas(task_id, epoch, "running", "start")

    def finish(self, task_id: str, epoch: int, status: str, effect_key: str | None = None) -> None:
        """The fenced result write; ``effect_key`` is the side effect it commits with."""
        i = self._cas(task_id, epoch, status, f"result {status!r}")
        self.terminal_writes[i] += 1
        if effect_key is not None:
            if effect_key in self.effects:
                self.duplicate_effects += 1
            self.effects.add(effect_key)

    def requeue(self, task_id: str, epoch: int) -> bool:
        """``leased|running → pending`` if ``epoch`` still holds the lease."""
        i = self._index[task_id]
        if self.epoch[i] != epoch or self.state[i] not in ("leased", "running"):
            return False
        self.state[i] = "pending"
        return True

    def decide(self, task_id: str, status: str) -> None:
        """A terminal state chosen by the policy."""
        i = self._index[task_id]
        check_transition(task_id, self.state[i], status)
        self.state[i] = status
        self.terminal_writes[i] += 1
