"""``plan_instances``: rows become instances; a batch waits for its learning row when needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcorp.app.batch import plan_instances
from agentcorp.errors import ConfigError
from agentcorp.spec import load_company_text
from agentcorp.spec.models import Task

COMPANY = """\
version: 1
company: b
roles:
  r: {title: R, sandbox: web}
sandboxes:
  web: {kind: browser, start_url: "http://127.0.0.1:1/"}
tasks:
  - {id: add, role: r, description: "Add {inputs.name} x{inputs.n}", inputs: {name: A, n: 1}}
  - {id: other, role: r, description: "Other {inputs.city}", inputs: {city: Oslo}}
"""


def tasks() -> list[Task]:
    return list(load_company_text(COMPANY, "c.yaml").tasks)


def test_a_batch_without_a_skill_waits_for_its_first_row() -> None:
    seen: list[Task] = []

    def has_skill(t: Task) -> bool:
        seen.append(t)
        return False

    add = tasks()[0]
    got = plan_instances([add], [{"name": "Bo", "n": "2"}, {"name": "Cy", "n": 3}], has_skill)
    assert [(i.id, i.inputs, i.after, i.batch) for i in got] == [
        ("add#1", {"name": "Bo", "n": 2}, (), True),
        ("add#2", {"name": "Cy", "n": 3}, ("add#1",), True),
    ]
    assert seen[0].inputs == {"name": "Bo", "n": 2}  # asked for the first row's key


def test_a_batch_with_a_skill_fans_out_at_once(tmp_path: Path) -> None:
    add = tasks()[0]
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"name": "Bo", "n": 2}\n{"name": "Cy", "n": 3}\n')
    got = plan_instances([add], None, lambda _t: True, rows)
    assert [i.after for i in got] == [(), ()]


def test_lone_instances_take_the_inputs_they_declare() -> None:
    got = plan_instances(tasks(), {"n": "5", "city": "Rome"}, lambda _t: False)
    assert [(i.id, i.inputs, i.batch) for i in got] == [
        ("add", {"n": 5}, False),
        ("other", {"city": "Rome"}, False),
    ]


@pytest.mark.parametrize(
    ("selected", "inputs", "message"),
    [
        (slice(None), [{"name": "x", "n": 1}], "a batch runs one task, 2 are selected"),
        (slice(0, 1), [], "--inputs: no rows"),
        (slice(0, 1), [{"name": "x"}], "inputs[0]: column 'n': missing"),
        (slice(0, 1), [{"name": "x", "n": "many"}], "inputs[0]: column 'n': expected an integer"),
        (slice(0, 1), ["name=x"], "inputs[0]: expected a mapping"),
        (slice(None), {"nmae": "x"}, "no selected task has an input named 'nmae'"),
        (slice(0, 1), {"n": "x"}, "--input: column 'n': expected an integer"),
    ],
)
def test_bad_batches_are_one_line(selected: slice, inputs: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        plan_instances(tasks()[selected], inputs, lambda _t: False)  # type: ignore[arg-type]
    assert message in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == 2
