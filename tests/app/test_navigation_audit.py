"""Issue 16 defect 1: every browser navigation decision lands in the run's audit log."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from pathlib import Path

import pytest

from agentcorp.app.sandboxes import Sandboxes
from agentcorp.errors import PolicyViolation
from agentcorp.policy.audit import AuditLog, verify
from agentcorp.spec import load_company_text


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_navigations_are_audited_with_their_url(tmp_path: Path) -> None:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<p>ok</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    port = _port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    company = load_company_text(
        f"""
version: 1
company: nav
roles:
  r: {{title: R, goal: g, sandbox: web}}
sandboxes:
  web: {{kind: browser, start_url: "{base}/", allow_urls: ["{base}/*"]}}
tasks:
  - {{id: t, role: r, description: d, steps: [{{key: Escape}}]}}
""",
        base_dir=tmp_path,
    )
    log = AuditLog(tmp_path / "audit.jsonl", run_id="r1")
    boxes = Sandboxes(company, {}, audit=log)
    try:
        with boxes.session("web") as (browser, _), pytest.raises(PolicyViolation):
            browser.goto("http://127.0.0.1:9/evil?x=1")  # type: ignore[attr-defined]
    finally:
        boxes.close()
        log.close()
        server.shutdown()
        server.server_close()
    entries = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    navs = [(e["url"], e["allowed"]) for e in entries if e["kind"] == "navigation"]
    assert (f"{base}/", True) in navs
    assert ("http://127.0.0.1:9/evil?x=1", False) in navs
    assert verify(tmp_path / "audit.jsonl") == []
