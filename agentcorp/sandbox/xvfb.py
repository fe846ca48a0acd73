"""Sandbox backend: xvfb (being built)."""
