"""Cached action sequence files (skills/cache) with hostile content."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from agentcorp.grounding.cache import ActionCache, ActionCacheError
from tests.fuzz._guard import FUZZ, bounded
from tests.fuzz.test_fuzz_model import JSON

ENTRY = st.fixed_dictionaries(
    {"kind": st.sampled_from(["click", "type", "key", "wait", "drag", "x"]) | JSON},
    optional={
        "x": JSON,
        "y": JSON,
        "text": JSON,
        "keys": JSON,
        "anchor": JSON,
        "post": JSON,
        "box": JSON,
        "path": JSON,
    },
)
FILES = st.one_of(
    st.binary(max_size=300),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"version": JSON, "actions": st.lists(ENTRY, max_size=3)},
        optional={"actor_config": JSON, "stored_at": JSON, "spec_hash": JSON},
    ).map(lambda v: json.dumps(v).encode()),
)


@FUZZ
@given(content=FILES)
def test_any_cache_file_is_read_or_refused_in_one_line(tmp_path: Path, content: bytes) -> None:
    cache = ActionCache(tmp_path / "cache")
    cache.dir.mkdir(exist_ok=True)
    key = "k" * 16
    (cache.dir / f"{key}.json").write_bytes(content)
    with bounded():
        try:
            cache.lookup(key)
        except ActionCacheError as exc:
            assert str(exc).strip() and "\n" not in str(exc).strip()
