"""The pages for people: ``register(app)`` is the one call ``create_app`` makes."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """The users table and the ``create-user`` command."""
    import sorregistry.accounts  # noqa: F401  (the users table in the metadata)
    from sorregistry.accounts import create_user_command

    app.cli.add_command(create_user_command)
