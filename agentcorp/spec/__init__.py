"""The company spec: pydantic models, a safe one-pass loader, and the JSON Schema.

This package imports nothing else of agentcorp but the shared error leaf (import-linter enforces
it): an invalid spec raises ``agentcorp.errors.SpecError`` (exit code 2) carrying every
``SpecIssue``, so callers never translate.
"""

from agentcorp.errors import SpecError, SpecIssue
from agentcorp.spec._inputs import (
    InputRowError,
    check_row,
    parse_input_args,
    read_input_rows,
    with_inputs,
)
from agentcorp.spec._load import (
    company_files,
    load_company,
    load_company_text,
    only_judged,
    validate_paths,
)
from agentcorp.spec._tools import (
    company_json_schema,
    effective_models,
    effective_policy,
    render_description,
    render_success,
    render_template,
    task_input_names,
    task_skill_hash,
    task_spec_hash,
)
from agentcorp.spec._yaml import DEFAULT_MAX_BYTES, DEFAULT_MAX_NODES
from agentcorp.spec.models import (
    App,
    Approver,
    Attempts,
    Budgets,
    Check,
    Company,
    Defaults,
    Models,
    Objective,
    Policy,
    Retry,
    Role,
    Sandbox,
    SecretSpec,
    Service,
    Step,
    Task,
    parse_duration,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_NODES",
    "App",
    "Approver",
    "Attempts",
    "Budgets",
    "Check",
    "Company",
    "Defaults",
    "InputRowError",
    "Models",
    "Objective",
    "Policy",
    "Retry",
    "Role",
    "Sandbox",
    "SecretSpec",
    "Service",
    "SpecError",
    "SpecIssue",
    "Step",
    "Task",
    "check_row",
    "company_files",
    "company_json_schema",
    "effective_models",
    "effective_policy",
    "load_company",
    "load_company_text",
    "only_judged",
    "parse_duration",
    "parse_input_args",
    "read_input_rows",
    "render_description",
    "render_success",
    "render_template",
    "task_input_names",
    "task_skill_hash",
    "task_spec_hash",
    "validate_paths",
    "with_inputs",
]
