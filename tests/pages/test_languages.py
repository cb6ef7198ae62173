"""Every page in both languages, and how the language is chosen.

The walk visits every GET route of every page blueprint (``app.url_map``), as nobody,
as SDS staff, as a municipality and as a reporter, in Danish and in English, on a
register with an application of every kind of state, a mail for manual handling and
an outbox message with a failed attempt. What a person sees of a page is its text
and the attributes a person or a screen reader is shown (placeholder, title,
aria-label, alt), less scripts; the JSON texts the picker's script shows count too.
The rules:

1. An English page shows no Danish text that has an English translation: no msgid of
   the catalogues is left on it, once the English texts and the data are taken away.
2. On an English page æ, ø and å appear only inside data: the register's and the
   applications' values (every string the database holds), municipality names and
   the code lists' names for entity types that have no English name.
3. A Danish page shows no English text that translates a Danish one.
4. What reads the same in both languages is data, a code or abbreviation of the
   domain (``NEUTRAL``), or a text whose English is the Danish (``Status``) - so a
   Danish text that never reached a catalogue (written without ``_()``) is caught
   even when it has no æ, ø or å.
"""

from __future__ import annotations

import email.message
import email.policy
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from flask import Flask, render_template_string, url_for
from flask.testing import FlaskClient
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from applications import mail_service, service
from applications.views import actor_for
from hierarchy.codes import entity_type_name, entity_type_names, municipalities
from notifications.models import OutboxAttempt, OutboxMessage
from sorregistry.extensions import db
from sorregistry.i18n import DOMAIN, catalogue_directories
from sorregistry.pages import page_blueprints
from tests.applications.helpers import EXISTING_SI, new_nursing_home
from tests.pages.helpers import login

# Codes and abbreviations of the domain, the same in both languages.
NEUTRAL = {"SOR", "SHAK", "CVR", "GLN", "SI", "OE", "IE", "Message-ID", "UTC", "openapi.json"}
VISIBLE_ATTRIBUTES = {"placeholder", "title", "aria-label", "alt"}
DANISH_LETTERS = re.compile("[æøåÆØÅ]")
LETTER = re.compile(r"[^\W\d_]")
PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


# --- what a person sees -----------------------------------------------------------------


class _Texts(HTMLParser):
    """The visible texts of a page, one per text node or shown attribute."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._skipping: str | None = None  # inside <script>/<style>
        self._json = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "style"):
            self._skipping = tag
            self._json = tag == "script" and values.get("type") == "application/json"
        for name, value in attrs:
            if name in VISIBLE_ATTRIBUTES and value:
                self.texts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._skipping:
            self._skipping, self._json = None, False

    def handle_data(self, data: str) -> None:
        if self._json:
            self.texts.extend(_strings(json.loads(data)))
        elif not self._skipping:
            self.texts.append(data)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)


def _normal(text: str) -> str:
    return " ".join(text.split())


def visible_texts(response: TestResponse) -> list[str]:
    if response.mimetype == "application/json":
        found = list(_strings(response.get_json()))
    else:
        parser = _Texts()
        parser.feed(response.get_data(as_text=True))
        found = parser.texts
    return [text for text in (_normal(t) for t in found) if text]


# --- the catalogues and the data ------------------------------------------------------


def _piece_pattern(text: str) -> str | None:
    """*text*'s literal pieces as a pattern (a placeholder matches anything between)."""
    pieces = [piece.strip() for piece in PLACEHOLDER.split(text)]
    pieces = [re.escape(piece) for piece in pieces if LETTER.search(piece)]
    return r"(?!\w).*?(?<!\w)".join(pieces) if pieces else None


def words(texts: Iterable[str]) -> re.Pattern[str]:
    """Any of *texts* as whole words, the longest tried first."""
    ordered = sorted(set(texts), key=len, reverse=True)
    patterns = [p for p in map(_piece_pattern, ordered) if p is not None] or ["(?!)"]
    return re.compile(r"(?<!\w)(?:" + "|".join(patterns) + r")(?!\w)")


@dataclass
class Catalogue:
    """The texts of the app's merged catalogues."""

    danish: set[str]  # msgids whose English differs
    english: set[str]  # their English (unless it is some Danish text too)
    same: set[str]  # texts whose English is the Danish

    @classmethod
    def of(cls, app: Flask) -> Catalogue:
        pairs: set[tuple[str, str]] = set()
        for directory in catalogue_directories(app):
            with open(Path(directory) / "en" / "LC_MESSAGES" / f"{DOMAIN}.po", "rb") as handle:
                pairs |= {(str(m.id), str(m.string)) for m in read_po(handle) if m.id}
        danish = {d for d, e in pairs if d != e}
        return cls(danish=danish,
                   english={e for d, e in pairs if d != e and e not in danish},
                   same={d for d, e in pairs if d == e})


def _database_strings() -> set[str]:
    """Every string the database holds (JSON inside out, mails' headers and text)."""
    found: set[str] = set()
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            for value in row:
                found.update(_values(value))
    return found


def _values(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from _values(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from _values(inner)
    elif isinstance(value, bool):  # shown as Python shows it (a version's changes)
        yield str(value)
    elif isinstance(value, bytes):  # a mail as it came
        message = email.message_from_bytes(value, policy=email.policy.default)
        yield from (str(header) for header in message.values())
        for part in message.walk():
            if part.get_content_maintype() == "text":
                yield part.get_content()


def data_strings(language: str) -> list[str]:
    """What a page may show as it is stored, longest first."""
    found = _database_strings() | set(municipalities().values())
    found |= {entity_type_name(code, language) or "" for code in entity_type_names()}
    lines = {_normal(line) for text in found for line in [text, *text.splitlines()]}
    return sorted((text for text in lines if LETTER.search(text)), key=len, reverse=True)


def _neutral(word: str) -> bool:
    """A code or abbreviation of the domain, or an identifier (ANS-000001)."""
    return word in NEUTRAL or any(character.isdigit() for character in word)


# --- the pages --------------------------------------------------------------------------


@pytest.fixture
def register(session, people):
    """An application in each state the pages show, a mail for staff, a failed mail."""
    aarhus = actor_for(people["aarhus"])
    staff = actor_for(people["sds"])
    draft = service.create_application(session, aarhus, new_nursing_home(
        institution_name="Plejecenter Søndergaarden",
        address={"street": "Søndergade 14", "postal_code": "8000", "city": "Aarhus C"}),
        source="web")
    duplicate = service.create_application(session, aarhus, new_nursing_home(
        institution_name="Plejecenter Søndergaarden",
        address={"street": "Søndergade 14", "postal_code": "8000", "city": "Aarhus C"}),
        source="web")
    service.submit_application(session, aarhus, duplicate.id)
    approved = service.create_application(session, aarhus, new_nursing_home(
        institution_name="Lærkevang Plejehjem",
        address={"street": "Lærkevej 3", "postal_code": "8210", "city": "Aarhus V"}),
        source="web")
    service.submit_application(session, aarhus, approved.id)
    service.approve_application(session, staff, approved.id, note="Godkendt uden bemærkninger")
    change = service.create_application(session, aarhus, {
        "kind": "change", "target_sor_code": EXISTING_SI, "contact_email": "sor@aarhus.dk",
        "phone": "86 12 34 56"}, source="web")
    mail = _unreadable_mail(session)
    message = session.execute(select(OutboxMessage).limit(1)).scalar_one()
    session.execute(update(OutboxMessage).where(OutboxMessage.id == message.id)
                    .values(status="failed", last_error="550 mailbox unavailable"))
    session.add(OutboxAttempt(message_id=message.id, number=1, worker="worker-1@sor",
                              outcome="failed", error="550 mailbox unavailable"))
    session.commit()
    return {"draft": draft.id, "submitted": duplicate.id, "approved": approved.id,
            "change": change.id, "mail": mail.id, "message": message.id,
            "sor_code": approved.sor_code or EXISTING_SI}


def _unreadable_mail(session):
    message = email.message.EmailMessage()
    message["From"] = "sor@aarhus.dk"
    message["To"] = "sorpost@sundhedsdata.dk"
    message["Subject"] = "Ny SOR-kode til Æblehaven"
    message["Message-ID"] = "<sprog-1@aarhus.dk>"
    message.set_content("Hej, vi vil gerne have en SOR-kode til vores nye plejehjem Æblehaven.")
    mail_service.add_contact(session, "0751", "sor@aarhus.dk")
    return mail_service.record_mail(session, message.as_bytes(), mailbox="INBOX",
                                    uidvalidity=1, uid=1, received_at=None,
                                    max_size=10_000_000)


# More than one visit to a route: its states (an application's form and its view, with
# findings and duplicates; a search with results; a tree level). "@name" is the id of
# the register fixture's *name*.
VARIANTS: dict[str, list[dict[str, str]]] = {
    "municipality.application": [{"application_id": "@draft", "valider": "1"},
                                 {"application_id": "@change", "valider": "1"},
                                 {"application_id": "@submitted"},
                                 {"application_id": "@approved"}],
    "staff.application": [{"application_id": "@submitted"}, {"application_id": "@approved"}],
    "municipality.new_application": [{}, {"kind": "change"}],
    "staff.queue": [{}, {"status": "approved"}],
    "staff.mail_queue": [{}, {"status": "resolved"}],
    "staff.stats_csv": [{"name": "outbox"}],
    "register_pages.browse": [{}, {"q": "Plejecenter"}, {"q": EXISTING_SI}],
    "register_pages.tree": [{"ownership": "kommunal"}, {"ownership": "privat"}],
    "register_pages.organisation": [{"sor_code": EXISTING_SI}, {"sor_code": "@sor_code"}],
    "picker.picker_list": [{"which": which} for which in
                           ("my-cvr-si", "my-cvr-all", "statslig", "regional", "kommunal",
                            "privat")],
    "picker.picker_departments": [{"hospital": "2529"}],
}
# A route's arguments when no variant names them.
ARGUMENTS = {"application_id": "@submitted", "mail_id": "@mail", "message_id": "@message",
             "sor_code": "@sor_code"}
VISITORS = ("nobody", "sds", "aarhus", "reporter")


def _urls(app: Flask, ids: dict[str, Any]) -> dict[str, list[str]]:
    """Every GET page route of the app, by endpoint, with its arguments filled in."""
    pages = page_blueprints(app)
    urls: dict[str, list[str]] = {}
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint.split(".")[0] not in pages or "GET" not in (rule.methods or ()):
                continue
            for variant in VARIANTS.get(rule.endpoint, [{}]):
                values = {name: ARGUMENTS[name] for name in rule.arguments if name in ARGUMENTS}
                values.update(variant)
                values = {name: ids[value[1:]] if value.startswith("@") else value
                          for name, value in values.items()}
                urls.setdefault(rule.endpoint, []).append(url_for(rule.endpoint, **values))
    return urls


@dataclass
class Visit:
    url: str
    visitor: str
    danish: list[str]
    english: list[str]


def _visits(app: Flask, clients: dict[str, FlaskClient], urls: dict[str, list[str]]
            ) -> tuple[list[Visit], set[str]]:
    """Each URL in both languages by each visitor: what the ones that open show. Nobody
    comes without a session each time (a refused page's flashed "log in" message, in
    the language of that page, would show on the next page)."""
    visits: list[Visit] = []
    seen: set[str] = set()
    for endpoint, addresses in urls.items():
        for url in addresses:
            for visitor in VISITORS:
                client = app.test_client() if visitor == "nobody" else clients[visitor]
                danish = _fetch(client, _in(url, "da"))
                english = _fetch(client, _in(url, "en"))
                assert danish.status_code == english.status_code, url
                if danish.status_code != 200:
                    continue
                seen.add(endpoint)
                if danish.mimetype in ("text/html", "application/json"):
                    visits.append(Visit(url, visitor, visible_texts(danish),
                                        visible_texts(english)))
                    if "<html" in danish.get_data(as_text=True):  # not a fragment
                        assert '<html lang="en">' in english.get_data(as_text=True), url
                        assert '<html lang="da">' in danish.get_data(as_text=True), url
    return visits, seen


def _fetch(client: FlaskClient, url: str) -> TestResponse:
    """GET *url*, a streamed answer (the audit log's CSV) read to its end at once."""
    response = client.get(url)
    response.get_data()
    response.close()
    return response


def _in(url: str, language: str) -> str:
    return url + ("&" if "?" in url else "?") + "lang=" + language


@pytest.fixture
def clients(app: Flask, client: FlaskClient, people) -> dict[str, FlaskClient]:
    """A logged-in client for each visitor (``client`` makes them fresh-globals ones)."""
    made = {}
    for visitor in ("sds", "aarhus", "reporter"):
        made[visitor] = app.test_client()
        assert login(made[visitor], people[visitor].email).status_code == 303
    return made


def test_every_page_in_english_and_in_danish(app, clients, register):
    catalogue = Catalogue.of(app)
    urls = _urls(app, register)
    visits, seen = _visits(app, clients, urls)
    assert seen == set(urls), f"pages no one could open: {set(urls) - seen}"
    # Each text once, with the first page that showed it.
    english: dict[str, str] = {}
    danish: dict[str, str] = {}
    both: dict[str, str] = {}
    for visit in visits:
        where = f"{visit.url} ({visit.visitor})"
        for text in visit.english:
            english.setdefault(text, where)
        for text in visit.danish:
            danish.setdefault(text, where)
        for text in set(visit.danish) & set(visit.english):
            both.setdefault(text, where)
    data = {language: data_strings(language) for language in ("da", "en")}
    danish_texts, english_texts = words(catalogue.danish), words(catalogue.english)
    # What may be taken away before looking: data and the page language's own texts.
    on_english = words([*data["en"], *catalogue.english, *catalogue.same])
    on_danish = words([*data["da"], *catalogue.danish, *catalogue.same])
    on_both = words([*data["da"], *data["en"], *catalogue.same])
    problems: list[str] = []
    for text, where in english.items():
        rest = on_english.sub(" ", text)
        if danish_texts.search(rest):
            problems.append(f"{where}: untranslated on the English page: {text!r}")
        elif DANISH_LETTERS.search(rest):
            problems.append(f"{where}: Danish letters outside data: {text!r}")
    for text, where in danish.items():
        if english_texts.search(on_danish.sub(" ", text)):
            problems.append(f"{where}: English on the Danish page: {text!r}")
    for text, where in both.items():
        rest = on_both.sub(" ", text)
        if LETTER.search(" ".join(word for word in rest.split() if not _neutral(word))):
            problems.append(f"{where}: the same in both languages, not data: {text!r}")
    assert not problems, "\n".join(sorted(problems))


def test_the_mail_intake_shows_senders_and_the_outbox_workers(app, clients, register):
    staff = clients["sds"]
    for url in ("/staff/mail/?lang=en", f"/staff/mail/{register['mail']}?lang=en"):
        texts = visible_texts(staff.get(url))
        assert "Sender" in texts and "Worker" not in texts, url
    texts = visible_texts(staff.get(f"/staff/outbox/{register['message']}?lang=en"))
    assert "Worker" in texts and "Sender" not in texts
    application = staff.get(f"/staff/applications/{register['submitted']}?lang=en")
    assert "Why" in visible_texts(application)  # a duplicate's reason, not a mail's "Reason"
    assert "Reason" in visible_texts(staff.get("/staff/mail/?lang=en"))


# --- choosing the language -----------------------------------------------------------


def _language(response: TestResponse) -> str:
    match = re.search(r'<html lang="(\w+)"', response.get_data(as_text=True))
    assert match, "no <html lang>"
    return match.group(1)


def test_danish_unless_asked_otherwise(client, people):
    assert _language(client.get("/")) == "da"
    assert _language(client.get("/", headers={"Accept-Language": "fr, de"})) == "da"


def test_the_browser_s_languages_choose_the_best_match(client, people):
    english = {"Accept-Language": "en-GB,en;q=0.9,da;q=0.5"}
    assert _language(client.get("/", headers=english)) == "en"
    danish = {"Accept-Language": "da-DK, en;q=0.8"}
    assert _language(client.get("/login", headers=danish)) == "da"


def test_lang_in_the_query_wins_and_is_remembered_in_a_cookie(client, people):
    english = {"Accept-Language": "en"}
    response = client.get("/?lang=da", headers=english)
    assert _language(response) == "da"
    assert "lang=da" in response.headers["Set-Cookie"]
    assert _language(client.get("/login", headers=english)) == "da"  # the cookie, not the browser
    assert _language(client.get("/login?lang=en")) == "en"
    assert _language(client.get("/")) == "en"
    assert _language(client.get("/?lang=xx")) == "en"  # an unknown language changes nothing


def test_the_start_page_speaks_the_negotiated_language(client, people):
    assert "Sundhedsinstitutioner" in client.get("/?lang=da").get_data(as_text=True)
    english = client.get("/?lang=en").get_data(as_text=True)
    assert "Health institutions" in english and 'href="/?lang=da"' in english


@pytest.mark.parametrize(("language", "number", "day", "moment"), [
    ("da", "12.345", "5. jan. 2025", "05.01.2025 14.30"),
    ("en", "12,345", "5 Jan 2025", "05/01/2025, 14:30"),
])
def test_numbers_and_dates_in_the_page_s_language(app, language, number, day, moment):
    template = "{{ 12345|decimalformat }}|{{ day|dateformat }}|{{ moment|datetimeformat('short') }}"
    with app.test_request_context(f"/?lang={language}"):
        shown = render_template_string(template, day=date(2025, 1, 5),
                                       moment=datetime(2025, 1, 5, 14, 30, tzinfo=UTC))
    assert shown == f"{number}|{day}|{moment}"


def test_the_login_message_speaks_the_language_of_the_request(client, people):
    response = client.get("/staff/?lang=en", follow_redirects=True)
    assert "Log in to see this page." in response.get_data(as_text=True)
    response = client.get("/staff/?lang=da", follow_redirects=True)
    assert "Log ind for at se siden." in response.get_data(as_text=True)
