"""A hostile-file-safe YAML reader that keeps the line and column of every key and value.

ruamel.yaml only *composes* the document into a node graph here; nothing is ever constructed
by ruamel itself, so tags such as ``!!python/object`` cannot run code. We turn the nodes into
plain dicts, lists and scalars ourselves, which lets us refuse unknown tags, duplicate keys,
recursive aliases and alias-expansion bombs, and record positions for error messages.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from agentcorp.errors import SpecIssue
from agentcorp.spec._issues import format_path

_CLoader: Any
try:
    from ruamel.yaml.cyaml import CSafeLoader as _CLoader
except ImportError:  # pragma: no cover  (no C extension: the pure parser does it all)
    _CLoader = None

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_NODES", "Parsed", "Path_", "decode", "parse_yaml"]

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
# Generous for real companies (a 1,000-task company is ~60k nodes) yet small enough that a
# "billion laughs" document is refused after a linear-time count, before anything expands.
DEFAULT_MAX_NODES = 2_000_000
_MAX_DEPTH = 100

Path_ = tuple[str | int, ...]
_STD = "tag:yaml.org,2002:"
_MERGE = _STD + "merge"
_STR, _SEQ, _MAP = _STD + "str", _STD + "seq", _STD + "map"


class Parsed:
    """A document as plain data plus where each value (and each mapping key) was written.

    Positions are only needed when something is wrong, so they are worked out on first use
    (a second walk over the composed nodes) instead of slowing down every valid file.
    """

    def __init__(self, data: Any, root: Node | None = None) -> None:
        self.data = data
        self._root = root
        self._values: dict[Path_, tuple[int, int]] | None = None
        self._keys: dict[Path_, tuple[int, int]] | None = None

    def _track(self) -> None:
        self._values, self._keys = {}, {}
        if self._root is not None:
            _convert(self._root, (), self, 0)

    @property
    def values(self) -> dict[Path_, tuple[int, int]]:
        """Path → (line, col) of each value, 1-based."""
        if self._values is None:
            self._track()
        assert self._values is not None
        return self._values

    @property
    def keys(self) -> dict[Path_, tuple[int, int]]:
        """Path → (line, col) of each mapping key, 1-based."""
        if self._keys is None:
            self._track()
        assert self._keys is not None
        return self._keys


class _Detail(Exception):
    """The fast walk met something to report; the tracking walk says exactly what and where."""


class _Refused(Exception):
    def __init__(self, line: int, col: int, path: Path_, message: str) -> None:
        self.line, self.col, self.path, self.message = line, col, path, message
        super().__init__(message)


def _pos(node: Node) -> tuple[int, int]:
    mark = node.start_mark
    return (mark.line + 1, mark.column + 1)


def decode(raw: bytes, filename: str, max_bytes: int) -> str | SpecIssue:
    """Bytes → text, or the one issue explaining why the file cannot be a spec."""
    if len(raw) > max_bytes:
        return SpecIssue(
            filename,
            1,
            1,
            "",
            f"file is {len(raw):,} bytes, over the {max_bytes:,}-byte limit for spec files",
        )
    if b"\x00" in raw:
        line = raw.count(b"\n", 0, raw.index(b"\x00")) + 1
        return SpecIssue(
            filename, line, 1, "", "binary file (contains NUL bytes); expected UTF-8 YAML text"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return SpecIssue(
            filename,
            line,
            col,
            "",
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded); "
            "save the file as UTF-8",
        )
    return text.removeprefix("\ufeff")


def parse_yaml(
    text: str, filename: str, *, max_nodes: int = DEFAULT_MAX_NODES
) -> Parsed | SpecIssue:
    """Parse one YAML document safely, or return the issue that stops it."""
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        return SpecIssue(
            filename, line, 1, "", "binary file (contains NUL bytes); expected UTF-8 YAML text"
        )
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        return SpecIssue(
            filename,
            1,
            1,
            "",
            "empty file: a company spec needs at least 'version', 'company', 'roles', "
            "'sandboxes' and 'tasks'",
        )
    try:
        with warnings.catch_warnings():
            # ruamel warns (e.g. on a re-used anchor); pytest runs with warnings as errors and
            # a warning is not a reason to reject or accept a file, so it is silenced here.
            warnings.simplefilter("ignore")
            nodes = _compose_fast(text)
            if nodes is None:
                nodes = list(YAML(typ="safe", pure=True).compose_all(text))
    except MarkedYAMLError as exc:
        return _syntax_issue(text, filename, exc)
    except RecursionError:
        return SpecIssue(filename, 1, 1, "", "nesting is too deep to be a company spec")
    except (YAMLError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        # ruamel's reader/scanner raise unmarked errors (and a few plain Python ones) on
        # malformed input; the message is squeezed onto one line.
        problem = " ".join(str(exc).split())
        return SpecIssue(filename, 1, 1, "", f"YAML syntax error: {problem}")
    if len(nodes) > 1:
        line, col = _pos(nodes[1])
        return SpecIssue(
            filename,
            line,
            col,
            "",
            "more than one YAML document ('---'); a spec file holds exactly one company",
        )
    if not nodes or nodes[0] is None:
        return SpecIssue(filename, 1, 1, "", "empty document")
    root = nodes[0]
    try:
        if "&" in text:
            # Without an anchor there is no alias, and the size limit on the file already
            # bounds the node count; skipping the count keeps big valid files fast.
            _check_size(root, max_nodes)
        try:
            out = Parsed(_plain(root, 0), root)
        except _Detail:
            out = Parsed(None, root)
            out._values, out._keys = {}, {}
            out.data = _convert(root, (), out, 0)
    except _Refused as exc:
        return SpecIssue(filename, exc.line, exc.col, format_path(exc.path), exc.message)
    return out


def _compose_fast(text: str) -> list[Node] | None:
    """Compose with libyaml (ruamel.yaml.clib) when installed: ~6x faster on big files.

    Returns None when the C parser is missing or refuses the text; the pure-Python parser
    then runs, so error messages (and YAML 1.2 details libyaml lacks) stay the same either
    way. Both resolve tags with the same Python resolver.
    """
    if _CLoader is None:
        return None
    loader = _CLoader(text)
    try:
        nodes: list[Node] = []
        while loader.check_node():
            nodes.append(loader.get_node())
        return nodes
    except Exception:  # any refusal: let the pure parser explain it
        return None
    finally:
        loader.dispose()


def _syntax_issue(text: str, filename: str, exc: MarkedYAMLError) -> SpecIssue:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    col = mark.column + 1 if mark is not None else 1
    lines = text.splitlines()
    # A tab in indentation is the classic YAML trap; say so plainly instead of ruamel's
    # "found character '\t' that cannot start any token".
    for ln in (line, line - 1):
        if 1 <= ln <= len(lines):
            s = lines[ln - 1]
            lead = s[: len(s) - len(s.lstrip(" \t"))]
            if "\t" in lead:
                return SpecIssue(
                    filename,
                    ln,
                    lead.index("\t") + 1,
                    "",
                    "tab character in indentation; YAML indents with spaces only",
                )
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    problem = re.sub(r"\s+", " ", problem)
    return SpecIssue(filename, line, col, "", f"YAML syntax error: {problem}")


def _check_size(root: Node, max_nodes: int) -> None:
    """Count nodes as if every alias were expanded, refusing recursion and bombs.

    Sizes are memoised per node, so the count is linear in the *composed* document even when
    the expanded one would have billions of nodes.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            line, col = _pos(node)
            raise _Refused(line, col, (), "recursive alias: a node contains itself")
        active.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            for child in node.value:
                total += size(child)
                if total > max_nodes:
                    break
        elif isinstance(node, MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
                if total > max_nodes:
                    break
        active.discard(key)
        if total > max_nodes:
            line, col = _pos(node)
            raise _Refused(
                line,
                col,
                (),
                f"document expands to more than {max_nodes:,} nodes through aliases "
                "(an alias bomb?); refusing to load it",
            )
        sizes[key] = total
        return total

    try:
        size(root)
    except RecursionError:
        raise _Refused(1, 1, (), "nesting is too deep to be a company spec") from None


def _tag(node: Node) -> str:
    """The node's resolved tag; ruamel's ``Node.tag`` rebuilds the string on every access."""
    ct = getattr(node, "ctag", None)
    if ct is not None and ct.handle is None and isinstance(ct.suffix, str) and "%" not in ct.suffix:
        return ct.suffix
    return str(node.tag)


def _plain(node: Node, depth: int) -> Any:
    """``_convert`` without positions, for the common case of a well-formed document."""
    if depth > _MAX_DEPTH:
        raise _Detail
    tag = _tag(node)
    if isinstance(node, ScalarNode):
        if tag == _STR:
            return node.value
        try:
            return _scalar(node, tag, ())
        except _Refused:
            raise _Detail from None
    if isinstance(node, SequenceNode):
        if tag != _SEQ:
            raise _Detail
        return [_plain(child, depth + 1) for child in node.value]
    if isinstance(node, MappingNode) and tag == _MAP:
        result: dict[Any, Any] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, ScalarNode) or _tag(knode) != _STR:
                raise _Detail  # merge keys, odd keys: the careful walk handles them
            key = str(knode.value)
            if key in result:
                raise _Detail
            result[key] = _plain(vnode, depth + 1)
        return result
    raise _Detail


def _convert(node: Node, path: Path_, out: Parsed, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        line, col = _pos(node)
        raise _Refused(line, col, (), f"nesting deeper than {_MAX_DEPTH} levels")
    out.values.setdefault(path, _pos(node))
    tag = _tag(node)
    if isinstance(node, ScalarNode):
        return _scalar(node, tag, path)
    if isinstance(node, SequenceNode):
        _check_tag(node, tag, "seq", path)
        return [_convert(child, (*path, i), out, depth + 1) for i, child in enumerate(node.value)]
    if isinstance(node, MappingNode):
        _check_tag(node, tag, "map", path)
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for knode, vnode in node.value:
            if _tag(knode) == _MERGE:
                merged.update(_merge_sources(vnode, path, out, depth))
                continue
            key = _convert_key(knode, path)
            if key in result:
                line, col = _pos(knode)
                first = out.keys.get((*path, key), (0, 0))[0]
                raise _Refused(
                    line,
                    col,
                    (*path, key),
                    f"duplicate key {key!r} (first defined on line {first})",
                )
            out.keys[(*path, key)] = _pos(knode)
            result[key] = _convert(vnode, (*path, key), out, depth + 1)
        for k, v in merged.items():
            result.setdefault(k, v)
        return result
    line, col = _pos(node)
    raise _Refused(line, col, path, "unsupported YAML node")


def _merge_sources(vnode: Node, path: Path_, out: Parsed, depth: int) -> dict[Any, Any]:
    sources = vnode.value if isinstance(vnode, SequenceNode) else [vnode]
    merged: dict[Any, Any] = {}
    for src in reversed(sources):
        if not isinstance(src, MappingNode):
            line, col = _pos(src)
            raise _Refused(line, col, path, "'<<' merges only mappings")
        value = _convert(src, path, out, depth + 1)
        merged.update(value)
    return merged


def _convert_key(knode: Node, path: Path_) -> str:
    line, col = _pos(knode)
    if not isinstance(knode, ScalarNode):
        raise _Refused(line, col, path, "mapping keys must be plain strings")
    value = _scalar(knode, _tag(knode), path)
    if isinstance(value, bool) or value is None:
        # `yes:`/`null:` as keys would silently become booleans/None elsewhere; keep text.
        return str(knode.value)
    return str(value)


def _check_tag(node: Node, tag: str, kind: str, path: Path_) -> None:
    if tag != _STD + kind:
        _refuse_tag(node, tag, path)


def _refuse_tag(node: Node, tag: str, path: Path_) -> None:
    line, col = _pos(node)
    shown = "!!" + tag[len(_STD) :] if tag.startswith(_STD) else tag
    if "python/" in tag:
        raise _Refused(
            line,
            col,
            path,
            f"refusing tag {shown!r}: spec files may not construct Python objects",
        )
    raise _Refused(line, col, path, f"unsupported tag {shown!r}; use plain YAML values")


_BOOL = {"true": True, "false": False}


def _scalar(node: ScalarNode, tag: str, path: Path_) -> Any:
    value = str(node.value)
    name = tag[len(_STD) :] if tag.startswith(_STD) else None
    if name in ("str", "timestamp"):
        # Dates stay as written: "2026-10-01" is an input string, not a datetime.
        return value
    if name == "null":
        return None
    if name == "bool":
        return _BOOL.get(value.lower(), value)
    if name == "int":
        digits = value.replace("_", "")
        try:
            return int(digits, 0)
        except ValueError:
            try:
                return int(digits, 10)
            except ValueError:
                return value
    if name == "float":
        low = value.replace("_", "").lower()
        if low in (".inf", "+.inf"):
            return math.inf
        if low == "-.inf":
            return -math.inf
        if low == ".nan":
            return math.nan
        try:
            return float(low)
        except ValueError:
            return value
    _refuse_tag(node, tag, path)
    return None  # pragma: no cover  (_refuse_tag always raises)
