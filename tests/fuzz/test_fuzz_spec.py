"""Company YAML: random mutations of the sample company and random text, through validate."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcorp.cli import main
from tests.fuzz._guard import FUZZ, bounded, check_cli_error

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = (ROOT / "tasks" / "acme" / "company.yaml").read_text(encoding="utf-8").splitlines()
HOSTILE = st.sampled_from(
    [
        "&a [*a, *a, *a, *a, *a, *a]",
        "!!python/object/apply:os.system ['touch /tmp/pwned']",
        "99999999999999999999",
        "-1",
        "nan",
        ".inf",
        "'${secrets.X}'",
        "{",
        "[",
        "]]",
        "\t",
        "<<: *x",
        "~",
        "null",
        "0x7fffffffffffffff",
        "'" + "x" * 5000 + "'",
        "\x00",
        "\ufeff",
    ]
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = list(SAMPLE)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "replace", "value", "dup"]))
        if op == "delete":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "replace":
            lines[i] = draw(st.text(max_size=40) | HOSTILE)
        elif ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {draw(HOSTILE | st.text(max_size=20))}"
    return "\n".join(lines)


@FUZZ
@given(text=mutated() | st.text(max_size=300))
def test_any_company_text_validates_or_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = tmp_path / "company.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    with bounded():
        code = main(["validate", str(path)])
    captured = capsys.readouterr()
    check_cli_error(code, captured.err, one_line=False)  # validate lists every issue
    assert code in (0, 2)
    assert not Path("/tmp/pwned").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["company.yaml"]
