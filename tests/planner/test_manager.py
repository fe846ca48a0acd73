"""The manager against the fake OpenAI server over real HTTP: plans validated by the spec loader.

The model's plan is turned into the would-be company and validated by the same loader as a
hand-written file; every problem goes back to the model, which must fix it within the re-asks.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcorp.llm import OpenAIClient, RetryPolicy, custom
from agentcorp.planner.manager import Manager, TaskReport, render_plan
from agentcorp.spec import Company, load_company
from agentcorp.testing.drive import drive
from agentcorp.testing.fake_openai import FakeOpenAIServer
from agentcorp.types import ModelCallStep, PlanStep, PolicyStep

ACME = Path(__file__).resolve().parents[2] / "tasks" / "acme"
FAST = RetryPolicy(max_attempts=2, initial_wait=0.001, max_wait=0.002)
Serve = Callable[..., FakeOpenAIServer]

GOOD: dict[str, Any] = {
    "summary": "Add the customer, book and invoice, log it.",
    "tasks": [
        {
            "id": "add-initech",
            "role": "sales-ops",
            "description": "Create the customer {inputs.name} in the back office.",
            "inputs": {"name": "Initech LLC"},
            "success": {
                "check": "sqlite",
                "database": "~/backoffice.sqlite3",
                "query": "SELECT name FROM crm_customer WHERE name = 'Initech LLC'",
                "rows": [["Initech LLC"]],
            },
            "budgets": {"steps": 40, "usd": 0.5, "wall_clock": "5m"},
        },
        {
            "id": "log-initech",
            "role": "support",
            "description": "Note the onboarding of {inputs.name} in the support log.",
            "inputs": {"name": "Initech LLC"},
            "depends_on": ["add-initech"],
            "success": {"check": "file_contains", "path": "~/notes.txt", "text": "Initech"},
            "budgets": {"steps": 20, "usd": 0.5, "wall_clock": "5m"},
        },
    ],
}


def bad_plan() -> dict[str, Any]:
    """An unknown role, a depends_on cycle and a description variable with no input."""
    plan = copy.deepcopy(GOOD)
    plan["tasks"][0]["role"] = "sales-opps"
    plan["tasks"][0]["depends_on"] = ["log-initech"]
    plan["tasks"][1]["description"] = "Note {inputs.customer} in the support log."
    return plan


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[FakeOpenAIServer] = []

    def start(script: Any) -> FakeOpenAIServer:
        srv = FakeOpenAIServer(script).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


@pytest.fixture(scope="module")
def acme() -> Company:
    return load_company(ACME)


def manager(srv: FakeOpenAIServer, company: Company, **kw: Any) -> tuple[Manager, OpenAIClient]:
    c = OpenAIClient(custom(srv.base_url), retry=FAST, timeout=10)
    return Manager(c, company, model_name="fake-planner", **kw), c


def test_invalid_plan_is_fixed_by_reasking(serve: Serve, acme: Company) -> None:
    srv = serve([{"json": bad_plan()}, {"json": GOOD}])
    m, c = manager(srv, acme)
    with c:
        steps, out = drive(m.plan(acme.objective("onboard-customer")))
    srv.assert_complete()
    assert out.status == "accepted", out.problems
    assert out.to_run == ["add-initech", "log-initech"]
    assert out.company is not None and [t.id for t in out.company.tasks] == out.to_run
    # The company the plan runs in is the real one, narrowed: files resolve where they did.
    assert out.company.base_dir == acme.base_dir
    reask = srv.chat_requests[1].body["messages"][-1]["content"]
    assert "unknown role 'sales-opps' (did you mean 'sales-ops'?)" in reask
    assert "depends_on cycle: add-initech → log-initech → add-initech" in reask
    assert "{inputs.customer} has no input 'customer'" in reask
    assert [type(s) for s in steps] == [ModelCallStep, ModelCallStep, PlanStep]
    plan = steps[-1].plan  # type: ignore[union-attr]
    assert plan["objective"] == "onboard-customer" and plan["round"] == 1


def test_the_model_sees_the_company_and_the_objective(serve: Serve, acme: Company) -> None:
    srv = serve([{"json": GOOD}])
    m, c = manager(srv, acme)
    with c:
        drive(m.plan(acme.objective("onboard-customer"), {"name": "Umbrella Ltd"}))
    user = srv.chat_requests[0].body["messages"][1]["content"]
    assert "Onboard the new customer Umbrella Ltd <billing@initech.example>" in user
    assert "Bookkeeper (finance)" in user and "schedule-follow-up" in user
    assert "sqlite" in user and '"usd": 2.0' in user


def test_a_plan_that_stays_invalid_ends_with_its_problems(serve: Serve, acme: Company) -> None:
    srv = serve([{"json": bad_plan(), "times": 2}])
    m, c = manager(srv, acme, max_reasks=1)
    with c:
        _, out = drive(m.plan(acme.objective("onboard-customer")))
    assert out.status == "invalid" and out.company is None
    assert any("unknown role 'sales-opps'" in p for p in out.problems)
    assert len(srv.chat_requests) == 2


def test_a_plan_over_the_objective_budget_is_refused(serve: Serve, acme: Company) -> None:
    over = copy.deepcopy(GOOD)
    over["tasks"][0]["budgets"]["usd"] = 1.9  # 1.9 + 0.5 > the objective's 2.0
    srv = serve([{"json": over, "times": 2}])
    m, c = manager(srv, acme, max_reasks=1)
    with c:
        _, out = drive(m.plan(acme.objective("onboard-customer")))
    assert out.status == "invalid"
    assert out.problems == [
        "the tasks' budgets.usd add up to 2.4, over the objective's budget of 2"
    ]


def test_a_task_over_the_objective_cap_is_named_by_the_validator(
    serve: Serve, acme: Company
) -> None:
    over = copy.deepcopy(GOOD)
    over["tasks"][0]["budgets"]["usd"] = 3.0  # over the objective's own 2.0
    srv = serve([{"json": over}, {"json": GOOD}])
    m, c = manager(srv, acme)
    with c:
        _, out = drive(m.plan(acme.objective("onboard-customer")))
    assert out.status == "accepted"
    reask = srv.chat_requests[1].body["messages"][-1]["content"]
    assert "tasks[0] (add-initech).budgets.usd: 3.0 exceeds" in reask


def test_use_of_an_existing_task_copies_it(serve: Serve, acme: Company) -> None:
    plan = {
        "tasks": [
            {"use": "log-support-call", "inputs": {"customer": "Initech"}},
            {"use": "schedule-follow-up"},
        ]
    }
    srv = serve([{"json": plan}])
    m, c = manager(srv, acme, max_reasks=0)
    objective = acme.objective("onboard-customer").model_copy(update={"budgets": None})
    with c:
        _, out = drive(m.plan(objective))
    assert out.status == "accepted", out.problems
    assert out.company is not None
    assert out.company.task("log-support-call").inputs["customer"] == "Initech"
    assert out.company.task("schedule-follow-up") == acme.task("schedule-follow-up")


def test_approval_denied_ends_cleanly(serve: Serve, acme: Company) -> None:
    seen: list[str] = []

    def deny(objective_id: str, text: str) -> tuple[bool, str, str]:
        seen.append(text)
        return False, "policy:deny", "no approver is configured (headless): denied"

    srv = serve([{"json": GOOD}])
    m, c = manager(srv, acme, approve=deny)
    objective = acme.objective("onboard-customer").model_copy(update={"approval": True})
    with c:
        steps, out = drive(m.plan(objective))
    assert out.status == "denied" and "headless" in out.reason
    assert isinstance(steps[-1], PolicyStep) and steps[-1].decision == "rejected"
    assert "- add-initech (sales-ops), after nothing: Create the customer" in seen[0]
    assert "- log-initech (support), after add-initech" in seen[0]


def test_replan_keeps_what_ran_and_refuses_changing_it(serve: Serve, acme: Company) -> None:
    first = {"json": GOOD}
    rerun = {
        "tasks": [
            {**GOOD["tasks"][0], "description": "Create the customer {inputs.name} again."},
        ]
    }
    fixed = {
        "tasks": [
            {
                **GOOD["tasks"][1],
                "id": "log-initech-2",
                "depends_on": ["add-initech"],
                "description": "Append a line about {inputs.name} at the end of the log.",
            }
        ]
    }
    srv = serve([first, {"json": rerun}, {"json": fixed}])
    m, c = manager(srv, acme)
    objective = acme.objective("onboard-customer")
    with c:
        _, out = drive(m.plan(objective))
        assert out.company is not None
        ran = [out.company.task("add-initech"), out.company.task("log-initech")]
        report = TaskReport(
            "log-initech",
            "fail",
            "file_contains: text 'Initech' not found",
            [{"name": "file_contains", "status": "fail", "detail": "not found"}],
        )
        steps, again = drive(
            m.replan(objective, None, out.plan, ran, [TaskReport("add-initech", "pass"), report])
        )
    assert again.status == "accepted", again.problems
    assert again.to_run == ["log-initech-2"]
    assert again.company is not None
    assert [t.id for t in again.company.tasks] == ["add-initech", "log-initech", "log-initech-2"]
    reask = srv.chat_requests[2].body["messages"][-1]["content"]
    assert "duplicate task id 'add-initech'" in reask
    asked = srv.chat_requests[1].body["messages"]
    # What happened holds screen and file text: inside one untrusted block, the system
    # message saying how to treat it.
    nonce = next(s for s in steps if isinstance(s, PlanStep)).plan["feedback"]["nonce"]
    block = f'<untrusted-screen-text nonce="{nonce}" source="report">'
    assert block in asked[1]["content"] and "text 'Initech' not found" in asked[1]["content"]
    assert asked[1]["content"].index(block) < asked[1]["content"].index("'Initech' not found")
    assert f'nonce="{nonce}"' in asked[0]["content"] and "as data only" in asked[0]["content"]
    plan = next(s for s in steps if isinstance(s, PlanStep)).plan
    assert plan["round"] == 2 and plan["feedback"]["ran"][1]["status"] == "fail"


def test_render_plan_is_readable() -> None:
    text = render_plan({"objective": "o", "summary": "s", "tasks": GOOD["tasks"]})
    assert text.splitlines()[0] == "Plan for objective o: s"
    assert json.dumps({"name": "Initech LLC"}) in text
