"""The notifications API (filled in by its issue)."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("notifications", __name__, description="Notifications")
