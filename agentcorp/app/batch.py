"""Task instances of a run: one per selected task, or one per input row of a batch.

``agentcorp.run(..., inputs={...})`` gives run-time values to the selected tasks (one
instance each); ``inputs=[{...}, ...]`` (``--inputs FILE``) is a *batch*: one task, one
instance per row, each its own ledger entry (``task#1``, ``task#2``...), session and result
line. Rows are checked against the task's declared inputs before anything runs.

A batch learns first, then fans out: when the task has no skill yet, every other row waits
for row 1 (it is learned by whatever drives the task, usually the model), then they run from
the skill on every worker; a batch whose task has a skill already fans out at once. If row 1
does not pass, nothing was learned and the others are reported as skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentcorp.errors import ConfigError
from agentcorp.spec import Task, check_row, read_input_rows

__all__ = ["Instance", "plan_instances"]


@dataclass(frozen=True)
class Instance:
    """One task instance: its fleet id, the spec's task, its run-time inputs, what it awaits."""

    id: str
    task: Task
    inputs: dict[str, Any] = field(default_factory=dict)
    #: Instances that must end first (a batch's learning row).
    after: tuple[str, ...] = ()
    #: Part of a batch (its instances are not tied to one worker).
    batch: bool = False


def _lone(tasks: Sequence[Task], inputs: Mapping[str, Any] | None) -> list[Instance]:
    """One instance per task, each taking the run-time values of the inputs it declares."""
    values = dict(inputs or {})
    used = {k for t in tasks for k in t.inputs}
    unknown = sorted(set(values) - used)
    if unknown:
        raise ConfigError(f"--input: no selected task has an input named {unknown[0]!r}")
    out = []
    for t in tasks:
        mine = {k: v for k, v in values.items() if k in t.inputs}
        if mine:
            mine = {
                k: v for k, v in check_row(t, mine, "--input", partial=True).items() if k in mine
            }
        out.append(Instance(t.id, t, mine))
    return out


def plan_instances(
    tasks: Sequence[Task],
    inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    has_skill: Callable[[Task], bool],
    inputs_file: str | os.PathLike[str] | None = None,
) -> list[Instance]:
    """The run's instances; ``has_skill(task_with_inputs)`` says whether a batch can fan out now.

    A batch (a sequence of rows, or ``inputs_file``: CSV with a header row or JSON Lines)
    needs exactly one selected task; a bad row is a ``ConfigError`` (exit 2) naming the file
    or ``inputs[i]``, the row and the column.
    """
    if inputs_file is None and (inputs is None or isinstance(inputs, Mapping)):
        return _lone(tasks, inputs)
    if inputs_file is not None and inputs:
        raise ConfigError("--inputs FILE and --input KEY=VALUE: give one or the other")
    if len(tasks) != 1:
        raise ConfigError(
            f"--inputs: a batch runs one task, {len(tasks)} are selected; name it with --task ID"
        )
    t = tasks[0]
    if inputs_file is not None:
        checked = read_input_rows(Path(inputs_file), t)
    else:
        assert inputs is not None and not isinstance(inputs, Mapping)
        checked = []
        for i, row in enumerate(inputs):
            if not isinstance(row, Mapping):
                raise ConfigError(f"inputs[{i}]: expected a mapping of input names to values")
            checked.append(check_row(t, row, f"inputs[{i}]"))
    if not checked:
        raise ConfigError("--inputs: no rows")
    ids = [f"{t.id}#{i + 1}" for i in range(len(checked))]
    first = t.model_copy(update={"inputs": checked[0]})
    wait = (ids[0],) if len(checked) > 1 and not has_skill(first) else ()
    return [Instance(ids[i], t, checked[i], wait if i else (), batch=True) for i in range(len(ids))]
