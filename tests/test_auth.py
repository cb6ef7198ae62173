"""API clients: made on the command line, tokens shown once and stored hashed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from sorregistry.auth import ApiClient, ClientError, client_for_token, create_client, digest_token


def test_create_client_prints_token_alone_on_last_line(runner, session):
    result = runner.invoke(
        args=["create-client", "Aarhus SEI", "--cvr", "55133018", "--role", "municipality",
              "--role", "reporter", "--municipality-code", "751"]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("sor_") and " " not in token
    client = session.execute(select(ApiClient)).scalar_one()
    assert client.roles == ["municipality", "reporter"]
    assert client.municipality_code == "0751"
    # Only the digest is stored.
    assert client.token_digest == digest_token(token) and token not in str(vars(client))
    assert client_for_token(session, token).id == client.id


@pytest.mark.parametrize(
    "args, message",
    [
        (["x", "--cvr", "12345678", "--role", "reporter"], "modulus 11"),
        (["x", "--cvr", "55133018", "--role", "municipality"], "municipality-code"),
        (["x", "--cvr", "55133018", "--role", "municipality", "--municipality-code", "9999"],
         "not a Danish kommunekode"),
        (["x", "--cvr", "55133018", "--role", "reporter", "--municipality-code", "0751"],
         "municipality clients only"),
    ],
)
def test_create_client_refuses_bad_input(runner, session, args, message):
    result = runner.invoke(args=["create-client", *args])
    assert result.exit_code == 1
    assert message in result.output
    assert session.execute(select(ApiClient)).first() is None


def test_unknown_role_is_refused_by_the_command(runner):
    result = runner.invoke(args=["create-client", "x", "--cvr", "55133018", "--role", "admin"])
    assert result.exit_code == 2 and "admin" in result.output


def test_revoked_token_no_longer_works(session):
    from sorregistry.models import utcnow

    client, token = create_client(session, "x", cvr="55133018", roles=["reporter"])
    client.revoked_at = utcnow()
    session.flush()
    assert client_for_token(session, token) is None


def test_service_refuses_a_client_without_a_role(session):
    with pytest.raises(ClientError, match="needs a role"):
        create_client(session, "x", cvr="55133018", roles=[])
