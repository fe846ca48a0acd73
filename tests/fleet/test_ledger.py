"""The SQLite ledger: state machine, fencing, expiry, side effects, shared rate limit, bad files."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from agentcorp.errors import ConfigError, FencedOut, FleetError
from agentcorp.fleet.ledger import MemoryLedger, SqliteLedger, check_transition
from agentcorp.fleet.model import EpisodeContext, FleetTask, idempotency_key

TASKS = [FleetTask("a"), FleetTask("b", ("a",))]


@pytest.fixture
def ledger(tmp_path: Path) -> SqliteLedger:
    led = SqliteLedger(tmp_path / "run.db")
    led.ensure_tasks(TASKS, "company.yaml")
    yield led  # type: ignore[misc]
    led.close()


def test_wal_mode_and_initial_state(ledger: SqliteLedger) -> None:
    mode = sqlite3.connect(ledger.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert ledger.counts() == {"pending": 2}
    assert ledger.meta("source") == "company.yaml"


def test_lease_start_finish_and_fencing(ledger: SqliteLedger) -> None:
    l1 = ledger.lease("a", "w1", "host", lease_s=60)
    assert (l1.attempt, l1.epoch) == (1, 1)
    ledger.start("a", l1.epoch)
    assert ledger.requeue("a", l1.epoch, "worker died")
    l2 = ledger.lease("a", "w2", "host", lease_s=60)
    assert (l2.attempt, l2.epoch) == (2, 2)
    # The first holder comes back late: every write it tries is rejected.
    with pytest.raises(FencedOut, match="epoch 1 rejected"):
        ledger.heartbeat("a", l1.epoch, 60)
    with pytest.raises(FencedOut):
        ledger.finish("a", l1.epoch, "passed")
    ledger.start("a", l2.epoch)
    ledger.finish("a", l2.epoch, "passed", detail="ok", cost=0.25)
    row = ledger.row("a")
    assert row is not None and (row.state, row.attempt, row.cost) == ("passed", 2, 0.25)
    # A terminal state is final, even for its own holder.
    with pytest.raises(FencedOut):
        ledger.finish("a", l2.epoch, "failed")
    outcomes = [a["outcome"] for a in ledger.attempts()]
    assert outcomes == ["lost: worker died", "passed"]


def test_cannot_lease_a_finished_or_leased_task(ledger: SqliteLedger) -> None:
    lease = ledger.lease("a", "w", "h", 60)
    with pytest.raises(FleetError, match="cannot lease from state leased"):
        ledger.lease("a", "w", "h", 60)
    ledger.finish("a", lease.epoch, "passed")
    with pytest.raises(FleetError, match="state passed"):
        ledger.lease("a", "w", "h", 60)


def test_expiry_requeues_and_heartbeat_extends(ledger: SqliteLedger) -> None:
    la = ledger.lease("a", "w", "h", lease_s=0.05)
    lb = ledger.lease("b", "w", "h", lease_s=60)
    ledger.heartbeat("b", lb.epoch, 60)
    expired = ledger.expire(now=time.time() + 1)
    assert expired == [("a", la.epoch)]
    row = ledger.row("a")
    assert row is not None and row.state == "pending" and row.losses == 1


def test_decide_follows_the_state_machine(ledger: SqliteLedger) -> None:
    ledger.decide("b", "error", "skipped")
    with pytest.raises(FleetError, match="illegal transition error -> budget_exceeded"):
        ledger.decide("b", "budget_exceeded", "x")
    with pytest.raises(FleetError):
        check_transition("x", "pending", "passed")


def test_side_effects_are_claimed_once_and_fenced(ledger: SqliteLedger) -> None:
    lease = ledger.lease("a", "w", "h", 60)
    ctx = EpisodeContext("a", lease.attempt, lease.epoch, "w", "h", effects=ledger)
    assert ctx.claim_effect(1) is True
    assert ctx.claim_effect(1) is False
    assert ctx.idempotency_key(1) == "a/1"
    assert ctx.env()["AGENTCORP_IDEMPOTENCY_KEY"] == "a"
    assert idempotency_key(7, ctx.env()) == "a/7"
    ctx.effect_done(1, "charged 10 EUR")
    ledger.requeue("a", lease.epoch, "lost")
    with pytest.raises(FencedOut):
        ctx.claim_effect(2)
    with pytest.raises(FencedOut):
        ctx.effect_done(1, "again")


def test_a_dead_attempts_claim_is_honoured_by_the_next(ledger: SqliteLedger) -> None:
    """Issue 16 defect 5: the key has no attempt number, so attempt 2 never redoes it."""
    first = ledger.lease("a", "w1", "h", 60)
    one = EpisodeContext("a", first.attempt, first.epoch, "w1", "h", effects=ledger)
    assert one.claim_effect("charge") is True
    one.effect_done("charge", "charged")
    assert one.claim_effect("mail") is True  # claimed, then the attempt dies before it is done
    ledger.requeue("a", first.epoch, "lost: worker died")
    second = ledger.lease("a", "w2", "h", 60)
    two = EpisodeContext("a", second.attempt, second.epoch, "w2", "h", effects=ledger)
    assert second.attempt == 2
    assert two.claim_effect("charge") is False
    assert two.effect_outcome("charge") == "charged"
    assert two.claim_effect("mail") is False  # honoured: re-check the world, never redo
    assert two.effect_outcome("mail") is None
    assert two.claim_effect("other") is True


def test_idempotency_key_outside_an_episode_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="AGENTCORP_IDEMPOTENCY_KEY is not set"):
        idempotency_key(1, {})


def test_shared_token_bucket_row(ledger: SqliteLedger, tmp_path: Path) -> None:
    other = SqliteLedger(tmp_path / "run.db")  # a second process's view of the same file
    try:
        waits = [
            ledger.take_token("xai", 1.0, 2),
            other.take_token("xai", 1.0, 2),
            ledger.take_token("xai", 1.0, 2),
        ]
    finally:
        other.close()
    assert waits[0] == 0 and waits[1] == 0 and waits[2] > 0.5


def test_resume_with_another_task_graph_is_refused(ledger: SqliteLedger) -> None:
    with pytest.raises(ConfigError, match="belongs to another task graph"):
        ledger.ensure_tasks([FleetTask("a")], "other.yaml")


@pytest.mark.parametrize("content", [b"this is not sqlite at all" * 40, b"\x00\xff" * 3000])
def test_garbage_ledger_file_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        SqliteLedger(bad)
    msg = str(err.value)
    assert "\n" not in msg and "bad.db" in msg and "not an agentcorp ledger" in msg
    assert bad.read_bytes() == content  # nothing overwritten


def test_foreign_sqlite_file_is_refused_without_changes(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE meta(key TEXT, value TEXT)")
    con.execute("INSERT INTO meta VALUES ('format', 'something-else')")
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match="unknown ledger format 'something-else'"):
        SqliteLedger(db)
    with pytest.raises(ConfigError, match="no such ledger"):
        SqliteLedger(tmp_path / "missing.db", create=False)
    with pytest.raises(ConfigError, match="is a folder"):
        SqliteLedger(tmp_path)


def test_memory_ledger_has_the_same_fencing() -> None:
    m = MemoryLedger(["a"])
    l1 = m.lease("a")
    m.start("a", l1.epoch)
    assert m.requeue("a", l1.epoch)
    l2 = m.lease("a")
    with pytest.raises(FencedOut):
        m.finish("a", l1.epoch, "passed", effect_key="a")
    m.start("a", l2.epoch)
    m.finish("a", l2.epoch, "passed", effect_key="a")
    assert m.terminal_writes == [1] and m.fenced == 1 and m.duplicate_effects == 0


def test_other_sqlite_database_is_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE users(id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(ConfigError, match="foreign tables"):
        SqliteLedger(db)
    tables = sqlite3.connect(db).execute("SELECT name FROM sqlite_master").fetchall()
    assert tables == [("users",)]
