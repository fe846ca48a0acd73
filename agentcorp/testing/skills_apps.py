"""Small real apps for the skills acceptance tests and ``bench/skills.py``.

``FORM_APP``: a Tk form on the X display (a label, a Name field, a Save button); Save
appends ``Saved: NAME`` to ``~/saved.txt``, shows ``Saved NAME`` and clears the field, as a
real data-entry form does. ``PAGE_SERVER``: an HTTP server with the same form as a web page.
Both read ``~/layout.txt`` when they start (the page: on every request): ``moved`` puts the
Save button lower, a changed layout the skill has never seen.

``company_yaml`` writes a company with one model-driven task (no ``steps``) per app, and a
third on mousepad (append a line to a log and save it, keys and typing only).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["FORM_APP", "PAGE_SERVER", "TITLE_BAR", "company_yaml", "model_script", "write_company"]

FORM_APP = r"""
import pathlib, sys, tkinter as tk
home = pathlib.Path.home()
layout = home / "layout.txt"
moved = layout.exists() and layout.read_text().strip() == "moved"
root = tk.Tk()
root.title("Customers")
root.geometry("1280x800+0+0")
root.configure(bg="white")
font = ("DejaVu Sans", 16)
tk.Label(root, text="Name", font=font, bg="white").place(x=40, y=100, width=120, height=30)
entry = tk.Entry(root, font=font)
entry.place(x=170, y=100, width=300, height=30)
shown = tk.Label(root, text="", font=font, bg="white", anchor="w")
shown.place(x=400, y=600, width=600, height=30)
def save():
    name = entry.get()
    with open(home / "saved.txt", "a", encoding="utf-8") as fh:
        fh.write(f"Saved: {name}\n")
    shown.configure(text=f"Saved {name}")
    entry.delete(0, "end")
save_button = tk.Button(root, text="Save", font=font, command=save)
save_button.place(x=100, y=400 if moved else 200, width=120, height=40)
root.mainloop()
"""

PAGE_SERVER = r'''
import http.server, pathlib, sys
home = pathlib.Path.home()
port = int(sys.argv[sys.argv.index("--port") + 1])
PAGE = """<!doctype html><html><head><title>Customers</title><style>
body {{ margin: 0; font: 20px 'DejaVu Sans', sans-serif; background: white; }}
.a {{ position: absolute; }}
input {{ font: 20px 'DejaVu Sans', sans-serif; }}
button {{ font: 20px 'DejaVu Sans', sans-serif; }}
</style></head><body>
<label class="a" for="name" style="left:40px; top:100px; width:120px; height:30px">Name</label>
<input class="a" id="name"
 style="left:170px; top:100px; width:300px; height:30px; padding:0; box-sizing:border-box">
<button class="a" id="save" style="left:100px; top:{top}px; width:120px; height:40px"
 onclick="var n=document.getElementById('name');
  document.getElementById('shown').textContent='Saved '+n.value; n.value='';">Save</button>
<div class="a" id="shown" style="left:400px; top:600px; width:600px; height:30px"></div>
</body></html>"""
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        layout = home / "layout.txt"
        moved = layout.exists() and layout.read_text().strip() == "moved"
        body = PAGE.format(top=400 if moved else 200).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def company_yaml(port: int) -> str:
    """A company with a desktop and a browser model-driven task, both taking ``name``."""
    return f"""\
version: 1
company: skills-co
roles:
  clerk: {{title: Clerk, sandbox: desk}}
  webclerk: {{title: Web clerk, sandbox: web}}
  logger: {{title: Call logger, sandbox: notes}}
sandboxes:
  desk:
    kind: desktop
    screen: [1280, 800]
    apps:
      - {{name: form, command: [python3, "~/form.py"], wait_for_window: Customers}}
    files: {{"~/form.py": form.py, "~/layout.txt": layout.txt}}
  notes:
    kind: desktop
    screen: [1280, 800]
    apps:
      - {{name: editor, command: [mousepad, "~/calls.txt"], wait_for_window: calls}}
    files: {{"~/calls.txt": calls.txt}}
  web:
    kind: browser
    screen: [1280, 800]
    start_url: http://127.0.0.1:{port}/
    allow_urls: ["http://127.0.0.1:{port}/*"]
    files: {{"~/server.py": server.py, "~/layout.txt": layout.txt}}
    services:
      - name: page
        command: [python3, "~/server.py", --port, "{port}"]
        ready_url: http://127.0.0.1:{port}/
        ready_timeout: 30s
tasks:
  - id: add-customer
    role: clerk
    description: Type the customer name {{inputs.name}} into the Name field and press Save.
    inputs: {{name: Ann}}
    success: {{check: file_contains, path: "~/saved.txt", text: "Saved: {{inputs.name}}"}}
    budgets: {{steps: 20, wall_clock: 5m}}
  - id: add-web-customer
    role: webclerk
    description: Type the customer name {{inputs.name}} into the Name field and press Save.
    inputs: {{name: Ann}}
    success: {{check: screen_contains, text: "Saved {{inputs.name}}"}}
    budgets: {{steps: 20, wall_clock: 5m}}
  - id: log-call
    role: logger
    description: Append the line "Call from {{inputs.name}}" to the call log and save it.
    inputs: {{name: Ann}}
    success: {{check: file_contains, path: "~/calls.txt", text: "Call from {{inputs.name}}\\n"}}
    budgets: {{steps: 20, wall_clock: 5m}}
"""


#: How far down the window manager's title bar pushes the Tk form's content (px).
TITLE_BAR = 20


def model_script(name: str, task_id: str, delay: float = 0.0) -> list[dict[str, object]]:
    """Fake-server entries for one model-driven instance of ``task_id`` typing ``name``.

    In the model's 1024x640 image of the 1280x800 screen: click the field (screen 320, 115),
    type the name, click Save (screen 160, 220), done; the desktop form sits ``TITLE_BAR``
    lower. ``delay`` is each reply's latency (seconds).
    """
    dy = TITLE_BAR if task_id == "add-customer" else 0
    act = {"purpose": "act"}

    def at(x: int, y: int) -> dict[str, object]:
        return {"x": x * 4 // 5, "y": (y + dy) * 4 // 5}

    calls: list[tuple[str, dict[str, object]]] = [
        ("click", at(320, 115)),
        ("type", {"text": name}),
        ("click", at(160, 220)),
        ("done", {"summary": "saved"}),
    ]
    if task_id == "log-call":
        calls = [
            ("key", {"keys": "ctrl+End"}),
            ("type", {"text": f"Call from {name}\n"}),
            ("key", {"keys": "ctrl+s"}),
            ("done", {"summary": "logged"}),
        ]
    return [
        {"when": act, "delay": delay, "tool_calls": [{"name": n, "arguments": a}]} for n, a in calls
    ]


def write_company(folder: Path, port: int, layout: str = "normal") -> Path:
    """The company folder with both apps; returns the company file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "form.py").write_text(FORM_APP, encoding="utf-8")
    (folder / "server.py").write_text(PAGE_SERVER, encoding="utf-8")
    (folder / "layout.txt").write_text(layout + "\n", encoding="utf-8")
    (folder / "calls.txt").write_text("Call log\n", encoding="utf-8")
    path = folder / "company.yaml"
    path.write_text(company_yaml(port), encoding="utf-8")
    return path
