"""The feed's entries: one for every change of every organisation, in commit order, each
showing the organisation as it stood after the change (hierarchy.changes, hierarchy.feed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import orjson
from flask_migrate import downgrade, upgrade
from sqlalchemy import insert, select, text
from sqlalchemy.dialects import postgresql

from hierarchy import changes, service
from hierarchy import identifiers as ids
from hierarchy.feed.entries import ADDRESS_KEYS, STATE_COLUMNS, versioned_entries
from hierarchy.feed.items import COPY_TYPES, Created, render_items
from hierarchy.feed.reading import read_page
from hierarchy.models import (
    FeedEntry,
    FeedState,
    OrganisationVersion,
    RegisterCommit,
    RegisterVersion,
)
from hierarchy.schemas import AddressSchema
from hierarchy.search import ITEM_COLUMNS
from hierarchy.sor_import import import_sor_file
from sorregistry import create_app
from sorregistry.database import copy_binary
from sorregistry.extensions import db
from sorregistry.reads import SessionReads
from tests.conftest import fixture_path
from tests.support.exports import generator
from tests.support.feed import feed, latest_items, register_items

SYGEHUS = fixture_path("ONE_SYGEHUS.xml")
OWNER = "347801000016001"  # Roskilde Øjenklinik (IE), phone 46361266, inherited below it
UNITS = ["347811000016004", "347821000016008", "347831000016005"]


def _last(session) -> int:
    return session.execute(select(RegisterVersion.last_position)).scalar_one()


def _shape(entries) -> list[tuple[str, str, list[str], bool]]:
    return [(e["sor_code"], e["change"], e["changed_fields"], e["inherited"]) for e in entries]


def _tree(session) -> dict[str, str]:
    """An owner with a phone, an institution and a unit below it, which inherit it."""
    codes = {name: ids.make_sor_code(item) for name, item in
             (("ie", 91_000_001), ("si", 91_000_002), ("oe", 91_000_003), ("si2", 91_000_004))}
    service.create_organisation(session, codes["ie"], {
        "level": "IE", "name": "Ejer", "entity_type": "550891000005100", "cvr": "25313763",
        "phone": "70000000", "postal_address": {"street": "Vej 1", "postal_code": "8000",
                                                "city": "Aarhus C"},
    }, source="staff", actor="test")
    for name, parent, level in (("si", "ie", "SI"), ("oe", "si", "OE"), ("si2", "ie", "SI")):
        service.create_organisation(session, codes[name], {
            "level": level, "parent_sor_code": codes[parent], "name": name.upper(),
            "entity_type": "547011000005103"}, source="staff", actor="test")
    session.commit()
    return codes


def test_every_change_is_an_entry_with_its_kind_and_fields(session):
    before = _last(session)
    codes = _tree(session)
    created = feed(session, before)
    assert _shape(created) == [(codes[n], "created", [], False)
                               for n in ("ie", "si", "oe", "si2")]
    # A version's entry takes the version's own position.
    versions = dict(session.execute(
        select(OrganisationVersion.sor_code, changes.CHANGE_POSITION)
        .join(RegisterCommit, RegisterCommit.id == OrganisationVersion.commit_id)
        .where(OrganisationVersion.sor_code.in_(codes.values()))).all())
    assert {e["sor_code"]: e["position"] for e in created} == versions
    assert created[2]["organisation"]["phone"] == "70000000"  # inherited, shown effective
    assert created[2]["organisation"]["inherited"] == ["postal_address", "phone"]

    def step(change) -> list:
        mark = _last(session)
        change()
        session.commit()
        return feed(session, mark)

    # The owner's phone: its own entry, then one for each unit that inherits it.
    phone = step(lambda: service.change_organisation(
        session, codes["ie"], {"phone": "71111111"}, source="application", actor="kommune",
        reference="ANS-000001"))
    assert _shape(phone) == [(codes["ie"], "changed", ["phone"], False),
                             (codes["si"], "changed", ["phone"], True),
                             (codes["oe"], "changed", ["phone"], True),
                             (codes["si2"], "changed", ["phone"], True)]
    assert {e["reference"] for e in phone} == {"ANS-000001"}
    assert {e["source"] for e in phone} == {"application"}
    assert [e["organisation"]["phone"] for e in phone] == ["71111111"] * 4
    assert [e["position"] for e in phone] == list(range(phone[0]["position"],
                                                        phone[0]["position"] + 4))

    moved = step(lambda: service.change_organisation(
        session, codes["oe"], {"parent_sor_code": codes["si2"]}, source="staff", actor="t"))
    assert _shape(moved) == [(codes["oe"], "moved",
                              ["parent_sor_code", "institution_sor_code"], False)]

    closed = step(lambda: service.close_organisation(
        session, codes["si2"], date(2030, 1, 1), source="staff", actor="t"))
    assert _shape(closed) == [(codes["oe"], "closed", ["valid_to"], False),
                              (codes["si2"], "closed", ["valid_to"], False)]
    assert closed[0]["valid_to"] == closed[0]["organisation"]["valid_to"] == "2030-01-01"

    reopened = step(lambda: service.change_organisation(
        session, codes["si2"], {"valid_to": None}, source="staff", actor="t"))
    assert _shape(reopened) == [(codes["si2"], "reopened", ["valid_to"], False)]

    replaced = step(lambda: service.change_organisation(
        session, codes["si"], {"valid_to": date(2030, 1, 1), "replaced_by": [codes["si2"]]},
        source="staff", actor="t"))
    # The successor names its predecessor back (hierarchy.successors): its own version, so
    # its own entry, in the same commit.
    assert sorted(_shape(replaced)) == sorted([
        (codes["si"], "replaced", ["replaced_by", "valid_to"], False),
        (codes["si2"], "changed", ["replaces"], False)])
    # A replaced organisation's item names where it went, as GET /organisations/{code}
    # does: the chain's active end, stored with the entry.
    shown = next(e["organisation"] for e in replaced if e["sor_code"] == codes["si"])
    assert [(s["sor_code"], s["hops"]) for s in shown["successors"]] == [(codes["si2"], 1)]
    assert shown["successor_dead_ends"] == []

    # Own values the item does not show (attributes): an entry, no field named.
    quiet = step(lambda: service.change_organisation(
        session, codes["si"], {"attributes": {"local_code": "X1"}}, source="staff",
        actor="t"))
    assert _shape(quiet) == [(codes["si"], "changed", [], False)]

    # The feed's last word on each organisation is the organisation as it stands.
    everything = latest_items(feed(session, before))
    current = register_items(session)
    assert {code: current[code] for code in codes.values()} == \
        {code: everything[code] for code in codes.values()}


def test_a_change_rolled_back_leaves_no_entry(session):
    codes = _tree(session)
    mark = _last(session)
    savepoint = session.begin_nested()
    service.change_organisation(session, codes["ie"], {"phone": "79999999"}, source="staff",
                                actor="t")
    savepoint.rollback()
    service.change_organisation(session, codes["si"], {"name": "Beholdt"}, source="staff",
                                actor="t")
    session.commit()
    assert _shape(feed(session, mark)) == [(codes["si"], "changed", ["name"], False)]



def test_positions_left_empty_at_the_end_end_the_page(session):
    # A change rolled back after one kept: its position, the last, holds no entry. A
    # reader must not be told "more" for ever (a client reading while more would spin).
    codes = _tree(session)
    session.commit()
    mark = _last(session)
    service.change_organisation(session, codes["si"], {"name": "Beholdt"}, source="staff",
                                actor="t")
    savepoint = session.begin_nested()
    service.change_organisation(session, codes["ie"], {"phone": "79999999"}, source="staff",
                                actor="t")
    savepoint.rollback()
    session.commit()
    end = _last(session)  # the phone's change and its units' took positions, now empty
    assert end > mark + 1
    page = read_page(SessionReads(session), mark, 10)
    assert [item["sor_code"] for item in page.items] == [codes["si"]]
    assert (page.last, page.more) == (end, False)
    # A cursor a page cut at the entry: nothing after it but the empty positions.
    cut = read_page(SessionReads(session), mark + 1, 10)
    assert (cut.items, cut.last, cut.more) == ([], mark + 1, False)
    assert read_page(SessionReads(session), end, 10).items == []

def test_the_import_records_what_the_service_would(session, tmp_path):
    before = _last(session)
    import_sor_file(session, SYGEHUS, actor="test")
    session.commit()
    first = feed(session, before)
    assert _shape(first) == [(code, "created", [], False) for code in [OWNER, *UNITS]]
    assert {e["source"] for e in first} == {"import"}
    assert first[0]["reference"].startswith("import-run:")

    changed = tmp_path / "changed.xml"
    changed.write_bytes(SYGEHUS.read_bytes().replace(b"46361266", b"46360000"))
    mark = _last(session)
    import_sor_file(session, changed, actor="test")
    session.commit()
    by_import = feed(session, mark)
    expected = [(OWNER, "changed", ["phone"], False),
                *[(unit, "changed", ["phone"], True) for unit in UNITS]]
    assert _shape(by_import) == expected
    assert [e["organisation"]["phone"] for e in by_import] == ["46360000"] * 4

    mark = _last(session)
    service.change_organisation(session, OWNER, {"phone": "46361266"}, source="staff",
                                actor="t")
    session.commit()
    assert _shape(feed(session, mark)) == expected  # the same rule, the other writer


def test_after_imports_and_changes_the_feed_ends_where_the_register_stands(session,
                                                                           tmp_path):
    gen = generator()
    plain, changed = tmp_path / "plain.xml", tmp_path / "changed.xml"
    gen.generate(plain, 800, seed=7, municipalities=1, regions=1)
    gen.generate(changed, 800, seed=7, municipalities=1, regions=1, mutate=0.1, drop=0.02)
    before = _last(session)
    import_sor_file(session, plain, actor="test")
    session.commit()
    mark = _last(session)
    result = import_sor_file(session, changed, actor="test")
    session.commit()
    entries = feed(session, mark)
    kinds = {e["change"] for e in entries}
    assert {"changed", "closed"} <= kinds
    inherited = [e for e in entries if e["inherited"]]
    derived = sum(result.count(level, "derived") for level in ("IE", "SI", "OE"))
    assert derived and 0 < len(inherited) <= derived
    closed = sum(result.count(level, "closed") for level in ("IE", "SI", "OE"))
    assert len([e for e in entries if e["change"] == "closed"]) == closed
    positions = [e["position"] for e in feed(session, before)]
    assert positions == sorted(set(positions))
    assert latest_items(feed(session, before)) == register_items(session)


def test_the_import_writes_a_new_organisations_entry_as_the_statements_would(session,
                                                                            tmp_path):
    # An organisation the import inserts gets its entry in the same pass, from the row it
    # sends (changes.created_entry); one naming a successor, and every later version,
    # by the statement that reads the rows written. Both make the same entry.
    plain = tmp_path / "plain.xml"
    generator().generate(plain, 800, seed=3, municipalities=1, regions=1)  # 2 replaced
    result = import_sor_file(session, plain, actor="test")
    session.commit()
    run = result.run_ids[0]
    commit_id = session.execute(select(OrganisationVersion.commit_id).where(
        OrganisationVersion.import_run_id == run).limit(1)).scalar_one()
    stored = {row.commit_seq: row for row in session.execute(
        select(FeedEntry).where(FeedEntry.commit_id == commit_id)).scalars()}
    versions = session.execute(select(OrganisationVersion.sor_code).where(
        OrganisationVersion.import_run_id == run)).scalars().all()
    assert len(stored) == len(versions) and result.total >= 800
    first = {code for code in versions if versions.count(code) == 1}  # no later version
    named = [row for row in stored.values()
             if orjson.loads(row.item)["organisation"]["replaced_by"]]
    assert named and len(named) < len(stored)  # both ways of making an entry are tried
    connection = session.connection()
    rows = connection.execute(versioned_entries(
        commit_id, import_run_id=run, seq_range=(1, len(versions)))).all()
    again = render_items(connection, rows, date.today())
    compared = 0
    for row, made in zip(rows, again, strict=True):
        if row.sor_code not in first:
            continue
        entry, rendered = stored[row.commit_seq], orjson.loads(made["item"])
        item = orjson.loads(entry.item)
        # Read again, the entry's own item is its previous one: "changed", nothing named.
        assert (entry.change, item["change"], item["changed_fields"]) == ("created",) * 2 + ([],)
        assert (made["change"], made["changed_fields"]) == ("changed", "")
        assert {**item, "change": "x"} == {**rendered, "change": "x"}
        assert {name: made[name] for name in ("commit_id", "commit_seq", "sor_code")} == \
            {"commit_id": entry.commit_id, "commit_seq": entry.commit_seq,
             "sor_code": entry.sor_code}
        compared += 1
    assert compared == len(first)


def _organisation_row(code: str, name: str) -> dict:
    """A row as the import sends it (JSON columns as their text), for Created.item."""
    return {"name": name, "level": "OE", "entity_type": "550821000005102",
            "ownership": "regional", "owner_cvr": "15968532", "ydernummer": None,
            "shak": "8001011", "p_number": None, "parent_sor_code": "12771000016008",
            "institution_sor_code": "12771000016008", "owner_sor_code": "12751000016001",
            "inherited": '["email"]', "clinical_specialities": '["Akutmedicin"]',
            "replaces": None, "replaced_by": None, "first_valid_from": date(2020, 1, 2),
            "valid_from": date(2021, 3, 4), "valid_to": None, "version": 1}


def test_created_entries_are_written_as_made_whatever_their_text(session, backend):
    # The import writes its created entries (hierarchy.feed.items.Created) by COPY in its
    # binary format on PostgreSQL, by INSERT on SQLite: read back, every column is what
    # was made - text that COPY's text format escapes (backslash, tab, newline, return),
    # quotes, "%" in what the entries share, letters beyond ASCII - across commits that
    # share nothing; and each item is the organisation as the API shows it.
    names = ["Plain", 'Back\\slash "quoted"\ttab\nline', "Æblehaven\r", "100 % ø"]
    versions = [
        {"commit_id": 900001, "recorded_at": datetime(2026, 1, 1, 3, tzinfo=UTC),
         "source": "import", "reference": "import-run:1"},
        {"commit_id": 900002, "recorded_at": datetime(2026, 1, 2, 4, 5, 6, 789, tzinfo=UTC),
         "source": "import", "reference": 'tab\there "%s" \\ 100%'},
        {"commit_id": 900003, "recorded_at": datetime(2026, 1, 3, tzinfo=UTC),
         "source": "import", "reference": None},
    ]
    effective = {"gln": "5790010587596", "phone": "22809685", "fax": None, "email": "a@b.dk",
                 "website": None,
                 "postal_address": {"street": "Søvej 8", "postal_code": "9200",
                                    "city": "Aalborg SV", "municipality_code": "0851",
                                    "region_code": "1081", "country": "DK"}}
    effective["visiting_address"] = effective["postal_address"]  # as records.derive makes it
    made, expected = [], []
    for number, version in enumerate(versions, start=1):
        created = Created(version)
        assert created.shares(version) and not created.shares({**version, "source": "x"})
        for seq, name in enumerate(names, start=1):
            code = ids.make_sor_code(number * 100 + seq)
            item = created.item(code, _organisation_row(code, name), effective)
            made.append(created.copy_row(seq, code, item) if backend == "postgresql"
                        else created.row(seq, code, item))
            expected.append(created.row(seq, code, item))
            shown = orjson.loads(item)
            assert shown["organisation"]["name"] == name
            assert shown["reference"] == version["reference"]
            assert shown["organisation"]["visiting_address"] == \
                shown["organisation"]["address"] == effective["postal_address"]
    connection = session.connection()
    if backend == "postgresql":
        copy_binary(connection, "feed_entries", changes.ENTRY_COLUMNS, made)
    else:
        connection.execute(insert(FeedEntry.__table__), made)
    stored = session.execute(
        select(*[FeedEntry.__table__.c[name] for name in changes.ENTRY_COLUMNS])
        .where(FeedEntry.commit_id >= 900001)
        .order_by(FeedEntry.commit_id, FeedEntry.commit_seq)).mappings().all()
    assert [dict(row) for row in stored] == expected


def test_the_binary_copy_types_are_the_columns_types():
    # Created.copy_row's fields are PostgreSQL's binary forms of the columns' own types.
    dialect = postgresql.dialect()
    compiled = {name: FeedEntry.__table__.c[name].type.compile(dialect=dialect).split("(")[0]
                for name in changes.ENTRY_COLUMNS}
    named = {"BIGINT": "int8", "INTEGER": "int4", "VARCHAR": "varchar", "BOOLEAN": "bool",
             "TIMESTAMP WITH TIME ZONE": "timestamptz", "DATE": "date", "TEXT": "text"}
    assert {name: named[kind] for name, kind in compiled.items()} == COPY_TYPES


def test_an_entry_copies_what_the_item_shows():
    # updated_at is read for FHIR's meta.lastUpdated, the stamp for the kept items
    # (hierarchy.items); the API's item shows neither.
    assert set(STATE_COLUMNS) == {c.key for c in ITEM_COLUMNS} - {
        "name_search", "sor_code", "updated_at", "stamp"}
    assert ADDRESS_KEYS == tuple(AddressSchema._declared_fields)


def test_the_migration_puts_the_register_in_the_feed(database_url, request, tmp_path):
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'backfill.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database("sor_feed_backfill")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    try:
        with app.app_context():
            upgrade(revision="0010")
            code = ids.make_sor_code(91_000_100)
            now = datetime(2024, 1, 1, tzinfo=UTC)
            with db.engine.begin() as connection:
                connection.execute(text(
                    "INSERT INTO organisations (sor_code, level, name, gln_inherited, path, "
                    "depth, owner_sor_code, name_search, effective, inherited, version, "
                    "content_hash, derived_hash, created_at, updated_at) VALUES (:code, 'IE', "
                    "'Ejer', false, :path, 0, :code, 'ejer', '{\"phone\": \"1\"}', '[]', 2, "
                    "'', '', :now, :now)"
                ), {"code": code, "path": f"/{code}/", "now": now.isoformat(sep=" ")})
                for version in (1, 2):
                    connection.execute(text(
                        "INSERT INTO organisation_versions (sor_code, version, recorded_at, "
                        "source, actor, reference, snapshot) VALUES (:code, :version, :at, "
                        "'import', 'test', 'import-run:1', '{}')"
                    ), {"code": code, "version": version,
                        "at": (now + timedelta(seconds=version)).isoformat(sep=" ")})
            upgrade()
            entries = feed(db.session)
            assert _shape(entries) == [(code, "created", [], False)]
            assert entries[0]["position"] == 2  # its current version's
            assert entries[0]["organisation"]["phone"] == "1"
            assert entries[0]["reference"] == "import-run:1"
            state = db.session.execute(select(FeedState)).scalar_one()
            assert len(bytes.fromhex(state.cursor_key)) == 32
            assert state.ticked_through == date.today()
            db.session.remove()
            db.engine.dispose()
    finally:
        if not database_url.startswith("sqlite"):
            server.drop_database(url)


def test_entries_keep_only_their_item_and_migrate_back(fresh_database):
    # 0022 dropped the copy of the organisation's columns beside each item; going back
    # fills them from the items, and going forward again leaves the feed as it was.
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": fresh_database})
    with app.app_context():
        import_sor_file(db.session, SYGEHUS, actor="test")
        db.session.commit()
        before = feed(db.session)
        db.session.remove()
        downgrade(revision="0021")
        copied = db.session.execute(text(
            "SELECT sor_code, name, level, owner_cvr, entity_type, version, valid_from, "
            "effective FROM feed_entries ORDER BY id")).all()
        held = {row.sor_code: row for row in db.session.execute(text(
            "SELECT sor_code, name, level, owner_cvr, entity_type, version, valid_from, "
            "effective FROM organisations")).all()}
        assert [row.sor_code for row in copied] == [OWNER, *UNITS]
        for row in copied:
            same = held[row.sor_code]
            assert row[1:6] == same[1:6]
            assert str(row.valid_from) == str(same.valid_from)
            effective, expected = (orjson.loads(e) if isinstance(e, str) else e
                                   for e in (row.effective, same.effective))
            assert effective["phone"] == expected["phone"] == "46361266"
            assert effective["postal_address"]["street"] == \
                expected["postal_address"]["street"]
        db.session.remove()
        upgrade()
        assert feed(db.session) == before
        db.session.remove()
        db.engine.dispose()
