"""The start page: what the register holds, in Danish with an English switch."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, make_response, render_template, request
from sqlalchemy import func, select

from hierarchy import service
from hierarchy.models import ImportRun, ShakCode
from sorregistry.extensions import db

bp = Blueprint("site", __name__)

TEXTS = {
    "da": {
        "title": "SOR – Sundhedsvæsenets Organisationsregister",
        "intro": "Registret over sundhedsvæsenets organisationer og deres koder: "
        "institutionsejere, sundhedsinstitutioner og organisatoriske enheder.",
        "active": "Aktive enheder i dag",
        "levels": {"IE": "Institutionsejere", "SI": "Sundhedsinstitutioner",
                   "OE": "Organisatoriske enheder"},
        "shak": "SHAK-koder (med historik)",
        "imports": "Seneste indlæsninger",
        "api": "API-dokumentation (OpenAPI)",
        "switch": "English",
        "none": "Ingen indlæsninger endnu.",
    },
    "en": {
        "title": "SOR – the Danish health-care organisation register",
        "intro": "The register of Danish health-care organisations and their codes: "
        "institution owners, health institutions and organisational units.",
        "active": "Active entities today",
        "levels": {"IE": "Institution owners", "SI": "Health institutions",
                   "OE": "Organisational units"},
        "shak": "SHAK codes (with history)",
        "imports": "Latest imports",
        "api": "API documentation (OpenAPI)",
        "switch": "Dansk",
        "none": "No imports yet.",
    },
}


def current_language() -> str:
    chosen = request.args.get("lang") or request.cookies.get("lang")
    return chosen if chosen in TEXTS else "da"


@bp.get("/")
def index() -> Response:
    language = current_language()
    counts = service.count_by_level(db.session, active_on=date.today())
    shak_count = db.session.execute(select(func.count()).select_from(ShakCode)).scalar_one()
    runs = db.session.execute(
        select(ImportRun).order_by(ImportRun.id.desc()).limit(5)
    ).scalars().all()
    response = make_response(
        render_template(
            "index.html",
            t=TEXTS[language],
            lang=language,
            other="en" if language == "da" else "da",
            counts=counts,
            shak_count=shak_count,
            runs=runs,
        )
    )
    if request.args.get("lang") in TEXTS:
        response.set_cookie("lang", language, samesite="Lax", max_age=365 * 24 * 3600)
    return response
