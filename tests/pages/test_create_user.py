"""``sorregistry create-user``: the password is prompted for or read from stdin, never an
argument; the same rules for roles and kommunekode as API clients."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from werkzeug.security import check_password_hash

from sorregistry.accounts.models import User

SECRET = "en meget hemmelig sætning"


def test_create_user_reading_the_password_from_stdin(runner, session):
    result = runner.invoke(
        args=["create-user", "Anne@Aarhus.dk", "--name", "Anne Aarhus", "--role", "municipality",
              "--municipality-code", "751", "--cvr", "55133018", "--password-stdin"],
        input=SECRET + "\n",
    )
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    user = session.execute(select(User)).scalar_one()
    assert user.email == "anne@aarhus.dk" and user.name == "Anne Aarhus"
    assert user.roles == ["municipality"] and user.municipality_code == "0751"
    assert user.cvr == "55133018" and user.active and user.failed_logins == 0
    assert user.password_hash.startswith("scrypt:")
    assert check_password_hash(user.password_hash, SECRET)


def test_create_user_prompts_twice_for_the_password(runner, session):
    result = runner.invoke(
        args=["create-user", "sara@sundhedsdata.dk", "--name", "Sara", "--role", "sds"],
        input=f"{SECRET}\n{SECRET}\n",
    )
    assert result.exit_code == 0, result.output
    assert "Password" in result.output and SECRET not in result.output
    assert session.execute(select(User.roles)).scalar_one() == ["sds"]


def test_there_is_no_password_option(runner, session):
    result = runner.invoke(args=["create-user", "x@example.dk", "--name", "X", "--role", "sds",
                                 "--password", SECRET])
    assert result.exit_code == 2 and "No such option" in result.output
    assert session.execute(select(User)).first() is None


@pytest.mark.parametrize(
    "args, password, message",
    [
        (["not-an-email", "--name", "X", "--role", "sds"], SECRET, "not an email address"),
        (["x@example.dk", "--name", "X", "--role", "municipality"], SECRET, "municipality-code"),
        (["x@example.dk", "--name", "X", "--role", "municipality", "--municipality-code", "9999"],
         SECRET, "not a Danish kommunekode"),
        (["x@example.dk", "--name", "X", "--role", "sds", "--municipality-code", "0751"],
         SECRET, "municipality users only"),
        (["x@example.dk", "--name", "X", "--role", "sds", "--cvr", "12345678"],
         SECRET, "modulus 11"),
        (["x@example.dk", "--name", "X", "--role", "sds"], "kort", "at least 10"),
        (["x@example.dk", "--name", " ", "--role", "sds"], SECRET, "needs a name"),
    ],
)
def test_create_user_refuses_bad_input(runner, session, args, password, message):
    result = runner.invoke(args=["create-user", *args, "--password-stdin"],
                           input=password + "\n")
    assert result.exit_code == 1
    assert message in result.output
    assert session.execute(select(User)).first() is None


def test_unknown_role_and_duplicate_email_are_refused(runner, session):
    assert runner.invoke(args=["create-user", "x@example.dk", "--name", "X", "--role", "admin",
                               "--password-stdin"], input=SECRET + "\n").exit_code == 2
    first = ["create-user", "x@example.dk", "--name", "X", "--role", "sds", "--password-stdin"]
    assert runner.invoke(args=first, input=SECRET + "\n").exit_code == 0
    again = runner.invoke(args=[*first[:1], "X@EXAMPLE.DK", *first[2:]], input=SECRET + "\n")
    assert again.exit_code == 1 and "exists already" in again.output
