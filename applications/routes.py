"""The applications API (filled in by its issue)."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("applications", __name__, description="Applications")
