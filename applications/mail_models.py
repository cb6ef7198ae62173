"""The mail intake's tables."""

from __future__ import annotations
