"""The applications commands."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Add the applications commands to the `sorregistry` group."""
