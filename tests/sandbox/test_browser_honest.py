"""The browser never reports ok for a wrong action: typing that checks itself, honest
``into``, no click into something covering the target, grounding that finds what a person
would aim at. Each test is one defect class of issue 14, on real Chromium."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agentcorp.actor import Actor, EpisodeTask
from agentcorp.errors import SandboxError
from agentcorp.grounding.base import Hint
from agentcorp.grounding.dom import DomGrounder
from agentcorp.grounding.resolve import Ambiguous, NotFound, resolve
from agentcorp.policy.base import AllowAll
from agentcorp.sandbox.browser import BrowserComputer
from agentcorp.testing.drive import drive
from agentcorp.types import ActionResultStep

STYLE = "<style>body{font-family:DejaVu Sans,sans-serif;margin:20px} .row{margin:12px 0}</style>"
PAGES = {
    # Keys arriving within 40 ms of a '+' are dropped, as a busy calculator drops them.
    "drops.html": """<input id="f" autofocus><script>
      let last = 0; const f = document.getElementById('f');
      f.addEventListener('keydown', (e) => {
        const now = performance.now();
        if (now - last < 40) { e.preventDefault(); return; }
        if (e.key === '+') last = now;
      });</script>""",
    "maxlen.html": '<input id="f" maxlength="3" autofocus>',
    "secret.html": '<input id="p" type="password" maxlength="4" autofocus>',
    "nofocus.html": "<p>Nothing to type into here.</p>",
    # A caption beside a field with no <label>, and a caption above a field.
    "captions.html": """<div class="row"><span>Username</span> <input id="u"></div>
      <div class="row"><div>Comments</div><textarea id="c"></textarea></div>
      <div class="row"><label for="e">Email</label><input id="e"></div>
      <div class="row"><span>Notes</span></div>""",
    "date.html": '<input id="d" type="date"><input id="t" placeholder="mm/dd/yyyy">',
    "list.html": """<p>Click the link Products below.</p>
      <ul><li><a href="#p">Products</a></li><li><a href="#s">Services</a></li></ul>
      <button>Edit</button> <button>Edit</button>
      <a href="#save">Save</a> <button>Save</button>""",
    # An autocomplete menu open over the Submit button; and an overlay that goes away.
    "covered.html": """<div style="position:relative">
      <input id="q" value="ap"><br><br><button id="submit" onclick="window.clicked=1">Submit
      </button><ul id="menu" class="ui-autocomplete" style="position:absolute;top:20px;left:0;
      width:300px;height:80px;margin:0;background:#fff;border:1px solid #888">
      <li>apple</li><li>apricot</li></ul></div>""",
    "transient.html": """<button id="go" onclick="window.clicked=1">Go</button>
      <div id="veil" style="position:fixed;inset:0;background:rgba(0,0,0,.3)"></div>
      <script>setTimeout(() => document.getElementById('veil').remove(), 300);</script>""",
    "select.html": """<label for="s">Customer</label><select id="s"><option>---</option>
      <option>Globex Corporation</option><option>Hooli</option></select>""",
    # Radio buttons inside their labels, whose (invisible) values repeat the labels' words;
    # and a closed list beside its caption.
    "choices.html": """<p>Shipping: <label><input type=radio name=ship value=standard checked>
      Standard</label> <label><input type=radio name=ship value=express> Express</label></p>
      <p><label for="z">Size</label> <select id="z"><option>Small</option><option>Large</option>
      </select></p>""",
    # Words with characters that draw nothing inside: they show as "Confirm", "receipt".
    "invisible.html": """<p>Keep the re&shy;ceipt.</p>
      <button id="b" onclick="window.clicked=1">Con&#8203;firm</button>""",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("honest")
    for name, body in PAGES.items():
        (root / name).write_text(f"<!doctype html><meta charset=utf-8>{STYLE}{body}", "utf-8")

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
    with BrowserComputer(screen=(800, 600), secrets={"PIN": "123456"}) as b:
        yield b


def _open(b: BrowserComputer, site: str, page: str) -> None:
    b.goto(f"{site}/{page}")
    b.settle()


def _value(b: BrowserComputer, selector: str) -> str:
    return str(b._page.eval_on_selector(selector, "e => e.value"))


def test_typing_retries_slower_when_the_page_drops_keys(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "drops.html")
    browser.type("1234+4321")
    assert _value(browser, "#f") == "1234+4321"


def test_typing_that_does_not_land_fails_with_what_is_there(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "maxlen.html")
    landed = r"'abcdef' did not land in <input type=text#f>: it holds 'abc'"
    with pytest.raises(SandboxError, match=landed):
        browser.type("abcdef")


def test_a_secret_that_does_not_land_is_never_shown(browser: BrowserComputer, site: str) -> None:
    _open(browser, site, "secret.html")
    with pytest.raises(SandboxError) as err:
        browser.type("${secrets.PIN}")
    assert "123456" not in str(err.value) and "1234" not in str(err.value)
    assert "hidden" in str(err.value)


def test_typing_with_no_field_focused_sends_nothing(browser: BrowserComputer, site: str) -> None:
    _open(browser, site, "nofocus.html")
    with pytest.raises(SandboxError, match="no text field has the focus"):
        browser.type("hello")


def test_into_finds_captions_beside_and_above_fields(browser: BrowserComputer, site: str) -> None:
    _open(browser, site, "captions.html")
    g = DomGrounder(browser)
    for caption, field_id in (("Username", "u"), ("Comments", "c"), ("Email", "e")):
        got = resolve(g.locate(None, caption, Hint(role="field")), target=caption)
        assert not isinstance(got, Ambiguous | NotFound), got
        at = browser._page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y).id", list(got.box.center)
        )
        assert at == field_id
    # A caption with no field near it names no field: never the caption's own row.
    assert g.locate(None, "Notes", Hint(role="field")) == []


def test_type_into_a_caption_lands_in_its_field_through_the_loop(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "captions.html")
    actor = Actor(browser, gate=AllowAll(), grounder=DomGrounder(browser))
    steps, res = drive(
        actor.run(
            EpisodeTask("t", "x", steps=[{"type": "ada", "into": "Username"}, {"type": "hi"}])
        )
    )
    assert res.status == "done", res
    assert _value(browser, "#u") == "adahi"
    results = [s for s in steps if isinstance(s, ActionResultStep)]
    assert results and all(r.ok for r in results)
    # Every action says where its time went.
    assert {"act", "settle", "capture", "encode"} <= set(results[0].phases)
    assert "ground" in results[0].phases


def test_a_click_on_a_caption_then_typing_fails_instead_of_saying_ok(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "captions.html")
    actor = Actor(browser, gate=AllowAll(), grounder=DomGrounder(browser))
    steps, res = drive(actor.run(EpisodeTask("t", "x", steps=[{"click": "Notes"}, {"type": "x"}])))
    assert res.status == "failed" and "no text field has the focus" in res.reason
    assert [s.ok for s in steps if isinstance(s, ActionResultStep)] == [True, False]


def test_placeholder_and_date_fields(browser: BrowserComputer, site: str) -> None:
    _open(browser, site, "date.html")
    g = DomGrounder(browser)
    got = resolve(g.locate(None, "mm/dd/yyyy"), target="mm/dd/yyyy")
    assert not isinstance(got, Ambiguous | NotFound), got
    browser.click(*got.box.center)
    browser.type("11/02/2026")
    assert _value(browser, "#t") == "11/02/2026"
    browser._page.focus("#d")
    browser.type("11022026")
    assert _value(browser, "#d") == "2026-11-02"


def test_same_text_descendants_are_one_place_and_links_beat_plain_text(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "list.html")
    g = DomGrounder(browser)
    got = resolve(g.locate(None, "Products"), target="Products")
    assert not isinstance(got, Ambiguous | NotFound), got
    assert (
        browser._page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y).tagName", list(got.box.center)
        )
        == "A"
    )


def test_real_ambiguity_names_both_candidates_and_a_role_hint_settles_it(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "list.html")
    g = DomGrounder(browser)
    edit = resolve(g.locate(None, "Edit"), target="Edit")
    assert isinstance(edit, Ambiguous) and len(edit.candidates) == 2
    assert str(edit).count("'Edit' at") == 2
    save = resolve(g.locate(None, "Save"), target="Save")
    assert isinstance(save, Ambiguous)
    button = resolve(g.locate(None, "Save", Hint(role="button")), target="Save")
    link = resolve(g.locate(None, "Save", Hint(role="link")), target="Save")
    assert not isinstance(button, Ambiguous | NotFound)
    assert not isinstance(link, Ambiguous | NotFound)
    assert button.box != link.box


def test_a_click_on_a_covered_target_fails_naming_the_cover(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "covered.html")
    g = DomGrounder(browser)
    got = resolve(g.locate(None, "Submit", Hint(role="button")), target="Submit")
    assert not isinstance(got, Ambiguous | NotFound), got
    browser.cover_wait = 0.3
    try:
        with pytest.raises(SandboxError, match=r"covered by <ul#menu.ui-autocomplete> \"apple"):
            browser.click(*got.box.center)
    finally:
        browser.cover_wait = 1.0
    assert browser._page.evaluate("() => window.clicked") is None


def test_a_click_waits_for_a_transient_overlay_to_go(browser: BrowserComputer, site: str) -> None:
    _open(browser, site, "transient.html")
    g = DomGrounder(browser)
    got = resolve(g.locate(None, "Go"), target="Go")
    assert not isinstance(got, Ambiguous | NotFound), got
    browser.click(*got.box.center)
    assert browser._page.evaluate("() => window.clicked") == 1


def test_typing_into_a_list_chooses_the_option(browser: BrowserComputer, site: str) -> None:
    _open(browser, site, "select.html")
    browser._page.focus("#s")
    browser.type("Globex Corporation")
    assert _value(browser, "#s") == "Globex Corporation"
    with pytest.raises(SandboxError, match="has no option 'Initech'"):
        browser.type("Initech")


def test_a_role_in_a_click_step_picks_the_button_over_the_link(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "list.html")
    actor = Actor(browser, gate=AllowAll(), grounder=DomGrounder(browser))
    browser._page.evaluate(
        "() => document.querySelectorAll('button')[2].onclick = () => window.saved = 1"
    )
    _, res = drive(actor.run(EpisodeTask("t", "x", steps=[{"click": "Save", "role": "button"}])))
    assert res.status == "done", res
    assert browser._page.evaluate("() => window.saved") == 1
    again = Actor(browser, gate=AllowAll(), grounder=DomGrounder(browser))
    _, res = drive(again.run(EpisodeTask("t", "x", steps=[{"click": "Save"}])))
    assert res.status == "failed" and "ambiguous" in res.reason


def test_a_radio_in_its_label_is_one_place_and_its_value_is_no_name(
    browser: BrowserComputer, site: str
) -> None:
    _open(browser, site, "choices.html")
    got = resolve(DomGrounder(browser).locate(None, "Express"), target="Express")
    assert not isinstance(got, Ambiguous | NotFound), got
    browser.click(*got.box.center)
    assert browser._page.evaluate("() => document.querySelector(':checked').value") == "express"


def test_options_of_a_closed_list_are_not_on_screen(browser: BrowserComputer, site: str) -> None:
    """Only the chosen option shows: a click on another one must not land on the list."""
    _open(browser, site, "choices.html")
    g = DomGrounder(browser)
    assert isinstance(
        resolve(g.locate(None, "Large", Hint(purpose="act")), target="Large"), NotFound
    )
    shown = resolve(g.locate(None, "Small"), target="Small")
    assert not isinstance(shown, Ambiguous | NotFound), shown
    assert (
        browser._page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y).tagName", list(shown.box.center)
        )
        == "SELECT"
    )


def test_words_with_invisible_characters_inside_are_found_as_shown(
    browser: BrowserComputer, site: str
) -> None:
    # "Con\u200bfirm" is drawn as "Confirm": the DOM finds what a person sees, and a target
    # copied with the zero-width space in it finds the same button.
    _open(browser, site, "invisible.html")
    g = DomGrounder(browser)
    boxes = []
    for target in ("Confirm", "Con\u200bfirm"):
        got = resolve(g.locate(None, target, Hint(purpose="act")), target=target)
        assert not isinstance(got, Ambiguous | NotFound), got
        assert got.source == "dom" and got.score == 1.0, got
        boxes.append(got.box)
    # A word to read (a wait_for) inside a sentence: "re\u00adceipt" shows as "receipt".
    read = resolve(g.locate(None, "receipt"), target="receipt")
    assert not isinstance(read, Ambiguous | NotFound) and read.text == "Keep the receipt.", read
    at = browser._page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).id", list(boxes[0].center)
    )
    assert at == "b" and boxes[1] == boxes[0]
