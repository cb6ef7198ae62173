"""Successors: links kept on both sides, the walk to the active ends, and what resolve and
reporting-unit validation say of a replaced code - on both back ends."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import event

from hierarchy import identifiers as ids
from hierarchy import service
from hierarchy.successors import MAX_HOPS, find_successors, merge_links
from sorregistry.accounts.clients import create_client

TODAY = date.today()
START = date(2015, 1, 1)
OWNER = ids.make_sor_code(7000)
CLINIC = ids.make_sor_code(7001)


def code(n: int) -> str:
    return ids.make_sor_code(7100 + n)


def unit(session, n: int, *, valid_to: date | None = None, **values) -> str:
    """An OE under the clinic, valid from START (to *valid_to*)."""
    sor_code = code(n)
    service.create_organisation(session, sor_code, {
        "level": "OE", "parent_sor_code": CLINIC, "name": f"Enhed {n}",
        "first_valid_from": START, "valid_from": START, "valid_to": valid_to, **values,
    }, source="staff", actor="test")
    session.commit()  # only a savepoint (tests/support/database.py): a refusal keeps it
    return sor_code


def replace(session, old: str, *new: str) -> None:
    service.change_organisation(session, old, {"replaced_by": list(new)}, source="staff",
                                actor="test")
    session.commit()


@pytest.fixture
def tree(session):
    service.create_organisation(session, OWNER, {
        "level": "IE", "name": "Region Test", "entity_type": "550881000005103",
        "first_valid_from": START, "valid_from": START,
        "postal_address": {"street": "Alléen 1", "postal_code": "4000", "city": "Roskilde"},
        "phone": "70000000",
    }, source="staff", actor="test")
    service.create_organisation(session, CLINIC, {
        "level": "SI", "parent_sor_code": OWNER, "name": "Klinikken",
        "entity_type": "22232009", "first_valid_from": START, "valid_from": START,
    }, source="staff", actor="test")
    session.commit()
    return session


@pytest.fixture
def auth(session) -> dict[str, str]:
    _, token = create_client(session, "form", cvr="35095748", roles=["reporter"])
    return {"Authorization": f"Bearer {token}"}


CLOSED = TODAY - timedelta(days=30)
LONG_AGO = date(2018, 1, 1)


# --- both sides ---------------------------------------------------------------------------


def test_merge_links_keeps_the_own_word_then_adds_sorted():
    assert merge_links(["B", "A", "B"], ["D", "C", "A"]) == ["B", "A", "C", "D"]
    assert merge_links(None, []) is None
    assert merge_links([], ["A"]) == ["A"]


def test_replaced_by_fills_in_replaces_as_a_version_of_the_successor(tree):
    old, new = unit(tree, 1, valid_to=CLOSED), unit(tree, 2)
    replace(tree, old, new)
    successor = service.get_organisation(tree, new)
    assert successor.replaces == [old] and successor.version == 2
    history = service.organisation_history(tree, new)
    assert history[-1].changes == {"replaces": (None, [old])}
    # and the reverse: a successor that names what it replaces
    third = unit(tree, 3, valid_to=CLOSED)
    service.change_organisation(tree, new, {"replaces": [old, third]}, source="staff",
                                actor="test")
    assert service.get_organisation(tree, third).replaced_by == [new]
    assert service.get_organisation(tree, old).replaced_by == [new]  # already said so


def test_a_link_taken_away_leaves_the_other_side_too(tree):
    old, new = unit(tree, 1, valid_to=CLOSED), unit(tree, 2)
    replace(tree, old, new)
    replace(tree, old)  # nothing replaces it after all
    assert service.get_organisation(tree, new).replaces is None
    assert not service.get_organisation(tree, old).replaced_by


def test_creating_a_successor_names_it_on_the_closed_one(tree):
    old = unit(tree, 1, valid_to=CLOSED)
    new = unit(tree, 2, replaces=[code(1)])
    assert service.get_organisation(tree, old).replaced_by == [new]


@pytest.mark.parametrize("links, message", [
    (["12345"], "digits"),
    ([ids.make_sor_code(99999)], "no organisation has SOR code"),
    ("not a list", "a list of SOR codes"),
])
def test_impossible_links_are_refused(tree, links, message):
    old = unit(tree, 1)
    with pytest.raises(service.InvalidChange, match=message):
        service.change_organisation(tree, old, {"replaced_by": links}, source="staff",
                                    actor="test")
    assert service.get_organisation(tree, old).version == 1


def test_an_organisation_cannot_replace_itself(tree):
    old = unit(tree, 1)
    with pytest.raises(service.InvalidChange, match="itself"):
        replace(tree, old, old)


# --- the walk ------------------------------------------------------------------------------


def ends(session, start: str, day: date = TODAY):
    replaced_by = service.get_organisation(session, start).replaced_by
    found = find_successors(session, {start: replaced_by}, day)[start]
    return [e.sor_code for e in found.active], [e.sor_code for e in found.ended]


def test_several_hops_to_the_active_end(tree):
    a, b, c = unit(tree, 1, valid_to=LONG_AGO), unit(tree, 2, valid_to=CLOSED), unit(tree, 3)
    replace(tree, a, b)
    replace(tree, b, c)
    assert ends(tree, a) == ([c], [])
    found = find_successors(tree, {a: [b]}, TODAY)[a]
    assert found.active[0].hops == 2 and found.active[0].name == "Enhed 3"


def test_fan_out_and_fan_in(tree):
    a, b = unit(tree, 1, valid_to=CLOSED), unit(tree, 2, valid_to=CLOSED)
    c, d = unit(tree, 3), unit(tree, 4)
    replace(tree, a, c, d)  # a split
    replace(tree, b, c)  # and a merger into c
    assert ends(tree, a) == ([c, d], [])
    assert ends(tree, b) == ([c], [])
    assert service.get_organisation(tree, c).replaces == [a, b]


def test_fan_out_that_meets_again_lists_the_end_once(tree):
    a, b, c = unit(tree, 1, valid_to=LONG_AGO), unit(tree, 2, valid_to=CLOSED), \
        unit(tree, 3, valid_to=CLOSED)
    d = unit(tree, 4)
    replace(tree, a, b, c)
    replace(tree, b, d)
    replace(tree, c, d)
    assert ends(tree, a) == ([d], [])


def test_a_cycle_ends_without_error(tree):
    a, b = unit(tree, 1, valid_to=LONG_AGO), unit(tree, 2, valid_to=CLOSED)
    replace(tree, a, b)
    replace(tree, b, a)
    assert ends(tree, a) == ([], [])
    c = unit(tree, 3)
    replace(tree, b, a, c)  # a way out of the cycle
    assert ends(tree, a) == ([c], [])


def test_a_closed_end_without_successor_is_listed_as_such(tree):
    a, b = unit(tree, 1, valid_to=LONG_AGO), unit(tree, 2, valid_to=CLOSED)
    replace(tree, a, b)
    assert ends(tree, a) == ([], [b])


def test_the_walk_is_bounded(tree):
    chain = [unit(tree, n, valid_to=CLOSED) for n in range(MAX_HOPS + 3)]
    for old, new in zip(chain, chain[1:], strict=False):
        replace(tree, old, new)
    replace(tree, chain[-1], unit(tree, 99))
    assert ends(tree, chain[0]) == ([], [])  # given up after MAX_HOPS hops, no error
    assert ends(tree, chain[5]) == ([code(99)], [])


def test_one_query_per_hop_for_many_starts(tree, app):
    closed = [unit(tree, n, valid_to=CLOSED) for n in range(10)]
    middle = unit(tree, 20, valid_to=CLOSED)
    last = unit(tree, 21)
    for old in closed:
        replace(tree, old, middle)
    replace(tree, middle, last)
    statements = []
    engine = tree.get_bind()

    def count(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT"):  # not the test's SAVEPOINT
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        found = find_successors(tree, {c: [middle] for c in closed}, TODAY)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert all([e.sor_code for e in found[c].active] == [last] for c in closed)
    assert len(statements) == 2


# --- the organisation item ----------------------------------------------------------------


def test_item_of_a_closed_organisation_carries_its_successors(client, tree, auth):
    a, b, c = unit(tree, 1, valid_to=LONG_AGO), unit(tree, 2, valid_to=CLOSED), unit(tree, 3)
    replace(tree, a, b)
    replace(tree, b, c)
    item = client.get(f"/api/v1/organisations/{a}", headers=auth).get_json()
    assert item["replaced_by"] == [b]
    assert [s["sor_code"] for s in item["successors"]] == [c]
    assert item["successors"][0]["hops"] == 2 and item["successors"][0]["name"] == "Enhed 3"
    assert item["successor_dead_ends"] == []
    active = client.get(f"/api/v1/organisations/{c}", headers=auth).get_json()
    assert "successors" not in active and active["replaces"] == [b]


# --- resolve and validate -----------------------------------------------------------------


def test_resolve_a_replaced_code_within_the_window_warns_and_offers_the_successor(
        client, tree, auth):
    old, new = unit(tree, 1, valid_to=CLOSED), unit(tree, 2)
    replace(tree, old, new)
    response = client.get(f"/api/v1/resolve?code={old}", headers=auth)
    assert response.status_code == 200
    body = response.get_json()
    assert body["kind"] == "sor"
    assert body["interpretations"][0]["organisations"][0]["sor_code"] == old
    warning = body["warnings"][0]
    assert warning["code"] == "replaced"
    assert CLOSED.isoformat() in warning["message"] and new in warning["message"]
    assert [s["sor_code"] for s in body["successors"]] == [new]


def test_resolve_a_replaced_code_after_the_window_is_404_naming_the_successor(
        client, tree, auth):
    old, new = unit(tree, 1, valid_to=LONG_AGO), unit(tree, 2)
    replace(tree, old, new)
    response = client.get(f"/api/v1/resolve?code={old}", headers=auth)
    assert response.status_code == 404
    message = response.get_json()["message"]
    assert LONG_AGO.isoformat() in message and f"replaced by {new}" in message


def test_the_window_is_a_setting(client, app, tree, auth):
    old, new = unit(tree, 1, valid_to=CLOSED), unit(tree, 2)
    replace(tree, old, new)
    app.config["SUCCESSOR_WARNING_DAYS"] = 10
    assert client.get(f"/api/v1/resolve?code={old}", headers=auth).status_code == 404
    app.config["SUCCESSOR_WARNING_DAYS"] = 31
    assert client.get(f"/api/v1/resolve?code={old}&active_on={TODAY}",
                      headers=auth).status_code == 200


def test_resolve_a_closed_code_without_successor_is_404_as_before(client, tree, auth):
    old = unit(tree, 1, valid_to=CLOSED)
    response = client.get(f"/api/v1/resolve?code={old}", headers=auth)
    assert response.status_code == 404 and "replaced" not in response.get_json()["message"]


def validate(client, auth, sor_code, start, end):
    response = client.post("/api/v1/reporting-unit/validate", headers=auth, json={
        "sor_code": sor_code, "period_start": start.isoformat(),
        "period_end": end.isoformat()})
    assert response.status_code == 200
    return response.get_json()


def test_validate_a_replaced_code_within_the_window_is_a_warning(client, tree, auth):
    old, new = unit(tree, 1, valid_to=CLOSED), unit(tree, 2)
    replace(tree, old, new)
    body = validate(client, auth, old, CLOSED + timedelta(days=1), TODAY)
    assert body["errors"] == []
    assert [w["code"] for w in body["warnings"]] == ["replaced"]
    assert new in body["warnings"][0]["message"]
    assert [s["sor_code"] for s in body["successors"]] == [new]


def test_validate_a_replaced_code_after_the_window_is_an_error_naming_the_successor(
        client, tree, auth):
    old, new = unit(tree, 1, valid_to=LONG_AGO), unit(tree, 2)
    replace(tree, old, new)
    body = validate(client, auth, old, TODAY - timedelta(days=20), TODAY)
    assert [e["code"] for e in body["errors"]] == ["closed"]
    assert f"replaced by {new}" in body["errors"][0]["message"]
    assert [s["sor_code"] for s in body["successors"]] == [new]


def test_validate_a_code_closing_in_the_period_names_its_successor(client, tree, auth):
    old, new = unit(tree, 1, valid_to=CLOSED), unit(tree, 2)
    replace(tree, old, new)
    body = validate(client, auth, old, CLOSED - timedelta(days=5), CLOSED + timedelta(days=5))
    assert [w["code"] for w in body["warnings"]] == ["closes_in_period"]
    assert f"replaced by {new}" in body["warnings"][0]["message"]


def test_validate_an_active_code_is_unchanged(client, tree, auth):
    new = unit(tree, 2)
    body = validate(client, auth, new, TODAY - timedelta(days=20), TODAY)
    assert body == {"errors": [], "warnings": [], "successors": [],
                    "organisation": body["organisation"]}
