from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.record._app import model_script, record

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]

TEST_FILE = """
from pathlib import Path
from dataclasses import replace

import pytest

from agentcorp.record.episode import episode_from_manifest
from tests.record._app import model_script, record


@pytest.mark.agentcorp_session("sessions/form")
def test_form(agentcorp_session, tmp_path):
    if agentcorp_session.should_record:
        record(agentcorp_session.path, tmp_path / "home", script=model_script(),
               recorder_factory=agentcorp_session.recorder)
    report = agentcorp_session.replay()
    assert report.model_calls == 4
"""

CHANGED_PROMPT = """
from dataclasses import replace

import pytest

from agentcorp.record.episode import episode_from_manifest


@pytest.mark.agentcorp_session("sessions/form")
def test_form_with_new_prompt(agentcorp_session):
    _, config = episode_from_manifest(agentcorp_session.session())
    agentcorp_session.replay(config=replace(config, system_prompt="You were a computer user."))
"""


@pytest.fixture
def tester(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.syspathinsert(str(ROOT))
    return pytester


def test_none_mode_is_default_and_fails_without_a_session(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_form=TEST_FILE)
    result = tester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no recorded session at*sessions/form*record mode 'none'*"])


def test_once_records_then_replays(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_form=TEST_FILE)
    result = tester.runpytest("--agentcorp-record-mode=once")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*agentcorp recorded 1 session(s)*", "*sessions/form"])
    manifest = tester.path / "sessions" / "form" / "manifest.json"
    assert manifest.is_file()
    stamp = manifest.stat().st_mtime_ns
    # once again: the session exists, so it is replayed, not re-recorded
    again = tester.runpytest("--agentcorp-record-mode=once")
    again.assert_outcomes(passed=1)
    assert "agentcorp recorded" not in again.stdout.str()
    assert manifest.stat().st_mtime_ns == stamp
    # none (the CI default) replays it too
    tester.runpytest().assert_outcomes(passed=1)
    # all: re-records
    tester.runpytest("--agentcorp-record-mode=all").assert_outcomes(passed=1)
    assert manifest.stat().st_mtime_ns != stamp


def test_a_changed_prompt_fails_the_regression_test(
    tester: pytest.Pytester, tmp_path: Path
) -> None:
    record(tester.path / "sessions" / "form", tmp_path / "home", script=model_script())
    tester.makepyfile(test_prompt=CHANGED_PROMPT)
    result = tester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*decision replay DIVERGED*step 0: model call 1: messages[[]0[]].content differs*"
            "You were a computer user*"
        ]
    )


def test_bad_recording_fails_clearly(tester: pytest.Pytester, tmp_path: Path) -> None:
    rec = record(tester.path / "sessions" / "form", tmp_path / "home", script=model_script())
    (rec.folder / "manifest.json").write_text('{"format_version": 9}')
    tester.makepyfile(
        test_prompt=CHANGED_PROMPT.replace(
            "_, config = episode_from_manifest(agentcorp_session.session())\n", ""
        ).replace(
            'agentcorp_session.replay(config=replace(config, system_prompt="You were a computer '
            'user."))',
            "agentcorp_session.replay()",
        )
    )
    result = tester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*bad recording*format version 9 is not supported*"])
    shutil.rmtree(rec.folder)


def test_bad_record_mode_is_a_usage_error(tester: pytest.Pytester) -> None:
    tester.makepyfile(test_x="def test_x():\n    pass\n")
    result = tester.runpytest("--agentcorp-record-mode=sometimes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--agentcorp-record-mode*invalid choice*sometimes*"])
    tester.makeini("[pytest]\nagentcorp_record_mode = twice\n")
    bad_ini = tester.runpytest()
    assert bad_ini.ret == pytest.ExitCode.USAGE_ERROR
    bad_ini.stderr.fnmatch_lines(["*agentcorp_record_mode: 'twice' is not one of none, once, all*"])


def test_marker_without_path_is_a_usage_error(tester: pytest.Pytester) -> None:
    tester.makepyfile(
        test_y=(
            "import pytest\n\n@pytest.mark.agentcorp_session()\n"
            "def test_y(agentcorp_session):\n    pass\n"
        )
    )
    result = tester.runpytest()
    result.stdout.fnmatch_lines(["*agentcorp_session needs a session path*"])
    assert result.ret != 0


def test_marker_is_registered(tester: pytest.Pytester) -> None:
    result = tester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.agentcorp_session(path)*"])
