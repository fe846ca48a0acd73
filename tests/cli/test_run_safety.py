"""``agentcorp run`` safety wiring: generated secrets, the run's audit log, live view.

End to end on the sample company's real back office (Django in headless Chromium) and a real
Xvfb desktop; model calls go to the real loopback ``FakeOpenAIServer``; the live view is a
real x11vnc checked with a small RFB client.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from agentcorp.app.config import RunConfig, in_container, live_view_settings, resolve_config
from agentcorp.app.runner import audit_path
from agentcorp.cli import main
from agentcorp.errors import ConfigError
from agentcorp.policy.audit import verify
from agentcorp.testing.fake_openai import FakeOpenAIServer
from tests.sandbox.test_liveview import rfb_handshake

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "tasks" / "acme"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "XAI_API_KEY",
        "OPENAI_API_KEY",
        "AGENTCORP_API_KEY",
        "AGENTCORP_PROVIDER",
        "AGENTCORP_BASE_URL",
        "AGENTCORP_PLANNER_MODEL",
        "AGENTCORP_ACTOR_MODEL",
        "AGENTCORP_SESSIONS",
        "AGENTCORP_LIVE_VIEW",
        "AGENTCORP_VNC_PASSWORD",
        "BACKOFFICE_PASSWORD",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _acme_copy(tmp_path: Path, drop_generate: bool = False) -> tuple[Path, int]:
    """The sample company on a free port (so parallel runs never share a back office)."""
    port = _free_port()
    company = tmp_path / "acme"
    shutil.copytree(ACME, company, ignore=shutil.ignore_patterns("recordings"))
    text = (company / "company.yaml").read_text(encoding="utf-8")
    text = text.replace("8765", str(port)).replace(
        "../../sandboxes/backoffice/serve.py", str(ROOT / "sandboxes/backoffice/serve.py")
    )
    if drop_generate:
        assert "    if_missing: generate\n" in text
        text = text.replace("    if_missing: generate\n", "")
    (company / "company.yaml").write_text(text, encoding="utf-8")
    return company, port


def _sessions(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/*/manifest.json"))


# --- secrets: if_missing ------------------------------------------------------------------


def test_sample_company_generates_its_back_office_password() -> None:
    from agentcorp.spec import load_company

    company = load_company(str(ACME / "company.yaml"))
    assert company.secret_specs["BACKOFFICE_PASSWORD"].if_missing == "generate"


def test_secret_without_generate_still_refuses_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    company, _ = _acme_copy(tmp_path, drop_generate=True)
    assert main(["run", str(company), "--task", "log-support-call"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "agentcorp: error: secrets.BACKOFFICE_PASSWORD: environment variable "
        "BACKOFFICE_PASSWORD is not set"
    ]


# --- the audit log: where it goes, garbage ------------------------------------------------


def test_audit_path_defaults(tmp_path: Path) -> None:
    assert audit_path(RunConfig(sessions=tmp_path / "s"), "R1") == tmp_path / "s/audit-R1.jsonl"
    assert audit_path(RunConfig(sessions=tmp_path, audit=tmp_path / "a.jsonl"), "R1") == (
        tmp_path / "a.jsonl"
    )
    assert audit_path(RunConfig(audit=tmp_path), "R1") == tmp_path / "audit-R1.jsonl"
    default = audit_path(RunConfig(), "R1")
    assert default.name == "audit.jsonl" and default.parent.name == "R1"
    # Flag over environment (so fleet workers can share one file) over nothing.
    env = {"AGENTCORP_AUDIT": str(tmp_path / "env.jsonl")}
    assert resolve_config(environ=env).audit == tmp_path / "env.jsonl"
    assert resolve_config(environ=env, audit=tmp_path / "f.jsonl").audit == tmp_path / "f.jsonl"
    assert resolve_config(environ={}).audit is None


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("/dev/null", "--audit: /dev/null is neither a file nor a folder"),
        ("plain.txt/audit.jsonl", "--audit: cannot write plain.txt/audit.jsonl: "),
    ],
)
def test_audit_garbage_is_exit_2_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    (tmp_path / "plain.txt").write_text("x", encoding="utf-8")
    code = main(["run", str(ACME), "--task", "log-support-call", "--audit", target])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"agentcorp: error: {message}")


# --- live view: refusal and settings ------------------------------------------------------


def test_live_view_settings(tmp_path: Path) -> None:
    assert live_view_settings(False, None, environ={}) is None
    with pytest.raises(ConfigError, match="needs a password"):
        live_view_settings(True, None, environ={"AGENTCORP_VNC_PASSWORD": ""})
    s = live_view_settings(True, "pw-123456", environ={}, root=tmp_path)
    assert s is not None and (s.vnc_port, s.web_port, s.bind) == (5900, 6080, "127.0.0.1")
    assert "pw-123456" not in repr(s)
    s = live_view_settings(
        False,
        None,
        5901,
        6081,
        {"AGENTCORP_LIVE_VIEW": "1", "AGENTCORP_VNC_PASSWORD": "from-env"},
        root=tmp_path,
    )
    assert s is not None and (s.password, s.vnc_port, s.web_port) == ("from-env", 5901, 6081)
    (tmp_path / ".dockerenv").touch()
    assert in_container(tmp_path)
    s = live_view_settings(True, "pw-123456", environ={}, root=tmp_path)
    assert s is not None and s.bind == "0.0.0.0"
    (tmp_path / ".dockerenv").unlink()
    (tmp_path / "run").mkdir()
    (tmp_path / "run/.containerenv").touch()
    assert in_container(tmp_path)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--live-view"], {}, "live view needs a password: set AGENTCORP_VNC_PASSWORD"),
        ([], {"AGENTCORP_LIVE_VIEW": "1"}, "live view needs a password"),
        (["--live-view", "--vnc-password", "abc"], {}, "at least 6 characters"),
        ([], {"AGENTCORP_LIVE_VIEW": "maybe"}, "AGENTCORP_LIVE_VIEW: expected 1 or 0, got"),
        (
            [
                "--live-view",
                "--vnc-password",
                "pw-123456",
                "--vnc-port",
                "7000",
                "--web-port",
                "7000",
            ],
            {},
            "--vnc-port and --web-port are both 7000",
        ),
    ],
)
def test_live_view_refusals_are_exit_2_one_line_before_any_sandbox(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    code = main(["run", str(ACME), "--task", "log-support-call", *args])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert out == ""  # refused before the run even started


@pytest.mark.parametrize(
    ("flag", "value"), [("--vnc-port", "0"), ("--web-port", "abc"), ("--vnc-port", "70000")]
)
def test_live_view_port_garbage_is_exit_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    code = main(["run", str(ACME), "--live-view", "--vnc-password", "pw-123456", flag, value])
    out, err = capsys.readouterr()
    errors = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(errors) == 1 and f"'{flag}'" in errors[0], err
    assert "Traceback" not in out + err


@pytest.mark.slow
def test_live_view_handshake_while_a_run_is_in_progress(tmp_path: Path) -> None:
    company = tmp_path / "co.yaml"
    company.write_text(
        "version: 1\ncompany: live-co\nroles:\n  watcher: {title: Watcher, sandbox: desk}\n"
        "sandboxes:\n  desk: {kind: desktop, screen: [640, 480]}\ntasks:\n"
        "  - id: wait-a-while\n    role: watcher\n    description: Wait for a sign.\n"
        "    steps:\n      - wait_for: zzq never shown\n        timeout: 120s\n",
        encoding="utf-8",
    )
    vnc, web = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XAI_", "OPENAI_"))}
    env.update(AGENTCORP_LIVE_VIEW="1", AGENTCORP_VNC_PASSWORD="watch-pw-1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentcorp",
            "run",
            str(company),
            "--vnc-port",
            str(vnc),
            "--web-port",
            str(web),
            "--audit",
            str(tmp_path / "audit.jsonl"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                with socket.create_connection(("127.0.0.1", vnc), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "live view never came up"
                time.sleep(0.1)  # polling a port that is coming up, not a timing assert
        types, result = rfb_handshake(vnc, "watch-pw-1")
        assert 1 not in types and result == 0
        assert rfb_handshake(vnc, "wrong-pw-9")[1] != 0
        with socket.create_connection(("127.0.0.1", web), timeout=5):
            pass  # noVNC's websockify listens too
        assert proc.poll() is None  # the handshakes happened while the task was running
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "live view: sandbox desk at http://localhost:" in err
    assert "watch-pw-1" not in out + err
    for port in (vnc, web):  # stopped with the run
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass


# --- end to end on the back office --------------------------------------------------------


@pytest.mark.slow
def test_unset_secret_run_passes_and_leaves_a_verifiable_audit_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    company, _ = _acme_copy(tmp_path)
    sessions = tmp_path / "s"
    code = main(["run", str(company), "--task", "backoffice-login", "--sessions", str(sessions)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert (
        "secrets: BACKOFFICE_PASSWORD not set; using a fresh random value for this run "
        "(if_missing: generate)"
    ) in err
    [log] = sorted(sessions.glob("audit-*.jsonl"))
    assert f"audit: {log} (head " in out
    entries = [json.loads(x) for x in log.read_text().splitlines()]
    kinds = [e["kind"] for e in entries]
    assert kinds[0] == "run" and entries[0]["generated_secrets"] == ["BACKOFFICE_PASSWORD"]
    assert "policy" in kinds and kinds.count("decision") >= 5
    uses = [e for e in entries if e["kind"] == "secret_use"]
    assert [u["name"] for u in uses] == ["BACKOFFICE_PASSWORD"]
    assert uses[0]["field_is_password"] is True  # read from the browser, not the model
    assert (log.stat().st_mode & 0o777) == 0o600
    [session] = _sessions(sessions)
    manifest = json.loads((session / "manifest.json").read_text())
    head = manifest["audit"]["head"]
    assert manifest["audit"]["path"] == str(log) and head == entries[-1]["hash"]
    assert verify(log, checkpoints=[head]) == []
    assert main(["audit", "verify", str(log), "--head", head]) == 0
    # Tampering with one entry is found.
    lines = log.read_text().splitlines()
    n = next(i for i, ln in enumerate(lines) if i > 0 and '"allowed":true' in ln)
    lines[n] = lines[n].replace('"allowed":true', '"allowed":false')
    log.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["audit", "verify", str(log)]) == 1
    tampered = capsys.readouterr()
    assert f"tampered at line {n + 1}: hash mismatch" in tampered.out + tampered.err


@pytest.mark.slow
def test_fresh_random_secret_appears_in_no_file_and_no_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentcorp.grounding.ocr import OcrEngine

    value = secrets.token_urlsafe(16)
    monkeypatch.setenv("BACKOFFICE_PASSWORD", value)
    company, port = _acme_copy(tmp_path)
    base = f"http://127.0.0.1:{port}"
    plan = {
        "subgoals": ["make sure the Site administration page is shown, then call done"],
        "steps": [
            {"open_url": f"{base}/admin/login/"},
            {"type": "admin", "into": "Username"},
            {"type": "${secrets.BACKOFFICE_PASSWORD}", "into": "Password"},
            {"key": "Return"},
            {"wait_for": "Site administration", "timeout": 20},
        ],
    }
    script = [
        {"when": {"purpose": "plan"}, "json": plan},
        {
            "when": {"purpose": "act", "has_images": True},
            "tool_calls": [{"name": "done", "arguments": {"summary": "logged in"}}],
        },
    ]
    sessions = tmp_path / "sessions"
    with FakeOpenAIServer(script) as srv:
        code = main(
            [
                "run",
                str(company),
                "--task",
                "backoffice-login",
                "--base-url",
                srv.base_url,
                "--planner-model",
                "p",
                "--actor-model",
                "a",
                "--sessions",
                str(sessions),
                "--audit",
                str(tmp_path / "audit.jsonl"),
            ]
        )
        srv.assert_complete()
        captured = [json.dumps(r.body) for r in srv.chat_requests]
    out, err = capsys.readouterr()
    assert code == 0, out + err
    (tmp_path / "model-requests.jsonl").write_text("\n".join(captured), encoding="utf-8")
    (tmp_path / "run.log").write_text(out + err, encoding="utf-8")
    assert main(["audit", "verify", str(tmp_path / "audit.jsonl")]) == 0
    # grep -r: sessions, audit log, the run's output, the model requests, everything.
    forms = {value.encode(), quote(value, safe="").encode()}
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert len(files) > 10 and any("blobs" in f.parts for f in files)
    leaks = [f for f in files if any(v in f.read_bytes() for v in forms)]
    assert leaks == []
    # OCR of every stored frame (PNG frames and the JPEGs the model got).
    engine = OcrEngine()
    texts: list[str] = []
    for f in sorted(sessions.rglob("blobs/**/*")):
        if not f.is_file() or f.read_bytes()[:4] not in (
            b"\x89PNG",
            b"\xff\xd8\xff\xe0",
            b"\xff\xd8\xff\xdb",
        ):
            continue
        with Image.open(f) as img:
            rgb = np.asarray(img.convert("RGB"))
        texts.append(" ".join(line.text for line in engine.read(rgb)))
    assert len(texts) >= 4 and any("Site administration" in t for t in texts)  # OCR works
    squashed = [t.replace(" ", "").lower() for t in texts]
    pieces = {value[i : i + 8].lower() for i in range(len(value) - 7)}
    assert not [p for p in pieces for t in squashed if p in t]
