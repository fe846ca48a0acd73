"""Sandbox backend: browser (being built)."""
