"""Run-time inputs: rows of values for a task's declared inputs, checked before anything runs.

A task declares its inputs in the spec (``inputs: {name: default}``); the default's type is
the input's type. At run time ``--input KEY=VALUE`` sets some of them for one instance and
``--inputs FILE`` (CSV with a header row, or JSON Lines) gives one instance per row. Every
row is checked against the declaration: an unknown or missing column, or a value of the
wrong type, is one ``InputRowError`` line naming the file, the row and the column.

The readers are bounded (file size, rows, cell length) and never evaluate anything.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentcorp.errors import ConfigError
from agentcorp.spec.models import Task

__all__ = [
    "MAX_INPUT_BYTES",
    "MAX_INPUT_ROWS",
    "MAX_VALUE_CHARS",
    "InputRowError",
    "check_row",
    "parse_input_args",
    "read_input_rows",
    "with_inputs",
]

#: Largest inputs file read (bytes).
MAX_INPUT_BYTES = 32 * 1024 * 1024
#: Most rows one inputs file may hold.
MAX_INPUT_ROWS = 100_000
#: Longest single value (characters).
MAX_VALUE_CHARS = 10_000

Scalar = str | int | float | bool


class InputRowError(ConfigError):
    """A run-time input row does not fit the task's declared inputs (exit 2)."""


def _type_name(v: Scalar) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    return "string"


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _from_text(text: str, default: Scalar) -> Scalar:
    """``text`` as the type of ``default``; ``ValueError`` when it is not one."""
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in ("true", "yes", "1"):
            return True
        if low in ("false", "no", "0"):
            return False
        raise ValueError(f"expected a boolean (true/false), got {text!r}")
    if isinstance(default, int):
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {text!r}") from None
    if isinstance(default, float):
        try:
            f = float(text.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
        if not math.isfinite(f):
            raise ValueError(f"expected a finite number, got {text!r}")
        return f
    return text


def _coerce(value: Any, default: Scalar) -> Scalar:
    """A row's value as the declared type (text from CSV or a flag is converted)."""
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            raise ValueError(f"value longer than {MAX_VALUE_CHARS} characters")
        if "\x00" in value:
            raise ValueError("value holds a NUL character")
        return _from_text(value, default)
    want = _type_name(default)
    if isinstance(value, bool) and want == "boolean":
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected {_article(want)}, got {type(value).__name__}")
    if want == "integer" and isinstance(value, int):
        return value
    if want == "string":
        raise ValueError(f"expected a string, got {value!r}")
    if want == "number" and math.isfinite(value):
        return float(value)
    raise ValueError(f"expected {_article(want)}, got {value!r}")


def check_row(
    task: Task, row: Mapping[str, Any], where: str, *, partial: bool = False
) -> dict[str, Scalar]:
    """``row`` checked against ``task``'s declared inputs and completed with its defaults.

    ``where`` names the row (``rows.csv: row 3``). With ``partial`` (``--input`` flags),
    columns left out keep the task's values; otherwise every declared input must be given.
    """
    declared = task.inputs
    for col in row:
        if col not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise InputRowError(
                f"{where}: column {col!r}: task {task.id!r} has no such input (inputs: {known})"
            )
    out: dict[str, Scalar] = dict(declared)
    for name, default in declared.items():
        if name not in row:
            if partial:
                continue
            raise InputRowError(f"{where}: column {name!r}: missing (task {task.id!r} needs it)")
        try:
            out[name] = _coerce(row[name], default)
        except ValueError as exc:
            raise InputRowError(f"{where}: column {name!r}: {exc}") from None
    return out


def with_inputs(task: Task, values: Mapping[str, Scalar]) -> Task:
    """A copy of ``task`` that runs with ``values`` as its inputs (already checked)."""
    return task.model_copy(update={"inputs": dict(values)})


def parse_input_args(args: Sequence[str]) -> dict[str, str]:
    """``--input KEY=VALUE`` flags as a row of text values (``check_row`` types them).

    The value is everything after the first ``=`` (it may hold ``=`` itself).
    """
    row: dict[str, str] = {}
    for a in args:
        key, sep, value = a.partition("=")
        if not sep or not key.strip():
            raise InputRowError(f"--input {a!r}: expected KEY=VALUE")
        if key.strip() in row:
            raise InputRowError(f"--input {key.strip()}: given twice")
        row[key.strip()] = value
    return row


def _read_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise InputRowError(f"{path}: {size} bytes, more than the {MAX_INPUT_BYTES} allowed")
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputRowError(f"{path}: no such inputs file") from None
    except IsADirectoryError:
        raise InputRowError(f"{path}: is a folder, not an inputs file") from None
    except OSError as exc:
        raise InputRowError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputRowError(f"{path}: line {line}: not UTF-8 text") from None


def _csv_rows(path: Path, text: str) -> Iterable[tuple[str, dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise InputRowError(f"{path}: empty: expected a header row naming the inputs")
        names = [h.strip() for h in header]
        for i, h in enumerate(names):
            if not h:
                raise InputRowError(f"{path}: header: column {i + 1} has no name")
            if names.index(h) != i:
                raise InputRowError(f"{path}: header: column {h!r} appears twice")
        for cells in reader:
            where = f"{path}: row {reader.line_num - 1}"
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # a blank line
            if len(cells) != len(names):
                raise InputRowError(
                    f"{where}: {len(cells)} cells, the header has {len(names)} columns"
                )
            yield where, dict(zip(names, cells, strict=True))
    except csv.Error as exc:
        raise InputRowError(f"{path}: row {reader.line_num - 1}: not CSV: {exc}") from None


def _jsonl_rows(path: Path, text: str) -> Iterable[tuple[str, dict[str, Any]]]:
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}: row {n}"
        try:
            obj = json.loads(line, parse_constant=_no_constant)
        except (json.JSONDecodeError, ValueError) as exc:
            raise InputRowError(f"{where}: not JSON: {exc}") from None
        except RecursionError:
            raise InputRowError(f"{where}: nested too deeply") from None
        if not isinstance(obj, dict):
            raise InputRowError(f"{where}: expected an object, got {type(obj).__name__}")
        for k, v in obj.items():
            if v is None or isinstance(v, list | dict):
                raise InputRowError(f"{where}: column {k!r}: expected a single value")
        yield where, obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a value")


def read_input_rows(path: str | Path, task: Task) -> list[dict[str, Scalar]]:
    """Every row of an inputs file, checked against ``task``: CSV or JSON Lines.

    The format is the suffix's (``.csv``; ``.jsonl``/``.ndjson``/``.json``), else a first
    non-blank character of ``{`` means JSON Lines. At least one row is needed.
    """
    p = Path(path)
    text = _read_text(p)
    suffix = p.suffix.lower()
    jsonl = suffix in (".jsonl", ".ndjson", ".json") or (
        suffix != ".csv" and text.lstrip().startswith("{")
    )
    rows = _jsonl_rows(p, text) if jsonl else _csv_rows(p, text)
    out: list[dict[str, Scalar]] = []
    for where, row in rows:
        if len(out) >= MAX_INPUT_ROWS:
            raise InputRowError(f"{p}: more than {MAX_INPUT_ROWS} rows")
        out.append(check_row(task, row, where))
    if not out:
        raise InputRowError(f"{p}: no rows")
    return out
