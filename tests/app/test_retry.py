"""Task retries: each attempt starts from the sandbox as the first one found it, after the
spec's backoff (real Xvfb, real mousepad)."""

from __future__ import annotations

import json
from pathlib import Path

import agentcorp

COMPANY = """\
version: 1
company: retry-test
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
    description: Append a line and save; the check fails the first time it runs.
    retry: {max_attempts: 3, backoff: 2s}
    steps: [{key: ctrl+End}, {type: " one line"}, {key: ctrl+s}]
    success:
      all:
        - {check: file_contains, path: "~/log.txt", text: "one line"}
        - {check: command, argv: [sh, -c, "test -e FLAG || { touch FLAG; exit 1; }"]}
"""


def test_a_retry_starts_from_the_home_the_first_attempt_found(tmp_path: Path) -> None:
    folder = tmp_path / "co"
    folder.mkdir()
    (folder / "log.txt").write_text("log:")
    flag = tmp_path / "flag"
    (folder / "company.yaml").write_text(COMPANY.replace("FLAG", str(flag)))
    report = agentcorp.run(folder, sessions=tmp_path / "run", environ={})
    write = report.result("write")
    assert write.status == "pass" and write.attempts == 2, write.to_json()
    first, second = sorted(p for p in (tmp_path / "run" / "write").iterdir() if p.is_dir())
    gap = _times(second)[0] - _times(first)[-1]
    assert gap >= 2.0, gap  # the spec's backoff was waited (a lower bound: never flaky)
    log = (tmp_path / "run" / ".agentcorp" / "sandboxes" / "desk" / "log.txt").read_text()
    # The failed first attempt's saved line was put back: the file holds one, not two.
    assert log.count("one line") == 1, log


def _times(session: Path) -> list[float]:
    lines = (session / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [float(json.loads(line)["t"]) for line in lines if '"t"' in line]
