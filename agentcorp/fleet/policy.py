"""The scheduling policy: pure, clock-injected, shared by every coordinator and the simulator.

``SchedulerPolicy`` holds no I/O. Coordinators (local processes, Ray) and the simulator
feed it events (a node joined, announced a drain, vanished; a task ended or was lost) and
ask it ``next_dispatches(now)``. It answers which task goes to which node, and queues the
decisions it takes on its own (a task skipped because a dependency did not pass, a task
refused by its company's budget) for the caller to write to the ledger.

Every event costs O(log n) or amortised O(1): free slots live in a stack (nodes with no
announced leave) and a max-heap on leave time (draining nodes), both with lazy deletion, so
no dispatch scans the fleet.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agentcorp.errors import FleetError
from agentcorp.fleet.model import TERMINAL, FleetTask

__all__ = ["Decision", "Dispatch", "RateLimit", "SchedulerPolicy", "TokenBucket"]

_WAITING, _READY, _INFLIGHT, _PASSED, _ENDED = 0, 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket's shape: ``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: float


class TokenBucket:
    """A token bucket on an injected clock (seconds); refills lazily when asked."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float = 0.0) -> None:
        if rate <= 0 or burst < 1:
            raise FleetError(f"rate limit needs rate > 0 and burst >= 1, got {rate}/{burst}")
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def try_take(self, now: float, n: float = 1.0) -> bool:
        """Take ``n`` tokens if there are that many; never blocks."""
        self._refill(now)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def ready_at(self, now: float, n: float = 1.0) -> float:
        """The earliest time ``n`` tokens will be there."""
        self._refill(now)
        return now if self.tokens >= n else now + (n - self.tokens) / self.rate


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Lease ``task_id`` to ``node_id``; ``attempt`` counts from 1."""

    task_id: str
    node_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Decision:
    """A terminal state the policy chose without running the task."""

    task_id: str
    state: str
    detail: str


class SchedulerPolicy:
    """Runs a task DAG over a changing set of nodes with slots.

    ``budgets`` maps company → limit (absent: unlimited); ``rate_limits`` maps API key →
    ``RateLimit`` for episode starts. ``spare_slots`` free slots are kept for retried tasks
    only, so a retry never waits behind fresh work for capacity. ``drain_margin`` scales a
    task's expected duration before comparing it with a draining node's remaining time.
    """

    def __init__(
        self,
        tasks: Sequence[FleetTask],
        *,
        budgets: Mapping[str, float] | None = None,
        rate_limits: Mapping[str, RateLimit] | None = None,
        spare_slots: int = 0,
        drain_margin: float = 1.2,
        now: float = 0.0,
    ) -> None:
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        for t in tasks:
            if t.id in self._index:
                raise FleetError(f"duplicate task id {t.id!r}")
            self._index[t.id] = len(self._ids)
            self._ids.append(t.id)
        n = len(self._ids)
        self._tasks = list(tasks)
        self._dependents: list[list[int]] = [[] for _ in range(n)]
        self._deps_left = [0] * n
        for i, t in enumerate(tasks):
            for d in t.depends_on:
                j = self._index.get(d)
                if j is None:
                    raise FleetError(f"task {t.id!r} depends on unknown task {d!r}")
                self._dependents[j].append(i)
                self._deps_left[i] += 1
        self._state = bytearray(n)
        self._attempts = [0] * n
        self._losses = [0] * n
        self._node_of: list[str | None] = [None] * n
        self._open = n  # tasks not yet terminal
        self._limit = dict(budgets or {})
        self._spent: dict[str, float] = {}
        self._reserved: dict[str, float] = {}
        self._inflight_by_company: dict[str, int] = {}
        self._blocked: dict[str, deque[int]] = {}
        self._buckets = {
            k: TokenBucket(r.rate, r.burst, now) for k, r in (rate_limits or {}).items()
        }
        self._parked: dict[str, deque[int]] = {}
        self._fresh: deque[int] = deque()
        self._retry: deque[int] = deque()
        self._decisions: list[Decision] = []
        self._spare = max(0, spare_slots)
        self._margin = drain_margin
        # nodes
        self._slots: dict[str, int] = {}
        self._free: dict[str, int] = {}
        self._leave: dict[str, float] = {}
        self._running: dict[str, set[int]] = {}
        self._stable: list[str] = []
        self._in_stable: set[str] = set()
        self._draining: list[tuple[float, str]] = []
        self._in_draining: set[str] = set()
        self._free_total = 0
        # affinity groups: the node that holds a group's state, and groups with a task in
        # flight (one task of a group at a time)
        self._owner: dict[str, str] = {}
        self._busy: set[str] = set()
        for i in range(n):
            if self._deps_left[i] == 0:
                self._state[i] = _READY
                self._fresh.append(i)

    # --- resume -----------------------------------------------------------------------

    def restore(
        self, states: Mapping[str, str], attempts: Mapping[str, int] | None = None
    ) -> list[str]:
        """Take the ledger's view after a restart; returns tasks in flight elsewhere.

        Terminal tasks are closed; ``leased``/``running`` ones stay in flight with no node
        here (an orphaned worker may still finish them) until ``finished`` or ``lost``.
        """
        att = attempts or {}
        external: list[str] = []
        self._fresh.clear()
        self._retry.clear()
        self._open = len(self._ids)
        for i, tid in enumerate(self._ids):
            self._attempts[i] = att.get(tid, 0)
            s = states.get(tid, "pending")
            if s == "passed":
                self._state[i] = _PASSED
                self._open -= 1
            elif s in TERMINAL:
                self._state[i] = _ENDED
                self._open -= 1
            elif s in ("leased", "running"):
                self._state[i] = _INFLIGHT
                external.append(tid)
                group = self._tasks[i].affinity
                if group is not None:
                    self._busy.add(group)
            else:
                self._state[i] = _WAITING
        for i in range(len(self._ids)):
            self._deps_left[i] = 0
        for j, deps in enumerate(self._dependents):
            if self._state[j] != _PASSED:
                for i in deps:
                    self._deps_left[i] += 1
        for i in range(len(self._ids)):
            if self._state[i] != _WAITING:
                continue
            bad = next(
                (d for d in self._tasks[i].depends_on if self._state[self._index[d]] == _ENDED),
                None,
            )
            if bad is not None:
                self._cascade(self._index[bad])
            elif self._deps_left[i] == 0:
                self._state[i] = _READY
                (self._retry if self._attempts[i] else self._fresh).append(i)
        return external

    # --- nodes ------------------------------------------------------------------------

    def add_node(self, node_id: str, slots: int, leave_at: float | None = None) -> None:
        """A node joined with ``slots`` desktop slots (``leave_at``: announced departure)."""
        if node_id in self._slots:
            raise FleetError(f"node {node_id!r} is already in the pool")
        self._slots[node_id] = slots
        self._free[node_id] = slots
        self._running[node_id] = set()
        self._leave[node_id] = math.inf if leave_at is None else leave_at
        self._free_total += slots
        self._offer(node_id)

    def drain_node(self, node_id: str, leave_at: float) -> None:
        """The node announced it leaves at ``leave_at``: only work that fits goes there."""
        if node_id not in self._slots:
            return
        self._leave[node_id] = min(self._leave[node_id], leave_at)
        self._offer(node_id)

    def remove_node(self, node_id: str) -> list[str]:
        """The node is gone (left or lost); returns its in-flight tasks, now re-queued."""
        if node_id not in self._slots:
            return []
        self._free_total -= self._free.pop(node_id)
        del self._slots[node_id], self._leave[node_id]
        lost = self._running.pop(node_id)
        for g in [g for g, n in self._owner.items() if n == node_id]:
            del self._owner[g]  # its state died with the node
        out = []
        for i in lost:
            self._node_of[i] = None
            self._requeue(i)
            out.append(self._ids[i])
        return out

    def _offer(self, node_id: str) -> None:
        if self._free.get(node_id, 0) <= 0:
            return
        leave = self._leave[node_id]
        if leave == math.inf:
            if node_id not in self._in_stable:
                self._in_stable.add(node_id)
                self._stable.append(node_id)
        elif node_id not in self._in_draining:
            self._in_draining.add(node_id)
            heapq.heappush(self._draining, (-leave, node_id))

    def _pick(self, expected_s: float, now: float) -> str | None:
        # A draining node whose remaining time fits the task goes first: its time is
        # otherwise wasted, and stable nodes stay free for long tasks.
        dr = self._draining
        while dr:
            neg_leave, node = dr[0]
            leave = self._leave.get(node)
            if leave is None or self._free.get(node, 0) <= 0 or leave != -neg_leave:
                heapq.heappop(dr)
                self._in_draining.discard(node)
                if leave is not None:
                    self._offer(node)  # a stale entry of a live node: re-file it
                continue
            if now + expected_s * self._margin <= leave:
                return node
            break
        st = self._stable
        while st:
            node = st[-1]
            if self._free.get(node, 0) <= 0 or self._leave.get(node, 0.0) != math.inf:
                st.pop()
                self._in_stable.discard(node)
                if node in self._leave:
                    self._offer(node)
                continue
            return node
        return None

    # --- dispatch ---------------------------------------------------------------------

    def next_dispatches(self, now: float, limit: int | None = None) -> list[Dispatch]:
        """Leases to hand out now, best first; call again after every event."""
        out: list[Dispatch] = []
        if self._parked:
            self._unpark(now)
        held: list[tuple[deque[int], int]] = []
        while self._free_total > 0 and (limit is None or len(out) < limit):
            if self._retry:
                q = self._retry
            elif self._fresh and self._free_total > self._spare:
                q = self._fresh
            else:
                break
            i = q[0]
            t = self._tasks[i]
            node = self._node_for(t, now)
            if node is None:
                if t.affinity is None:
                    break
                held.append((q, q.popleft()))  # its group is busy or its node full: wait
                continue
            q.popleft()
            c = t.company
            lim = self._limit.get(c)
            if lim is not None:
                reserved = self._reserved.get(c, 0.0)
                if self._spent.get(c, 0.0) + reserved + t.cost > lim + 1e-12:
                    if self._inflight_by_company.get(c, 0) > 0:
                        self._blocked.setdefault(c, deque()).append(i)
                    else:
                        self._end(i, "budget_exceeded", f"company {c!r} budget {lim:g} used up")
                    continue
            if t.api_key is not None:
                bucket = self._buckets.get(t.api_key)
                if bucket is not None and not bucket.try_take(now):
                    self._parked.setdefault(t.api_key, deque()).append(i)
                    continue
            self._reserved[c] = self._reserved.get(c, 0.0) + t.cost
            self._inflight_by_company[c] = self._inflight_by_company.get(c, 0) + 1
            self._free[node] -= 1
            self._free_total -= 1
            self._running[node].add(i)
            self._node_of[i] = node
            self._state[i] = _INFLIGHT
            self._attempts[i] += 1
            if t.affinity is not None:
                self._owner[t.affinity] = node
                self._busy.add(t.affinity)
            out.append(Dispatch(self._ids[i], node, self._attempts[i]))
        for q, i in reversed(held):
            q.appendleft(i)
        return out

    def _node_for(self, t: FleetTask, now: float) -> str | None:
        """The node for ``t``: its group's node when it has one, else the best free one."""
        g = t.affinity
        if g is None:
            return self._pick(t.expected_s, now)
        if g in self._busy:
            return None
        owner = self._owner.get(g)
        if owner is None or owner not in self._slots:
            return self._pick(t.expected_s, now)
        return owner if self._free.get(owner, 0) > 0 else None

    def _unpark(self, now: float) -> None:
        # Release only as many parked tasks as the bucket has tokens for, so a long parked
        # queue is not cycled through the ready queue on every call.
        for key in list(self._parked):
            bucket = self._buckets[key]
            bucket.try_take(now, 0.0)  # refill
            n = int(bucket.tokens)
            if n <= 0:
                continue
            q = self._parked[key]
            out = [q.popleft() for _ in range(min(n, len(q)))]
            if not q:
                del self._parked[key]
            for i in reversed(out):
                (self._retry if self._attempts[i] else self._fresh).appendleft(i)

    def wake_at(self, now: float) -> float | None:
        """When a rate-limited task can next be dispatched (None: nothing is parked)."""
        if not self._parked:
            return None
        return min(self._buckets[k].ready_at(now) for k in self._parked)

    # --- task events ------------------------------------------------------------------

    def finished(self, task_id: str, state: str, cost: float | None = None) -> None:
        """A task ended with terminal ``state`` (its node slot frees up)."""
        i = self._index[task_id]
        if self._state[i] != _INFLIGHT:
            raise FleetError(f"task {task_id!r} finished but was not in flight")
        self._release(i, actual=cost)
        if state == "passed":
            self._state[i] = _PASSED
            self._open -= 1
            for j in self._dependents[i]:
                self._deps_left[j] -= 1
                if self._deps_left[j] == 0 and self._state[j] == _WAITING:
                    self._state[j] = _READY
                    self._fresh.append(j)
        else:
            self._state[i] = _ENDED
            self._open -= 1
            self._cascade(i)

    def lost(self, task_id: str) -> None:
        """A task's lease was lost (worker died, lease expired, drain cut it): re-queue it."""
        i = self._index[task_id]
        if self._state[i] != _INFLIGHT:
            return
        node = self._node_of[i]
        if node is not None:
            self._running[node].discard(i)
            self._node_of[i] = None
            self._free[node] += 1
            self._free_total += 1
            self._offer(node)
        self._requeue(i)

    def _requeue(self, i: int) -> None:
        self._release(i, actual=0.0, node_done=False)
        self._losses[i] += 1
        if self._losses[i] > self._tasks[i].max_losses:
            self._state[i] = _ENDED
            self._open -= 1
            self._decisions.append(
                Decision(self._ids[i], "error", f"lost {self._losses[i]} times; giving up")
            )
            self._cascade(i)
            return
        self._state[i] = _READY
        self._retry.append(i)

    def _release(self, i: int, actual: float | None, node_done: bool = True) -> None:
        t = self._tasks[i]
        if t.affinity is not None:
            self._busy.discard(t.affinity)
        c = t.company
        if c in self._reserved:
            self._reserved[c] -= t.cost
            self._inflight_by_company[c] -= 1
            self._spent[c] = self._spent.get(c, 0.0) + (t.cost if actual is None else actual)
            blocked = self._blocked.pop(c, None)
            if blocked:
                self._fresh.extendleft(reversed(blocked))
        if node_done:
            node = self._node_of[i]
            self._node_of[i] = None
            if node is not None and node in self._free:
                self._running[node].discard(i)
                self._free[node] += 1
                self._free_total += 1
                self._offer(node)

    def _end(self, i: int, state: str, detail: str) -> None:
        self._state[i] = _ENDED
        self._open -= 1
        self._decisions.append(Decision(self._ids[i], state, detail))
        self._cascade(i)

    def _cascade(self, i: int) -> None:
        stack = [i]
        cause = self._ids[i]
        while stack:
            k = stack.pop()
            for j in self._dependents[k]:
                if self._state[j] in (_WAITING, _READY):
                    if self._state[j] == _READY:
                        self._drop_ready(j)
                    self._state[j] = _ENDED
                    self._open -= 1
                    detail = f"skipped: dependency {cause!r} did not pass"
                    self._decisions.append(Decision(self._ids[j], "error", detail))
                    stack.append(j)

    def _drop_ready(self, j: int) -> None:
        for q in (self._fresh, self._retry, *self._parked.values(), *self._blocked.values()):
            try:
                q.remove(j)
                return
            except ValueError:
                continue

    # --- queries ----------------------------------------------------------------------

    def take_decisions(self) -> list[Decision]:
        """Terminal states chosen by the policy since the last call (write them down)."""
        out, self._decisions = self._decisions, []
        return out

    @property
    def done(self) -> bool:
        """Every task reached a terminal state."""
        return self._open == 0

    def node_tasks(self, node_id: str) -> list[str]:
        """Tasks in flight on ``node_id``."""
        return [self._ids[i] for i in self._running.get(node_id, ())]

    def nodes(self) -> Iterable[str]:
        """Live node ids."""
        return self._slots.keys()

    def attempts(self, task_id: str) -> int:
        """How many leases ``task_id`` got so far."""
        return self._attempts[self._index[task_id]]
