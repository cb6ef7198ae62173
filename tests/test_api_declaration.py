"""A blueprint declared as an API is one, whatever its URL prefix."""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify, session
from flask.sessions import NullSession
from flask.typing import ResponseReturnValue

from sorregistry import create_app
from sorregistry.api import ApiBlueprint, current_api, declare_api, register_api
from sorregistry.errors import DomainError
from sorregistry.security import _REQUIRED_ROLES, require


class _Refused(DomainError):
    status = 409


def _throwaway() -> Blueprint:
    blueprint = Blueprint("throwaway", __name__)

    @blueprint.post("/things")
    def make_thing() -> ResponseReturnValue:
        return jsonify({"cookie_session": not isinstance(session, NullSession)}), 201

    @blueprint.get("/things/<int:number>")
    def thing(number: int) -> ResponseReturnValue:
        if number == 409:
            raise _Refused("not now", field_errors={"number": ["taken"]})
        return jsonify({"number": number})

    return blueprint


def _app(tmp_path: object) -> Flask:
    # CSRF on, as in production: the tests' default switches it off.
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": True,
                      "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    register_api(app, _throwaway(), url_prefix="/elsewhere/v9")
    return app


def test_an_api_under_another_prefix_gets_json_errors_no_cookie_and_no_csrf(tmp_path):
    client = _app(tmp_path).test_client()

    made = client.post("/elsewhere/v9/things", json={})
    assert made.status_code == 201  # no CSRF token asked for
    assert made.json == {"cookie_session": False}
    assert "Set-Cookie" not in made.headers

    missing = client.get("/elsewhere/v9/nothing-here")
    assert missing.status_code == 404 and missing.is_json
    assert missing.json["code"] == 404 and "Set-Cookie" not in missing.headers

    wrong_method = client.delete("/elsewhere/v9/things")
    assert wrong_method.status_code == 405 and wrong_method.is_json

    refused = client.get("/elsewhere/v9/things/409")
    assert refused.status_code == 409
    assert refused.json == {"code": 409, "status": "Conflict", "message": "not now",
                            "errors": {"number": ["taken"]}}


def test_a_page_beside_it_keeps_html_errors_and_csrf(tmp_path):
    client = _app(tmp_path).test_client()
    page = client.get("/elsewhere/nothing-here")
    assert page.status_code == 404 and page.mimetype == "text/html"
    refused = client.post("/login", data={"email": "a@b.dk", "password": "x"})
    assert refused.status_code == 400  # the CSRF token is missing


def test_the_longest_declared_prefix_wins_and_a_later_declaration_counts(tmp_path):
    # A path that matches no route is an API's when it lies under its prefix: the
    # longest prefix decides (/elsewhere/v9/deeper is another API than /elsewhere/v9),
    # and a prefix declared after requests were answered is matched too.
    app = _app(tmp_path)
    declare_api(app, "deeper", "/elsewhere/v9/deeper")
    client = app.test_client()
    assert client.get("/elsewhere/v9/nothing-here").is_json  # the prefixes are sorted now
    declare_api(app, "later", "/later/")
    for path, name in [("/elsewhere/v9/x", "throwaway"), ("/elsewhere/v9/deeper/x", "deeper"),
                       ("/elsewhere/v9/deeper", "deeper"), ("/elsewhere/v9deeper", None),
                       ("/later", "later"), ("/later/x/y", "later"), ("/laterx", None)]:
        with app.test_request_context(path):
            found = current_api()
            assert (found.name if found else None) == name, path


def test_decorators_that_only_document_add_no_call_to_a_request(app) -> None:
    """ApiBlueprint's doc and alt_response carry flask-smorest's documentation on a copy
    of the view itself, not on a wrapper called on every request; the documentation and
    what the decorators below set are the same, the original function is untouched."""
    blp = ApiBlueprint("documented", __name__)

    def view(value: int, *, step: int = 1) -> int:
        """Add a step."""
        return value + step

    decorated = blp.doc(summary="Add")(blp.alt_response(404, description="Gone")(view))
    assert decorated is not view and decorated.__code__ is view.__code__
    assert decorated(1) == 2 and decorated(1, step=5) == 6
    assert decorated.__doc__ == "Add a step." and decorated.__wrapped__ is not None
    assert decorated._apidoc["manual_doc"] == {"summary": "Add"}
    assert 404 in decorated._apidoc["response"]["responses"]
    assert not hasattr(view, "_apidoc")
    guarded = blp.alt_response(404, description="Gone")(require("sds")(view))
    assert getattr(guarded, _REQUIRED_ROLES) == ("sds",)  # the guard finds the roles

    async def coroutine() -> None:
        return None

    kept = blp.doc(summary="Async")(coroutine)
    assert kept.__code__ is not coroutine.__code__ and kept._apidoc  # flask-smorest's own
    # The lookups' documentation, resolve's three alternative answers among it.
    with app.test_client() as client:
        spec = client.get("/api/openapi.json").get_json()
    resolve = spec["paths"]["/api/v1/resolve"]["get"]
    assert {"200", "304", "404", "422"} <= set(resolve["responses"])
    assert resolve["security"] == [{"bearerAuth": []}]
