"""The first start (issue 15, items 6 and 8): the real console script in a clean
environment. ``--help`` needs no configuration; a missing or wrong setting ends any
command with one line naming it, exit 2; ``load-demo`` fills an empty register with
every picker list non-empty and prints three logins that work, in development only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask_migrate import upgrade

from sorregistry import create_app
from sorregistry.config import ConfigurationError, _shown, from_environment
from sorregistry.extensions import db
from tests.pages.helpers import login

SORREGISTRY = str(Path(sys.executable).with_name("sorregistry"))
PICKER_LISTS = ("statslig", "regional", "kommunal", "privat", "my-cvr-si", "my-cvr-all")


def _run(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """The console script with nothing of the test's environment but PATH and HOME."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), **settings}
    return subprocess.run([SORREGISTRY, *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def _one_line_exit_2(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.mark.parametrize("args", [
    ["--help"], ["db", "upgrade", "--help"], ["import-sor", "--help"],
], ids=" ".join)
def test_help_needs_no_configuration(args, tmp_path):
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage: sorregistry" in result.stdout
    assert result.stderr == ""
    if args == ["--help"]:  # the features' commands are listed too
        assert "import-sor" in result.stdout and "create-user" in result.stdout
        assert "load-demo" in result.stdout


def test_no_secret_key_outside_development_is_one_line(tmp_path):
    line = _one_line_exit_2(_run("list-users", cwd=tmp_path))
    assert "SOR_SECRET_KEY" in line and "SOR_ENV=development" in line


def test_a_malformed_database_url_is_one_line_without_its_password(tmp_path):
    line = _one_line_exit_2(_run("db", "upgrade", cwd=tmp_path, SOR_ENV="development",
                                 SOR_DATABASE_URL="postgres://sor:hemmeligt@db.example/sor"))
    assert "SOR_DATABASE_URL='postgres://***@db.example/sor' is not valid" in line
    assert "postgresql+psycopg://user:password@host" in line  # what to write instead
    assert "hemmeligt" not in line


@pytest.mark.parametrize("url, shown", [
    ("not a url", "'not a url'"),
    ("postgresql+psycopg://sor:hemmeligt@db.example:port/sor", "***@db.example:port"),
    ("mysql://sor:hemmeligt@db.example/sor", "'mysql://***@db.example/sor'"),  # no driver
    ("", None),  # unset: the SQLite file in the instance folder
])
def test_the_database_url_is_checked_when_read(url, shown):
    if shown is None:
        assert "SQLALCHEMY_DATABASE_URI" not in from_environment({"SOR_DATABASE_URL": url})
        return
    with pytest.raises(ConfigurationError) as refused:
        from_environment({"SOR_DATABASE_URL": url})
    assert shown in str(refused.value) and "hemmeligt" not in str(refused.value)


def test_secrets_are_never_shown_in_a_configuration_error():
    with pytest.raises(ConfigurationError) as refused:
        from_environment({"SOR_RATELIMIT_STORAGE_URL": "x", "SOR_MAIL_PORT": "hemmeligt"})
    assert "SOR_MAIL_PORT='hemmeligt'" in str(refused.value)  # not a secret: shown
    assert _shown("SOR_MAIL_PASSWORD", "hemmeligt") == "(hidden)"
    assert _shown("SOR_OIDC_CLIENT_SECRET", "hemmeligt") == "(hidden)"


def test_a_database_that_does_not_answer_is_one_line(tmp_path):
    url = "postgresql+psycopg://nobody@127.0.0.1:1/x"
    line = _one_line_exit_2(_run("db", "upgrade", cwd=tmp_path, SOR_ENV="development",
                                 SOR_DATABASE_URL=url))
    assert "SOR_DATABASE_URL" in line and url in line and "does not answer" in line


def test_a_database_without_tables_says_to_upgrade(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    line = _one_line_exit_2(_run("list-users", cwd=tmp_path, SOR_ENV="development",
                                 SOR_DATABASE_URL=url))
    assert "sorregistry db upgrade" in line


def test_load_demo_is_refused_outside_development(tmp_path):
    url = f"sqlite:///{tmp_path / 'prod.db'}"
    result = _run("load-demo", "--if-empty", cwd=tmp_path, SOR_ENV="production",
                  SOR_SECRET_KEY="x" * 32, SOR_DATABASE_URL=url)
    line = _one_line_exit_2(result)
    assert "development only" in line and "SOR_ENV=development" in line
    assert not (tmp_path / "prod.db").exists()  # refused before touching a database


# --- load-demo on an empty database, once per back end -----------------------------------


@pytest.fixture(scope="module")
def demo(database_url: str, tmp_path_factory: pytest.TempPathFactory,
         request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A new database per back end, migrated, after ``load-demo --if-empty``:
    (its URL, what the command printed)."""
    folder = tmp_path_factory.mktemp("demo")
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{folder / 'demo.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database("sor_demo")
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    result = _run("load-demo", "--if-empty", cwd=folder, SOR_ENV="development",
                  SOR_DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    yield url, result.stdout
    if not url.startswith("sqlite"):
        request.getfixturevalue("postgres_server").drop_database(url)


def _logins(printed: str) -> dict[str, tuple[str, str]]:
    found = re.findall(r"^\s+(sds|municipality|reporter)\s+(\S+@\S+)\s+(\S+)$", printed, re.M)
    return {role: (email, password) for role, email, password in found}


def test_load_demo_prints_three_logins_once(demo):
    _, printed = demo
    logins = _logins(printed)
    assert set(logins) == {"sds", "municipality", "reporter"}
    assert len({password for _, password in logins.values()}) == 3  # random, not shared
    assert "SHAK records" in printed


def test_load_demo_leaves_a_register_that_holds_data_alone(demo, tmp_path):
    url, _ = demo
    if not url.startswith("sqlite"):
        pytest.skip("one back end is enough: --if-empty is one query of the register's")
    again = _run("load-demo", "--if-empty", cwd=tmp_path, SOR_ENV="development",
                 SOR_DATABASE_URL=url)
    assert again.returncode == 0
    assert "demo data not loaded" in again.stdout and "@" not in again.stdout


def test_the_demo_logins_work_and_every_picker_list_has_units(demo):
    url, printed = demo
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
    try:
        for role, (email, password) in _logins(printed).items():
            client = app.test_client()
            answer = login(client, email, password)
            assert answer.status_code in (302, 303), (role, answer.get_data(as_text=True)[:300])
            assert "/login" not in answer.headers["Location"]
            if role == "sds":
                assert client.get("/staff/register/").status_code == 200
            # SDS acts for no CVR of the register: its "Mit CVR" tabs are off.
            lists = PICKER_LISTS[:4] if role == "sds" else PICKER_LISTS
            totals = {}
            for which in lists:
                listed = client.get(f"/picker/api/lists/{which}")
                assert listed.status_code == 200, (role, which)
                totals[which] = listed.get_json()["total"]
            assert all(total > 0 for total in totals.values()), (role, totals)
    finally:
        with app.app_context():
            db.engine.dispose()
