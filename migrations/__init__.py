"""The Alembic scripts, installed as the package ``sorregistry.migrations``.

They live at the top of the repository; setup.py maps this folder to
``sorregistry.migrations`` so that a wheel (``pip install .``) carries them like an
editable install does, and ``sorregistry db upgrade`` and ``/api/v1/health`` find
them with ``importlib.resources`` wherever the package is installed. Nothing
imports this package's modules: Alembic loads ``env.py`` and ``versions/`` by path.
"""
