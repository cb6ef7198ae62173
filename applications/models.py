"""The applications tables."""

from __future__ import annotations
