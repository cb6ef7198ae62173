"""The built wheel installs whole: ``pip install .`` (not editable), then ``sorregistry db
upgrade`` migrates and ``/api/v1/health`` says the schema is current.

Offline: the wheel is built without build isolation (setuptools and wheel are in the
``test`` extra) from a copy of the source, so the checkout gets no build/ folder; it
goes into a new virtual environment without pip (the running pip installs into it with
``--python``); that environment reaches the dependencies through a ``.pth`` line naming
this environment's site-packages. A plain path line does not run the ``.pth`` files
there, so this checkout's editable install stays out: the new environment imports
the wheel's code, which the test checks before it trusts the answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path
from zipfile import ZipFile

import pytest
from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parents[1]
# Not part of the distribution, and bulky or in use: the copy leaves them out.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "instance",
    ".pytest_cache", ".hypothesis", ".ruff_cache", "test-artifacts", "node_modules",
)

# Run by the installed environment's Python: where its code comes from, and the answer
# of the installed package's own create_app to GET /api/v1/health.
_PROBE = """
import json, sys
import applications, hierarchy, notifications, sorregistry
from sorregistry import create_app
from sorregistry.app import MIGRATIONS

app = create_app()
answer = app.test_client().get("/api/v1/health")
print(json.dumps({
    "files": [m.__file__ for m in (sorregistry, hierarchy, applications, notifications)],
    "migrations": MIGRATIONS,
    "status": answer.status_code,
    "health": answer.get_json(),
}))
"""


def _run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "--quiet", "--wheel-dir", str(work), str(source)], cwd=work)
    [built] = work.glob("sorregistry-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new environment with the wheel installed (not editable); returns its bin/."""
    environment = tmp_path_factory.mktemp("venv") / "v"
    venv.EnvBuilder(with_pip=False).create(environment)
    python = environment / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                      "['purelib'])"], cwd=environment).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
          "--no-index", "--quiet", str(wheel)], cwd=environment)
    return environment / "bin"


def _environment(database: Path) -> dict[str, str]:
    keep = {key: value for key, value in os.environ.items()
            if not key.startswith(("SOR_", "PYTHON", "FLASK_"))}
    return {**keep, "SOR_ENV": "development", "SOR_DATABASE_URL": f"sqlite:///{database}"}


def test_the_wheel_carries_the_migrations(wheel: Path) -> None:
    names = set(ZipFile(wheel).namelist())
    scripts = sorted(path.name for path in (ROOT / "migrations" / "versions").glob("*.py"))
    assert scripts and {f"sorregistry/migrations/versions/{name}" for name in scripts} <= names
    for name in ("env.py", "alembic.ini", "script.py.mako"):
        assert f"sorregistry/migrations/{name}" in names
    assert not any(name.startswith(("migrations/", "tests/")) for name in names)


def test_an_installed_wheel_migrates_and_reports_the_schema_current(
    installed: Path, tmp_path: Path
) -> None:
    database = tmp_path / "register.db"
    elsewhere = tmp_path / "cwd"  # not the checkout: nothing may come from the source tree
    elsewhere.mkdir()
    env = _environment(database)
    _run([str(installed / "sorregistry"), "db", "upgrade"], cwd=elsewhere, env=env)

    probe = json.loads(_run([str(installed / "python"), "-c", _PROBE], cwd=elsewhere, env=env))
    prefix = str(installed.parent)
    assert all(path.startswith(prefix) for path in probe["files"]), probe["files"]
    assert probe["migrations"].startswith(prefix)
    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    assert probe["status"] == 200, probe["health"]
    assert probe["health"]["schema"] == "current"
    assert probe["health"]["schema_revision"] == probe["health"]["expected_revision"] == head
