"""``POST /api/v1/picker/tokens``: the embedding site's server asks for a picker token
(``hierarchy.embed`` says why a token and how the frame uses it)."""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from hierarchy.embed import TOKEN_SECONDS, allowed_origin, issue_token
from sorregistry.api import ApiBlueprint as Blueprint
from sorregistry.errors import DomainError
from sorregistry.security import current_client, require

blp = Blueprint("picker_embed", __name__,
                description="The embeddable picker / Den indlejrede opslagsside")


class OriginNotAllowed(DomainError):
    status = 422


class TokenRequestSchema(Schema):
    origin = fields.String(required=True, validate=validate.Length(max=200),
                           metadata={"description": "The embedding page's origin, one of "
                                     "SOR_PICKER_ORIGINS / Den indlejrende sides origin"})


class TokenSchema(Schema):
    token = fields.String(metadata={"description": "Put it in the frame URL's fragment"})
    expires_in = fields.Integer(metadata={"description": "Seconds"})
    url = fields.String(metadata={"description": "The frame's URL, token included"})


@blp.route("/picker/tokens")
class PickerTokens(MethodView):
    @blp.doc(security=[{"bearerAuth": []}])
    @blp.arguments(TokenRequestSchema)
    @blp.response(201, TokenSchema)
    @require()
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """A short-lived token that lets a page of *origin* embed the picker for this
        client (its CVR for "Mit CVR"); ask for it server-side, never from a browser."""
        origin = allowed_origin(body["origin"])
        if origin is None:
            raise OriginNotAllowed("this origin may not embed the picker (SOR_PICKER_ORIGINS)",
                                   field_errors={"json": {"origin": ["not listed"]}})
        client = current_client()
        token = issue_token(client.name, client.cvr, origin)
        frame = url_for("picker.picker", embed=1, origin=origin, _external=True)
        return {"token": token, "expires_in": TOKEN_SECONDS, "url": f"{frame}#token={token}"}
