"""Action replay as a test of a changed app (real Xvfb, a real Tk app with no accessibility
tree): a click aimed at the field a label names stays on the field, and an action that no
longer has the effect it had when recorded is a divergence, never "reproduced"."""

from __future__ import annotations

from pathlib import Path

import agentcorp
from agentcorp.app.replaying import replay_session
from agentcorp.record.session import open_session

FORM = """\
wm title . "Orders"
label .l1 -text "Customer"
entry .e1 -width 30 STATE
button .b -text "Save order" -command {
  set f [open [file join $env(HOME) order.txt] w]
  puts $f [.e1 get]
  close $f
}
grid .l1 .e1 -padx 6 -pady 6 -sticky w
grid .b -pady 8 -padx 6 -sticky w
"""

COMPANY = """\
version: 1
company: replay-effects
roles:
  clerk: {title: Clerk, sandbox: tk}
sandboxes:
  tk:
    kind: desktop
    screen: [640, 480]
    apps:
      - {name: form, command: [wish, form.tcl], wait_for_window: Orders}
    files: {"~/form.tcl": form.tcl}
tasks:
  - id: order
    role: clerk
    description: Save an order.
    steps:
      - {type: "Globex Corporation", into: Customer}
      - {click: Save order}
    success: {check: file_contains, path: "~/order.txt", text: "Globex Corporation"}
"""


def _record(tmp_path: Path) -> tuple[Path, Path]:
    co = tmp_path / "co"
    co.mkdir()
    (co / "form.tcl").write_text(FORM.replace("STATE", ""), encoding="utf-8")
    (co / "company.yaml").write_text(COMPANY, encoding="utf-8")
    report = agentcorp.run(co, sessions=tmp_path / "run", environ={}, no_cache=True)
    assert report.passed, report.results[0].reason
    return co, Path(str(report.results[0].session))


def test_replay_of_the_same_app_keeps_the_aim_and_a_dead_field_diverges(tmp_path: Path) -> None:
    co, session = _record(tmp_path)
    same = replay_session(open_session(session), "action", company=co, out=tmp_path / "a")
    assert same.ok, [(o.step, o.status, o.detail) for o in same.outcomes]
    # The click of `type ... into: Customer` went to the field, not moved onto the label.
    assert [o.status for o in same.outcomes] == ["matched"] * len(same.outcomes)
    # The field no longer takes text: the typing has no effect, which the recording had.
    (co / "form.tcl").write_text(FORM.replace("STATE", "-state readonly"), encoding="utf-8")
    (tmp_path / "run" / ".agentcorp").rename(tmp_path / "old-state")  # a fresh home
    dead = replay_session(open_session(session), "action", company=co, out=tmp_path / "b")
    assert not dead.ok
    last = dead.outcomes[-1]
    assert last.status == "diverged" and last.frames, last
    assert "changed nothing on screen" in last.detail or "failed" in last.detail, last.detail
