"""``type: …, into: LABEL`` on real desktop apps: the field the label names gets the text.

The fixture apps (tests/grounding/apps/labelled_form.py in GTK 3, labelled_form_qt.py in
Qt 5) tie each label to its field (``set_mnemonic_widget`` / ``setBuddy``) and put a decoy
field where geometry would look; they write every field's text to a file, so the test reads
what the app itself holds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agentcorp.actor import Actor, EpisodeTask
from agentcorp.app.sandboxes import make_grounder
from agentcorp.policy.base import AllowAll
from agentcorp.sandbox.apps import AppSpec
from agentcorp.sandbox.xvfb import XvfbDesktop
from agentcorp.testing.drive import drive
from agentcorp.types import ActionResultStep

APPS = Path(__file__).resolve().parents[1] / "grounding" / "apps"
#: The same form in GTK 3 (labels tied by set_mnemonic_widget) and Qt 5 (setBuddy).
FORMS = ["labelled_form.py", "labelled_form_qt.py"]


def _fields(out: Path, want: dict[str, str], timeout: float = 5.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    got: dict[str, str] = {}
    while time.monotonic() < deadline:
        if out.exists():
            got = dict(line.split("=", 1) for line in out.read_text(encoding="utf-8").splitlines())
            if got == want:
                break
        time.sleep(0.05)
    return got


def _app(out: Path, form: str) -> AppSpec:
    # The system Python runs the fixture app (python3-gi, python3-pyqt5); a bare "python3"
    # would be ours.
    return AppSpec(
        "form",
        ["/usr/bin/python3", str(APPS / form)],
        "Labelled form",
        timeout=60,
        env={"FORM_OUT": str(out)},
    )


@pytest.mark.timeout(180)
@pytest.mark.parametrize("form", FORMS)
def test_type_into_a_label_lands_in_the_field_it_names(tmp_path: Path, form: str) -> None:
    out = tmp_path / "form.txt"
    with XvfbDesktop(apps=[_app(out, form)]) as desk:
        actor = Actor(desk, gate=AllowAll(), grounder=make_grounder(desk))
        steps, res = drive(
            actor.run(
                EpisodeTask(
                    "t",
                    "fill the form",
                    steps=[
                        {"type": "12 Harbour Road", "into": "Shipping address"},
                        {"type": "PO-77", "into": "Reference"},
                    ],
                )
            )
        )
        assert res.status == "done", res
        want = {
            "decoy": "",
            "address": "12 Harbour Road",
            "reference": "PO-77",
            "tracking": "",
            "notes": "",
        }
        assert _fields(out, want) == want
        results = [s for s in steps if isinstance(s, ActionResultStep)]
        assert len(results) == 4 and all(r.ok for r in results)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("form", FORMS)
def test_a_field_the_click_did_not_focus_fails_the_step_and_nothing_is_typed(
    tmp_path: Path, form: str
) -> None:
    # The "Tracking number" entry never takes focus: the click leaves it in the decoy entry
    # (editable too), where the text would land while the step said ok.
    out = tmp_path / "form.txt"
    with XvfbDesktop(apps=[_app(out, form)]) as desk:
        actor = Actor(desk, gate=AllowAll(), grounder=make_grounder(desk))
        steps, res = drive(
            actor.run(
                EpisodeTask(
                    "t",
                    "fill the form",
                    steps=[
                        {"type": "1Z999", "into": "Tracking number"},
                        {"type": "never", "into": "Reference"},
                    ],
                )
            )
        )
        assert res.status == "failed" and res.failed_step == 0, res
        assert "Tracking number" in res.reason and "did not focus" in res.reason, res.reason
        assert [r.ok for r in steps if isinstance(r, ActionResultStep)] == [True, False]
        time.sleep(0.3)
        assert not out.exists() or "=" not in out.read_text().replace("=\n", "")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("form", FORMS)
def test_a_label_tied_to_a_check_box_names_no_field_and_nothing_is_typed(
    tmp_path: Path, form: str
) -> None:
    # "Gift wrap" labels a check box; the notes field right beside the label is what
    # geometry (the tree's, or OCR's after it) would have typed into, every step ok.
    out = tmp_path / "form.txt"
    with XvfbDesktop(apps=[_app(out, form)]) as desk:
        actor = Actor(desk, gate=AllowAll(), grounder=make_grounder(desk))
        steps, res = drive(
            actor.run(EpisodeTask("t", "x", steps=[{"type": "yes", "into": "Gift wrap"}]))
        )
        assert res.status == "failed" and res.failed_step == 0, res
        assert "no field labelled 'Gift wrap'" in res.reason, res.reason
        assert not [r for r in steps if isinstance(r, ActionResultStep)]
        time.sleep(0.3)
        assert not out.exists() or "=" not in out.read_text().replace("=\n", "")
