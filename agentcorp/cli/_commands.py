"""Imports every command module so each registers itself on the app."""

from agentcorp.cli import fleet, replay, run, validate  # noqa: F401
