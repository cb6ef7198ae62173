"""The SOR registry: the register of Danish health-care organisations and their codes.

The package is the core that every feature imports (configuration, extensions, the
database, errors, security, pages and CLI helpers, i18n) and the composition root,
``sorregistry.app.create_app``, the only module that names the features.
``sorregistry:create_app`` (gunicorn, ``FlaskGroup``) is resolved lazily, so that
importing a core module never imports the features.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        # Lazy (PEP 562): the core must not import the features when it is imported.
        from sorregistry.app import create_app  # noqa: PLC0415

        return create_app
    raise AttributeError(f"module 'sorregistry' has no attribute {name!r}")
