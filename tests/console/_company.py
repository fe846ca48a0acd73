"""A small desktop company for the report and console tests: a DAG with a pass and a fail."""

from __future__ import annotations

from pathlib import Path

COMPANY = """\
version: 1
company: report-co
roles:
  writer: {title: Writer, sandbox: notes}
sandboxes:
  notes:
    kind: desktop
    screen: [800, 600]
    apps:
      - {name: editor, command: [mousepad, "~/notes.txt"], wait_for_window: notes}
    files: {"~/notes.txt": notes.txt}
tasks:
  - id: write
    role: writer
    description: Append a line to the notes and save them.
    steps:
      - key: ctrl+End
      - type: "<b>Report</b> was here."
      - key: ctrl+s
    success: {check: file_contains, path: "~/notes.txt", text: "was here."}
  - id: wrong
    role: writer
    description: Expect text that is not there.
    depends_on: [write]
    steps:
      - key: ctrl+s
    success: {check: file_contains, path: "~/notes.txt", text: "<script>never</script>"}
  - id: again
    role: writer
    description: Save the notes again.
    depends_on: [write]
    steps:
      - key: ctrl+s
    success: {check: file_contains, path: "~/notes.txt", text: "was here."}
"""


def make_company(root: Path) -> Path:
    """Write the company under ``root`` and return its folder."""
    co = root / "co"
    co.mkdir(parents=True, exist_ok=True)
    (co / "company.yaml").write_text(COMPANY, encoding="utf-8")
    (co / "notes.txt").write_text("Notes\n", encoding="utf-8")
    return co
