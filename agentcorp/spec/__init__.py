"""The company spec: pydantic models, a safe one-pass loader, and the JSON Schema.

This package imports nothing else of agentcorp (import-linter enforces it); its errors are its
own ``SpecValidationError``, which the CLI turns into ``agentcorp.errors.SpecError``.
"""

from agentcorp.spec._inputs import (
    InputRowError,
    check_row,
    parse_input_args,
    read_input_rows,
    with_inputs,
)
from agentcorp.spec._issues import SpecValidationError, ValidationIssue
from agentcorp.spec._load import (
    company_files,
    load_company,
    load_company_text,
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
    Budgets,
    Check,
    Company,
    Defaults,
    Models,
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
    "Budgets",
    "Check",
    "Company",
    "Defaults",
    "InputRowError",
    "Models",
    "Policy",
    "Retry",
    "Role",
    "Sandbox",
    "SecretSpec",
    "Service",
    "SpecValidationError",
    "Step",
    "Task",
    "ValidationIssue",
    "check_row",
    "company_files",
    "company_json_schema",
    "effective_models",
    "effective_policy",
    "load_company",
    "load_company_text",
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
