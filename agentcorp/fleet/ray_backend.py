"""The Ray backend: one actor per desktop slot, whole-episode retry, fenced results.

Nodes offer desktops with a custom resource (``ray start --address=HEAD
--resources='{"desktop": N}'``). The coordinator (the Ray driver) keeps exactly one
``DesktopSlot`` actor per ``desktop`` unit on every live node, pinned to that node. Actors are
created with ``max_restarts=0``: when a node dies its actors die with it, their episodes are
re-queued whole (a desktop's state dies with its node; a single click is never retried) and
go to another live actor. Because retried episodes never ask Ray for a ``desktop`` resource
themselves, a restarted actor can never take the last slot and starve a retry; ``spare``
slots can additionally be kept for retries only.

Only the coordinator writes the ledger: an actor's result is applied with a compare-and-set
on the lease epoch, so the late answer of an actor whose lease was given away is rejected
(``FencedOut``). Every Ray call has a timeout.

This is the only module that imports ``ray``; it does so lazily.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentcorp.errors import ConfigError, FencedOut, FleetError, SetupError
from agentcorp.fleet._coord import (
    ScheduleReport,
    coordinator_lock,
    resume,
    sync_external,
    write_decisions,
)
from agentcorp.fleet.ledger import SqliteLedger
from agentcorp.fleet.model import EpisodeContext, EpisodeResult, FleetTask, resolve_runner
from agentcorp.fleet.policy import RateLimit, SchedulerPolicy, TokenBucket

__all__ = ["RayOptions", "import_ray", "run_ray"]

INSTALL_HINT = 'the ray backend needs Ray: pip install "agentcorp[ray]"'
HOLDER_PREFIX = "ray:"


def import_ray() -> Any:
    """Import ``ray`` or raise ``SetupError`` with the install hint."""
    try:
        import ray
    except ImportError as exc:
        raise SetupError(INSTALL_HINT) from exc
    return ray


@contextlib.contextmanager
def loopback_head(ray: Any) -> Iterator[None]:
    """While a local head starts and runs: bind every Ray server to 127.0.0.1, token auth on.

    Ray's gRPC servers (GCS, raylet, workers, actors) listen on every interface unless Ray
    believes it runs a one-machine cluster; we make it believe so for our own local head
    only (a driver joining ``--ray ADDRESS`` must stay reachable by the cluster). Token
    authentication is switched on with a fresh per-run token in a private folder, unless
    the environment names one already (``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH``).
    Everything is restored afterwards.
    """
    import ray._private.ray_constants as rc
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    saved_env = {k: os.environ.get(k) for k in _HEAD_ENV}
    saved_flag = rc.ENABLE_RAY_CLUSTER
    folder: str | None = None
    try:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        rc.ENABLE_RAY_CLUSTER = False
        os.environ["RAY_AUTH_MODE"] = "token"
        if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
            folder = tempfile.mkdtemp(prefix="agentcorp-ray-auth-")
            token = Path(folder) / "auth_token"
            fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
            os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
        yield
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        rc.ENABLE_RAY_CLUSTER = saved_flag
        # Config first, then the token cache (Ray's own order for a clean reset).
        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


_HEAD_ENV = (
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER",
    "RAY_AUTH_MODE",
    "RAY_AUTH_TOKEN_PATH",
)


@dataclass(frozen=True, slots=True)
class RayOptions:
    """How to reach the cluster and run on it.

    ``address=None`` starts a one-machine Ray with ``local_desktops`` slots, every server
    bound to 127.0.0.1 and Ray's token authentication on (``loopback_head``). With an
    ``address``, the cluster's own network exposure and authentication apply
    (docs/safety.md, "Ray exposure"). ``episode_timeout_factor`` bounds an episode at
    ``expected_s`` times it (plus a lease) before its actor is killed and the task re-queued.
    """

    address: str | None = None
    lease_s: float = 30.0
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    spare_slots: int = 0
    session_root: str | None = None
    sandbox: str = "none"
    screen: tuple[int, int] = (1280, 800)
    resource: str = "desktop"
    local_desktops: int = 2
    runtime_env: Mapping[str, Any] | None = None
    call_timeout_s: float = 30.0
    actor_start_timeout_s: float = 60.0
    reconcile_s: float = 1.0
    episode_timeout_factor: float = 3.0
    run_timeout_s: float | None = None
    temp_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.lease_s > 0:
            raise ConfigError(f"--lease must be positive, got {self.lease_s}")
        if self.sandbox not in ("xvfb", "none"):
            raise ConfigError(f"--sandbox must be 'xvfb' or 'none', got {self.sandbox!r}")


# --- actors (class bodies are plain Python; ray.remote wraps them lazily) -----------------


class DesktopSlot:
    """One desktop slot on one node: its own sandbox, one whole episode at a time."""

    def __init__(
        self,
        runner_ref: str,
        sandbox: str,
        screen: tuple[int, int],
        limiter: Any = None,
        keeper: Any = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._runner = resolve_runner(runner_ref)
        self._sandbox = sandbox
        self._screen = screen
        self._computer: Any = None
        self._limiter = _RayLimiter(limiter) if limiter is not None else None
        self._effects = _RayEffects(keeper, timeout_s) if keeper is not None else None

    def info(self) -> tuple[str, int, str | None]:
        """(Ray node id, pid, X display or None)."""
        ray = import_ray()
        self._open()
        display = getattr(self._computer, "display", None)
        return ray.get_runtime_context().get_node_id(), os.getpid(), display

    def _open(self) -> None:
        if self._sandbox == "xvfb" and self._computer is None:
            from agentcorp.sandbox.xvfb import XvfbDesktop

            self._computer = XvfbDesktop(screen=self._screen, window_manager=False)

    def run(
        self,
        task_d: dict[str, Any],
        attempt: int,
        epoch: int,
        worker_id: str,
        session_root: str | None,
    ) -> dict[str, Any]:
        """Run one episode; returns the ``EpisodeResult`` as a dict."""
        from agentcorp.fleet._worker import run_episode, task_from_json

        ray = import_ray()
        self._open()
        task = task_from_json(task_d)
        session_dir = None
        if session_root:
            session_dir = str(Path(session_root) / task.id / f"attempt-{attempt}")
        ctx = EpisodeContext(
            task_id=task.id,
            attempt=attempt,
            epoch=epoch,
            worker_id=worker_id,
            node_id=ray.get_runtime_context().get_node_id(),
            display=getattr(self._computer, "display", None),
            session_dir=session_dir,
            computer=self._computer,
            limiter=self._limiter,
            effects=self._effects,
        )
        try:
            return asdict(run_episode(self._runner, task, ctx))
        except (SetupError, ConfigError) as exc:
            # The node cannot run episodes, or the run's input is bad: the coordinator stops
            # the run (exit 3 or 2) instead of retrying the task on every slot.
            line = str(exc).splitlines()[0] if str(exc) else repr(exc)
            return {"fatal": type(exc).__name__, "detail": line}

    def close(self) -> None:
        """Stop the sandbox."""
        if self._computer is not None:
            self._computer.close()
            self._computer = None


class BucketKeeper:
    """The shared token buckets of a run, as one Ray actor every slot asks."""

    def __init__(self, limits: dict[str, tuple[float, float]]) -> None:
        now = time.monotonic()
        self._b = {k: TokenBucket(r, b, now) for k, (r, b) in limits.items()}

    def take(self, key: str) -> float:
        """0 if a token was taken, else seconds until one will be there."""
        b = self._b.get(key)
        if b is None:
            return 0.0
        now = time.monotonic()
        return 0.0 if b.try_take(now) else b.ready_at(now) - now


class LedgerKeeper:
    """Opens the run's ledger next to the coordinator so remote episodes can claim effects."""

    def __init__(self, path: str) -> None:
        self._ledger = SqliteLedger(path)

    def record_effect(self, key: str, task_id: str, epoch: int) -> str:
        """``first``, ``again``, or ``fenced: why`` (exceptions do not cross Ray cleanly)."""
        try:
            return "first" if self._ledger.record_effect(key, task_id, epoch) else "again"
        except FencedOut as exc:
            return f"fenced: {exc}"

    def complete_effect(self, key: str, task_id: str, epoch: int, outcome: str) -> str:
        """``ok`` or ``fenced: why`` / ``error: why``."""
        try:
            self._ledger.complete_effect(key, task_id, epoch, outcome)
        except FencedOut as exc:
            return f"fenced: {exc}"
        except FleetError as exc:
            return f"error: {exc}"
        return "ok"

    def effect_outcome(self, key: str) -> tuple[bool, str | None]:
        """(claimed, outcome) of ``key``."""
        return self._ledger.effect_outcome(key)


class _RayEffects:
    def __init__(self, keeper: Any, timeout_s: float) -> None:
        self._keeper = keeper
        self._timeout = timeout_s

    def record_effect(self, key: str, task_id: str, epoch: int) -> bool:
        ray = import_ray()
        got = str(
            ray.get(self._keeper.record_effect.remote(key, task_id, epoch), timeout=self._timeout)
        )
        if got.startswith("fenced: "):
            raise FencedOut(got[len("fenced: ") :])
        return got == "first"

    def complete_effect(self, key: str, task_id: str, epoch: int, outcome: str) -> None:
        ray = import_ray()
        ref = self._keeper.complete_effect.remote(key, task_id, epoch, outcome)
        got = str(ray.get(ref, timeout=self._timeout))
        if got.startswith("fenced: "):
            raise FencedOut(got[len("fenced: ") :])
        if got != "ok":
            raise FleetError(got.removeprefix("error: "))

    def effect_outcome(self, key: str) -> tuple[bool, str | None]:
        ray = import_ray()
        claimed, outcome = ray.get(self._keeper.effect_outcome.remote(key), timeout=self._timeout)
        return bool(claimed), outcome


class _RayLimiter:
    def __init__(self, keeper: Any) -> None:
        self._keeper = keeper

    def acquire(self, key: str, timeout_s: float) -> None:
        ray = import_ray()
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            wait_s = float(ray.get(self._keeper.take.remote(key), timeout=max(0.1, left)))
            if wait_s <= 0:
                return
            if time.monotonic() + wait_s > deadline:
                raise FleetError(f"rate limit {key!r}: no token within {timeout_s:g}s")
            time.sleep(wait_s)


# --- the coordinator ----------------------------------------------------------------------


@dataclass(slots=True)
class _Slot:
    name: str
    node_id: str
    handle: Any
    ready: bool = False
    info_ref: Any = None
    started: float = 0.0
    leave_at: float | None = None


@dataclass(slots=True)
class _Flight:
    task_id: str
    epoch: int
    slot: str
    deadline: float
    next_beat: float


def _runner_ref(runner: str | Callable[..., Any]) -> str:
    if isinstance(runner, str):
        resolve_runner(runner)
        return runner
    module, qual = getattr(runner, "__module__", None), getattr(runner, "__qualname__", "")
    if not module or "<" in qual or module == "__main__":
        raise ConfigError("the ray backend needs an importable runner (MODULE:FUNCTION)")
    return f"{module}:{qual}"


class _Coordinator:
    def __init__(
        self,
        ray: Any,
        ledger: SqliteLedger,
        policy: SchedulerPolicy,
        tasks: Sequence[FleetTask],
        ref: str,
        opts: RayOptions,
        report: ScheduleReport,
        note: Callable[[str, str], None],
    ) -> None:
        self.ray = ray
        self.ledger = ledger
        self.policy = policy
        self.by_id = {t.id: t for t in tasks}
        self.ref = ref
        self.opts = opts
        self.report = report
        self.note = note
        self.slots: dict[str, _Slot] = {}
        self.flights: dict[Any, _Flight] = {}
        self.serial = 0
        self.left_nodes: set[str] = set()
        self.run_start = time.time()
        self.actor_cls = ray.remote(DesktopSlot)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        self.ledger_keeper = (
            ray.remote(LedgerKeeper)
            .options(
                num_cpus=0,
                max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
            )
            .remote(str(ledger.path))
        )
        self.keeper = None
        if opts.rate_limits:
            keeper_cls = ray.remote(BucketKeeper).options(num_cpus=0)
            self.keeper = keeper_cls.remote(
                {k: (v.rate, v.burst) for k, v in opts.rate_limits.items()}
            )

    # slots -------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """One actor per desktop unit on every live node; new nodes get theirs."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            nodes = self.ray.nodes()
        except Exception as exc:
            raise FleetError(f"cannot list Ray nodes: {exc}") from exc
        have: dict[str, int] = {}
        for s in self.slots.values():
            have[s.node_id] = have.get(s.node_id, 0) + 1
        alive = set()
        for n in nodes:
            nid = n.get("NodeID", "")
            if not n.get("Alive") or nid in self.left_nodes:
                continue
            alive.add(nid)
            want = int(n.get("Resources", {}).get(self.opts.resource, 0))
            for _ in range(want - have.get(nid, 0)):
                self.serial += 1
                name = f"slot{self.serial}"
                opts: dict[str, Any] = {
                    "resources": {self.opts.resource: 1},
                    "num_cpus": 0,
                    "max_restarts": 0,
                    "max_task_retries": 0,
                    "scheduling_strategy": NodeAffinitySchedulingStrategy(nid, soft=False),
                }
                if self.opts.runtime_env:
                    opts["runtime_env"] = dict(self.opts.runtime_env)
                handle = self.actor_cls.options(**opts).remote(
                    self.ref,
                    self.opts.sandbox,
                    tuple(self.opts.screen),
                    self.keeper,
                    self.ledger_keeper,
                    self.opts.call_timeout_s,
                )
                slot = _Slot(name, nid, handle, started=time.monotonic())
                slot.info_ref = handle.info.remote()
                self.slots[name] = slot
        for s in list(self.slots.values()):
            if s.node_id not in alive:
                self.drop_slot(s, "node left the cluster")

    def check_starting(self) -> None:
        pending = {s.info_ref: s for s in self.slots.values() if not s.ready}
        if not pending:
            return
        done, _ = self.ray.wait(list(pending), num_returns=len(pending), timeout=0)
        for r in done:
            s = pending[r]
            try:
                node_id, pid, display = self.ray.get(r, timeout=self.opts.call_timeout_s)
            except Exception as exc:
                self.note("slot", f"{s.name} failed to start: {type(exc).__name__}")
                self.drop_slot(s, "failed to start")
                continue
            s.ready = True
            self.policy.add_node(s.name, 1)
            where = f"node {node_id[:8]} (pid {pid}, display {display})"
            self.note("slot", f"{s.name} ready on {where}")
        now = time.monotonic()
        for s in list(self.slots.values()):
            if not s.ready and now - s.started > self.opts.actor_start_timeout_s:
                self.drop_slot(s, "did not start in time")

    def drop_slot(self, s: _Slot, why: str) -> None:
        self.slots.pop(s.name, None)
        for ref, f in list(self.flights.items()):
            if f.slot == s.name:
                self.lose(ref, f, why)
        if s.ready:
            self.policy.remove_node(s.name)
        with contextlib.suppress(Exception):
            self.ray.kill(s.handle, no_restart=True)

    def apply_drains(self) -> None:
        """Announced departures (``agentcorp fleet drain``) for Ray node ids (or ``*``)."""
        drains = self.ledger.drains()
        now_wall, now = time.time(), time.monotonic()
        if drains:
            for s in self.slots.values():
                if not s.ready or s.leave_at is not None:
                    continue
                at = drains.get(s.node_id, drains.get("*"))
                if at is None or at < self.run_start:
                    continue
                s.leave_at = now + (at - now_wall)
                self.policy.drain_node(s.name, s.leave_at)
                self.note("drain", f"{s.name} on {s.node_id[:8]} leaves in {at - now_wall:.1f}s")
        for s in list(self.slots.values()):
            if s.leave_at is not None and s.leave_at <= now:
                self.left_nodes.add(s.node_id)
                self.drop_slot(s, "node left (drained)")

    # episodes ----------------------------------------------------------------------------

    def dispatch(self) -> None:
        now = time.monotonic()
        for d in self.policy.next_dispatches(now):
            s = self.slots[d.node_id]
            task = self.by_id[d.task_id]
            holder = f"{HOLDER_PREFIX}{s.name}"
            lease = self.ledger.lease(d.task_id, holder, s.node_id, self.opts.lease_s)
            self.ledger.start(d.task_id, lease.epoch)
            tj = asdict(task)
            tj["payload"] = dict(task.payload)
            ref = s.handle.run.remote(
                tj, lease.attempt, lease.epoch, holder, self.opts.session_root
            )
            deadline = now + task.expected_s * self.opts.episode_timeout_factor + self.opts.lease_s
            self.flights[ref] = _Flight(
                d.task_id, lease.epoch, s.name, deadline, now + self.opts.lease_s / 3
            )
        write_decisions(self.ledger, self.policy)

    def lose(self, ref: Any, f: _Flight, why: str) -> None:
        self.flights.pop(ref, None)
        if self.ledger.requeue(f.task_id, f.epoch, why):
            self.report.lost += 1
        self.policy.lost(f.task_id)
        self.note("task", f"{f.task_id} lost on {f.slot}: {why}; re-queued whole")

    def collect(self, timeout: float) -> None:
        if not self.flights:
            time.sleep(min(timeout, 0.05))
            return
        refs = list(self.flights)
        done, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        if done:
            done, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in done:
            f = self.flights.get(ref)
            if f is None:
                continue
            try:
                res = self.ray.get(ref, timeout=self.opts.call_timeout_s)
            except self.ray.exceptions.GetTimeoutError:
                continue
            except self.ray.exceptions.RayError as exc:
                # The actor or its node died: the episode is retried whole elsewhere.
                s = self.slots.get(f.slot)
                self.lose(ref, f, f"{type(exc).__name__} (node or actor lost)")
                if s is not None:
                    self.drop_slot(s, "actor died")
                continue
            self.flights.pop(ref, None)
            if "fatal" in res:
                cls = ConfigError if res["fatal"] == "ConfigError" else SetupError
                raise cls(f"{f.slot}: {res['detail']}")
            result = EpisodeResult(**res)
            try:
                self.ledger.finish(
                    f.task_id,
                    f.epoch,
                    result.status,
                    detail=result.detail,
                    session_path=result.session_path,
                    cost=result.cost,
                )
            except FencedOut as exc:
                self.report.fenced += 1
                self.note("task", f"{f.task_id}: late result rejected: {exc}")
                continue
            self.policy.finished(f.task_id, result.status, result.cost)
            self.note("task", f"{f.task_id} {result.status} on {f.slot}")

    def beat(self) -> None:
        now = time.monotonic()
        for ref, f in list(self.flights.items()):
            if now > f.deadline:
                s = self.slots.get(f.slot)
                self.lose(ref, f, "episode deadline passed")
                if s is not None:
                    self.drop_slot(s, "episode deadline passed")
                continue
            if now >= f.next_beat:
                f.next_beat = now + self.opts.lease_s / 3
                try:
                    self.ledger.heartbeat(f.task_id, f.epoch, self.opts.lease_s)
                except FencedOut:
                    self.lose(ref, f, "lease taken away")


def run_ray(
    tasks: Sequence[FleetTask],
    ledger_path: str | Path,
    runner: str | Callable[..., Any],
    options: RayOptions | None = None,
    *,
    budgets: Mapping[str, float] | None = None,
    source: str = "",
    on_event: Callable[[str, str], None] | None = None,
) -> ScheduleReport:
    """Run ``tasks`` on a Ray cluster, resuming from ``ledger_path``.

    Connects to ``options.address`` (or starts a loopback-only local Ray), keeps one actor
    per desktop slot, and returns when every task is terminal.
    """
    opts = options or RayOptions()
    ray = import_ray()
    ref = _runner_ref(runner)
    with coordinator_lock(ledger_path):
        return _run_ray(ray, tasks, ledger_path, ref, opts, budgets, source, on_event)


def _run_ray(
    ray: Any,
    tasks: Sequence[FleetTask],
    ledger_path: str | Path,
    ref: str,
    opts: RayOptions,
    budgets: Mapping[str, float] | None,
    source: str,
    on_event: Callable[[str, str], None] | None,
) -> ScheduleReport:
    note = on_event or (lambda kind, msg: None)
    t0 = time.monotonic()
    ledger = SqliteLedger(ledger_path)
    started = False
    head = contextlib.ExitStack()
    try:
        # Actors belong to the driver that made them and die with it: leases held by a
        # previous driver's actors are void and can be re-queued at once.
        for row in ledger.rows():
            if row.state in ("leased", "running") and (row.worker or "").startswith(HOLDER_PREFIX):
                ledger.requeue(row.id, row.epoch, "previous coordinator gone")
        policy, external, done = resume(
            ledger,
            tasks,
            source=source,
            budgets=budgets,
            rate_limits=opts.rate_limits,
            spare_slots=opts.spare_slots,
        )
        report = ScheduleReport(counts={}, wall_s=0.0, resumed_finished=done)
        if not ray.is_initialized():
            if not opts.address:
                head.enter_context(loopback_head(ray))
            _init_ray(ray, opts)
            started = True
        coord = _Coordinator(ray, ledger, policy, tasks, ref, opts, report, note)
        try:
            _loop(coord, external, opts, t0)
        finally:
            for s in list(coord.slots.values()):
                with contextlib.suppress(Exception):
                    ray.kill(s.handle, no_restart=True)
            for extra in (coord.keeper, coord.ledger_keeper):
                if extra is not None:
                    with contextlib.suppress(Exception):
                        ray.kill(extra, no_restart=True)
        write_decisions(ledger, policy)
        report.counts = ledger.counts()
        report.wall_s = time.monotonic() - t0
        return report
    finally:
        if started:
            ray.shutdown()
        head.close()
        ledger.close()


def _init_ray(ray: Any, opts: RayOptions) -> None:
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if opts.address:
        kwargs["address"] = opts.address
    else:
        kwargs.update(_node_ip_address="127.0.0.1", resources={opts.resource: opts.local_desktops})
    if opts.temp_dir:
        kwargs["_temp_dir"] = opts.temp_dir
    try:
        ray.init(**kwargs)
    except Exception as exc:
        raise SetupError(f"cannot start or reach Ray: {exc}".splitlines()[0]) from exc


def _loop(coord: _Coordinator, external: dict[str, int], opts: RayOptions, t0: float) -> None:
    policy = coord.policy
    next_reconcile = 0.0
    tick = min(0.2, opts.lease_s / 3)
    write_decisions(coord.ledger, policy)
    while not policy.done:
        now = time.monotonic()
        if opts.run_timeout_s is not None and now - t0 > opts.run_timeout_s:
            raise FleetError(f"fleet run did not finish within {opts.run_timeout_s:g}s")
        if now >= next_reconcile:
            coord.reconcile()
            next_reconcile = now + opts.reconcile_s
        coord.check_starting()
        coord.apply_drains()
        if external:
            sync_external(coord.ledger, policy, external)
        coord.dispatch()
        if policy.done:
            return
        coord.collect(tick)
        coord.beat()
