"""The sample company and the public API on valid specs: order, templates, policy, hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcorp.spec import (
    Company,
    SpecError,
    effective_policy,
    load_company,
    load_company_text,
    parse_duration,
    render_description,
    render_template,
    task_spec_hash,
)

ROOT = Path(__file__).resolve().parents[2]
ACME = ROOT / "tasks" / "acme"

MINIMAL = """\
version: 1
company: t
defaults:
  budgets: {steps: 50, wall_clock: 10m}
policy:
  forbid_keys: [ctrl+q]
  confirm: ['(?i)delete']
  allow_apps: [xterm]
roles:
  clerk:
    title: Clerk
    sandbox: desk
    policy: {forbid_keys: [alt+F4], allow_apps: [mousepad], approver: {kind: prompt}}
sandboxes:
  desk:
    kind: desktop
    policy: {forbid_text: ['rm -rf'], allow_apps: [Mousepad]}
  web: {kind: browser, start_url: "http://127.0.0.1:1/", allow_urls: ["http://127.0.0.1:1/*"]}
tasks:
  - id: c
    role: clerk
    description: 'Third for {inputs.who} with JSON {"a": {inputs.n}} and {literal}'
    inputs: {who: Ann, n: 2, flag: true}
    depends_on: [b, a]
  - id: a
    role: clerk
    description: First.
  - id: b
    role: clerk
    sandbox: web
    description: Second.
    depends_on: [a]
    budgets: {steps: 50, wall_clock: 600s}
"""


def _company(text: str = MINIMAL) -> Company:
    return load_company_text(text, "t.yaml", check_files=False)


def test_sample_company_loads_from_folder_and_file() -> None:
    company = load_company(ACME)
    assert company.company == "acme-digital"
    assert company.base_dir == ACME.resolve()
    assert company.source == ACME / "company.yaml"
    assert len(company.roles) >= 3 and len(company.tasks) >= 6
    assert all(t.success for t in company.tasks)
    # every task has scripted steps but the model-driven one (it ships a recording)
    assert [t.id for t in company.tasks if not t.steps] == ["schedule-follow-up"]
    assert any(t.depends_on for t in company.tasks)
    assert load_company(ACME / "company.yaml") == company
    office = company.sandboxes["office"]
    assert office.kind == "desktop" and office.screen == (1280, 800)
    assert office.apps[0].command == ["gnumeric", "~/books.csv"]
    assert (company.base_dir / office.files["~/books.csv"]).is_file()
    backoffice = company.sandboxes["backoffice"]
    assert backoffice.start_url == "http://127.0.0.1:8765/admin/"
    assert backoffice.services[0].env == {
        "BACKOFFICE_ADMIN_PASSWORD": "${secrets.BACKOFFICE_PASSWORD}"
    }
    assert backoffice.services[0].ready_url == "http://127.0.0.1:8765/admin/login/"
    secret = company.secret_specs["BACKOFFICE_PASSWORD"]
    assert secret.allow_domains == ["127.0.0.1:8765"] and secret.allow_fields == ["Password"]


def test_sample_company_order_respects_dependencies() -> None:
    company = load_company(ACME)
    order = [t.id for t in company.task_order()]
    assert sorted(order) == sorted(t.id for t in company.tasks)
    for t in company.tasks:
        for dep in t.depends_on:
            assert order.index(dep) < order.index(t.id)


def test_task_order_is_topological_and_stable() -> None:
    company = _company()
    assert [t.id for t in company.task_order()] == ["a", "b", "c"]


def test_task_lookup_with_did_you_mean() -> None:
    company = _company()
    assert company.task("b").sandbox == "web"
    with pytest.raises(KeyError, match="did you mean 'a'"):
        company.task("aa")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("250ms", 0.25),
        ("1.5", 1.5),
        (3, 3.0),
        (0.5, 0.5),
        (" 5m ", 300.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["10 minutes", "-5s", "1d", "", "s", True, -1, None, [1]])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(bad)


def test_durations_normalised_in_models() -> None:
    company = _company()
    assert company.defaults.budgets.wall_clock == 600.0
    assert company.task("b").budgets is not None
    assert company.task("b").budgets.wall_clock == 600.0  # type: ignore[union-attr]


def test_templates_are_identifier_only() -> None:
    company = _company()
    assert render_description(company.task("c")) == (
        'Third for Ann with JSON {"a": 2} and {literal}'
    )
    assert render_template("{inputs.flag}/{inputs.x-y}/{ inputs.who }", {"flag": True}) == (
        "true/{inputs.x-y}/{ inputs.who }"
    )


def test_policy_merges_company_role_sandbox() -> None:
    company = _company()
    desk = effective_policy(company, company.task("a"))
    assert desk.allow_apps == ["Mousepad"]  # the most specific level wins
    assert desk.forbid_keys == ["ctrl+q", "alt+F4"]  # prohibitions accumulate
    assert desk.forbid_text == ["rm -rf"]
    assert desk.confirm == ["(?i)delete"]
    assert desk.approver is not None and desk.approver.kind == "prompt"
    assert desk.allow_urls is None
    web = effective_policy(company, company.task("b"))
    assert web.allow_urls == ["http://127.0.0.1:1/*"]  # sandbox allow_urls counts as policy
    assert web.allow_apps == ["mousepad"]


def test_default_approver_denies() -> None:
    company = _company(MINIMAL.replace(", approver: {kind: prompt}", ""))
    policy = effective_policy(company, company.task("a"))
    assert policy.approver is not None and policy.approver.kind == "deny"


def test_spec_hash_is_stable_and_sensitive() -> None:
    company = _company()
    h = task_spec_hash(company, company.task("c"))
    assert len(h) == 64
    # Comments, key order and other tasks do not matter ...
    reordered = MINIMAL.replace(
        "    inputs: {who: Ann, n: 2, flag: true}",
        "    # a comment\n    inputs: {n: 2, flag: true, who: Ann}",
    ).replace("    description: Second.", "    description: Second, reworded.")
    other = _company(reordered)
    assert task_spec_hash(other, other.task("c")) == h
    # ... but the task, its role and its sandbox do.
    for old, new in [
        ("who: Ann", "who: Bob"),
        ("title: Clerk", "title: Senior clerk"),
        ("policy: {forbid_text: ['rm -rf']", "policy: {forbid_text: ['rm -r']"),
        ("forbid_keys: [ctrl+q]", "forbid_keys: [ctrl+w]"),
    ]:
        changed = _company(MINIMAL.replace(old, new))
        assert task_spec_hash(changed, changed.task("c")) != h, old


def test_hash_of_sample_tasks_differ() -> None:
    company = load_company(ACME)
    hashes = {task_spec_hash(company, t) for t in company.tasks}
    assert len(hashes) == len(company.tasks)


def test_all_errors_reported_at_once() -> None:
    text = MINIMAL.replace(
        "role: clerk\n    description: First.", "role: clerc\n    description: '{inputs.x}'"
    )
    text = text.replace("depends_on: [a]", "depends_on: [c]")
    with pytest.raises(SpecError) as info:
        _company(text)
    assert [str(i) for i in info.value.issues] == [
        "t.yaml:24:18: tasks[0].depends_on[0]: depends_on cycle: c → b → c",
        "t.yaml:26:11: tasks[1].role: unknown role 'clerc' (did you mean 'clerk'?)",
        "t.yaml:27:18: tasks[1].description: template variable {inputs.x} has no input 'x'",
    ]


def test_check_files_resolves_against_base_dir(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    kind: desktop\n", "    kind: desktop\n    files: {'~/a.txt': data/a.txt}\n"
    )
    with pytest.raises(SpecError, match=r"source file 'data/a\.txt' not found"):
        load_company_text(text, "t.yaml", base_dir=tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("x")
    company = load_company_text(text, "t.yaml", base_dir=tmp_path)
    assert company.base_dir == tmp_path.resolve()


def test_merge_keys_and_anchors_are_supported() -> None:
    text = MINIMAL.replace(
        "roles:\n  clerk:\n    title: Clerk\n",
        "roles:\n  clerk: &base\n    title: Clerk\n",
    ).replace(
        "sandboxes:\n",
        "  boss:\n    <<: *base\n    title: Boss\nsandboxes:\n",
    )
    company = _company(text)
    assert company.roles["boss"].title == "Boss"
    assert company.roles["boss"].sandbox == "desk"


def test_step_union_error_names_every_kind() -> None:
    from pydantic import TypeAdapter, ValidationError

    from agentcorp.spec.models import STEP_KINDS, Step

    with pytest.raises(ValidationError) as info:
        TypeAdapter(Step).validate_python({"teleport": "A"})
    message = info.value.errors()[0]["msg"]
    assert all(kind in message for kind in STEP_KINDS)


@pytest.mark.parametrize(
    "step",
    [
        '{double_click: "{inputs.nope}"}',
        '{drag: {from: "{inputs.nope}", to: Trash}}',
        '{scroll: {at: "{inputs.nope}"}}',
    ],
)
def test_template_variables_are_checked_in_every_step_text(step: str) -> None:
    text = f"""
version: 1
company: T
roles: {{r: {{title: R, sandbox: s}}}}
sandboxes: {{s: {{kind: browser}}}}
tasks:
  - id: t
    role: r
    description: d
    steps: [{step}]
"""
    with pytest.raises(SpecError, match=r"tasks\[0\]\.steps\[0\].*has no input 'nope'"):
        load_company_text(text, "t.yaml")


def test_wait_step_is_bounded_and_located() -> None:
    text = """
version: 1
company: T
roles: {r: {title: R, sandbox: s}}
sandboxes: {s: {kind: browser}}
tasks:
  - id: t
    role: r
    description: d
    steps:
      - wait: 2s
      - wait: 2h
"""
    with pytest.raises(SpecError) as info:
        load_company_text(text, "t.yaml")
    [issue] = info.value.issues
    assert (issue.line, issue.path) == (12, "tasks[0].steps[1].wait")
    assert "over the 3600s limit" in issue.message
