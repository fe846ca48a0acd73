"""The JSON Schema is valid Draft 2020-12, accepts every company in tasks/, rejects garbage."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from agentcorp.cli import main
from agentcorp.spec import company_json_schema

ROOT = Path(__file__).resolve().parents[2]
COMPANIES = sorted(p for p in (ROOT / "tasks").rglob("*.y*ml"))


def _schema_from_cli(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["schema"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    schema = json.loads(out)
    assert isinstance(schema, dict)
    return schema


def test_schema_is_valid_draft_2020_12(capsys: pytest.CaptureFixture[str]) -> None:
    schema = _schema_from_cli(capsys)
    assert schema == company_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", COMPANIES, ids=[p.name for p in COMPANIES])
def test_schema_accepts_every_company_in_tasks(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = _schema_from_cli(capsys)
    data = YAML(typ="safe", pure=True).load(path.read_text("utf-8"))
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert errors == []


def test_tasks_folder_has_companies() -> None:
    assert COMPANIES


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.update(compnay="x"), "compnay"),
        (lambda d: d["tasks"][0].update(role=5), "role"),
        (lambda d: d["tasks"][0]["steps"].append({"clik": "Save"}), "clik"),
        (lambda d: d["sandboxes"]["office"].update(kind="vm"), "vm"),
        (lambda d: d["defaults"]["budgets"].update(wall_clock="10 minutes"), "10 minutes"),
        (lambda d: d["tasks"][0].update(success={"check": "nope"}), "nope"),
    ],
)
def test_schema_rejects_invalid_documents(mutate: object, where: str) -> None:
    data = YAML(typ="safe", pure=True).load((ROOT / "tasks/acme/company.yaml").read_text())
    mutate(data)  # type: ignore[operator]
    errors = list(jsonschema.Draft202012Validator(company_json_schema()).iter_errors(data))
    assert errors, where
