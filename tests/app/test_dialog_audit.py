"""A browser sandbox from the spec: its ``dialogs`` setting and audit, its ``files``."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

from agentcorp.app.sandboxes import Sandboxes
from agentcorp.policy.audit import AuditLog, verify
from agentcorp.spec import load_company_text

PAGE = b"""<!doctype html><button onclick="document.getElementById('out').textContent =
  confirm('Really delete?') ? 'Deleted' : 'Kept'">Delete all</button><div id="out"></div>"""


def test_dismissed_dialogs_are_audited(tmp_path: Path) -> None:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    company = load_company_text(
        f"""
version: 1
company: dlg
roles:
  r: {{title: R, goal: g, sandbox: web}}
sandboxes:
  web: {{kind: browser, start_url: "{base}/", dialogs: dismiss}}
tasks:
  - {{id: t, role: r, description: d, steps: [{{click: Delete all}}]}}
""",
        base_dir=tmp_path,
    )
    log = AuditLog(tmp_path / "audit.jsonl", run_id="r1")
    boxes = Sandboxes(company, {}, audit=log)
    try:
        with boxes.session("web") as (browser, _):
            x, y = browser.dom_find("Delete all")[0]["box"].center  # type: ignore[attr-defined]
            browser.click(x, y)
            browser.settle()
            assert browser.dom_read("#out", "text") == ["Kept"]  # type: ignore[attr-defined]
    finally:
        boxes.close()
        log.close()
        server.shutdown()
        server.server_close()
    entries = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    dialogs = [(e["dialog"], e["message"], e["answer"]) for e in entries if e["kind"] == "dialog"]
    assert dialogs == [("confirm", "Really delete?", "dismissed")]
    assert verify(tmp_path / "audit.jsonl") == []


def test_a_browser_sandbox_gets_its_files_in_its_home(tmp_path: Path) -> None:
    (tmp_path / "invoice.txt").write_text("42", "utf-8")
    company = load_company_text(
        """
version: 1
company: files
roles:
  r: {title: R, goal: g, sandbox: web}
sandboxes:
  web: {kind: browser, files: {"~/in/invoice.txt": invoice.txt}}
tasks:
  - {id: t, role: r, description: d, steps: [{key: Escape}]}
""",
        base_dir=tmp_path,
    )
    boxes = Sandboxes(company, {}, state_root=tmp_path / "state")
    try:
        with boxes.session("web") as (browser, _):
            home = browser.home  # type: ignore[attr-defined]
            assert (home / "in" / "invoice.txt").read_text("utf-8") == "42"
    finally:
        boxes.close()
