"""pytest plugin (``pytest11`` entry point ``agentcorp``): recorded sessions as regression tests.

Mark a test with the session it replays and use the ``agentcorp_session`` fixture::

    @pytest.mark.agentcorp_session("sessions/fill-form")
    def test_fill_form(agentcorp_session):
        if agentcorp_session.should_record:
            # a real run of the task through ``agentcorp.run``, its session kept here
            agentcorp_session.record_task("company.yaml", "fill-form")
        agentcorp_session.replay()          # decision replay on the recorded frames

Record modes follow vcrpy: ``none`` (the default, for CI) never records and fails when a
session is missing; ``once`` records a session that does not exist yet and replays it
otherwise; ``all`` records every time. Choose with ``--agentcorp-record-mode`` or the ini
option ``agentcorp_record_mode``. Paths in the marker are relative to the test file.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["RECORD_MODES", "SessionFixture"]

RECORD_MODES = ("none", "once", "all")
_MODE = pytest.StashKey[str]()
_RECORDED = pytest.StashKey[list[str]]()
_MARKER = "agentcorp_session"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--agentcorp-record-mode`` and its ini twin."""
    group = parser.getgroup("agentcorp", "agentcorp recorded sessions")
    group.addoption(
        "--agentcorp-record-mode",
        action="store",
        dest="agentcorp_record_mode",
        default=None,
        choices=RECORD_MODES,
        help="none: replay only (CI default); once: record missing sessions; all: re-record.",
    )
    parser.addini("agentcorp_record_mode", "default record mode (none, once, all)", default="none")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker and resolve the record mode once."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(path): the recorded agentcorp session this test replays "
        "(relative to the test file)",
    )
    mode = config.getoption("agentcorp_record_mode", None) or config.getini("agentcorp_record_mode")
    if mode not in RECORD_MODES:
        raise pytest.UsageError(
            f"agentcorp_record_mode: {mode!r} is not one of {', '.join(RECORD_MODES)}"
        )
    config.stash[_MODE] = str(mode)
    config.stash[_RECORDED] = []


@dataclass
class SessionFixture:
    """What a test gets from ``agentcorp_session``: the path, the mode, record and replay."""

    path: Path
    record_mode: str
    _recorded: list[str] = field(default_factory=list)
    _recorder: Any = None

    @property
    def exists(self) -> bool:
        """Whether a finished session is there."""
        return (self.path / "manifest.json").is_file()

    @property
    def should_record(self) -> bool:
        """True when this run must record the session (``all``, or ``once`` and missing)."""
        return self.record_mode == "all" or (self.record_mode == "once" and not self.exists)

    def recorder(self, **kwargs: Any) -> Any:
        """A ``SessionRecorder`` writing to ``path`` (only when ``should_record``)."""
        from agentcorp.record.recorder import SessionRecorder

        if not self.should_record:
            pytest.fail(
                f"agentcorp: not recording {self.path} in record mode {self.record_mode!r}",
                pytrace=False,
            )
        if self.path.exists():
            shutil.rmtree(self.path)
        self._recorder = SessionRecorder(self.path, **kwargs)
        self._recorded.append(str(self.path))
        return self._recorder

    def record_task(self, company: str | Path, task_id: str, **settings: Any) -> Any:
        """Run ``task_id`` of ``company`` as ``agentcorp run`` does and keep its session here.

        Goes through the application layer (``agentcorp.run``): the same sandboxes, modes,
        policy and recorder as a real run; ``settings`` are its keyword arguments
        (``base_url=``, ``environ=``...). Returns the run's ``TaskRun``; fails the test when
        the task did not pass (a recording of a failure is not a regression test).
        """
        import tempfile

        import agentcorp

        if not self.should_record:
            pytest.fail(
                f"agentcorp: not recording {self.path} in record mode {self.record_mode!r}",
                pytrace=False,
            )
        with tempfile.TemporaryDirectory(prefix="agentcorp-record-") as tmp:
            report = agentcorp.run(company, sessions=tmp, tasks=[task_id], **settings)
            result = report.result(task_id)
            if not result.passed or result.session is None:
                pytest.fail(
                    f"agentcorp: {task_id} did not pass, nothing recorded: {result.reason}",
                    pytrace=False,
                )
            if self.path.exists():
                shutil.rmtree(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(result.session, self.path)
        self._recorded.append(str(self.path))
        return result

    def session(self) -> Any:
        """The recorded session, opened (fails the test clearly when it is missing)."""
        from agentcorp.errors import RecordingError
        from agentcorp.record.session import open_session

        if not self.path.exists():
            pytest.fail(
                f"agentcorp: no recorded session at {self.path} (record mode "
                f"{self.record_mode!r}; run with --agentcorp-record-mode=once to record it)",
                pytrace=False,
            )
        try:
            s = open_session(self.path)
            s.require_complete()
        except RecordingError as exc:
            pytest.fail(f"agentcorp: bad recording: {exc}", pytrace=False)
        return s

    def replay(self, **overrides: Any) -> Any:
        """Decision-replay the session on its recorded frames; fail the test if it diverges.

        ``overrides`` go to ``agentcorp.record.episode.loop_runner`` (``config``, ``task``,
        ``grounder``, ``gate``), which is how a changed prompt is tested against a recording.
        """
        from agentcorp.errors import RecordingError
        from agentcorp.record.episode import loop_runner
        from agentcorp.record.replay import decision_replay

        s = self.session()
        try:
            report = decision_replay(s, loop_runner(s, **overrides))
        except RecordingError as exc:
            pytest.fail(f"agentcorp: bad recording: {exc}", pytrace=False)
        if not report.ok:
            pytest.fail(f"agentcorp: {self.path}: {report.summary()}", pytrace=False)
        return report


@pytest.fixture
def agentcorp_record_mode(request: pytest.FixtureRequest) -> str:
    """The record mode of this run (``none``, ``once`` or ``all``)."""
    return request.config.stash[_MODE]


@pytest.fixture
def agentcorp_session(request: pytest.FixtureRequest) -> Any:
    """The session named by the test's ``agentcorp_session`` marker (or a default path).

    Without a marker the path is ``sessions/<test name>`` next to the test file.
    """
    marker = request.node.get_closest_marker(_MARKER)
    base = Path(str(request.node.fspath)).parent
    if marker is not None:
        if not marker.args or not isinstance(marker.args[0], str | Path):
            raise pytest.UsageError(
                f"{request.node.nodeid}: @pytest.mark.{_MARKER} needs a session path"
            )
        path = base / Path(marker.args[0])
    else:
        path = base / "sessions" / request.node.name
    fixture = SessionFixture(path, request.config.stash[_MODE], request.config.stash[_RECORDED])
    yield fixture
    if fixture._recorder is not None and not (fixture.path / "manifest.json").exists():
        # A recording the test never finished stays visibly incomplete.
        fixture._recorder.abort()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """List the sessions this run recorded."""
    recorded = config.stash.get(_RECORDED, [])
    if recorded:
        terminalreporter.write_sep("-", f"agentcorp recorded {len(recorded)} session(s)")
        for path in recorded:
            terminalreporter.write_line(path)
