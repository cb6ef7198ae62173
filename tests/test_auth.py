"""API clients: made, listed and revoked on the command line; tokens shown once, stored
hashed, and never listed."""

from __future__ import annotations

import gc
import re
import weakref

import pytest
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from sorregistry import security
from sorregistry.accounts.clients import (
    ClientError,
    client_for_token,
    create_client,
    digest_token,
    forget_identities,
    revoke_client,
)
from sorregistry.accounts.models import ApiClient

LOOKUP = "/api/v1/lookups/my-cvr/si"


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
    client, token = create_client(session, "x", cvr="55133018", roles=["reporter"])
    revoke_client(session, client.id)
    assert client.revoked_at is not None
    assert client_for_token(session, token) is None


def test_service_refuses_a_client_without_a_role(session):
    with pytest.raises(ClientError, match="needs a role"):
        create_client(session, "x", cvr="55133018", roles=[])


def _make(runner, *args: str) -> str:
    """A client made with the command, as an operator would; its token."""
    result = runner.invoke(args=["create-client", *args])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def _rows(output: str) -> dict[str, list[str]]:
    """The table's rows by their first column (cells are at least two spaces apart)."""
    return {cells[0]: cells for cells in
            (re.split(r"\s{2,}", line.strip()) for line in output.splitlines()[1:])
            if not cells[0].startswith("(")}


def test_list_clients_hides_revoked_ones_and_never_shows_a_token(runner, session):
    kept = _make(runner, "Aarhus SEI", "--cvr", "55133018", "--role", "reporter")
    gone = _make(runner, "Aarhus Kommune", "--cvr", "55133018", "--role", "municipality",
                 "--municipality-code", "0751")
    kept_id, gone_id = (str(session.execute(select(ApiClient.id).where(
        ApiClient.token_digest == digest_token(token))).scalar_one()) for token in (kept, gone))
    assert runner.invoke(args=["revoke-client", gone_id]).exit_code == 0

    live = runner.invoke(args=["list-clients"])
    assert live.exit_code == 0, live.output
    assert live.output.splitlines()[0].split() == [
        "id", "name", "CVR", "roles", "kommunekode", "created", "revoked"]
    rows = _rows(live.output)
    assert rows[kept_id][:5] == [kept_id, "Aarhus SEI", "55133018", "reporter", "-"]
    assert rows[kept_id][-1] == "-"
    assert gone_id not in rows and "Aarhus Kommune" not in live.output
    assert "1 revoked not shown; --all lists them" in live.output

    everything = runner.invoke(args=["list-clients", "--all"])
    rows = _rows(everything.output)
    assert rows[gone_id][:5] == [gone_id, "Aarhus Kommune", "55133018", "municipality", "0751"]
    assert rows[gone_id][-1] != "-" and rows[kept_id][-1] == "-"
    assert "not shown" not in everything.output
    for output in (live.output, everything.output):
        for token in (kept, gone):
            assert token not in output and digest_token(token) not in output
            assert token[len("sor_"):][:8] not in output  # not even a part of it


def test_list_clients_when_there_are_none(runner):
    result = runner.invoke(args=["list-clients"])
    assert result.exit_code == 0 and result.output == "No API clients.\n"


def test_a_revoked_token_gets_401_once_the_cached_identity_is_gone(client, runner, session):
    token = _make(runner, "form", "--cvr", "55133018", "--role", "reporter")
    headers = {"Authorization": f"Bearer {token}"}
    forget_identities()
    try:
        assert client.get(LOOKUP, headers=headers).status_code == 200  # now cached
        client_id = session.execute(select(ApiClient.id)).scalar_one()
        result = runner.invoke(args=["revoke-client", str(client_id)])
        assert result.exit_code == 0, result.output
        assert f"Client {client_id} 'form' (CVR 55133018) revoked at" in result.output
        assert "may still accept its token for up to 60 seconds" in result.output
        # What the warning is about: this worker saw the token within the minute.
        assert client.get(LOOKUP, headers=headers).status_code == 200
        # A worker that has not seen it (or whose minute is up) asks the database.
        forget_identities()
        refused = client.get(LOOKUP, headers=headers)
        assert refused.status_code == 401
        assert refused.get_json()["message"] == "the bearer token is not valid"
    finally:
        forget_identities()


def test_revoke_client_help_tells_of_the_minute(runner):
    result = runner.invoke(args=["revoke-client", "--help"])
    assert result.exit_code == 0
    assert "may still work that long" in " ".join(result.output.split())


def test_revoking_an_unknown_client_is_an_error(runner, session):
    client, _ = create_client(session, "x", cvr="55133018", roles=["reporter"])
    session.commit()
    result = runner.invoke(args=["revoke-client", str(client.id + 1)])
    assert result.exit_code == 1
    assert f"Error: there is no API client with id {client.id + 1}" in result.output
    assert runner.invoke(args=["revoke-client", "seven"]).exit_code == 2
    assert session.execute(select(ApiClient.revoked_at)).scalar_one() is None


def test_revoking_twice_is_an_error_and_keeps_the_first_time(runner, session):
    client, token = create_client(session, "x", cvr="55133018", roles=["reporter"])
    session.commit()
    assert runner.invoke(args=["revoke-client", str(client.id)]).exit_code == 0
    session.refresh(client)
    first = client.revoked_at
    again = runner.invoke(args=["revoke-client", str(client.id)])
    assert again.exit_code == 1
    assert f"Error: API client {client.id} 'x' was revoked already, at" in again.output
    session.refresh(client)
    assert client.revoked_at == first and client_for_token(session, token) is None
    with pytest.raises(ClientError, match="revoked already"):
        revoke_client(session, client.id)


def test_a_refusal_is_freed_when_answered_not_by_the_garbage_collector():
    """A refusal (every 401 and 403 of the API) left its exception in a reference cycle
    with the frame that raised it: ~65 objects a refusal for the collector, a 0.3 ms pause
    every ~15 refusals. Freed by reference counting, it is gone when handled."""
    gc.disable()
    try:
        try:
            security.refuse(401, message="a bearer token is required")
        except HTTPException as refused:
            assert refused.code == 401
            answered = weakref.ref(refused)
        assert answered() is None
    finally:
        gc.enable()
