"""pytest plugin (``pytest11`` entry point) that replays recorded sessions as tests."""

from __future__ import annotations
