"""Load and validate company files in one pass, reporting every problem with FILE:LINE:COL."""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agentcorp._io import UnsafeRead, read_bounded
from agentcorp._text import visible
from agentcorp.errors import SpecError, SpecIssue
from agentcorp.spec._issues import did_you_mean, format_path
from agentcorp.spec._yaml import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_NODES,
    Parsed,
    Path_,
    decode,
    parse_yaml,
)
from agentcorp.spec.models import (
    LEAF_CHECKS,
    STEP_KINDS,
    Company,
    parse_duration,
)

__all__ = [
    "SECRET_RE",
    "TEMPLATE_RE",
    "company_files",
    "load_company",
    "load_company_text",
    "validate_paths",
]

# Identifier-only, so JSON such as {"a": 1} in a description is never taken for a variable.
TEMPLATE_RE = re.compile(r"\{inputs\.([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_RE = re.compile(r"\$\{\s*secrets\.([^}\s]*)\s*\}")
_YAML_SUFFIXES = (".yaml", ".yml")
_COMPANY_LINE = re.compile(r"^company\s*:", re.MULTILINE)


# --- public entry points ---------------------------------------------------------------------


def load_company_text(
    text: str,
    filename: str = "<string>",
    *,
    base_dir: str | os.PathLike[str] | None = None,
    check_files: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> Company:
    """Validate YAML text and return the ``Company``; raise ``SpecError`` if invalid.

    ``base_dir`` (default: the folder of ``filename``) is where relative paths in the spec
    point; ``check_files`` verifies that files copied into sandboxes exist there.
    """
    if len(text) > max_bytes:
        raw_issue = SpecIssue(
            filename,
            1,
            1,
            "",
            f"file is over the {max_bytes:,}-byte limit for spec files",
        )
        raise SpecError([raw_issue])
    base = Path(base_dir) if base_dir is not None else Path(filename).parent
    company, issues = _validate_text(
        text.removeprefix("\ufeff"), filename, base, check_files, max_nodes
    )
    if company is None:
        raise SpecError(issues)
    return company


def load_company(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
    base_dir: str | os.PathLike[str] | None = None,
) -> Company:
    """Load a company file, or the one company file in a folder; raise ``SpecError``.

    ``base_dir`` (default: the file's folder) is where its relative paths point: a company
    written elsewhere (a manager's plan in a run folder) keeps the folder of the one it came from.
    """
    p = Path(path)
    if p.is_dir():
        candidates = company_files(p)
        if len(candidates) != 1:
            names = ", ".join(c.name for c in candidates) or "none"
            raise SpecError(
                [
                    SpecIssue(
                        str(p),
                        1,
                        1,
                        "",
                        f"a folder must hold exactly one company file (*.yaml with 'company:'); "
                        f"found {len(candidates)}: {names}",
                    )
                ]
            )
        p = candidates[0]
    company, issues = _validate_file(
        p, str(p), max_bytes, max_nodes, Path(base_dir) if base_dir is not None else None
    )
    if company is None:
        raise SpecError(issues)
    return company


def validate_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_nodes: int = DEFAULT_MAX_NODES,
) -> list[SpecIssue]:
    """Every issue in the given files and folders (every *.yaml/*.yml below a folder)."""
    issues: list[SpecIssue] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = sorted(
                f
                for f in p.rglob("*")
                if f.suffix in _YAML_SUFFIXES
                and f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not files:
                issues.append(SpecIssue(str(p), 1, 1, "", "no *.yaml or *.yml files here"))
            for f in files:
                issues.extend(_validate_file(f, str(f), max_bytes, max_nodes)[1])
        elif p.exists():
            issues.extend(_validate_file(p, str(p), max_bytes, max_nodes)[1])
        else:
            issues.append(SpecIssue(str(p), 1, 1, "", "no such file or folder"))
    return issues


def company_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The company files directly in ``folder``: YAML files with a top-level ``company:`` key."""
    out = []
    for f in sorted(Path(folder).iterdir()):
        if f.suffix not in _YAML_SUFFIXES or not f.is_file():
            continue
        try:
            head = read_bounded(f, DEFAULT_MAX_BYTES, root=folder).decode("utf-8", "replace")
        except (OSError, UnsafeRead):
            continue
        if _COMPANY_LINE.search(head):
            out.append(f)
    return out


# --- the one pass ---------------------------------------------------------------------------


def _validate_file(
    path: Path, filename: str, max_bytes: int, max_nodes: int, base_dir: Path | None = None
) -> tuple[Company | None, list[SpecIssue]]:
    try:
        # Read through the bounded reader: ``stat`` says 0 for /dev/zero, a FIFO would block.
        raw = read_bounded(path, max_bytes, root=path.parent, what="spec file")
    except UnsafeRead as exc:
        message = str(exc).removeprefix(f"{path}: ")
        return None, [SpecIssue(filename, 1, 1, "", message)]
    except OSError as exc:
        return None, [SpecIssue(filename, 1, 1, "", f"cannot read: {exc.strerror or exc}")]
    text = decode(raw, filename, max_bytes)
    if isinstance(text, SpecIssue):
        return None, [text]
    base = base_dir if base_dir is not None else path.parent
    company, issues = _validate_text(text, filename, base, True, max_nodes)
    if company is not None:
        company._source = path
    return company, issues


def _validate_text(
    text: str, filename: str, base_dir: Path, check_files: bool, max_nodes: int
) -> tuple[Company | None, list[SpecIssue]]:
    parsed = parse_yaml(text, filename, max_nodes=max_nodes)
    if isinstance(parsed, SpecIssue):
        return None, [parsed]
    if not isinstance(parsed.data, dict):
        line, col = parsed.values.get((), (1, 1))
        return None, [
            SpecIssue(
                filename,
                line,
                col,
                "",
                f"a company spec is a mapping of keys (version, company, roles, ...), "
                f"got {_describe(parsed.data)}",
            )
        ]
    ctx = _Ctx(filename, parsed)
    company: Company | None = None
    try:
        company = Company.model_validate(parsed.data)
    except ValidationError as exc:
        _pydantic_issues(ctx, exc)
    _semantic_issues(ctx, base_dir, check_files)
    issues = sorted(set(ctx.issues))
    if any(not i.warning for i in issues):
        return None, issues
    assert company is not None
    company._base_dir = base_dir.resolve()
    return company, issues  # warnings only


class _Ctx:
    def __init__(self, filename: str, parsed: Parsed) -> None:
        self.filename = filename
        self.parsed = parsed
        self.data: dict[str, Any] = parsed.data
        self.issues: list[SpecIssue] = []

    def where(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        if key and path in self.parsed.keys:
            return self.parsed.keys[path]
        p = path
        while p:
            if p in self.parsed.values:
                return self.parsed.values[p]
            p = p[:-1]
        return self.parsed.values.get((), (1, 1))

    def add(self, path: Path_, message: str, *, key: bool = False, warning: bool = False) -> None:
        line, col = self.where(path, key=key)
        # One line per issue, always: values quoted into messages may hold newlines.
        one_line = " ".join(message.split())
        where = " ".join(format_path(path).split())
        self.issues.append(SpecIssue(self.filename, line, col, where, one_line, warning))


# --- pydantic errors → issues --------------------------------------------------------------

_NOUNS = {
    "string_type": "text",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "tuple_type": "a list",
    "literal_error": "",
}


def _walk(data: Any, loc: Sequence[str | int]) -> tuple[Path_, Any]:
    """Follow a pydantic ``loc`` through the raw data.

    The model types are walked alongside, so a segment naming a union member (a
    discriminator tag such as ``type``, or a class name) is consumed without being mistaken
    for a key of the data that happens to have the same name.
    """
    clean: list[str | int] = []
    cur = data
    tp: Any = Company
    for seg in loc:
        if tp is not None and typing.get_origin(_strip(tp)) in (typing.Union, types.UnionType):
            tp = _descend(tp, seg)
            continue
        tp = _descend(tp, seg) if tp is not None else None
        in_dict = isinstance(cur, dict) and isinstance(seg, str) and seg in cur
        in_list = isinstance(cur, list) and isinstance(seg, int) and 0 <= seg < len(cur)
        if in_dict or in_list:
            clean.append(seg)
            cur = cur[seg]
    return tuple(clean), cur


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class a pydantic ``loc`` points into (to list the keys it allows)."""
    tp: Any = Company
    for seg in loc:
        tp = _descend(tp, seg)
        if tp is None:
            return None
    tp = _strip(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _strip(tp: Any) -> Any:
    """Drop ``Annotated`` wrappers and ``| None``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [m for m in typing.get_args(tp) if m is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _descend(tp: Any, seg: str | int) -> Any:
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        # pydantic names the union member it tried: a discriminator tag or a class name.
        for m in typing.get_args(tp):
            tags = [getattr(x, "tag", None) for x in getattr(m, "__metadata__", ())]
            if seg in tags or seg == getattr(_strip(m), "__name__", None):
                return m
        return None
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, f in tp.model_fields.items():
            if seg in (name, f.alias):
                return f.annotation
        return None
    if origin is list and isinstance(seg, int):
        return typing.get_args(tp)[0]
    if origin is dict and isinstance(seg, str):
        return typing.get_args(tp)[1]
    return None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _pydantic_issues(ctx: _Ctx, exc: ValidationError) -> None:
    errors = exc.errors(include_url=False)
    walked = [(_walk(ctx.data, e["loc"]), e) for e in errors]
    paths = [w[0][0] for w in walked]
    grouped: dict[Path_, list[tuple[Any, dict[str, Any]]]] = {}
    for (clean, value), e in walked:
        etype = e["type"]
        if etype in _NOUNS and any(len(p) > len(clean) and p[: len(clean)] == clean for p in paths):
            # A union member that did not fit the input's type while another member got
            # further: the deeper error is the useful one.
            continue
        if etype == "missing":
            name = e["loc"][-1]
            ctx.add(clean, f"missing required field {name!r}")
            continue
        if etype == "extra_forbidden":
            key = str(e["loc"][-1])
            model = _model_at(e["loc"][:-1])
            allowed = _allowed_keys(model) if model else []
            hint = did_you_mean(key, allowed)
            if not hint and allowed:
                hint = f" (allowed: {', '.join(allowed)})"
            ctx.add(clean, f"unknown key {key!r}{hint}", key=True)
            continue
        if etype == "step_kind":
            _step_kind_issue(ctx, clean, value)
            continue
        if etype == "check_kind":
            _check_kind_issue(ctx, clean, value)
            continue
        grouped.setdefault(clean, []).append((value, dict(e)))
    for clean, errs in grouped.items():
        value = errs[0][0]
        types_ = [e["type"] for _, e in errs]
        if len(errs) > 1 and all(t in _NOUNS and t != "literal_error" for t in types_):
            nouns = list(dict.fromkeys(_NOUNS[t] for t in types_))
            expected = ", ".join(nouns[:-1]) + " or " + nouns[-1] if len(nouns) > 1 else nouns[0]
            ctx.add(clean, f"expected {expected}, got {_describe(value)}")
            continue
        if len(errs) > 1 and any(t not in _NOUNS for t in types_):
            # The input had the right type for one union member: its error is the one to show.
            errs = [
                (v, e) for v, e in errs if e["type"] not in _NOUNS or e["type"] == "literal_error"
            ]
        msgs = list(dict.fromkeys(_message(e, value) for _, e in errs))
        ctx.add(clean, "; or ".join(msgs))


def _message(e: dict[str, Any], value: Any) -> str:
    etype = e["type"]
    msg = str(e["msg"])
    if etype == "value_error":
        return msg.removeprefix("Value error, ")
    if etype == "assertion_error":
        return msg.removeprefix("Assertion failed, ")
    if etype == "literal_error":
        expected = str(e.get("ctx", {}).get("expected", ""))
        options = re.findall(r"'([^']*)'", expected) or re.findall(r"\b\w+\b", expected)
        hint = did_you_mean(value, options) if isinstance(value, str) else ""
        return f"expected {expected}, got {_describe(value)}{hint}"
    if etype == "string_pattern_mismatch":
        pattern = e.get("ctx", {}).get("pattern", "")
        return f"{_describe(value)} is not allowed here (must match {pattern})"
    if etype in _NOUNS:
        return f"expected {_NOUNS[etype]}, got {_describe(value)}"
    if etype in ("too_long", "too_short") and msg.startswith("Tuple"):
        n = len(value) if isinstance(value, list) else "?"
        return f"expected a pair of integers, got {n} items"
    if etype in ("too_long", "too_short"):
        return msg[:1].lower() + msg[1:].replace(" after validation", "")
    return f"{msg[:1].lower()}{msg[1:]}, got {_describe(value)}"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"text {shown!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _step_kind_issue(ctx: _Ctx, path: Path_, value: Any) -> None:
    kinds = ", ".join(STEP_KINDS)
    if not isinstance(value, dict):
        ctx.add(path, f'a step is a mapping such as {{click: "Save"}}, got {_describe(value)}')
        return
    found = [k for k in value if k in STEP_KINDS]
    if len(found) > 1:
        ctx.add(path, f"a step does exactly one action; found {', '.join(map(repr, found))}")
        return
    modifiers = {"into", "timeout"}
    unknown = [k for k in value if k not in modifiers] or list(value)
    if not unknown:
        ctx.add(path, f"empty step; use one of: {kinds}")
        return
    key = str(unknown[0])
    hint = did_you_mean(key, STEP_KINDS)
    ctx.add((*path, key), f"unknown step {key!r}{hint}; steps are: {kinds}", key=True)


def _check_kind_issue(ctx: _Ctx, path: Path_, value: Any) -> None:
    names = ", ".join(LEAF_CHECKS)
    if not isinstance(value, dict):
        ctx.add(
            path,
            f"a check is a mapping such as {{check: file_exists, path: ...}}, "
            f"got {_describe(value)}",
        )
        return
    if "check" in value:
        name = value["check"]
        if not isinstance(name, str):
            ctx.add((*path, "check"), f"check name must be text, got {_describe(name)}")
            return
        hint = did_you_mean(name, LEAF_CHECKS)
        ctx.add((*path, "check"), f"unknown check {name!r}{hint}; checks are: {names}")
        return
    combinators = [k for k in ("all", "any", "not") if k in value]
    if len(combinators) > 1:
        ctx.add(path, f"a check node uses one of all/any/not, found {', '.join(combinators)}")
        return
    key = str(next(iter(value), ""))
    hint = did_you_mean(key, ["all", "any", "not", "check"])
    ctx.add(
        (*path, key) if key else path,
        f"unknown check node {key!r}{hint}; use {{check: NAME, ...}} or all/any/not",
        key=bool(key),
    )


# --- cross-references and rules pydantic cannot see ------------------------------------------


def _semantic_issues(ctx: _Ctx, base_dir: Path, check_files: bool) -> None:
    data = ctx.data
    # When roles/sandboxes are missing or malformed that is already reported; naming every
    # reference to them as unknown would only bury that one error.
    roles = data.get("roles") if isinstance(data.get("roles"), dict) else None
    sandboxes = data.get("sandboxes") if isinstance(data.get("sandboxes"), dict) else None
    tasks = data.get("tasks") if isinstance(data.get("tasks"), list) else []
    assert isinstance(tasks, list)

    secrets = _declared_secrets(ctx)
    for rname, role in (roles or {}).items():
        if isinstance(role, dict) and sandboxes is not None:
            sb = role.get("sandbox")
            if isinstance(sb, str) and sb not in sandboxes:
                ctx.add(
                    ("roles", rname, "sandbox"),
                    f"unknown sandbox {sb!r}{did_you_mean(sb, sandboxes)}",
                )
    for sname, sandbox in (sandboxes or {}).items():
        if isinstance(sandbox, dict):
            _sandbox_files(ctx, sname, sandbox, base_dir, check_files)

    ids: dict[str, int] = {}
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        tid = task.get("id")
        if isinstance(tid, str):
            if tid in ids:
                first = ctx.where(("tasks", ids[tid], "id"))[0]
                ctx.add(("tasks", i, "id"), f"duplicate task id {tid!r} (first on line {first})")
            else:
                ids[tid] = i
    for i, task in enumerate(tasks):
        if isinstance(task, dict):
            _task_refs(ctx, i, task, roles, sandboxes, ids)
            _task_templates(ctx, i, task)
            _unseen_targets(ctx, i, task)
            _page_checks(ctx, i, task, roles, sandboxes)
            _attempts(ctx, i, task, roles, sandboxes)
    _cycles(ctx, tasks, ids)
    _secret_uses(ctx, (), data, secrets)
    _budgets(ctx, data, tasks)
    _objectives(ctx, data, roles)


def _declared_secrets(ctx: _Ctx) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    raw = ctx.data.get("secrets")
    if not isinstance(raw, list):
        return out
    for i, s in enumerate(raw):
        entry = {"name": s} if isinstance(s, str) else s
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            name = entry["name"]
            if name in out:
                ctx.add(("secrets", i), f"secret {name!r} is declared twice")
            out[name] = entry
    return out


def _sandbox_files(
    ctx: _Ctx, sname: str, sandbox: dict[str, Any], base_dir: Path, check_files: bool
) -> None:
    files = sandbox.get("files")
    if isinstance(files, dict):
        for dest, src in files.items():
            path = ("sandboxes", sname, "files", dest)
            if not dest.startswith("~/") or ".." in Path(dest).parts:
                ctx.add(
                    path,
                    f"sandbox path {dest!r} must start with '~/' and stay in the home folder",
                    key=True,
                )
            if check_files and isinstance(src, str) and not (base_dir / src).is_file():
                ctx.add(path, f"source file {src!r} not found next to the company file")
    services = sandbox.get("services")
    if check_files and isinstance(services, list):
        for k, svc in enumerate(services):
            cwd = svc.get("cwd") if isinstance(svc, dict) else None
            if isinstance(cwd, str) and not (base_dir / cwd).is_dir():
                ctx.add(
                    ("sandboxes", sname, "services", k, "cwd"),
                    f"folder {cwd!r} not found next to the company file",
                )


def _task_refs(
    ctx: _Ctx,
    i: int,
    task: dict[str, Any],
    roles: dict[str, Any] | None,
    sandboxes: dict[str, Any] | None,
    ids: dict[str, int],
) -> None:
    role = task.get("role")
    if roles is not None and isinstance(role, str) and role not in roles:
        ctx.add(("tasks", i, "role"), f"unknown role {role!r}{did_you_mean(role, roles)}")
    sb = task.get("sandbox")
    if sandboxes is not None and isinstance(sb, str) and sb not in sandboxes:
        ctx.add(("tasks", i, "sandbox"), f"unknown sandbox {sb!r}{did_you_mean(sb, sandboxes)}")
    elif (
        sb is None
        and roles is not None
        and isinstance(role, str)
        and isinstance(roles.get(role), dict)
        and roles[role].get("sandbox") is None
    ):
        ctx.add(("tasks", i), f"no sandbox: set 'sandbox' on the task or on role {role!r}")
    deps = task.get("depends_on")
    if isinstance(deps, list):
        for j, d in enumerate(deps):
            if isinstance(d, str) and d not in ids:
                ctx.add(("tasks", i, "depends_on", j), f"unknown task {d!r}{did_you_mean(d, ids)}")


def _page_checks(
    ctx: _Ctx,
    i: int,
    task: dict[str, Any],
    roles: dict[str, Any] | None,
    sandboxes: dict[str, Any] | None,
) -> None:
    """``dom`` and ``js`` checks read a web page: refused on a task of a desktop sandbox."""
    rname = task.get("role")
    role = roles.get(rname) if roles is not None and isinstance(rname, str) else None
    name = task.get("sandbox") or (role.get("sandbox") if isinstance(role, dict) else None)
    sandbox = sandboxes.get(name) if sandboxes is not None and isinstance(name, str) else None
    if not isinstance(sandbox, dict) or sandbox.get("kind") != "desktop":
        return
    for path, node in _check_leaves(("tasks", i, "success"), task.get("success")):
        if node.get("check") in ("dom", "js"):
            ctx.add(
                (*path, "check"),
                f"a {node['check']} check reads a web page; sandbox {name!r} is a desktop",
            )


def _check_leaves(path: Path_, node: Any) -> list[tuple[Path_, dict[str, Any]]]:
    if not isinstance(node, dict):
        return []
    if "check" in node:
        return [(path, node)]
    out: list[tuple[Path_, dict[str, Any]]] = []
    for key in ("all", "any"):
        if isinstance(node.get(key), list):
            for j, child in enumerate(node[key]):
                out.extend(_check_leaves((*path, key, j), child))
    if "not" in node:
        out.extend(_check_leaves((*path, "not"), node["not"]))
    return out


def _attempts(
    ctx: _Ctx,
    i: int,
    task: dict[str, Any],
    roles: dict[str, Any] | None,
    sandboxes: dict[str, Any] | None,
) -> None:
    """Best-of-N only where attempts cannot touch each other."""
    attempts = task.get("attempts")
    n = attempts.get("n") if isinstance(attempts, dict) else None
    if not isinstance(n, int) or isinstance(n, bool) or n <= 1:
        return
    where = ("tasks", i, "attempts")
    role = roles.get(task.get("role")) if roles is not None else None  # type: ignore[arg-type]
    name = task.get("sandbox") or (role.get("sandbox") if isinstance(role, dict) else None)
    sandbox = sandboxes.get(name) if isinstance(name, str) and sandboxes else None
    if isinstance(sandbox, dict):
        services = sandbox.get("services")
        if sandbox.get("kind") != "desktop":
            ctx.add(
                where,
                f"best-of-N needs effects that stay in the sandbox; sandbox {name!r} is a "
                "browser, whose pages live outside it",
            )
        elif isinstance(services, list) and services:
            svc = services[0].get("name") if isinstance(services[0], dict) else "?"
            ctx.add(
                where,
                f"best-of-N needs effects that stay in the sandbox; sandbox {name!r} starts "
                f"service {svc!r}, shared by every attempt",
            )


def only_judged(tree: Any) -> bool:
    """Whether a check tree (as data) decides nothing without a model: only llm_judge leaves.

    Best-of-N picks such a task's winner with a judge model instead of "first to pass".
    """
    if isinstance(tree, dict):
        if "check" in tree:
            return tree.get("check") == "llm_judge"
        kids = [v for k in ("all", "any") for v in (tree.get(k) or [])] + (
            [tree["not"]] if "not" in tree else []
        )
        return all(only_judged(k) for k in kids)
    return False


def _task_templates(ctx: _Ctx, i: int, task: dict[str, Any]) -> None:
    inputs = task.get("inputs") if isinstance(task.get("inputs"), dict) else {}
    assert isinstance(inputs, dict)
    places: list[tuple[Path_, Any]] = [(("tasks", i, "description"), task.get("description"))]
    steps = task.get("steps")
    if isinstance(steps, list):
        for j, step in enumerate(steps):
            places.extend(_texts(("tasks", i, "steps", j), step))
    places.extend(_texts(("tasks", i, "success"), task.get("success")))
    for path, text in places:
        if not isinstance(text, str):
            continue
        for m in TEMPLATE_RE.finditer(text):
            name = m.group(1)
            if name not in inputs:
                ctx.add(
                    path,
                    f"template variable {{inputs.{name}}} has no input {name!r}"
                    f"{did_you_mean(name, inputs)}",
                )


def _unseen_targets(ctx: _Ctx, i: int, task: dict[str, Any]) -> None:
    """Warn about step targets and checked texts with no visible character.

    Every source (the accessibility tree, the DOM, OCR) matches what is drawn: letters and
    digits, and punctuation or symbols as whole tokens. A text of only zero-width, control
    or other invisible characters is none of those. Blank text is already an error.
    """
    places: list[tuple[Path_, Any, str]] = []
    steps = task.get("steps")
    for j, step in enumerate(steps if isinstance(steps, list) else []):
        if not isinstance(step, dict):
            continue
        at: Path_ = ("tasks", i, "steps", j)
        for key in ("click", "double_click", "right_click", "wait_for", "into"):
            places.append(((*at, key), step.get(key), "target"))
        for outer, inner in (("drag", "from"), ("drag", "to"), ("scroll", "at")):
            sub = step.get(outer)
            if isinstance(sub, dict):
                places.append(((*at, outer, inner), sub.get(inner), "target"))
    for path, node in _check_leaves(("tasks", i, "success"), task.get("success")):
        if node.get("check") == "screen_contains":
            places.append(((*path, "text"), node.get("text"), "text"))
    for path, text, what in places:
        if isinstance(text, str) and text.strip() and not visible(text):
            ctx.add(
                path,
                f"{what} {text!r} has no visible character: no source (accessibility tree, "
                "DOM or OCR) can match it",
                warning=True,
            )


def _texts(path: Path_, value: Any) -> list[tuple[Path_, Any]]:
    """Every text inside a step or check, with its path: templates are rendered in all."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _texts((*path, str(k)), v)]
    if isinstance(value, list):
        return [t for n, v in enumerate(value) for t in _texts((*path, n), v)]
    return []


def _cycles(ctx: _Ctx, tasks: list[Any], ids: dict[str, int]) -> None:
    graph: dict[str, list[str]] = {}
    for tid, i in ids.items():
        deps = tasks[i].get("depends_on")
        graph[tid] = (
            [d for d in deps if isinstance(d, str) and d in ids] if isinstance(deps, list) else []
        )
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    reported: set[frozenset[str]] = set()
    for start in ids:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        trail: list[str] = [start]
        state[start] = 1
        while stack:
            node, k = stack[-1]
            if k < len(graph[node]):
                stack[-1] = (node, k + 1)
                nxt = graph[node][k]
                if state.get(nxt) == 1:
                    cycle = [*trail[trail.index(nxt) :], nxt]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        # Report where the first task (in file order) of the cycle names
                        # the next one, so the position is stable however DFS entered it.
                        members = cycle[:-1]
                        first = min(members, key=lambda t: ids[t])
                        at = members.index(first)
                        ring = members[at:] + members[:at] + [first]
                        deps = tasks[ids[first]].get("depends_on")
                        j = deps.index(ring[1])
                        ctx.add(
                            ("tasks", ids[first], "depends_on", j),
                            f"depends_on cycle: {' → '.join(ring)}",
                        )
                elif not state.get(nxt):
                    state[nxt] = 1
                    trail.append(nxt)
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                trail.pop()
                stack.pop()


def _secret_uses(ctx: _Ctx, path: Path_, value: Any, secrets: dict[str, dict[str, Any]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _secret_uses(ctx, (*path, k), v, secrets)
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _secret_uses(ctx, (*path, i), v, secrets)
        return
    if not isinstance(value, str) or "${" not in value:
        return
    typed = len(path) == 5 and path[0] == "tasks" and path[2] == "steps" and path[4] == "type"
    env = len(path) == 6 and path[0] == "sandboxes" and path[2] == "services" and path[4] == "env"
    for m in SECRET_RE.finditer(value):
        name = m.group(1)
        if not (typed or env):
            ctx.add(
                path,
                f"${{secrets.{name}}} may appear only in typed text (a 'type' step) "
                "or a service's env",
            )
            continue
        if name not in secrets:
            ctx.add(
                path,
                f"secret {name!r} is used but not declared in 'secrets'"
                f"{did_you_mean(name, secrets)}",
            )
            continue
        if typed:
            step = ctx.data["tasks"][path[1]]["steps"][path[3]]
            into = step.get("into") if isinstance(step, dict) else None
            allowed = secrets[name].get("allow_fields")
            if (
                isinstance(into, str)
                and isinstance(allowed, list)
                and allowed
                and (into not in allowed)
            ):
                ctx.add(
                    path,
                    f"secret {name!r} may only be typed into {allowed}, not {into!r}",
                )


def _budgets(ctx: _Ctx, data: dict[str, Any], tasks: list[Any], kind: str = "tasks") -> None:
    defaults = data.get("defaults")
    company = defaults.get("budgets") if isinstance(defaults, dict) else None
    if not isinstance(company, dict):
        return
    for i, task in enumerate(tasks):
        budgets = task.get("budgets") if isinstance(task, dict) else None
        if not isinstance(budgets, dict):
            continue
        for name in ("steps", "tokens", "usd", "wall_clock"):
            mine, cap = (
                _budget_value(name, budgets.get(name)),
                _budget_value(name, company.get(name)),
            )
            if mine is not None and cap is not None and mine > cap:
                shown = budgets[name]
                ctx.add(
                    (kind, i, "budgets", name),
                    f"{shown} exceeds the company's budget of {company[name]} "
                    f"(defaults.budgets.{name})",
                )


def _objectives(ctx: _Ctx, data: dict[str, Any], roles: dict[str, Any] | None) -> None:
    """Objective ids unique, their roles known, their goals' variables declared, budgets capped."""
    objectives = data.get("objectives")
    if not isinstance(objectives, list):
        return
    seen: dict[str, int] = {}
    for i, obj in enumerate(objectives):
        if not isinstance(obj, dict):
            continue
        oid = obj.get("id")
        if isinstance(oid, str):
            if oid in seen:
                first = ctx.where(("objectives", seen[oid], "id"))[0]
                ctx.add(
                    ("objectives", i, "id"),
                    f"duplicate objective id {oid!r} (first on line {first})",
                )
            seen.setdefault(oid, i)
        used = obj.get("roles")
        if roles is not None and isinstance(used, list):
            for j, r in enumerate(used):
                if isinstance(r, str) and r not in roles:
                    ctx.add(
                        ("objectives", i, "roles", j), f"unknown role {r!r}{did_you_mean(r, roles)}"
                    )
        raw = obj.get("inputs")
        inputs: dict[str, Any] = raw if isinstance(raw, dict) else {}
        goal = obj.get("goal")
        for m in TEMPLATE_RE.finditer(goal if isinstance(goal, str) else ""):
            if m.group(1) not in inputs:
                ctx.add(
                    ("objectives", i, "goal"),
                    f"template variable {{inputs.{m.group(1)}}} has no input {m.group(1)!r}"
                    f"{did_you_mean(m.group(1), inputs)}",
                )
    _budgets(ctx, data, objectives, "objectives")


def _budget_value(name: str, value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if name == "wall_clock":
        try:
            return parse_duration(value)
        except ValueError:
            return None
    return float(value) if isinstance(value, int | float) else None
