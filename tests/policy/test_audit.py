from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agentcorp.cli import main
from agentcorp.errors import RecordingError
from agentcorp.policy.audit import GENESIS, AuditLog, entry_hash, verify
from agentcorp.policy.secrets import Redactor

ROOT = Path(__file__).resolve().parents[2]


def _log(path: Path, n: int = 5) -> list[dict[str, object]]:
    with AuditLog(path, run_id="run-1") as log:
        return [log.append("decision", i=i, decision="allowed") for i in range(n)]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_entries_chain_and_verify_clean(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    entries = _log(p)
    assert [e["seq"] for e in entries] == [0, 1, 2, 3, 4]
    assert entries[0]["prev"] == GENESIS
    for a, b in itertools.pairwise(entries):
        assert b["prev"] == a["hash"]
    for line, e in zip(_lines(p), entries, strict=True):
        parsed = json.loads(line)
        assert parsed == e and entry_hash(parsed) == parsed["hash"]
        assert parsed["run"] == "run-1"
    assert verify(p) == []
    assert verify(p, expect_head=str(entries[-1]["hash"])) == []
    assert p.stat().st_mode & 0o777 == 0o600


def _rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_changed_field_is_found_at_its_line(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    _log(p)
    lines = _lines(p)
    entry = json.loads(lines[2])
    entry["decision"] = "denied"
    lines[2] = json.dumps(entry)
    _rewrite(p, lines)
    problems = verify(p)
    assert [x.line for x in problems] == [3]
    assert "hash mismatch" in problems[0].message


def test_rehashed_forgery_is_found_at_the_next_line(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    _log(p)
    lines = _lines(p)
    entry = json.loads(lines[1])
    entry["decision"] = "approved"
    entry["hash"] = entry_hash(entry)
    lines[1] = json.dumps(entry)
    _rewrite(p, lines)
    assert [x.line for x in verify(p)] == [3]


def test_removed_and_reordered_lines_break_the_chain(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    _log(p)
    lines = _lines(p)
    _rewrite(p, lines[:2] + lines[3:])
    assert verify(p)[0].line == 3
    _rewrite(p, [lines[0], lines[2], lines[1], *lines[3:]])
    assert verify(p)[0].line == 2


def test_truncated_tail_needs_the_head(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    entries = _log(p)
    _rewrite(p, _lines(p)[:3])
    assert verify(p) == []  # the chain alone cannot see a cut end...
    problems = verify(p, expect_head=str(entries[-1]["hash"]))  # ...the head can
    assert [x.line for x in problems] == [3]


def test_checkpoints_kept_elsewhere_catch_a_cut_log(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    entries = _log(p)
    marks = [str(entries[1]["hash"]), str(entries[-1]["hash"])]
    assert verify(p, checkpoints=marks) == []
    _rewrite(p, _lines(p)[:3])
    problems = verify(p, checkpoints=marks)
    assert len(problems) == 1 and "checkpoint" in problems[0].message
    assert marks[1][:12] in problems[0].message


@pytest.mark.parametrize(
    ("content", "line", "what"),
    [
        (b"\x00\xff garbage\n", 1, "not valid JSON"),
        (b"[1, 2]\n", 1, "not a JSON object"),
        (b'{"seq": 0}\n', 1, "missing field"),
        (b"\n", 1, "not valid JSON"),
    ],
)
def test_garbage_lines_are_named(tmp_path: Path, content: bytes, line: int, what: str) -> None:
    p = tmp_path / "audit.jsonl"
    p.write_bytes(content)
    problems = verify(p)
    assert problems[0].line == line and what in problems[0].message


def test_writer_crash_mid_line_is_reported_and_appends_continue(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    _log(p, 2)
    with p.open("ab") as f:
        f.write(b'{"seq": 2, "kind": "deci')  # a writer died here
    assert verify(p)[0].message.startswith("incomplete last entry")
    e = AuditLog(p).append("decision", i=9)
    assert e["seq"] == 2  # chained to the last complete entry
    problems = verify(p)
    assert [x.line for x in problems] == [3]  # only the broken line


def test_redactor_applies_before_hashing(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    log = AuditLog(p, redactor=Redactor(["hunter2-value"]))
    log.append("decision", action={"kind": "type", "text": "pw hunter2-value"})
    log.close()
    assert "hunter2-value" not in p.read_text()
    assert verify(p) == []


def test_threads_append_without_breaking_the_chain(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    log = AuditLog(p, fsync=False)

    def work(k: int) -> None:
        for i in range(50):
            log.append("decision", worker=k, i=i)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert len(_lines(p)) == 200
    assert verify(p) == []


_CHILD = """
import sys
from agentcorp.policy.audit import AuditLog
log = AuditLog(sys.argv[1])
for i in range(40):
    log.append("decision", worker=sys.argv[2], i=i)
"""


def test_processes_append_without_breaking_the_chain(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHILD, str(p), str(k)], cwd=ROOT) for k in range(3)
    ]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0, 0]
    lines = _lines(p)
    assert len(lines) == 120
    assert {json.loads(x)["pid"] for x in lines} == {proc.pid for proc in procs}
    assert verify(p) == []


def test_unreadable_file_raises_recording_error(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="cannot read audit log"):
        verify(tmp_path / "missing.jsonl")
    with pytest.raises(RecordingError):
        verify(tmp_path)


# --- the CLI --------------------------------------------------------------------------------


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "audit.jsonl"
    entries = _log(p)
    assert main(["audit", "verify", str(p)]) == 0
    assert "intact (5 entries)" in capsys.readouterr().out
    assert main(["audit", "verify", str(p), "--head", str(entries[-1]["hash"])]) == 0
    lines = _lines(p)
    lines[3] = lines[3].replace('"allowed"', '"denied"')
    _rewrite(p, lines)
    assert main(["audit", "verify", str(p)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0].endswith("tampered at line 4: hash mismatch: the entry was changed")
    assert main(["audit", "verify", str(tmp_path / "nope.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agentcorp: error: ") and "cannot read audit log" in err
    assert len(err.splitlines()) == 1


def test_cli_real_subprocess(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    _log(p, 3)
    lines = _lines(p)
    _rewrite(p, [lines[0], lines[2]])
    r = subprocess.run(
        [sys.executable, "-m", "agentcorp", "audit", "verify", str(p)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 1, r.stderr
    assert "tampered at line 2" in r.stderr


def test_cli_garbage_head_is_a_mismatch_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "audit.jsonl"
    _log(p, 2)
    assert main(["audit", "verify", str(p), "--head", "not-a-hash\x00"]) == 1
    assert "tampered at line 2: the log does not end at the expected head hash" in (
        capsys.readouterr().err
    )
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert main(["audit", "verify", str(p)]) == 1
    assert "line 1: not valid JSON" in capsys.readouterr().err
