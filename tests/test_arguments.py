"""The API's argument parser (sorregistry.api.ArgumentsParser): webargs' Flask parser that
finds a schema's repeatable keys once per schema - the same arguments as webargs' own."""

from __future__ import annotations

import pytest
from flask import Flask
from marshmallow import Schema, fields
from webargs.flaskparser import FlaskParser

from sorregistry.api import ArgumentsParser


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


def _parsed(parser: FlaskParser, schema: Schema, location: str) -> object:
    try:
        return parser.parse(schema, location=location, unknown=None)
    except Exception as exc:  # noqa: BLE001 - an error must be the same error too
        return type(exc).__name__, str(getattr(exc, "messages", exc))
