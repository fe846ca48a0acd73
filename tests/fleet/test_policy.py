"""The scheduling policy on its own: DAG order, budgets, rate limits, drains, spares, resume."""

from __future__ import annotations

import pytest

from agentcorp.errors import FleetError
from agentcorp.fleet.model import FleetTask
from agentcorp.fleet.policy import RateLimit, SchedulerPolicy, TokenBucket


def chain(n: int, **kw: object) -> list[FleetTask]:
    return [FleetTask(f"t{i}", (f"t{i - 1}",) if i else (), **kw) for i in range(n)]  # type: ignore[arg-type]


def drive(policy: SchedulerPolicy, now: float = 0.0) -> list[str]:
    """Run everything to the end, finishing tasks in dispatch order; returns that order."""
    order: list[str] = []
    while not policy.done:
        batch = policy.next_dispatches(now)
        policy.take_decisions()
        if not batch:
            break
        for d in batch:
            order.append(d.task_id)
            policy.finished(d.task_id, "passed")
    return order


def test_dag_runs_in_dependency_order() -> None:
    tasks = [FleetTask("c", ("a", "b")), FleetTask("a"), FleetTask("b", ("a",)), FleetTask("d")]
    p = SchedulerPolicy(tasks)
    p.add_node("n1", 2)
    order = drive(p)
    assert order.index("a") < order.index("b") < order.index("c")
    assert sorted(order) == ["a", "b", "c", "d"]
    assert p.done


def test_unknown_dependency_and_duplicates_are_refused() -> None:
    with pytest.raises(FleetError, match="unknown task 'zz'"):
        SchedulerPolicy([FleetTask("a", ("zz",))])
    with pytest.raises(FleetError, match="duplicate task id 'a'"):
        SchedulerPolicy([FleetTask("a"), FleetTask("a")])


def test_failure_skips_dependents_once() -> None:
    p = SchedulerPolicy(chain(4))
    p.add_node("n", 1)
    (d,) = p.next_dispatches(0)
    p.finished(d.task_id, "failed")
    decisions = p.take_decisions()
    assert [x.task_id for x in decisions] == ["t1", "t2", "t3"]
    assert all(x.state == "error" and "skipped" in x.detail for x in decisions)
    assert p.done and p.next_dispatches(0) == []


def test_company_budget_refuses_what_cannot_fit() -> None:
    tasks = [FleetTask(f"t{i}", company="acme", cost=2.0) for i in range(4)]
    p = SchedulerPolicy(tasks, budgets={"acme": 5.0})
    p.add_node("n", 4)
    first = p.next_dispatches(0)
    assert len(first) == 2  # 2 + 2 reserved; the third would make 6 > 5, so it waits
    for d in first:
        p.finished(d.task_id, "passed", cost=2.0)
    assert p.next_dispatches(0) == []
    decided = p.take_decisions()
    assert sorted(x.state for x in decided) == ["budget_exceeded", "budget_exceeded"]
    assert p.done


def test_actual_cost_frees_budget_for_waiting_tasks() -> None:
    tasks = [FleetTask(f"t{i}", company="acme", cost=2.0) for i in range(3)]
    p = SchedulerPolicy(tasks, budgets={"acme": 5.0})
    p.add_node("n", 3)
    first = p.next_dispatches(0)
    assert len(first) == 2
    p.finished(first[0].task_id, "passed", cost=0.5)  # spent 0.5, reserved 2: 2.5 + 2 fits
    assert [d.task_id for d in p.next_dispatches(0)] == ["t2"]


def test_rate_limit_is_shared_across_nodes() -> None:
    tasks = [FleetTask(f"t{i}", api_key="xai") for i in range(10)]
    p = SchedulerPolicy(tasks, rate_limits={"xai": RateLimit(rate=2.0, burst=3)})
    for k in range(10):
        p.add_node(f"n{k}", 1)
    assert len(p.next_dispatches(0.0)) == 3  # the burst, whatever the free slots
    assert p.next_dispatches(0.1) == []
    wake = p.wake_at(0.1)
    assert wake is not None and wake == pytest.approx(0.5)
    assert len(p.next_dispatches(0.5)) == 1
    assert len(p.next_dispatches(1.5)) == 2


def test_token_bucket_shape() -> None:
    b = TokenBucket(rate=10, burst=2, now=0.0)
    assert b.try_take(0.0) and b.try_take(0.0) and not b.try_take(0.0)
    assert b.ready_at(0.0) == pytest.approx(0.1)
    with pytest.raises(FleetError):
        TokenBucket(rate=0, burst=1)


def test_draining_node_only_gets_work_that_fits() -> None:
    tasks = [FleetTask("long", expected_s=600), FleetTask("short", expected_s=30)]
    p = SchedulerPolicy(tasks, drain_margin=1.0)
    p.add_node("car", 1, leave_at=100.0)
    assert p.next_dispatches(0.0) == []  # "long" heads the queue and fits nowhere
    p.add_node("desk", 1)
    got = {d.task_id: d.node_id for d in p.next_dispatches(0.0)}
    assert got == {"long": "desk", "short": "car"}


def test_drain_announced_later_stops_new_long_leases() -> None:
    tasks = [FleetTask(f"t{i}", expected_s=100) for i in range(3)]
    p = SchedulerPolicy(tasks, drain_margin=1.0)
    p.add_node("n", 1)
    (d,) = p.next_dispatches(0.0)
    p.drain_node("n", 150.0)
    p.finished(d.task_id, "passed")
    assert p.next_dispatches(60.0) == []  # 60 + 100 > 150
    lost = p.remove_node("n")
    assert lost == []
    p.add_node("m", 1)
    assert len(p.next_dispatches(60.0)) == 1


def test_lost_node_requeues_its_tasks_first_and_gives_up_after_max_losses() -> None:
    tasks = [FleetTask("a", max_losses=1), FleetTask("b")]
    p = SchedulerPolicy(tasks)
    p.add_node("x", 2)
    assert len(p.next_dispatches(0)) == 2
    assert sorted(p.remove_node("x")) == ["a", "b"]
    p.add_node("y", 1)
    (d,) = p.next_dispatches(0)
    assert d.attempt == 2
    p.lost(d.task_id)
    (d2,) = p.next_dispatches(0)
    p.lost(d2.task_id)
    decided = p.take_decisions()
    assert [(x.task_id, x.state) for x in decided] == [("a", "error")]


def test_spare_slots_are_kept_for_retries() -> None:
    tasks = [FleetTask(f"t{i}") for i in range(4)]
    p = SchedulerPolicy(tasks, spare_slots=1)
    p.add_node("a", 1)
    p.add_node("b", 1)
    first = p.next_dispatches(0)
    assert len(first) == 1  # one slot stays spare
    p.lost(first[0].task_id)
    again = p.next_dispatches(0)
    assert again[0].task_id == first[0].task_id and again[0].attempt == 2


def test_restore_resumes_without_rerunning_finished_tasks() -> None:
    p = SchedulerPolicy(chain(4))
    external = p.restore(
        {"t0": "passed", "t1": "running", "t2": "pending", "t3": "pending"}, {"t0": 1, "t1": 2}
    )
    assert external == ["t1"]
    p.add_node("n", 2)
    assert p.next_dispatches(0) == []  # t2 waits for t1, held elsewhere
    p.finished("t1", "passed")
    assert [d.task_id for d in p.next_dispatches(0)] == ["t2"]


def test_restore_closes_dependents_of_failed_tasks() -> None:
    p = SchedulerPolicy(chain(3))
    p.restore({"t0": "failed"})
    assert {(d.task_id, d.state) for d in p.take_decisions()} == {("t1", "error"), ("t2", "error")}
    assert p.done


def test_tasks_of_one_affinity_group_run_one_at_a_time_on_one_node() -> None:
    tasks = [
        FleetTask("n1", affinity="notes"),
        FleetTask("n2", affinity="notes"),
        FleetTask("o1", affinity="office"),
        FleetTask("free"),
        FleetTask("n3", ("o1",), affinity="notes"),
    ]
    p = SchedulerPolicy(tasks)
    p.add_node("a", 1)
    p.add_node("b", 2)
    first = {d.task_id: d.node_id for d in p.next_dispatches(0.0)}
    # One notes task at a time; the office and the free task fill the other slots.
    assert set(first) == {"n1", "o1", "free"}
    assert p.next_dispatches(0.0) == []  # no slot is free
    p.finished("free", "passed")
    assert p.next_dispatches(0.0) == []  # n2 waits for its group, not for a slot
    p.finished("n1", "passed")
    [d] = p.next_dispatches(0.0)
    assert (d.task_id, d.node_id) == ("n2", first["n1"])  # where the notes' state lives
    p.finished("n2", "passed")
    p.finished("o1", "passed")
    [d] = p.next_dispatches(0.0)
    assert (d.task_id, d.node_id) == ("n3", first["n1"])
    # The group's node is lost: its task is re-queued and the group may move.
    assert p.remove_node(first["n1"]) == ["n3"]
    [d] = p.next_dispatches(0.0)
    assert d.task_id == "n3" and d.node_id != first["n1"]
    p.finished("n3", "passed")
    assert p.done


def test_affinity_group_held_by_a_task_in_flight_elsewhere_after_resume() -> None:
    tasks = [FleetTask("n1", affinity="notes"), FleetTask("n2", affinity="notes")]
    p = SchedulerPolicy(tasks)
    assert p.restore({"n1": "running", "n2": "pending"}) == ["n1"]
    p.add_node("a", 2)
    assert p.next_dispatches(0.0) == []  # n1 still runs on an orphaned worker
    p.finished("n1", "passed")
    assert [d.task_id for d in p.next_dispatches(0.0)] == ["n2"]
