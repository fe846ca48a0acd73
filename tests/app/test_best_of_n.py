"""Best-of-N on the one run path: N rollouts in separate real desktops, the first to pass
wins, each recorded, the winner's work kept for what follows; refused where effects are shared.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import agentcorp
from agentcorp.errors import SpecError
from agentcorp.spec import load_company_text

COMPANY = """\
version: 1
company: best-of-n-test
roles:
  clerk: {title: Clerk, sandbox: desk}
sandboxes:
  desk:
    kind: desktop
    screen: [800, 600]
    apps:
      - {name: editor, command: [mousepad, "~/log.txt"], wait_for_window: log}
    files: {"~/log.txt": log.txt}
tasks:
  - id: write
    role: clerk
    description: Write the line.
    attempts: {n: 3, parallel: true}
    steps: [{key: ctrl+End}, {type: " first line"}, {key: ctrl+s}]
    success: {check: file_contains, path: "~/log.txt", text: WANTED}
  - id: after
    role: clerk
    description: Write after it.
    depends_on: [write]
    steps: [{key: ctrl+End}, {type: " second line"}, {key: ctrl+s}]
    success:
      all:
        - {check: file_contains, path: "~/log.txt", text: "first line second line"}
"""


def _company(tmp_path: Path, wanted: str) -> Path:
    folder = tmp_path / "co"
    folder.mkdir()
    (folder / "log.txt").write_text("log:")
    (folder / "company.yaml").write_text(COMPANY.replace("WANTED", wanted))
    return folder / "company.yaml"


def test_first_pass_wins_and_its_work_is_kept(tmp_path: Path) -> None:
    company = _company(tmp_path, "first line")
    report = agentcorp.run(company, sessions=tmp_path / "run", environ={})
    assert report.passed, [r.to_json() for r in report.results]
    write = report.result("write")
    assert write.status == "pass" and 1 <= write.attempts <= 3
    # Every rollout is its own recorded session; the others were cancelled or also ran.
    sessions = [p for p in (tmp_path / "run" / "write").iterdir() if p.is_dir()]
    assert len(sessions) == write.attempts
    # The winner's home became the desk's: the next task appended to its line, once.
    home = tmp_path / "run" / ".agentcorp" / "sandboxes" / "desk"
    assert (home / "log.txt").read_text().count("first line") == 1
    assert "first line second line" in (home / "log.txt").read_text()


def test_no_rollout_passes(tmp_path: Path) -> None:
    company = _company(tmp_path, "never typed")
    report = agentcorp.run(company, sessions=tmp_path / "run", environ={}, tasks=["write"])
    write = report.result("write")
    assert write.status == "fail" and write.attempts == 3
    assert write.reason.startswith("none of 3 attempts passed; last: ")
    assert len([p for p in (tmp_path / "run" / "write").iterdir() if p.is_dir()]) == 3


SHARED = """\
version: 1
company: shared
roles:
  agent: {title: Agent, sandbox: web}
  clerk: {title: Clerk, sandbox: desk}
sandboxes:
  web: {kind: browser, start_url: "http://127.0.0.1:9/"}
  desk:
    kind: desktop
    services: [{name: api, command: [python3, -m, http.server]}]
  plain: {kind: desktop}
tasks:
  - id: browse
    role: agent
    description: Browse.
    attempts: {n: 2}
    success: {check: url_matches, url: "http://127.0.0.1:9/*"}
  - id: desk
    role: clerk
    description: Use the desk.
    attempts: {n: 2}
    success: {check: file_exists, path: "~/x"}
  - id: judged
    role: clerk
    sandbox: plain
    description: Judged only (a judge model picks the winner).
    attempts: {n: 2}
    success: {check: llm_judge, question: Is it done?}
"""


def test_shared_side_effects_are_refused_at_validate_time() -> None:
    with pytest.raises(SpecError) as err:
        load_company_text(SHARED, "shared.yaml", check_files=False)
    got = [(i.path, i.message) for i in err.value.issues]
    assert got == [
        (
            "tasks[0].attempts",
            "best-of-N needs effects that stay in the sandbox; sandbox 'web' is a browser, "
            "whose pages live outside it",
        ),
        (
            "tasks[1].attempts",
            "best-of-N needs effects that stay in the sandbox; sandbox 'desk' starts service "
            "'api', shared by every attempt",
        ),
    ]


def test_attempts_change_the_task_hash_only_when_set(tmp_path: Path) -> None:
    from agentcorp.spec import task_spec_hash

    plain = load_company_text(
        COMPANY.replace("    attempts: {n: 3, parallel: true}\n", ""), "c.yaml", check_files=False
    )
    one = load_company_text(
        COMPANY.replace("{n: 3, parallel: true}", "{n: 1}"), "c.yaml", check_files=False
    )
    three = load_company_text(COMPANY, "c.yaml", check_files=False)
    h = [task_spec_hash(c, c.task("write")) for c in (plain, one, three)]
    # Rollouts change how a task runs, so its cache key and recording key; a task without
    # them hashes as before the field existed (caches and shipped recordings still hold).
    assert len(set(h)) == 3


JUDGED = """\
version: 1
company: judged
roles:
  clerk: {title: Clerk, sandbox: desk}
sandboxes:
  desk:
    kind: desktop
    screen: [800, 600]
    apps:
      - {name: editor, command: [mousepad, "~/log.txt"], wait_for_window: log}
    files: {"~/log.txt": log.txt}
tasks:
  - id: write
    role: clerk
    description: Write the line.
    attempts: {n: 2, parallel: false}
    steps: [{key: ctrl+End}, {type: " judged line"}, {key: ctrl+s}]
"""


def _judged(tmp_path: Path) -> Path:
    folder = tmp_path / "co"
    folder.mkdir()
    (folder / "log.txt").write_text("log:")
    (folder / "company.yaml").write_text(JUDGED)
    return folder / "company.yaml"


def _verdict(
    winner: object, reason: str = "it typed the line", **when: object
) -> dict[str, object]:
    import json

    return {
        "when": {"purpose": "judge", **when},
        "content": json.dumps({"winner": winner, "reason": reason}),
        "usage": {"prompt_tokens": 300, "completion_tokens": 20},
    }


def _judge_run(tmp_path: Path, script: list[dict[str, object]]) -> tuple[object, object]:
    from agentcorp.testing import FakeOpenAIServer

    with FakeOpenAIServer(script) as srv:
        report = agentcorp.run(
            _judged(tmp_path),
            sessions=tmp_path / "run",
            environ={},
            base_url=srv.base_url,
            planner_model="fake-judge",
            no_plan=True,
            no_cache=True,
        )
        return report, srv


def test_without_deterministic_checks_a_judge_picks_the_winner(tmp_path: Path) -> None:
    import json

    report, srv = _judge_run(
        tmp_path, [_verdict(9, "attempt nine"), _verdict(2, text_contains="not one of")]
    )
    write = report.result("write")  # type: ignore[attr-defined]
    assert write.status == "pass" and write.attempts == 2, write.to_json()
    assert write.reason == "the judge picked attempt 2: it typed the line"
    assert write.tokens == 640  # both judge calls (the first was re-asked)
    judge_calls = [r for r in srv.chat_requests if r.purpose == "judge"]  # type: ignore[attr-defined]
    assert len(judge_calls) == 2
    # The judge saw both rollouts' actions, as untrusted data, and the task.
    first = json.dumps(judge_calls[0].body)
    assert "Write the line." in first and first.count("judged line") >= 2
    assert "Attempt 1" in first and "Attempt 2" in first and "nonce=" in first
    sessions = sorted(p for p in (tmp_path / "run" / "write").iterdir() if p.is_dir())
    assert len(sessions) == 2
    kept = [p for p in sessions if (p / "judge.json").is_file()]
    assert len(kept) == 1 and kept[0].name.endswith("a2")
    audit = "".join(p.read_text() for p in (tmp_path / "run").glob("audit-*.jsonl"))
    assert '"kind":"judge"' in audit.replace(" ", "")


def test_a_judge_that_picks_none_fails_the_task(tmp_path: Path) -> None:
    report, _ = _judge_run(tmp_path, [_verdict(0, "neither saved the file")])
    write = report.result("write")  # type: ignore[attr-defined]
    assert write.status == "fail"
    assert write.reason == (
        "none of 2 attempts was chosen: the judge picked none: neither saved the file"
    )


def test_a_judged_task_without_a_model_is_refused_before_any_rollout(tmp_path: Path) -> None:
    report = agentcorp.run(_judged(tmp_path), sessions=tmp_path / "run", environ={})
    write = report.result("write")
    assert write.status == "error" and "needs a judge model" in write.reason
    assert not (tmp_path / "run" / "write").exists()
