"""Random and mutated YAML never makes the loader raise anything but SpecError."""

from __future__ import annotations

import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentcorp.spec import Company, SpecError, load_company_text

SAMPLE = (Path(__file__).resolve().parents[2] / "tasks/acme/company.yaml").read_text("utf-8")
LINES = SAMPLE.splitlines(keepends=True)
TOKENS = [
    ":",
    "- ",
    "&a ",
    "*a",
    "!!python/object:os.system ",
    "!tag ",
    "{",
    "}",
    "[",
    "]",
    "\t",
    "'",
    '"',
    "#",
    "---\n",
    "<<: *a\n",
    "${secrets.X}",
    "{inputs.zz}",
    "\x00",
    "\ufeff",
    "? ",
    "|\n",
    ">-\n",
    "~",
    "null",
    "true",
    "1e309",
    "0x1F",
    ".nan",
    "  ",
    "\n",
    "%YAML 1.2\n",
]


def _load(text: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a stray warning would be a bug too
        try:
            company = load_company_text(text, "fuzz.yaml", check_files=False)
        except SpecError as exc:
            assert exc.issues, "an error must carry at least one issue"
            for issue in exc.issues:
                assert issue.line >= 1 and issue.col >= 1
                assert "\n" not in str(issue)
        else:
            assert isinstance(company, Company)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    _load(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([*TOKENS, "a", "b: c", "- x", "version: 1"]), max_size=60))
def test_random_token_soup(tokens: list[str]) -> None:
    _load("".join(tokens))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(LINES) - 1),
            st.sampled_from(["delete", "duplicate", "insert", "truncate", "indent"]),
            st.sampled_from(TOKENS),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_mutated_sample_company(edits: list[tuple[int, str, str]]) -> None:
    lines = list(LINES)
    for index, op, token in edits:
        i = min(index, len(lines) - 1)
        if not lines:
            break
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "insert":
            lines.insert(i, token + lines[i])
        elif op == "truncate":
            lines[i] = lines[i][: len(lines[i]) // 2] + token
        else:
            lines[i] = " " + lines[i]
    _load("".join(lines))


def test_unmutated_sample_loads() -> None:
    _load(SAMPLE)
