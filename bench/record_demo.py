"""Re-record the sample company's shipped recording(s) with a scripted loopback model.

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--task",
        action="append",
        choices=sorted(SCRIPTS),
        help="Task to re-record (default: all model-driven sample tasks).",
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
    for task_id in ns.task or sorted(SCRIPTS):
        dest = record(task_id, out_root=ns.out)
        size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
        print(json.dumps({"task": task_id, "session": str(dest), "bytes": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
