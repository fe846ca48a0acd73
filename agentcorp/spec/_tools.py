"""What runners need from a loaded spec: templates, effective policy, the schema, a stable hash."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from agentcorp.spec._load import TEMPLATE_RE
from agentcorp.spec.models import Approver, Company, Models, Policy, Task

__all__ = [
    "SCHEMA_ID",
    "company_json_schema",
    "effective_models",
    "effective_policy",
    "render_description",
    "render_success",
    "render_template",
    "task_input_names",
    "task_skill_hash",
    "task_spec_hash",
]

SCHEMA_ID = "https://agentcorp.dev/schema/company-v1.json"


def render_template(text: str, inputs: Mapping[str, Any]) -> str:
    """Replace ``{inputs.name}`` with its value; other braces (JSON, ``{x}``) are left alone.

    Raises ``KeyError`` for a variable with no input (validation already rules that out).
    """

    def sub(m: Any) -> str:
        value = inputs[m.group(1)]
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return TEMPLATE_RE.sub(sub, text)


def render_description(task: Task) -> str:
    """The task's description with its inputs filled in."""
    return render_template(task.description, task.inputs)


#: Check fields holding a regular expression: an input value goes in as literal text.
_REGEX_FIELDS = frozenset({"regex", "stdout_regex"})


def _render_check(node: Any, inputs: Mapping[str, Any], key: str | None) -> Any:
    if isinstance(node, str):
        if key in _REGEX_FIELDS:
            return TEMPLATE_RE.sub(lambda m: re.escape(render_template(m.group(0), inputs)), node)
        return render_template(node, inputs)
    if isinstance(node, Mapping):
        return {k: _render_check(v, inputs, str(k)) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_render_check(v, inputs, key) for v in node]
    return node


def render_success(task: Task) -> dict[str, Any] | None:
    """The task's success check tree as JSON, ``{inputs.NAME}`` filled in everywhere.

    In a regex field the value is escaped, so ``a.b`` matches only ``a.b``: each instance
    of a batch checks its own data, literally.
    """
    if task.success is None:
        return None
    doc = task.success.model_dump(by_alias=True, exclude_none=True, mode="json")
    out = _render_check(doc, task.inputs, None)
    assert isinstance(out, dict)
    return out


def _merge(base: Policy, over: Policy | None) -> Policy:
    if over is None:
        return base

    def union(a: list[str] | None, b: list[str] | None) -> list[str]:
        return list(dict.fromkeys([*(a or []), *(b or [])]))

    return Policy(
        # Allow-lists narrow or widen per level: the most specific one set wins.
        allow_apps=over.allow_apps if over.allow_apps is not None else base.allow_apps,
        allow_urls=over.allow_urls if over.allow_urls is not None else base.allow_urls,
        # Prohibitions and confirmations accumulate, so a role cannot drop a company rule.
        forbid_keys=union(base.forbid_keys, over.forbid_keys),
        forbid_text=union(base.forbid_text, over.forbid_text),
        confirm=union(base.confirm, over.confirm),
        approver=over.approver if over.approver is not None else base.approver,
        max_type_chars=(
            over.max_type_chars if over.max_type_chars is not None else base.max_type_chars
        ),
    )


def effective_policy(company: Company, task: Task) -> Policy:
    """The policy a task runs under: company, then its role, then its sandbox.

    ``allow_apps``/``allow_urls``/``approver`` are taken from the most specific level that
    sets them (``None`` in the result means "no restriction"); ``forbid_keys``,
    ``forbid_text`` and ``confirm`` accumulate across levels. A sandbox's own ``allow_urls``
    counts as its policy's. The approver defaults to ``deny``.
    """
    role = company.roles[task.role]
    sandbox = company.sandboxes[company.task_sandbox(task)]
    policy = _merge(Policy(approver=Approver()), company.policy)
    policy = _merge(policy, role.policy)
    if sandbox.allow_urls is not None:
        policy = _merge(policy, Policy(allow_urls=list(sandbox.allow_urls)))
    return _merge(policy, sandbox.policy)


def effective_models(company: Company, task: Task) -> Models:
    """Model names for a task: the role's overrides over the company defaults."""
    base = company.defaults.models
    over = company.roles[task.role].models
    if over is None:
        return base
    return Models(
        planner=over.planner or base.planner,
        actor=over.actor or base.actor,
        judge=over.judge or base.judge,
    )


def company_json_schema() -> dict[str, Any]:
    """JSON Schema (Draft 2020-12) of a company file, for editors and other tools."""
    schema = Company.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
    }


# Fields added to the spec after hashes were first kept (recordings, caches, skills): while
# unset they are left out of the hash, so adding one never invalidates what was recorded.
_LATER_FIELDS = frozenset({"max_type_chars"})


def _without_unset_later(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_unset_later(v)
            for k, v in value.items()
            if not (k in _LATER_FIELDS and v is None)
        }
    if isinstance(value, list):
        return [_without_unset_later(v) for v in value]
    return value


def _hash(doc: dict[str, Any]) -> str:
    canon = json.dumps(
        _without_unset_later(doc), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def task_spec_hash(company: Company, task: Task) -> str:
    """sha256 of the canonical JSON of everything that shapes how a task runs.

    Covers the task, its role, its resolved sandbox (with its key), the effective policy and
    models; not file positions, comments, other tasks or secret values (only names exist in
    the spec). Used as the action-cache and recording key.
    """
    sandbox_name = company.task_sandbox(task)
    doc = {
        "v": 1,
        # ``attempts`` came later: unset, it is left out so earlier hashes (action caches,
        # shipped recordings) still hold.
        "task": task.model_dump(
            mode="json", by_alias=True, exclude={"attempts"} if task.attempts is None else None
        ),
        "role": {"key": task.role, **company.roles[task.role].model_dump(mode="json")},
        "sandbox": {
            "key": sandbox_name,
            **company.sandboxes[sandbox_name].model_dump(mode="json", by_alias=True),
        },
        "policy": effective_policy(company, task).model_dump(mode="json"),
        "models": effective_models(company, task).model_dump(mode="json"),
        "description": render_description(task),
    }
    return _hash(doc)


def task_skill_hash(company: Company, task: Task) -> str:
    """The task's spec hash *without* its input values: what a learned skill is keyed by.

    Same as ``task_spec_hash`` but the inputs contribute only their names and types, and the
    description its template, so every instance of a batch (any row of values) shares it.
    Anything else that shapes the run (steps, checks, role, sandbox and its apps, policy,
    models) still changes it.
    """
    sandbox_name = company.task_sandbox(task)
    shape = {k: type(v).__name__ for k, v in task.inputs.items()}
    doc = {
        "v": 1,
        "task": {**task.model_dump(mode="json", by_alias=True), "inputs": shape},
        "role": {"key": task.role, **company.roles[task.role].model_dump(mode="json")},
        "sandbox": {
            "key": sandbox_name,
            **company.sandboxes[sandbox_name].model_dump(mode="json", by_alias=True),
        },
        "policy": effective_policy(company, task).model_dump(mode="json"),
        "models": effective_models(company, task).model_dump(mode="json"),
    }
    return _hash(doc)


def task_input_names(task: Task) -> list[str]:
    """The declared inputs the task actually uses (in its description, steps or checks)."""
    doc = task.model_dump(mode="json", by_alias=True, exclude={"inputs"})
    used = set(TEMPLATE_RE.findall(json.dumps(doc, ensure_ascii=False)))
    return sorted(n for n in task.inputs if n in used)
