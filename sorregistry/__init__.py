"""The SOR registry: the register of Danish health-care organisations and their codes."""

from __future__ import annotations

from sorregistry.app import create_app

__all__ = ["create_app"]
