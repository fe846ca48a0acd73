"""Success-check evaluation: every leaf kind, the combinators, and errors that never crash."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from agentcorp.checks import CheckContext, evaluate, evaluate_steps
from agentcorp.spec.models import Check
from agentcorp.testing.fake_computer import FakeComputer, Widget
from agentcorp.testing.scripted import ScriptedLLM
from agentcorp.types import Box


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "books.csv").write_text("id,amount\nINV-1042,120.00\n", encoding="utf-8")
    with sqlite3.connect(tmp_path / "db.sqlite3") as c:
        c.execute("create table t (a text, b int)")
        c.execute("insert into t values ('x', 1), ('y', 2)")
    return tmp_path


@pytest.fixture
def server() -> Iterator[str]:
    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"items": [{"status": "paid"}]}).encode()
            self.send_response(200 if self.path == "/ok" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass

    srv = HTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def ev(tree: Any, ctx: CheckContext) -> tuple[str, list[tuple[str, str]]]:
    status, leaves = evaluate(tree, ctx)
    return status, [(o.status, o.detail) for o in leaves]


def test_file_checks(home: Path) -> None:
    ctx = CheckContext(home=home)
    assert ev({"check": "file_exists", "path": "~/books.csv"}, ctx)[0] == "pass"
    tree = {"check": "file_contains", "path": "~/books.csv", "text": "INV-1042"}
    assert ev(tree, ctx)[0] == "pass"
    s, leaves = ev({"check": "file_contains", "path": "~/books.csv", "text": "INV-9"}, ctx)
    assert s == "fail" and leaves[0][1] == "~/books.csv does not contain 'INV-9'"
    assert (
        ev({"check": "file_contains", "path": "~/books.csv", "regex": r"^INV-\d+,120"}, ctx)[0]
        == "pass"
    )
    assert ev({"check": "file_exists", "path": "~/nope"}, ctx)[0] == "fail"


def test_spec_models_are_accepted(home: Path) -> None:
    tree = TypeAdapter(Check).validate_python(
        {
            "all": [
                {"check": "file_exists", "path": "~/books.csv"},
                {"not": {"check": "file_exists", "path": "~/missing"}},
                {
                    "any": [
                        {"check": "file_exists", "path": "~/nope"},
                        {
                            "check": "sqlite",
                            "database": "~/db.sqlite3",
                            "query": "select a, b from t order by b",
                            "rows": [["x", 1], ["y", 2]],
                        },
                    ]
                },
            ]
        }
    )
    status, steps = evaluate_steps(tree, CheckContext(home=home), step=7)
    assert status == "pass"
    assert [s.status for s in steps] == ["pass", "fail", "fail", "pass", "pass"]
    assert steps[-1].name == "success" and steps[-1].detail == "2/4 passed"


def test_combinator_error_semantics(home: Path) -> None:
    ctx = CheckContext(home=home)
    err = {"check": "url_matches", "url": "*"}  # no browser -> error
    ok = {"check": "file_exists", "path": "~/books.csv"}
    bad = {"check": "file_exists", "path": "~/x"}
    assert ev({"all": [ok, err]}, ctx)[0] == "error"
    assert ev({"all": [bad, err]}, ctx)[0] == "fail"
    assert ev({"any": [bad, err]}, ctx)[0] == "error"
    assert ev({"any": [ok, err]}, ctx)[0] == "pass"
    assert ev({"not": err}, ctx)[0] == "error"


def test_command_check(home: Path) -> None:
    ctx = CheckContext(home=home, env={"X_CHECK": "42"})
    py = sys.executable
    s, _ = ev(
        {
            "check": "command",
            "argv": [py, "-c", "import os;print(os.environ['X_CHECK'])"],
            "stdout_contains": "42",
        },
        ctx,
    )
    assert s == "pass"
    s, leaves = ev({"check": "command", "argv": [py, "-c", "raise SystemExit(3)"]}, ctx)
    assert s == "fail" and leaves[0][1].startswith("exit code 3, expected 0")
    s, leaves = ev({"check": "command", "argv": ["/nonexistent/tool"]}, ctx)
    assert s == "error" and "FileNotFoundError" in leaves[0][1]
    s, _ = ev({"check": "command", "argv": ["cat", "~/books.csv"], "stdout_regex": "INV-10"}, ctx)
    assert s == "pass"


def test_http_check(home: Path, server: str) -> None:
    ctx = CheckContext(home=home)
    assert (
        ev(
            {
                "check": "http",
                "url": f"{server}/ok",
                "json_path": "items.0.status",
                "value": "paid",
            },
            ctx,
        )[0]
        == "pass"
    )
    s, leaves = ev({"check": "http", "url": f"{server}/missing"}, ctx)
    assert s == "fail" and "answered 404, expected 200" in leaves[0][1]
    s, leaves = ev({"check": "http", "url": f"{server}/ok", "json_path": "items.5.status"}, ctx)
    assert s == "fail"
    s, leaves = ev({"check": "http", "url": "http://127.0.0.1:1/", "timeout": 1}, ctx)
    assert s == "error" and "ConnectError" in leaves[0][1]


def test_sqlite_check_errors_and_readonly(home: Path) -> None:
    ctx = CheckContext(home=home)
    s, leaves = ev(
        {"check": "sqlite", "database": "~/db.sqlite3", "query": "select nope from t", "rows": []},
        ctx,
    )
    assert s == "error" and "no such column" in leaves[0][1]
    s, leaves = ev(
        {
            "check": "sqlite",
            "database": "~/db.sqlite3",
            "query": "insert into t values ('z', 3)",
            "rows": [],
        },
        ctx,
    )
    assert s == "error" and "readonly" in leaves[0][1]


def test_screen_and_url(home: Path) -> None:
    fc = FakeComputer(
        [Widget("l", "label", Box(10, 10, 200, 30), "Invoice saved")],
        url="http://127.0.0.1:8000/admin/books/",
    )
    ctx = CheckContext(home=home, computer=fc, grounder=fc.widget_grounder(), url=lambda: fc.url)
    assert ev({"check": "screen_contains", "text": "invoice SAVED"}, ctx)[0] == "pass"
    assert ev({"check": "screen_contains", "text": "Deleted"}, ctx)[0] == "fail"
    assert ev({"check": "url_matches", "url": "http://127.0.0.1:8000/admin/*"}, ctx)[0] == "pass"
    assert ev({"check": "url_matches", "regex": "/books/$"}, ctx)[0] == "pass"
    assert ev({"check": "url_matches", "regex": "/users/"}, ctx)[0] == "fail"


def test_llm_judge_only_with_a_model(home: Path) -> None:
    fc = FakeComputer()
    tree = {"check": "llm_judge", "question": "Is the invoice saved?"}
    s, leaves = ev(tree, CheckContext(home=home, computer=fc))
    assert s == "error" and "needs a model" in leaves[0][1]
    judge = ScriptedLLM(['{"answer": "yes", "reason": "I see it"}', "garbage"])
    ctx = CheckContext(home=home, computer=fc, judge=judge, judge_model="j")
    assert ev(tree, ctx)[0] == "pass"
    s, leaves = ev(tree, ctx)
    assert s == "error" and "judge reply is not" in leaves[0][1]
    assert judge.calls[0].purpose == "judge"


def test_garbage_tree_is_error_not_crash(home: Path) -> None:
    ctx = CheckContext(home=home)
    s, leaves = ev({"check": "teleport"}, ctx)
    assert s == "error" and leaves[0][1] == "unknown check 'teleport'"
    s, leaves = ev(["not", "a", "tree"], ctx)
    assert s == "error" and leaves[0][1].startswith("invalid check tree:")
    s, leaves = ev({"all": []}, ctx)
    assert s == "error"
