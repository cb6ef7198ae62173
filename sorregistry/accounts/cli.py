"""The commands for people's logins and API clients: make, list, revoke, (de)activate."""

from __future__ import annotations

import sys
from typing import Any

import click
from flask.cli import with_appcontext

from sorregistry import audit
from sorregistry.accounts import clients
from sorregistry.accounts.users import (
    UserError,
    create_user,
    find_user,
    label,
    list_users,
    reset_password,
    set_active,
)
from sorregistry.commands import ROLE_OPTION, echo_listing, fail, format_time
from sorregistry.extensions import db
from sorregistry.models import utcnow


@click.command("create-client")
@click.argument("name")
@click.option("--cvr", required=True, help="The client's CVR number (used by the Mit CVR lookups).")
@ROLE_OPTION
@click.option("--municipality-code", default=None, help="Kommunekode of a municipality client.")
@with_appcontext
def create_client_command(name: str, cvr: str, roles: tuple[str, ...],
                          municipality_code: str | None) -> None:
    """Make an API client and print its bearer token once, alone on the last line."""
    try:
        client, token = clients.create_client(
            db.session, name, cvr=cvr, roles=list(roles), municipality_code=municipality_code
        )
        _audit("client_created", f"client {client.id}",
               {"name": client.name, "cvr": client.cvr, "roles": client.roles})
        db.session.commit()
    except clients.ClientError as exc:
        fail(exc)
    click.echo(
        f"Client {client.id} '{client.name}' (CVR {client.cvr}, roles {', '.join(client.roles)}"
        + (f", kommunekode {client.municipality_code}" if client.municipality_code else "")
        + "). Its token is shown this once; keep it secret:"
    )
    click.echo(token)


@click.command("list-clients")
@click.option("--all", "all_", is_flag=True, help="Show revoked clients too.")
@with_appcontext
def list_clients_command(all_: bool) -> None:
    """List the API clients, revoked ones with --all (times in UTC). Tokens are never
    shown: only their digests are stored, and those are not printed either."""
    echo_listing(
        clients.list_clients(db.session), show_all=all_,
        shown_by_default=lambda client: client.revoked_at is None,
        headers=["id", "name", "CVR", "roles", "kommunekode", "created", "revoked"],
        # A system with access tokens has its CVR and roles in each token: its issuer
        # is shown instead.
        row=lambda c: [str(c.id), c.name, c.cvr or "-",
                       ",".join(c.roles) if c.token_digest else f"token of {c.oidc_issuer}",
                       c.municipality_code or "-",
                       format_time(c.created_at), format_time(c.revoked_at)],
        nothing="No API clients.", hidden="revoked",
    )


@click.command("revoke-client")
@click.argument("client_id", metavar="ID", type=int)
@with_appcontext
def revoke_client_command(client_id: int) -> None:
    """Revoke the API client ID (see list-clients): its token is refused from now on.

    A running server's workers remember a token they have seen for up to a
    minute, so a revoked token may still work that long; restart the server if
    it must stop at once. Revoking cannot be undone: make a new client instead.
    """
    try:
        client = clients.revoke_client(db.session, client_id)
        _audit("client_revoked", f"client {client.id}", {"name": client.name})
        db.session.commit()
    except clients.ClientError as exc:
        fail(exc)
    click.echo(
        f"Client {client.id} '{client.name}' (CVR {client.cvr}) revoked at "
        f"{format_time(client.revoked_at)} UTC. A running server may still accept its "
        f"token for up to {clients.IDENTITY_SECONDS:.0f} seconds (each worker caches a token's "
        "identity that long); restart it if the token must stop at once."
    )


_PASSWORD_STDIN = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)


def _read_password(from_stdin: bool, prompt: str) -> str:
    """The password from stdin's first line (for scripts) or typed twice, hidden; never an
    argument, where other users of the machine could read it in the process list."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@click.command("create-user")
@click.argument("email")
@click.option("--name", required=True, help="The person's name, shown on the pages and in history.")
@ROLE_OPTION
@click.option("--municipality-code", default=None, help="Kommunekode of a municipality user.")
@click.option("--cvr", default=None, help="The CVR the person acts for (the picker's Mit CVR).")
@_PASSWORD_STDIN
@with_appcontext
def create_user_command(
    email: str,
    name: str,
    roles: tuple[str, ...],
    municipality_code: str | None,
    cvr: str | None,
    password_stdin: bool,
) -> None:
    """Make a person's login. The password is prompted for (or read from stdin), never
    given on the command line, where other users could see it."""
    password = _read_password(password_stdin, "Password")
    try:
        user = create_user(
            db.session, email, name=name, password=password, roles=list(roles),
            municipality_code=municipality_code, cvr=cvr,
        )
        _audit("user_created", label(user), {"roles": user.roles})
        db.session.commit()
    except UserError as exc:
        fail(exc)
    click.echo(
        f"User {user.id} {user.email} '{user.name}' (roles {', '.join(user.roles)}"
        + (f", kommunekode {user.municipality_code}" if user.municipality_code else "")
        + (f", CVR {user.cvr}" if user.cvr else "")
        + ")."
    )


@click.command("list-users")
@click.option("--all", "all_", is_flag=True, help="Show inactive users too.")
@with_appcontext
def list_users_command(all_: bool) -> None:
    """List the people who can log in (times in UTC); inactive ones with --all."""
    now = utcnow()
    echo_listing(
        list_users(db.session), show_all=all_, shown_by_default=lambda user: user.active,
        headers=["email", "name", "roles", "kommunekode", "CVR", "active", "locked until",
                 "last login"],
        row=lambda u: [
            label(u), u.name, ",".join(u.roles), u.municipality_code or "-", u.cvr or "-",
            "yes" if u.active else "no",
            # A lock-out that has run out is no lock-out; show only one in force.
            format_time(u.locked_until if u.locked_until and u.locked_until > now else None),
            format_time(u.last_login_at)],
        nothing="No users.", hidden="inactive",
    )


@click.command("deactivate-user")
@click.argument("email")
@with_appcontext
def deactivate_user_command(email: str) -> None:
    """Stop EMAIL from logging in. Every session they have open is refused from its next
    request on, for good (activating the account later does not revive them); the
    account and its history stay (activate-user undoes it)."""
    _set_active(email, False)


@click.command("activate-user")
@click.argument("email")
@with_appcontext
def activate_user_command(email: str) -> None:
    """Let EMAIL log in again, and lift a lock-out after wrong passwords."""
    _set_active(email, True)


def _set_active(email: str, active: bool) -> None:
    try:
        user, changed = set_active(db.session, email, active)
        if changed:
            _audit("user_activated" if active else "user_deactivated", label(user))
        db.session.commit()
    except UserError as exc:
        fail(exc)
    if not changed:
        click.echo(f"User {label(user)} was "
                   + ("active and not locked out" if active else "inactive")
                   + " already; nothing changed.")
    elif active:
        click.echo(f"User {label(user)} is active, with no lock-out or failed logins.")
    else:
        click.echo(f"User {label(user)} deactivated; an open session is refused from its next "
                   "request on.")


@click.command("set-password")
@click.argument("email")
@_PASSWORD_STDIN
@with_appcontext
def set_password_command(email: str, password_stdin: bool) -> None:
    """Give EMAIL a new password, and lift a lock-out. The password is prompted for (or
    read from stdin), never given on the command line; the rule is create-user's.

    Every session made with the old password ends (they log in again with the new one).
    """
    try:
        find_user(db.session, email)  # before the prompt: no typing for an unknown email
    except UserError as exc:
        fail(exc)
    finally:
        db.session.rollback()  # no transaction held open while the operator types
    password = _read_password(password_stdin, "New password")
    try:
        user = reset_password(db.session, email, password)
        _audit("password_set", label(user))
        db.session.commit()
    except UserError as exc:
        fail(exc)
    click.echo(
        f"New password set for {user.email}; their open sessions are ended."
        + ("" if user.active else " The account is inactive; activate-user lets them log in.")
    )


def _audit(action: str, target: str, details: dict[str, Any] | None = None) -> None:
    """What an operator did at the command line, in the audit log beside the pages'."""
    audit.record(db.session, action, audit.Actor.system(), target=target[:120],
                 details=details)


COMMANDS = (create_client_command, list_clients_command, revoke_client_command,
            create_user_command, list_users_command, deactivate_user_command,
            activate_user_command, set_password_command)
