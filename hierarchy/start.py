"""The start page: what the register holds, in the page's language (``sorregistry.i18n``)."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, render_template
from sqlalchemy import func, select

from hierarchy import service
from hierarchy.models import ImportRun, ShakCode
from sorregistry.extensions import db
from sorregistry.i18n import lazy_gettext

bp = Blueprint("site", __name__)

# The register's levels, in their order on the page.
LEVELS = {
    "IE": lazy_gettext("Institutionsejere"),
    "SI": lazy_gettext("Sundhedsinstitutioner"),
    "OE": lazy_gettext("Organisatoriske enheder"),
}


@bp.get("/")
def index() -> str:
    counts = service.count_by_level(db.session, active_on=date.today())
    shak_count = db.session.execute(select(func.count()).select_from(ShakCode)).scalar_one()
    runs = db.session.execute(
        select(ImportRun).order_by(ImportRun.id.desc()).limit(5)
    ).scalars().all()
    return render_template("index.html", levels=LEVELS, counts=counts,
                           shak_count=shak_count, runs=runs)
