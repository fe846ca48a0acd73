"""Page patterns the sample company does not have, on real Chromium: fields and buttons in
same-origin frames, the page's own dialogs (confirm, prompt, alert), links that open a new
tab, and a click on an option of a closed list. Each test is one defect class."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcorp.actor import Actor, ActorConfig, EpisodeTask
from agentcorp.errors import SandboxError
from agentcorp.grounding.dom import DomGrounder
from agentcorp.policy.base import AllowAll
from agentcorp.sandbox.browser import BrowserComputer, _download_name
from agentcorp.testing.drive import drive
from agentcorp.testing.scripted import ScriptedLLM, tool_reply
from agentcorp.types import ActionResultStep, ActionStep

STYLE = "<style>body{font-family:DejaVu Sans,sans-serif;margin:20px}</style>"
FILLER = "".join(f"<p>Line {i}</p>" for i in range(40))
PAGES = {
    # A form inside a same-origin frame that writes its result into the page around it.
    "framed.html": """<h1>Tools</h1><iframe src="city.html" style="width:420px;height:140px;
      border:7px solid #999;padding:11px;margin-left:60px"></iframe><div id="out"></div>""",
    "city.html": """<label>City <input id="city"></label>
      <button onclick="parent.document.getElementById('out').textContent =
        'City=' + document.getElementById('city').value">Save city</button>""",
    # Frames in frames: the button sits two frames deep.
    "nested.html": """<iframe src="middle.html" style="width:500px;height:300px;margin:40px"
      ></iframe><div id="out"></div>""",
    "middle.html": """<p>Middle</p><iframe src="deep.html" style="width:300px;height:150px;
      margin-left:80px"></iframe>""",
    "deep.html": """<button onclick="top.document.getElementById('out').textContent='deep'"
      >Deep button</button>""",
    # A frame scrolled inside: one button shows through its box, another is scrolled away.
    "scrolled.html": """<iframe id="f" src="long.html" style="width:300px;height:120px"
      ></iframe><div id="out"></div>""",
    "long.html": f"""{FILLER}<button onclick="top.document.getElementById('out').textContent=
      'shown'">Shown button</button>{FILLER}<button onclick="top.document.getElementById('out')
      .textContent='hidden'">Hidden button</button>""",
    # A veil inside the frame over its button.
    "veiled.html": """<iframe src="veil.html" style="width:400px;height:160px"></iframe>""",
    "veil.html": """<button id="b">Pay</button><div style="position:fixed;inset:0;
      background:rgba(0,0,0,.3)"></div>""",
    # A password field inside a frame.
    "login.html": """<iframe src="pw.html" style="width:400px;height:120px;margin-top:50px"
      ></iframe>""",
    "pw.html": """<label>PIN <input id="pin" type="password"></label>""",
    # The page's own dialogs.
    "dialogs.html": """<button onclick="document.getElementById('out').textContent =
        confirm('Really delete?') ? 'Deleted' : 'Kept'">Delete all</button>
      <button onclick="document.getElementById('out').textContent =
        'Name=' + prompt('Your name?', 'Ada')">Sign</button>
      <button onclick="alert('Saved'); document.getElementById('out').textContent='after'"
        >Save</button>
      <button onclick="alert('Your PIN is 4711')">Show PIN</button>
      <button onclick="for (let i = 0; i < 50; i++) alert('Nag ' + i)">Nag me</button>
      <div id="out"></div>""",
    # A rich-text editor: a frame whose whole document is editable, named by its title, with
    # a caption above; and a list below it, which neither name may reach.
    "editor.html": """<p>Message</p><iframe title="Rich Text Area" style="width:400px;
      height:100px" srcdoc="<body contenteditable=true></body>"></iframe>
      <p><label for="size">Size</label> <select id="size"><option>Small</option>
      <option>Large</option></select></p>""",
    # A draft the page does not want to lose when it is left.
    "draft.html": """<label>Draft <input id="d"></label> <a href="city.html">Leave page</a>
      <script>addEventListener('beforeunload', (e) => { if (document.getElementById('d').value)
      { e.preventDefault(); e.returnValue = 'unsaved'; } });</script>""",
    # Links and buttons that open tabs; the new tab can close itself.
    "tabs.html": """<h1>Tools</h1><a href="report.html" target="_blank">Open report</a>
      <button onclick="window.open('report.html')">Pop report</button>
      <button onclick="window.open('http://example.org/x')">Pop elsewhere</button>""",
    # Closed lists, one with a label and one with none.
    "lists.html": """<p><label for="size">Size:</label> <select id="size"><option>Small</option>
      <option>Medium</option><option>Large</option></select></p>
      <p><select id="colour"><option>Red</option><option>Blue</option></select></p>""",
    # A button enabled a moment after the page loads, and one that stays disabled.
    "later.html": """<button id="b" disabled onclick="document.getElementById('out')
      .textContent='sent'">Send</button> <fieldset disabled><button>Archive</button></fieldset>
      <div id="out"></div><script>setTimeout(() =>
      document.getElementById('b').disabled = false, 300)</script>""",
    # A long page under a header that stays put, and a list that scrolls inside its box.
    "long_page.html": """<header style="position:sticky;top:0;height:80px;background:#eee">Shop
      </header><div style="height:1500px">Top</div><button onclick="document.getElementById(
      'out').textContent='ordered'">Order now</button><div style="height:1500px"></div>
      <div id="out"></div>""",
    # A short page whose fixed footer sits over its last button: no scroll can free it.
    "footer.html": """<div style="position:fixed;bottom:0;left:0;right:0;height:60px;
      background:#eee">Footer</div><div style="height:520px"></div><button>Buried</button>""",
    # A wide table in a box that scrolls sideways, its action at the far right.
    "wide.html": """<div style="width:400px;overflow-x:auto"><div style="width:2000px">Row 1
      <button style="margin-left:1700px" onclick="document.getElementById('out')
      .textContent='archived'">Archive row</button></div></div><div id="out"></div>""",
    "scrollbox.html": """<div style="height:100px;width:300px;overflow:auto">"""
    + "".join(f"<p>Row {i}</p>" for i in range(12))
    + """<button onclick="document.getElementById('out').textContent='hit'">Deep item</button>
      </div><p>After the box</p><div id="out"></div>""",
    # A file field and a button that reads what was chosen.
    "upload.html": """<label>Attachment <input type="file" id="f"></label>
      <button onclick="const f = document.getElementById('f').files;
        document.getElementById('out').textContent = f.length ? f[0].name + ':' + f[0].size
        : 'none'">Upload</button><p><label>Note <input id="n"></label></p>
      <div id="out"></div>""",
    # A link that downloads a file the page names.
    "download.html": """<a href="data.csv" download="report.csv">Download report</a>""",
    # A menu shown only while hovered, a <details> to open, content replaced after a fetch.
    "widgets.html": """<style>.menu ul{display:none;position:absolute;margin:0;padding:4px;
      background:#fff;border:1px solid #999}.menu:hover ul{display:block}li{list-style:none}
      </style><nav><span class="menu">File<ul><li onclick="document.getElementById('out')
      .textContent='exported'">Export</li></ul></span></nav><p style="margin-top:60px"></p>
      <details><summary>More options</summary><label>Coupon <input id="coupon"></label>
      </details><div id="main"><button onclick="fetch('part.txt').then((r) => r.text())
      .then((t) => { document.getElementById('main').innerHTML = t; })">Load more</button></div>
      <div id="out"></div>""",
    "report.html": """<h1>Quarterly report</h1><label>Comment <input id="c"></label>
      <button onclick="window.close()">Close report</button>""",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("pages")
    for name, body in PAGES.items():
        (root / name).write_text(f"<!doctype html><meta charset=utf-8>{STYLE}{body}", "utf-8")
    (root / "data.csv").write_text("a,b\n1,2\n", "utf-8")
    (root / "part.txt").write_text(
        "<p>Loaded</p><button onclick=\"this.textContent='Done!'\">Confirm part</button>", "utf-8"
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def browser(site: str) -> Iterator[BrowserComputer]:
    other = site.replace("127.0.0.1", "localhost")
    allow = [f"{site}/*", f"{other}/*"]
    with BrowserComputer(screen=(800, 600), secrets={"PIN": "4711"}, allow_urls=allow) as b:
        yield b


def _open(b: BrowserComputer, site: str, page: str) -> None:
    b.goto(f"{site}/{page}")
    b.settle()
    b.take_notes()  # what leaving the last test's page did is not this test's


def _out(b: BrowserComputer) -> str:
    return str(b._page.eval_on_selector("#out", "e => e.textContent"))


def _run(b: BrowserComputer, steps: list[dict[str, Any]]) -> tuple[list[Any], Any]:
    actor = Actor(b, gate=AllowAll(), grounder=DomGrounder(b))
    return drive(actor.run(EpisodeTask("t", "x", steps=steps)))


# --- same-origin frames -------------------------------------------------------------------


def test_type_into_and_click_inside_a_same_origin_frame(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "framed.html")
    _, res = _run(browser, [{"type": "Paris", "into": "City"}, {"click": "Save city"}])
    assert res.status == "done", res.reason
    assert _out(browser) == "City=Paris"


def test_a_frame_element_box_is_in_viewport_coordinates(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "framed.html")
    (found,) = browser.dom_find("Save city", "button")
    frame = browser._page.eval_on_selector(
        "iframe", "f => { const r = f.getBoundingClientRect(); return [r.left, r.top]; }"
    )
    inner = browser._page.frames[1].eval_on_selector(
        "button", "b => { const r = b.getBoundingClientRect(); return [r.left, r.top]; }"
    )
    # border 7 + padding 11 between the frame's box and its content
    assert found["box"].x == int(frame[0] + 18 + inner[0])
    assert found["box"].y == int(frame[1] + 18 + inner[1])


def test_nested_frames_are_walked_and_clicked(browser: BrowserComputer, site: str) -> None:
    _open(browser, site, "nested.html")
    _, res = _run(browser, [{"click": "Deep button"}])
    assert res.status == "done", res.reason
    assert _out(browser) == "deep"


def test_a_frame_scrolled_inside_shows_only_what_its_box_shows(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "scrolled.html")
    browser._page.frames[1].evaluate(
        "() => document.querySelector('button').scrollIntoView({block: 'center'})"
    )
    assert browser.dom_find("Hidden button") == []
    (shown,) = browser.dom_find("Shown button")
    frame_box = browser._page.eval_on_selector(
        "#f", "f => { const r = f.getBoundingClientRect(); return [r.top, r.bottom]; }"
    )
    assert frame_box[0] <= shown["box"].y and shown["box"].bottom <= frame_box[1] + 1
    _, res = _run(browser, [{"click": "Shown button"}])
    assert res.status == "done", res.reason
    assert _out(browser) == "shown"


def test_a_covered_target_inside_a_frame_is_not_clicked(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "veiled.html")
    browser.cover_wait = 0.2
    try:
        _, res = _run(browser, [{"click": "Pay"}])
    finally:
        browser.cover_wait = 1.0
    assert res.status == "failed"
    assert "covered by <div>" in res.reason
    assert "scroll" not in res.reason  # an overlay over the page is not scrolled away


@pytest.mark.parametrize("name", ["Rich Text Area", "Message"])
def test_a_rich_text_editor_in_a_frame_is_a_field(
    browser: BrowserComputer, site: str, name: str
) -> None:
    _open(browser, site, "editor.html")
    _, res = _run(browser, [{"type": "Hello", "into": name}])
    assert res.status == "done", res.reason
    assert browser._page.frames[1].evaluate("() => document.body.innerText").strip() == "Hello"
    assert browser._page.eval_on_selector("#size", "e => e.value") == "Small"


def test_page_text_shows_only_the_chosen_option_of_a_closed_list(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "editor.html")
    assert "Small" in browser.page_text()
    assert "Large" not in browser.page_text()
    browser._page.select_option("#size", "Large")
    assert "Large" in browser.page_text()
    assert "Small" not in browser.page_text()


def test_checks_read_text_and_elements_of_same_origin_frames(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "framed.html")
    browser._page.frames[1].fill("#city", "Lyon")
    assert "Save city" in browser.page_text()
    assert "Lyon" in browser.page_text()
    assert browser.dom_read("#city", "value") == ["Lyon"]


def test_a_password_field_in_a_frame_of_another_origin_is_known_to_the_gate(
    browser: BrowserComputer, site: str
) -> None:
    other = site.replace("127.0.0.1", "localhost")
    browser.goto(f"{site}/login.html")
    browser._page.eval_on_selector("iframe", f"f => {{ f.src = '{other}/pw.html'; }}")
    child = browser._page.wait_for_event("framenavigated", lambda f: f.url.startswith(other))
    child.wait_for_selector("#pin")
    browser.settle()
    assert browser.dom_find("PIN") == []  # the DOM of another origin is not ours to read
    child.focus("#pin")
    got = browser.focused_field()
    assert got is not None
    box, password = got
    assert password
    # The box is where the field is on screen: a press at its corner lands in it.
    child.evaluate(
        "() => document.addEventListener('mousedown', (e) => { window.hit = e.target.id; })"
    )
    browser._page.mouse.click(box.x + 2, box.y + 2)
    assert child.evaluate("() => window.hit") == "pin"


def test_a_password_field_in_a_frame_is_known_to_the_gate(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "login.html")
    browser._page.frames[1].focus("#pin")
    got = browser.focused_field()
    assert got is not None
    box, password = got
    assert password
    assert box.y >= 50  # in viewport coordinates, below the frame's top margin


# --- the page's own dialogs ---------------------------------------------------------------


def _notes(steps: list[Any]) -> list[str]:
    return [n for s in steps if isinstance(s, ActionResultStep) for n in s.notes]


def test_a_confirm_is_accepted_and_the_step_says_so(browser: BrowserComputer, site: str) -> None:
    _open(browser, site, "dialogs.html")
    steps, res = _run(browser, [{"click": "Delete all"}])
    assert res.status == "done", res.reason
    assert _out(browser) == "Deleted"
    assert _notes(steps) == ["the page asked (confirm) 'Really delete?': accepted"]


def test_dialogs_dismiss_answers_cancel(browser: BrowserComputer, site: str) -> None:
    _open(browser, site, "dialogs.html")
    browser.dialogs = "dismiss"
    try:
        steps, res = _run(browser, [{"click": "Delete all"}])
    finally:
        browser.dialogs = "accept"
    assert res.status == "done", res.reason
    assert _out(browser) == "Kept"
    assert _notes(steps) == ["the page asked (confirm) 'Really delete?': dismissed"]


def test_a_prompt_gets_its_default_and_an_alert_never_hangs(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "dialogs.html")
    steps, res = _run(browser, [{"click": "Sign"}])
    assert res.status == "done", res.reason
    assert _out(browser) == "Name=Ada"
    assert _notes(steps) == [
        "the page asked (prompt) 'Your name?': accepted with its default value 'Ada'"
    ]
    steps, res = _run(browser, [{"click": "Save"}])
    assert res.status == "done", res.reason
    assert _out(browser) == "after"
    assert _notes(steps) == ["the page said (alert) 'Saved': OK"]


def test_a_page_that_shows_dialog_after_dialog_is_answered_and_counted(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "dialogs.html")
    steps, res = _run(browser, [{"click": "Nag me"}])
    assert res.status == "done", res.reason
    notes = _notes(steps)
    assert len(notes) == 21
    assert notes[0] == "the page said (alert) 'Nag 0': OK"
    assert notes[-1] == "(and 30 more like these)"


def test_leaving_a_page_that_asks_first_follows_the_dialogs_setting(
    browser: BrowserComputer, site: str
) -> None:
    steps = [{"type": "x", "into": "Draft"}, {"click": "Leave page"}]
    _open(browser, site, "draft.html")
    browser.dialogs = "dismiss"
    try:
        got, res = _run(browser, steps)
    finally:
        browser.dialogs = "accept"
    assert res.status == "done", res.reason
    assert browser.url == f"{site}/draft.html"
    assert _notes(got) == ["the page asked (beforeunload): dismissed (the page stayed)"]
    _open(browser, site, "draft.html")
    got, res = _run(browser, steps)
    assert res.status == "done", res.reason
    assert browser.url == f"{site}/city.html"
    assert _notes(got) == ["the page asked (beforeunload): accepted (the page was left)"]


def test_a_dialog_reaches_the_model_as_untrusted_page_text_without_secrets(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "dialogs.html")
    x, y = browser.dom_find("Show PIN")[0]["box"].center
    model = ScriptedLLM([tool_reply("click", x=x, y=y), tool_reply("done", summary="ok")])
    config = ActorConfig(long_side=800)
    actor = Actor(browser, gate=AllowAll(), model=model, config=config)
    steps, res = drive(actor.run(EpisodeTask("t", "show the pin")))
    assert res.status == "done", res.reason
    assert _notes(steps) == ["the page said (alert) 'Your PIN is ${secrets.PIN}': OK"]
    last = model.calls[-1].messages
    tool = next(m for m in last if m.get("role") == "tool")
    assert tool["content"].startswith("ok: click at")
    nonce = config.untrusted_nonce
    assert f'nonce="{nonce}" source="page">the page said (alert)' in tool["content"]
    assert "4711" not in str(last)


def test_a_recorded_dialog_replays_to_the_same_model_requests(
    browser: BrowserComputer, site: str, tmp_path: Path
) -> None:
    """The model was told of the dialog: a replay without the browser tells it the same."""
    from agentcorp.record.episode import loop_runner
    from agentcorp.record.replay import decision_replay
    from agentcorp.record.session import open_session
    from tests.record._app import record

    _open(browser, site, "dialogs.html")
    x, y = browser.dom_find("Delete all")[0]["box"].center
    model = ScriptedLLM([tool_reply("click", x=x, y=y), tool_reply("done", summary="ok")])
    rec = record(
        tmp_path / "s",
        tmp_path / "home",
        model=model,
        computer=browser,  # type: ignore[arg-type]
        grounder=DomGrounder(browser),
        config=ActorConfig(model="grok-test", long_side=800),
        capture=False,
    )
    tool = next(m for m in model.calls[-1].messages if m.get("role") == "tool")
    assert "meanwhile" in tool["content"]
    session = open_session(rec.folder)
    report = decision_replay(session, loop_runner(session))
    assert report.ok, report.summary()


def test_every_dialog_is_told_to_the_observer(browser: BrowserComputer, site: str) -> None:
    seen: list[tuple[str, str, str]] = []
    _open(browser, site, "dialogs.html")
    browser.on_dialog = lambda *a: seen.append(a)
    try:
        x, y = browser.dom_find("Delete all")[0]["box"].center
        browser.click(x, y)
        browser.settle()
    finally:
        browser.on_dialog = None
    assert _out(browser) == "Deleted"
    assert seen == [("confirm", "Really delete?", "accepted")]
    assert browser.take_notes() == ["the page asked (confirm) 'Really delete?': accepted"]
    assert browser.take_notes() == []


# --- tabs the page opens ------------------------------------------------------------------


def test_a_link_to_a_new_tab_brings_it_to_the_front_and_back_when_it_closes(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "tabs.html")
    steps, res = _run(
        browser,
        [
            {"click": "Open report"},
            {"wait_for": "Quarterly report", "timeout": 5},
            {"type": "fine", "into": "Comment"},
        ],
    )
    assert res.status == "done", res.reason
    assert browser.url == f"{site}/report.html"
    assert browser._page.eval_on_selector("#c", "e => e.value") == "fine"
    assert _notes(steps) == [f"a new tab opened ({site}/report.html); it is in front now"]
    steps, res = _run(browser, [{"click": "Close report"}, {"click": "Pop report"}])
    assert res.status == "done", res.reason
    assert _notes(steps) == [
        f"the tab in front closed; back to the tab before ({site}/tabs.html)",
        f"a new tab opened ({site}/report.html); it is in front now",
    ]
    assert browser.url == f"{site}/report.html"
    browser._page.close()
    assert browser.dom_find("Pop report")  # the tab before is in front again


def test_a_new_tab_the_policy_refuses_is_closed_and_the_step_fails(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "tabs.html")
    _, res = _run(browser, [{"click": "Pop elsewhere"}])
    assert res.status == "error"
    assert "navigation to http://example.org/x blocked" in res.reason
    browser.settle()
    assert browser.url == f"{site}/tabs.html"
    assert len(browser._context.pages) == 1


# --- options of a closed list -------------------------------------------------------------


def test_a_click_on_an_option_of_a_closed_list_says_how_to_choose_it(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "lists.html")
    actor = Actor(
        browser,
        gate=AllowAll(),
        grounder=DomGrounder(browser),
        config=ActorConfig(find_timeout=0.2),
    )
    _, res = drive(actor.run(EpisodeTask("t", "x", steps=[{"click": "Large"}])))
    assert res.status == "failed"
    assert "'Large' is an option of the closed list 'Size': use `type: Large, into: Size`" in (
        res.reason
    )
    assert browser._page.eval_on_selector("#size", "e => e.value") == "Small"
    _, res = _run(browser, [{"type": "Large", "into": "Size"}])  # the advice works
    assert res.status == "done", res.reason
    assert browser._page.eval_on_selector("#size", "e => e.value") == "Large"
    assert browser.dom_why_not("Blue") == (
        "'Blue' is an option of a closed list (it shows 'Red'): click the list, then type 'Blue'"
    )
    assert browser.dom_why_not("Purple") is None


# --- disabled targets ---------------------------------------------------------------------


def test_a_click_waits_for_a_disabled_button_to_be_enabled(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "later.html")
    _, res = _run(browser, [{"click": "Send"}])
    assert res.status == "done", res.reason
    assert _out(browser) == "sent"


def test_a_click_on_a_button_that_stays_disabled_fails(browser: BrowserComputer, site: str) -> None:
    _open(browser, site, "later.html")
    browser.enable_wait = 0.2
    try:
        _, res = _run(browser, [{"click": "Archive"}])
    finally:
        browser.enable_wait = 3.0
    assert res.status == "failed"
    assert 'the target <button> "Archive" is disabled' in res.reason


# --- targets out of view ------------------------------------------------------------------


def _scrolls(steps: list[Any]) -> list[tuple[str | None, int | None]]:
    return [
        (s.action.target, s.action.dy)
        for s in steps
        if isinstance(s, ActionStep) and s.action.kind == "scroll"
    ]


def test_a_target_scrolled_away_inside_a_box_is_scrolled_to_then_clicked(
    browser: BrowserComputer, site: str
) -> None:
    """Its box lies in the viewport, but the list clips it: a click there would hit nothing."""
    _open(browser, site, "scrollbox.html")
    assert browser.dom_find("Deep item") == []
    assert browser.dom_why_not("Deep item") == (
        "'Deep item' is on the page but out of sight (scrolled away inside a box that "
        "scrolls, or under a header or footer that stays in place): scroll to it first"
    )
    steps, res = _run(browser, [{"click": "Deep item"}])
    assert res.status == "done", res.reason
    assert _out(browser) == "hit"
    scrolls = _scrolls(steps)
    assert scrolls and all(t == "Deep item" and (dy or 0) > 0 for t, dy in scrolls)
    box = browser._page.eval_on_selector("div", "d => d.getBoundingClientRect().bottom")
    y = next(s.action.y for s in steps if isinstance(s, ActionStep) and s.action.kind == "scroll")
    assert y is not None and y < box  # the wheel turned over the list, not the page


def test_a_target_no_scroll_can_free_fails_saying_where_it_is(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "footer.html")
    actor = Actor(
        browser,
        gate=AllowAll(),
        grounder=DomGrounder(browser),
        config=ActorConfig(find_timeout=0.2),
    )
    steps, res = drive(actor.run(EpisodeTask("t", "x", steps=[{"click": "Buried"}])))
    assert res.status == "failed"
    assert "'Buried' is on the page but out of sight" in res.reason
    assert len(_scrolls(steps)) <= 3
    assert not any(isinstance(s, ActionStep) and s.action.kind == "click" for s in steps)


def test_a_target_scrolled_away_sideways_is_scrolled_to_then_clicked(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "wide.html")
    assert browser.dom_find("Archive row") == []
    steps, res = _run(browser, [{"click": "Archive row"}])
    assert res.status == "done", res.reason
    assert _out(browser) == "archived"
    scrolls = [s.action for s in steps if isinstance(s, ActionStep) and s.action.kind == "scroll"]
    assert scrolls and all((a.dx or 0) > 0 and a.dy == 0 for a in scrolls)


def test_a_target_scrolled_away_inside_a_frame_is_scrolled_to_then_clicked(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "scrolled.html")
    assert browser.dom_find("Hidden button") == []
    steps, res = _run(browser, [{"click": "Hidden button"}])
    assert res.status == "done", res.reason
    assert _out(browser) == "hidden"
    frame = browser._page.eval_on_selector(
        "#f", "f => { const r = f.getBoundingClientRect(); return [r.top, r.bottom]; }"
    )
    scrolls = [s.action for s in steps if isinstance(s, ActionStep) and s.action.kind == "scroll"]
    assert scrolls and all(frame[0] <= (a.y or 0) <= frame[1] for a in scrolls)


def test_a_target_below_the_fold_is_scrolled_to_as_a_recorded_step(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "long_page.html")
    why = "'Order now' is on the page but below the part in view: scroll down first"
    assert (browser.dom_why_not("Order now") or "").startswith(why)
    steps, res = _run(browser, [{"click": "Order now"}])
    assert res.status == "done", res.reason
    assert _out(browser) == "ordered"
    (scroll,) = _scrolls(steps)
    assert scroll[0] == "Order now" and (scroll[1] or 0) >= 10
    # A text to wait for is looked at, never scrolled to.
    _open(browser, site, "long_page.html")
    steps, res = _run(browser, [{"wait_for": "Order now", "timeout": 0.3}])
    assert res.status == "failed"
    assert _scrolls(steps) == []


def test_a_target_under_a_sticky_header_is_scrolled_out_from_under_it(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "long_page.html")
    top = browser._page.eval_on_selector("button", "b => b.getBoundingClientRect().top")
    browser._page.evaluate(f"() => window.scrollBy(0, {int(top) - 30})")
    assert browser.dom_find("Order now") == []  # under the header: out of sight
    steps, res = _run(browser, [{"click": "Order now"}])
    assert res.status == "done", res.reason
    assert _out(browser) == "ordered"
    (scroll,) = _scrolls(steps)
    assert scroll[0] == "Order now" and (scroll[1] or 0) < 0  # up: out from under it
    # Half under it: found, but a click on the hidden half says which way to scroll.
    top = browser._page.eval_on_selector("button", "b => b.getBoundingClientRect().top")
    browser._page.evaluate(f"() => window.scrollBy(0, {int(top) - 72})")
    (found,) = browser.dom_find("Order now")
    browser.cover_wait = 0.1
    try:
        with pytest.raises(SandboxError, match="stays in place when the page scrolls: scroll up"):
            browser.click(found["box"].center[0], found["box"].y + 1)
    finally:
        browser.cover_wait = 1.0


# --- file fields --------------------------------------------------------------------------


def test_a_file_field_takes_the_path_of_a_file_in_the_sandbox_home(
    browser: BrowserComputer, site: str
) -> None:
    (browser.home / "docs").mkdir(exist_ok=True)
    (browser.home / "docs" / "report.txt").write_text("hello", "utf-8")
    _open(browser, site, "upload.html")
    steps, res = _run(
        browser, [{"type": "~/docs/report.txt", "into": "Attachment"}, {"click": "Upload"}]
    )
    assert res.status == "done", res.reason
    assert _out(browser) == "report.txt:5"
    assert _notes(steps) == [
        "the page opened a file chooser: type the path of a file in the sandbox home (~/name) "
        "to choose it",
        "chose ~/docs/report.txt in the page's file chooser",
    ]


def test_a_file_outside_the_home_or_missing_is_never_chosen(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "upload.html")
    for path, why in [
        ("/etc/hostname", "'/etc/hostname' is outside the sandbox home"),
        ("~/../x.txt", "'~/../x.txt' is outside the sandbox home"),
        ("~/missing.txt", "no file '~/missing.txt' in the sandbox home"),
    ]:
        _, res = _run(browser, [{"type": path, "into": "Attachment"}])
        assert res.status == "failed" and why in res.reason, res.reason
    _, res = _run(browser, [{"click": "Upload"}])
    assert _out(browser) == "none"


def test_a_file_chooser_left_open_does_not_swallow_later_typing(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "upload.html")
    _, res = _run(browser, [{"click": "Attachment"}, {"type": "hello", "into": "Note"}])
    assert res.status == "done", res.reason
    assert browser._page.eval_on_selector("#n", "e => e.value") == "hello"


# --- downloads ----------------------------------------------------------------------------


def test_a_download_is_saved_in_the_home_under_its_own_name_only(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "download.html")
    steps, res = _run(browser, [{"click": "Download report"}, {"click": "Download report"}])
    assert res.status == "done", res.reason
    folder = browser.home / "Downloads"
    for _ in range(100):  # a download may begin after the click's settle: the next call has it
        if (folder / "report (2).csv").exists():
            break
        browser.wait(0.1)
    steps.append(ActionResultStep(0, 0.0, True, notes=browser.take_notes()))
    assert (folder / "report.csv").read_text("utf-8") == "a,b\n1,2\n"
    assert (folder / "report (2).csv").is_file()
    assert _notes(steps) == [
        "the page downloaded 'report.csv' to ~/Downloads/report.csv",
        "the page downloaded 'report.csv' to ~/Downloads/report (2).csv",
    ]
    # Whatever name a page suggests stays one file inside the folder.
    assert _download_name("../../etc/passwd") == "passwd"
    assert _download_name("..\\..\\.bashrc") == "bashrc"
    assert _download_name("..") == "download"


# --- common widgets -----------------------------------------------------------------------


def test_hover_menus_details_and_fetched_content_work_as_a_person_uses_them(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "widgets.html")
    assert browser.dom_find("Export") == []  # hidden until the menu is hovered
    steps = [
        {"click": "File"},
        {"click": "Export"},
        {"click": "More options"},
        {"type": "SAVE10", "into": "Coupon"},
        {"click": "Load more"},
        {"click": "Confirm part"},
        {"wait_for": "Done!", "timeout": 3},
    ]
    _, res = _run(browser, steps)
    assert res.status == "done", res.reason
    assert _out(browser) == "exported"
    assert browser._page.eval_on_selector("#coupon", "e => e.value") == "SAVE10"
