"""Run-time input rows: CSV and JSON Lines read, checked against the task, one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentcorp.errors import ConfigError
from agentcorp.spec import (
    InputRowError,
    SpecError,
    check_row,
    load_company_text,
    parse_input_args,
    read_input_rows,
    render_success,
    task_skill_hash,
    task_spec_hash,
    with_inputs,
)
from agentcorp.spec.models import Company, Task

COMPANY = """\
version: 1
company: rows-co
roles:
  clerk: {title: Clerk, sandbox: web}
sandboxes:
  web: {kind: browser, start_url: "http://127.0.0.1:1/"}
tasks:
  - id: add-customer
    role: clerk
    description: Add customer {inputs.name} with {inputs.seats} seats.
    inputs: {name: Ann, seats: 1, rate: 1.5, vip: false}
    success:
      all:
        - {check: screen_contains, text: "Customer {inputs.name}"}
        - {check: url_matches, regex: "/customers/{inputs.name}$"}
"""


def company() -> Company:
    return load_company_text(COMPANY, "company.yaml")


def task() -> Task:
    return company().task("add-customer")


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_rows_are_typed_by_the_declared_defaults(tmp_path: Path) -> None:
    p = write(tmp_path, "rows.csv", 'name,seats,rate,vip\nBob,3,2.25,yes\n\n"Lee, Ann",0,1,false\n')
    rows = read_input_rows(p, task())
    assert rows == [
        {"name": "Bob", "seats": 3, "rate": 2.25, "vip": True},
        {"name": "Lee, Ann", "seats": 0, "rate": 1.0, "vip": False},
    ]


def test_jsonl_rows(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "rows.jsonl",
        '{"name": "Bob", "seats": 2, "rate": 3, "vip": true}\n\n'
        '{"name": "", "seats": "4", "rate": 0.5, "vip": "no"}\n',
    )
    rows = read_input_rows(p, task())
    assert rows[0] == {"name": "Bob", "seats": 2, "rate": 3.0, "vip": True}
    assert rows[1] == {"name": "", "seats": 4, "rate": 0.5, "vip": False}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "a.csv",
            "name,seats,rate,vip,colour\nB,1,1,true,red\n",
            r"a\.csv: row 1: column 'colour': task 'add-customer' has no such input",
        ),
        ("b.csv", "name,seats,rate\nB,1,1\n", r"b\.csv: row 1: column 'vip': missing"),
        (
            "c.csv",
            "name,seats,rate,vip\nB,1,1,true\nC,many,1,true\n",
            r"c\.csv: row 2: column 'seats': expected an integer, got 'many'",
        ),
        (
            "d.csv",
            "name,seats,rate,vip\nB,1,nan,true\n",
            r"d\.csv: row 1: column 'rate': expected a finite number",
        ),
        (
            "e.csv",
            "name,seats,rate,vip\nB,1\n",
            r"e\.csv: row 1: 2 cells, the header has 4 columns",
        ),
        ("f.csv", "name,name,rate,vip\n", r"f\.csv: header: column 'name' appears twice"),
        ("g.csv", "", r"g\.csv: empty"),
        ("h.csv", "name,seats,rate,vip\n", r"h\.csv: no rows"),
        (
            "i.jsonl",
            '{"name": "B", "seats": 1.5, "rate": 1, "vip": true}\n',
            r"i\.jsonl: row 1: column 'seats': expected an integer, got 1.5",
        ),
        ("j.jsonl", '{"name": "B"}\n[1]\n', r"j\.jsonl: row 1: column 'seats': missing"),
        (
            "k.jsonl",
            '{"name": "B", "seats": 1, "rate": NaN, "vip": true}\n',
            r"k\.jsonl: row 1: not JSON",
        ),
        (
            "l.jsonl",
            '{"name": ["B"], "seats": 1, "rate": 1, "vip": true}\n',
            r"l\.jsonl: row 1: column 'name': expected a single value",
        ),
        ("m.jsonl", "[" * 100_000 + "\n", r"m\.jsonl: row 1: "),
        ("n.jsonl", '"just text"\n', r"n\.jsonl: row 1: expected an object, got str"),
    ],
)
def test_bad_rows_are_one_line_naming_file_row_and_column(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    p = write(tmp_path, name, text)
    with pytest.raises(InputRowError) as info:
        read_input_rows(p, task())
    msg = str(info.value)
    assert "\n" not in msg
    assert re.search(message, msg), msg
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputRowError, match="no such inputs file"):
        read_input_rows(tmp_path / "nope.csv", task())
    with pytest.raises(InputRowError, match="is a folder"):
        read_input_rows(tmp_path, task())
    bad = tmp_path / "latin.csv"
    bad.write_bytes(b"name,seats,rate,vip\n\xe9,1,1,true\n")
    with pytest.raises(InputRowError, match=r"line 2: not UTF-8"):
        read_input_rows(bad, task())


def test_input_flags_fill_in_only_what_they_name() -> None:
    row = parse_input_args(["name=Zoë=1", "seats=7"])
    assert row == {"name": "Zoë=1", "seats": "7"}
    assert check_row(task(), row, "--input", partial=True) == {
        "name": "Zoë=1",
        "seats": 7,
        "rate": 1.5,
        "vip": False,
    }
    with pytest.raises(InputRowError, match=r"--input 'name': expected KEY=VALUE"):
        parse_input_args(["name"])
    with pytest.raises(InputRowError, match=r"--input seats: given twice"):
        parse_input_args(["seats=1", "seats=2"])
    with pytest.raises(InputRowError, match=r"--input: column 'nmae': .*has no such input"):
        check_row(task(), {"nmae": "B"}, "--input", partial=True)


def test_success_checks_are_rendered_per_instance_regex_literally() -> None:
    t = with_inputs(task(), {"name": "a.b", "seats": 2, "rate": 1.0, "vip": True})
    doc = render_success(t)
    assert doc is not None
    texts = [c.get("text") or c.get("regex") for c in doc["all"]]
    assert texts == ["Customer a.b", r"/customers/a\.b$"]
    assert re.search(texts[1], "/customers/a.b") and not re.search(texts[1], "/customers/aXb")


def test_success_templates_are_validated_at_load() -> None:
    bad = COMPANY.replace('"Customer {inputs.name}"', '"Customer {inputs.nmae}"')
    with pytest.raises(SpecError) as info:
        load_company_text(bad, "company.yaml")
    assert "{inputs.nmae} has no input 'nmae'" in str(info.value)


def test_the_skill_hash_ignores_input_values_but_not_their_shape() -> None:
    c = company()
    t = c.task("add-customer")
    other = with_inputs(t, {"name": "Bob", "seats": 9, "rate": 2.0, "vip": True})
    assert task_spec_hash(c, t) != task_spec_hash(c, other)
    assert task_skill_hash(c, t) == task_skill_hash(c, other)
    reshaped = t.model_copy(update={"inputs": {**t.inputs, "seats": "1"}})
    assert task_skill_hash(c, t) != task_skill_hash(c, reshaped)
    changed = t.model_copy(update={"description": "Add customer {inputs.name}."})
    assert task_skill_hash(c, t) != task_skill_hash(c, changed)
