"""Re-record the sample company's shipped recording(s) with a scripted loopback model.

Also the manager's session of each objective (``--objective``): the scripted model writes the
plan in ``OBJECTIVES``, the plan runs for real, and the session lands in
``tasks/acme/recordings/objective.<id>/``.

``python bench/record_demo.py`` runs ``agentcorp run tasks/acme`` for the model-driven task
(and the task it depends on) against the real loopback ``FakeOpenAIServer`` playing the
model, then replaces ``tasks/acme/recordings/<task-id>/`` with the new session. Run it
whenever such a task's spec changes (its spec hash no longer matches the recording, and
``agentcorp run`` says so). Prints one JSON line: the session kept and its size.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ACME = ROOT / "tasks" / "acme"

#: What the "model" answers, in order, for each model-driven task (keyboard only, so the
#: replay does not depend on where the text sits on the screen).
SCRIPTS: dict[str, list[dict[str, Any]]] = {
    "schedule-follow-up": [
        {
            "when": {"purpose": "act"},
            "tool_calls": [
                {
                    "name": "key",
                    "arguments": {"keys": "ctrl+End", "intent": "go to the empty last line"},
                }
            ],
        },
        {
            # Several calls in one reply: they run in order (docs/model_contract.md).
            "when": {"purpose": "act"},
            "content": "The caret is on the empty last line.",
            "tool_calls": [
                {
                    "name": "type",
                    "arguments": {
                        "text": "2026-11-03 Follow-up: call Globex back about INV-1043.",
                        "intent": "add the follow-up line",
                    },
                },
                {"name": "key", "arguments": {"keys": "Return"}},
                {"name": "key", "arguments": {"keys": "ctrl+s", "intent": "save the notes"}},
            ],
        },
        {
            "when": {"purpose": "act"},
            "tool_calls": [
                {"name": "done", "arguments": {"summary": "Follow-up line added and saved."}}
            ],
        },
    ],
}
_LOGIN = [
    {"type": "admin", "into": "Username"},
    {"type": "${secrets.BACKOFFICE_PASSWORD}", "into": "Password"},
    {"key": "Return"},
]

#: The manager's plan for each objective of the sample company, as its model writes it
#: (docs/manager.md): the shipped recording of the manager is this plan, validated.
ONBOARDING: dict[str, Any] = {
    "summary": "Create the customer in the back office, book the first invoice in the books, "
    "invoice it in the back office, and log the onboarding in the support log.",
    "tasks": [
        {
            "id": "onboard-add-customer",
            "role": "sales-ops",
            "description": "Create the customer {inputs.name} <{inputs.email}> of company "
            "{inputs.company} in the back office.",
            "inputs": {
                "name": "Initech LLC",
                "email": "billing@initech.example",
                "company": "Initech",
            },
            "steps": [
                {"open_url": "http://127.0.0.1:8765/admin/login/?next=/admin/crm/customer/add/"},
                *_LOGIN,
                {"wait_for": "Add customer"},
                {"type": "{inputs.name}", "into": "Name"},
                {"type": "{inputs.email}", "into": "Email"},
                {"type": "{inputs.company}", "into": "Company"},
                {"click": "Save"},
                {"wait_for": "was added successfully"},
            ],
            "success": {
                "check": "sqlite",
                "database": "~/backoffice.sqlite3",
                "query": "SELECT name, company FROM crm_customer "
                "WHERE email = 'billing@initech.example'",
                "rows": [["Initech LLC", "Initech"]],
            },
            "budgets": {"steps": 40, "usd": 0.5, "wall_clock": "5m"},
        },
        {
            "id": "onboard-book-invoice",
            "role": "bookkeeper",
            "description": "Add invoice {inputs.number} for {inputs.customer} "
            "({inputs.amount}) as a new row at the bottom of the books, then save them as "
            "~/{inputs.file}.",
            "inputs": {
                "number": "INV-2001",
                "date": "2026-12-01",
                "customer": "Initech",
                "amount": "900.00",
                "file": "books-initech.gnumeric",
            },
            "steps": [
                {"key": "ctrl+End"},
                {"key": "Home"},
                {"key": "Down"},
                {"type": "{inputs.number}"},
                {"key": "Tab"},
                {"type": "{inputs.date}"},
                {"key": "Tab"},
                {"type": "{inputs.customer}"},
                {"key": "Tab"},
                {"type": "{inputs.amount}"},
                {"key": "Tab"},
                {"type": "sent"},
                {"key": "Return"},
                {"key": "ctrl+s"},
                {"wait_for": "Save the current workbook as"},
                {"key": "ctrl+a"},
                {"type": "{inputs.file}"},
                {"key": "Return"},
                # The window's title, not the dialog's name field: the book was written.
                {"wait_for": "books-initech.gnumeric - Gnumeric"},
            ],
            "success": {
                "check": "command",
                "name": "invoice row saved in the books",
                "argv": [
                    "ssconvert",
                    "--export-type=Gnumeric_stf:stf_csv",
                    "~/books-initech.gnumeric",
                    "fd://1",
                ],
                "stdout_regex": "(?m)^INV-2001,[^,]*,Initech,900(\\.0+)?,sent\\r?$",
            },
            "budgets": {"steps": 40, "usd": 0.5, "wall_clock": "5m"},
        },
        {
            "id": "onboard-create-invoice",
            "role": "bookkeeper",
            "sandbox": "backoffice",
            "description": "Create invoice {inputs.number} over {inputs.amount} for "
            "{inputs.customer} in the back office, matching the books.",
            "inputs": {"number": "INV-2001", "amount": "900.00", "customer": "Initech LLC"},
            "depends_on": ["onboard-add-customer", "onboard-book-invoice"],
            "steps": [
                {"open_url": "http://127.0.0.1:8765/admin/login/?next=/admin/crm/invoice/add/"},
                *_LOGIN,
                {"wait_for": "Add invoice"},
                {"type": "{inputs.number}", "into": "Number"},
                {"type": "{inputs.customer}", "into": "Customer"},
                {"type": "{inputs.amount}", "into": "Amount"},
                {"click": "Save"},
                {"wait_for": "was added successfully"},
            ],
            "success": {
                "check": "sqlite",
                "database": "~/backoffice.sqlite3",
                "query": "SELECT count(*) FROM crm_invoice AS i JOIN crm_customer AS c "
                "ON c.id = i.customer_id WHERE i.number = 'INV-2001' "
                "AND c.email = 'billing@initech.example' AND CAST(i.amount AS REAL) = 900.0",
                "rows": [[1]],
            },
            "budgets": {"steps": 30, "usd": 0.5, "wall_clock": "5m"},
        },
        {
            "id": "onboard-log",
            "role": "support",
            "description": "Log the onboarding of {inputs.customer} in the support log and "
            "save it.",
            "inputs": {"customer": "Initech LLC"},
            "depends_on": ["onboard-create-invoice"],
            "steps": [
                {"key": "ctrl+End"},
                {"type": "2026-12-01 Onboarded {inputs.customer}: customer, books, INV-2001."},
                {"key": "Return"},
                {"key": "ctrl+s"},
            ],
            "success": {
                "check": "file_contains",
                "path": "~/notes.txt",
                "text": "Onboarded Initech LLC: customer, books, INV-2001.",
            },
            "budgets": {"steps": 10, "usd": 0.5, "wall_clock": "5m"},
        },
    ],
}
OBJECTIVES: dict[str, list[dict[str, Any]]] = {
    "onboard-customer": [{"when": {"purpose": "manager"}, "json": ONBOARDING}],
}

#: Tasks run first (scripted, no model calls) so the recorded screen is the one the offline
#: run will show.
BEFORE = {"schedule-follow-up": ["log-support-call"]}


def record(task_id: str, company: Path = ACME, out_root: Path | None = None) -> Path:
    """Record ``task_id`` once and put the session under ``<company>/recordings/<task_id>/``."""
    from agentcorp.cli import main
    from agentcorp.testing.fake_openai import FakeOpenAIServer

    dest_root = (out_root or company / "recordings") / task_id
    with (
        tempfile.TemporaryDirectory(prefix="agentcorp-record-") as tmp,
        FakeOpenAIServer(SCRIPTS[task_id]) as srv,
    ):
        sessions = Path(tmp) / "s"
        args = [
            "run",
            str(company),
            "--base-url",
            srv.base_url,
            "--no-plan",
            "--no-cache",
            "--sessions",
            str(sessions),
        ]
        for t in [*BEFORE.get(task_id, []), task_id]:
            args += ["--task", t]
        code = main(args)
        if code != 0:
            raise SystemExit(f"record_demo: the recording run of {task_id} failed (exit {code})")
        [manifest] = list((sessions / task_id).glob("*/manifest.json"))
        shutil.rmtree(dest_root, ignore_errors=True)
        dest_root.mkdir(parents=True)
        dest = dest_root / manifest.parent.name
        shutil.copytree(manifest.parent, dest)
    # Paths of the recording machine mean nothing elsewhere (a live replay of the shipped
    # session takes --company); the manifest is not covered by any hash.
    doc = json.loads((dest / "manifest.json").read_text(encoding="utf-8"))
    for key in ("audit", "company_file"):
        doc.pop(key, None)
    (dest / "manifest.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return dest


def record_objective(objective_id: str, company: Path = ACME, out_root: Path | None = None) -> Path:
    """Run the objective once with the scripted manager; keep its session as the shipped one.

    The plan's tasks run for real (offline, by their steps), so the kept session is one whose
    plan passed; it goes under ``<company>/recordings/objective.<id>/``.
    """
    from agentcorp.app.objectives import manager_task_id, run_objective
    from agentcorp.llm import OpenAIClient, custom
    from agentcorp.testing.fake_openai import FakeOpenAIServer

    dest_root = (out_root or company / "recordings") / manager_task_id(objective_id)
    with (
        tempfile.TemporaryDirectory(prefix="agentcorp-record-") as tmp,
        FakeOpenAIServer(OBJECTIVES[objective_id]) as srv,
        OpenAIClient(custom(srv.base_url)) as client,
    ):
        report = run_objective(
            company, objective_id, sessions=Path(tmp) / "s", model=client, no_cache=True
        )
        if not report.passed or report.session is None:
            raise SystemExit(
                f"record_demo: the recording run of objective {objective_id} did not pass: "
                f"{report.status}: {report.reason} {report.problems} "
                + "; ".join(f"{t.task_id}: {t.status} {t.reason}" for t in report.tasks)
            )
        shutil.rmtree(dest_root, ignore_errors=True)
        dest_root.mkdir(parents=True)
        dest = dest_root / "manager"
        shutil.copytree(report.session, dest)
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--task",
        action="append",
        choices=sorted(SCRIPTS),
        help="Task to re-record (default: all model-driven sample tasks).",
    )
    parser.add_argument(
        "--objective",
        action="append",
        choices=sorted(OBJECTIVES),
        help="Objective whose manager to re-record (default: all, unless --task is given).",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="Recordings root (default tasks/acme/recordings)."
    )
    ns = parser.parse_args()
    # The recording must not depend on a real key or a real endpoint in the environment.
    for var in (
        "XAI_API_KEY",
        "OPENAI_API_KEY",
        "AGENTCORP_API_KEY",
        "AGENTCORP_BASE_URL",
        "AGENTCORP_PROVIDER",
        "AGENTCORP_ACTOR_MODEL",
        "AGENTCORP_PLANNER_MODEL",
    ):
        os.environ.pop(var, None)
    for task_id in ns.task or ([] if ns.objective else sorted(SCRIPTS)):
        dest = record(task_id, out_root=ns.out)
        size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
        print(json.dumps({"task": task_id, "session": str(dest), "bytes": size}))
    for objective_id in ns.objective or ([] if ns.task else sorted(OBJECTIVES)):
        dest = record_objective(objective_id, out_root=ns.out)
        size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
        print(json.dumps({"objective": objective_id, "session": str(dest), "bytes": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
