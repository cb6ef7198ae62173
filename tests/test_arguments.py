"""The API's argument parser (sorregistry.api.ArgumentsParser): webargs' Flask parser that
finds a schema's repeatable keys once per schema, and loads a query string into a flat
schema itself - the same arguments (and the same errors) as webargs' own."""

from __future__ import annotations

from datetime import date

import pytest
from flask import Flask, request
from marshmallow import Schema, ValidationError, fields, post_load, validate
from webargs.fields import DelimitedList
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import UnprocessableEntity

from hierarchy.schemas import LookupArgsSchema, ResolveArgsSchema, SearchArgsSchema
from sorregistry.api import ArgumentsParser, _FlatQuery


class Levels(Schema):
    level = fields.List(fields.String())
    name = fields.String()


class OneLevel(Schema):  # the same key, not repeatable here
    level = fields.String()
    limit = fields.Integer(load_default=50)


@pytest.mark.parametrize("query", [
    "level=SI&level=OE&name=ple", "level=SI", "name=ple", "", "level=SI&level=OE&limit=3",
])
def test_the_arguments_are_webargs_own_for_each_schema(query: str):
    app = Flask(__name__)
    ours, theirs = ArgumentsParser(), FlaskParser()
    levels, one_level = Levels(), OneLevel()
    for _ in range(2):  # the second time from what the parser kept of each schema
        for schema in (levels, one_level):
            for location in ("query", "form"):
                environ = {"QUERY_STRING": query} if location == "query" else {
                    "REQUEST_METHOD": "POST", "CONTENT_TYPE":
                    "application/x-www-form-urlencoded"}
                with app.test_request_context("/", data=query if location == "form" else None,
                                              environ_overrides=environ):
                    got = _parsed(ours, schema, location)
                    expected = _parsed(theirs, schema, location)
                assert got == expected


def test_a_repeated_key_is_a_list_only_where_the_schema_repeats_it():
    app = Flask(__name__)
    parser = ArgumentsParser()
    with app.test_request_context("/?level=SI&level=OE"):
        assert parser.parse(Levels(), location="query") == {"level": ["SI", "OE"]}
        assert parser.parse(OneLevel(), location="query") == {"level": "SI", "limit": 50}


def _parsed(parser: FlaskParser, schema: Schema, location: str, unknown: object = None
            ) -> object:
    """The parse (``unknown=...``: webargs' default for the location) or its error."""
    try:
        if unknown is ...:
            return parser.parse(schema, location=location)
        return parser.parse(schema, location=location, unknown=unknown)
    except Exception as exc:  # noqa: BLE001 - an error must be the same error too
        return type(exc).__name__, str(getattr(exc, "messages", exc))


class Dated(Schema):
    """Every kind of field the flat load reads itself, with validators and defaults."""
    code = fields.String(required=True, validate=validate.Length(max=5))
    on = fields.Date()
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    share = fields.Float(data_key="fraction")
    all_history = fields.Boolean(load_default=False)
    kinds = fields.List(fields.String(validate=validate.OneOf(["a", "b"])), data_key="kind")
    made = fields.Date(load_default=lambda: date(2026, 1, 1))


FLAT_QUERIES = [
    "code=12345", "code=1&on=2026-03-01&limit=7", "code=1&fraction=0.5&all_history=true",
    "code=1&kind=a&kind=b", "code=1&kind=a", "code=1&unknown=x&limit=100",
    "code=1&made=2020-02-02", "code=%C3%A6%C3%B8&on=2026-02-28",
    # refused by a field, or not flat: webargs' answer
    "", "code=123456", "code=1&limit=0", "code=1&limit=x", "code=1&on=2026-02-30",
    "code=1&kind=c", "code=1&all_history=maybe", "code=1&code=2", "code=1&limit=3&limit=4",
    "code=1&fraction=", "code=",
]
LOOKUP_QUERIES = [
    "", "ydernummer=012345", "level=SI&level=OE&name=plej%20hor&name_match=words",
    "name_match=fuzzy&name=x", "limit=500", "limit=501", "level=XX", "sort=name&limit=3",
    "name=" + "a" * 101, "ownership=privat&cvr=29189919", "ownership=nope", "code=1",
    "code=01234567&active_on=2026-12-07", "active_on=yesterday", "code=" + "9" * 41,
    # hostile: past Python's 4,300 digits an int refuses; a key repeated a thousand times;
    # bytes that are no UTF-8; a NUL
    "limit=" + "9" * 5000, "&".join(["level=SI"] * 1000), "name=%ff%fe", "code=1%002",
]


@pytest.mark.parametrize("schema", [Dated(), LookupArgsSchema(), SearchArgsSchema(),
                                    ResolveArgsSchema()], ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("query", FLAT_QUERIES + LOOKUP_QUERIES)
def test_a_flat_query_loads_as_webargs_loads_it(schema: Schema, query: str):
    app = Flask(__name__)
    ours, theirs = ArgumentsParser(), FlaskParser()
    with app.test_request_context("/", environ_overrides={"QUERY_STRING": query}):
        for _ in range(2):  # the second time from the plan kept for the schema
            got = _parsed(ours, schema, "query", unknown=...)
            expected = _parsed(theirs, schema, "query", unknown=...)
            assert got == expected
            if isinstance(got, dict):  # the fields in the schema's order, as marshmallow's
                assert list(got) == list(expected)


def test_a_valid_query_is_loaded_without_marshmallow_and_a_refused_one_by_webargs(monkeypatch):
    app = Flask(__name__)
    parser = ArgumentsParser()
    loads: list[object] = []
    original = Schema.load

    def counting(self, data, **kwargs):
        loads.append(data)
        return original(self, data, **kwargs)

    monkeypatch.setattr(Schema, "load", counting)
    schema = LookupArgsSchema()
    with app.test_request_context("/?ydernummer=012345&level=SI&limit=20"):
        assert parser.parse(schema, location="query") == {
            "level": ["SI"], "ydernummer": "012345", "limit": 20}
    assert loads == []
    with app.test_request_context("/?limit=0"), pytest.raises(UnprocessableEntity) as refused:
        parser.parse(schema, location="query")
    assert len(loads) == 1  # webargs loaded it, and its error is the one raised
    assert refused.value.data["messages"] == {"query": {"limit": [
        "Must be greater than or equal to 1 and less than or equal to 500."]}}


class Hooked(Schema):
    code = fields.String()

    @post_load
    def upper(self, data, **kwargs):
        return {key: value.upper() for key, value in data.items()}


class Nested(Schema):
    inner = fields.Nested(Levels)


class Renamed(Schema):
    code = fields.String(attribute="sor_code")


class Many(Schema):
    code = fields.String()


class Delimited(Schema):
    code = DelimitedList(fields.String())


@pytest.mark.parametrize("schema", [Hooked(), Nested(), Renamed(), Many(many=True),
                                    Levels(partial=True), Delimited()],
                         ids=lambda s: type(s).__name__)
def test_a_schema_that_is_not_flat_is_left_to_webargs(schema: Schema):
    assert _FlatQuery.of(schema) is None
    app = Flask(__name__)
    with app.test_request_context("/?code=ab"):
        assert (_parsed(ArgumentsParser(), schema, "query", unknown=...)
                == _parsed(FlaskParser(), schema, "query", unknown=...))


def test_a_field_refusing_a_value_raises_no_error_of_the_flat_load():
    plan = _FlatQuery.of(Dated())
    assert plan is not None
    app = Flask(__name__)
    with app.test_request_context("/?code=123456"):
        assert plan.load(request.args) is None
    with pytest.raises(ValidationError):
        Dated().load({"code": "123456"})
