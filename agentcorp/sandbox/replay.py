"""Sandbox backend: replay (being built)."""
