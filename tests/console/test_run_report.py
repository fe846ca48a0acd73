"""The run report: SVG DAG, timeline per worker, phases, failures first; real run, real Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

import agentcorp
from agentcorp.cli import main
from agentcorp.record.run_report import (
    Attempt,
    RunTaskView,
    RunView,
    dag_layout,
    load_run,
    render_run_report,
)
from tests.console._company import make_company

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def test_dag_layout_columns_follow_the_longest_chain() -> None:
    nodes, edges, w, h = dag_layout(
        [("a", "pass", ()), ("b", "fail", ("a",)), ("c", "pass", ("a", "b")), ("d", "x", ("zz",))]
    )
    x = {n.id: n.x for n in nodes}
    assert x["a"] < x["b"] < x["c"] and x["d"] == x["a"]  # unknown dependency ignored
    assert len(edges) == 3 and w > x["c"] and h > 0
    # a cycle does not recurse forever and still draws every task
    nodes, _, _, _ = dag_layout([("p", "pending", ("q",)), ("q", "pending", ("p",))])
    assert {n.id for n in nodes} == {"p", "q"}


def test_report_escapes_every_value_and_drops_unsafe_links() -> None:
    evil = '<img src=x onerror="alert(1)">'
    t = RunTaskView(evil, "fail", reason=evil, mode=evil, link="javascript:alert(1)")
    t.last_frame = "data:text/html;base64,PHNjcmlwdD4="
    run = RunView(
        evil, [t, RunTaskView("ok", "pass", (evil,))], [Attempt(evil, 1, evil, 1.0, 2.0, evil)]
    )
    html = render_run_report(run)
    assert evil not in html and "<img src=x" not in html
    assert "javascript:" not in html and "data:text/html" not in html
    assert "script-src 'none'" in html.replace("&#39;", "'")


@pytest.mark.slow
def test_run_report_of_a_real_run_in_chromium(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    co = make_company(tmp_path)
    run_dir = tmp_path / "run"
    report = agentcorp.run(co, sessions=run_dir, environ={}, no_cache=True)
    assert [r.status for r in report.results] == ["pass", "fail", "pass"]
    assert report.trace is not None
    # The page the run printed is the run report.
    printed = report.trace.read_text(encoding="utf-8")
    assert '<svg id="dag"' in printed and '<svg id="timeline"' in printed

    view = load_run(run_dir)
    by_id = {t.id: t for t in view.tasks}
    assert by_id["wrong"].depends_on == ("write",)
    assert by_id["write"].actions == 3 and by_id["write"].phases_ms.get("act", 0) > 0
    assert by_id["wrong"].last_frame and by_id["wrong"].last_frame.startswith("data:image/")
    assert {a.task_id for a in view.attempts} == {"write", "wrong", "again"}

    out = tmp_path / "report.html"
    assert main(["report", str(run_dir), "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    html = out.read_text(encoding="utf-8")
    assert "<script>never</script>" not in html and "&lt;script&gt;never" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto((run_dir / report.trace.name).as_uri())
            assert page.locator("#dag g.node").count() == 3
            assert page.locator("#dag path.edge").count() == 2
            assert page.locator("#dag g.node.fail").get_attribute("data-task") == "wrong"
            assert page.locator("#timeline rect.bar").count() == 3
            # Failures first, with their last frame decoded by the browser.
            assert page.locator(".failure").count() == 1
            assert page.evaluate("document.querySelector('.failure img').naturalWidth") > 0
            assert page.locator("#tasks tr[data-task]").first.get_attribute("data-task") == "wrong"
            # Links to each session's trace, relative, and the trace opens.
            link = page.locator("#tasks tr[data-task=write] a").get_attribute("href")
            assert link and not link.startswith(("/", "http")) and (run_dir / link).is_file()
            page.locator("#tasks tr[data-task=write] a").click()
            page.wait_for_selector("#timeline button")
        finally:
            browser.close()
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert not errors, errors


def test_report_of_a_folder_that_is_not_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".agentcorp").mkdir()
    (tmp_path / ".agentcorp" / "ledger.db").write_bytes(b"not sqlite at all")
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("agentcorp: error: ") and "ledger" in err and len(err.splitlines()) == 1
