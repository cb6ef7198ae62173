"""The packages the distribution ships; everything else is in pyproject.toml.

pyproject.toml can name packages either by a fixed list or by ``find``, and ``find``
cannot add a package from a folder outside its parent. The Alembic scripts stay in
the repository's top-level migrations/ and are installed as ``sorregistry.migrations``:
found packages plus that one, mapped to its folder. (A fixed list would drop any
sub-package added later without a word.)
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(
            include=["sorregistry*", "hierarchy*", "applications*", "notifications*"]),
        "sorregistry.migrations",
    ],
    package_dir={"sorregistry.migrations": "migrations"},
)
