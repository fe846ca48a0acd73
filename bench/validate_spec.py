"""Validation time of a generated 1,000-task company vs a plain ruamel safe load of the same file.

Usage: python bench/validate_spec.py [--json] [--tasks N] [--runs N]
Prints JSON: validate_1000_tasks_ms_p50, baseline_yaml_parse_ms_p50, ratio_vs_parse.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from ruamel.yaml import YAML

from agentcorp.spec import load_company

HEADER = """\
version: 1
company: bench-co
defaults:
  models: {planner: grok-4, actor: grok-4-fast}
  budgets: {steps: 200, tokens: 2000000, usd: 5.0, wall_clock: 30m}
secrets:
  - {name: PASSWORD, allow_domains: ["127.0.0.1:8765"], allow_fields: [Password]}
policy:
  forbid_keys: [ctrl+alt+Delete]
  forbid_text: ['(?i)rm\\s+-rf']
roles:
  clerk: {title: Clerk, sandbox: desk}
  agent: {title: Agent, sandbox: web}
sandboxes:
  desk:
    kind: desktop
    apps: [{name: editor, command: [mousepad, "~/notes.txt"], wait_for_window: notes}]
  web: {kind: browser, start_url: "http://127.0.0.1:8765/", allow_urls: ["http://127.0.0.1:8765/*"]}
tasks:
"""

TASK = """\
  - id: task-{i}
    role: {role}
    description: "Handle item {{inputs.item}} number {i} and write JSON {{\\"n\\": {i}}}."
    inputs: {{item: ITEM-{i}, count: {i}}}
    depends_on: [{deps}]
    steps:
      - open_url: "http://127.0.0.1:8765/items/{i}"
      - {{type: "${{secrets.PASSWORD}}", into: Password}}
      - key: ctrl+End
      - type: "{{inputs.item}} done\\n"
      - click: Save
      - wait_for: Saved
        timeout: 20s
    success:
      all:
        - {{check: file_contains, path: "~/notes.txt", text: "ITEM-{i}"}}
        - any:
            - {{check: sqlite, database: "~/db.sqlite3", query: "SELECT 1", rows: [[1]]}}
            - {{check: http, url: "http://127.0.0.1:8765/items/{i}", status: 200}}
    budgets: {{steps: 60, wall_clock: 10m}}
    retry: {{max_attempts: 2}}
"""


def make_company(n: int) -> str:
    parts = [HEADER]
    for i in range(n):
        deps = ", ".join(
            f"task-{j}" for j in (i - 1, i // 2) if 0 <= j < i and (j != i // 2 or j != i - 1)
        )
        parts.append(TASK.format(i=i, role="clerk" if i % 2 else "agent", deps=deps))
    return "".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "company.yaml"
        path.write_text(make_company(args.tasks), encoding="utf-8")
        company = load_company(path)  # warm-up, and proof the generated file is valid
        assert len(company.tasks) == args.tasks
        assert len(company.task_order()) == args.tasks
        validate_ms: list[float] = []
        validate_cpu_ms: list[float] = []
        parse_ms: list[float] = []
        for _ in range(args.runs):
            t0, c0 = time.perf_counter(), time.process_time()
            load_company(path)
            validate_ms.append((time.perf_counter() - t0) * 1000)
            validate_cpu_ms.append((time.process_time() - c0) * 1000)
            t0 = time.perf_counter()
            YAML(typ="safe").load(path.read_text(encoding="utf-8"))
            parse_ms.append((time.perf_counter() - t0) * 1000)
        size = path.stat().st_size
    v, p = statistics.median(validate_ms), statistics.median(parse_ms)
    result = {
        "validate_1000_tasks_ms_p50"
        if args.tasks == 1000
        else f"validate_{args.tasks}_tasks_ms_p50": round(v, 1),
        "baseline_yaml_parse_ms_p50": round(p, 1),
        "ratio_vs_parse": round(v / p, 2),
        # CPU time of this process: less disturbed than wall time on a shared machine.
        "validate_cpu_ms_p50": round(statistics.median(validate_cpu_ms), 1),
        "runs": args.runs,
        "file_bytes": size,
    }
    if not args.json:
        print(
            f"validated {args.tasks} tasks ({size:,} bytes) in {v:.0f} ms (median of {args.runs}); "
            f"plain ruamel safe load: {p:.0f} ms"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
