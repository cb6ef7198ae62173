"""The staff's overview on their start page, and each figure's numbers as CSV.

The start page (``/staff/`` without filters, the review queue's first view) shows every
figure of ``applications.stats_figures`` as an SVG chart with its numbers one click away:
a "Vis tal" table (``<details>``) and ``/staff/stats/<figure>.csv``. The routes are on
``views.staff_bp``; the queue's template asks for the overview through
``staff_overview()``, so the queue's view stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Response, abort, url_for
from markupsafe import Markup

from applications.stats_figures import FIGURES, Figure, Table, cell, csv_text, figure_data
from applications.views import staff_bp
from sorregistry.extensions import db
from sorregistry.models import utcnow
from sorregistry.security import role_required

__all__ = ["Panel", "overview"]


@dataclass(frozen=True, slots=True)
class Panel:
    figure: Figure
    data: dict[str, Any]
    table: Table
    chart: Markup
    csv_url: str
    api_url: str


def overview() -> list[Panel]:
    """Every figure, computed at one moment, with its chart, table and links."""
    now = utcnow()
    panels = []
    for name, figure in FIGURES.items():
        data = figure_data(figure, db.session, now)
        panels.append(Panel(figure, data, figure.table(data), figure.chart(data, f"chart-{name}"),
                            url_for("staff.stats_csv", name=name),
                            f"/api/v1/stats/{name}"))
    return panels


@staff_bp.context_processor
def _overview() -> dict[str, Callable[..., Any]]:
    return {"staff_overview": overview, "stat_cell": cell}


@staff_bp.get("/stats/<name>.csv", endpoint="stats_csv")
@role_required("sds")
def stats_csv(name: str) -> Response:
    """A figure's numbers as CSV: the API's keys as the header, its values as the cells."""
    figure = FIGURES.get(name)
    if figure is None:
        abort(404)
    table = figure.table(figure_data(figure, db.session, utcnow()))
    return Response(csv_text(table), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="sor-{name}.csv"'})
