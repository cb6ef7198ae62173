"""The import commands as an operator runs them: real process, real database file."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import fixture_path

SORREGISTRY = str(Path(sys.executable).with_name("sorregistry"))


def _run(url: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SOR_DATABASE_URL=url, SOR_ENV="development", **settings)
    return subprocess.run(
        [SORREGISTRY, *args], env=env, capture_output=True, text=True, timeout=300
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_import_prints_counts_and_reimport_is_stable(fresh_database):
    first = _run(fresh_database, "import-sor", str(fixture_path("ONE_SYGEHUS.xml")))
    assert first.returncode == 0, first.stderr
    assert "IE            1        1" in first.stdout
    assert "OE            2        2" in first.stdout
    second = _run(fresh_database, "import-sor", str(fixture_path("ONE_SYGEHUS.xml")))
    assert second.returncode == 0
    assert "OE            2        0        0         0         2" in second.stdout


def test_truncated_file_refused_database_unchanged_byte_for_byte(fresh_database, tmp_path):
    assert _run(fresh_database, "import-sor", str(fixture_path("ONE_SYGEHUS.xml"))).returncode == 0
    truncated = tmp_path / "truncated.xml"
    truncated.write_bytes(fixture_path("Sor_small.xml").read_bytes()[:4000])
    if fresh_database.startswith("sqlite"):
        database_file = Path(fresh_database.removeprefix("sqlite:///"))
        before = _digest(database_file)
    result = _run(fresh_database, "import-sor", str(truncated))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "truncated.xml: line" in result.stderr
    assert "nothing was imported" in result.stderr
    if fresh_database.startswith("sqlite"):
        assert _digest(database_file) == before
    listing = _run(fresh_database, "import-sor", str(fixture_path("ONE_SYGEHUS.xml")))
    assert "OE            2        0        0         0         2" in listing.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["import-sor", "/nonexistent.xml"], "no such file"),
        (["import-sor", "--full", "--no-close", "x.xml"], "contradict"),
        (["import-shak", "/nonexistent.TXT"], "no such file"),
    ],
)
def test_bad_invocations_fail_clearly(fresh_database, args, message):
    result = _run(fresh_database, *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_shak_file_fails_clearly(fresh_database, tmp_path):
    bad = tmp_path / "bad.TXT"
    bad.write_bytes(b"sgh1301   too short\r\n")
    result = _run(fresh_database, "import-shak", str(bad))
    assert result.returncode == 1
    assert "line 1" in result.stderr and "Traceback" not in result.stderr


def test_shak_mass_withdrawal_is_refused_unless_allowed(fresh_database, tmp_path):
    sample = fixture_path("shak_sample.TXT")
    assert _run(fresh_database, "import-shak", str(sample)).returncode == 0
    empty = tmp_path / "SHAKCOMPLETE.TXT"
    empty.write_bytes(b"")
    refused = _run(fresh_database, "import-shak", str(empty))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "no SHAK records at all" in refused.stderr
    assert "nothing was imported" in refused.stderr
    excerpt = tmp_path / "excerpt.TXT"
    excerpt.write_bytes(b"".join(sample.read_bytes().splitlines(keepends=True)[:20]))
    refused = _run(fresh_database, "import-shak", str(excerpt))
    assert refused.returncode == 1
    assert "38 of the 58 SHAK records" in refused.stderr
    assert "--allow-mass-withdrawal" in refused.stderr
    # Nothing changed: the full sample re-imports without a difference.
    again = _run(fresh_database, "import-shak", str(sample))
    assert "added 0, changed 0, unchanged 58, withdrawn 0" in again.stdout
    # The setting raises the share; the flag overrides it.
    wider = _run(fresh_database, "import-shak", str(excerpt), SOR_MAX_WITHDRAWAL_SHARE="0.7")
    assert wider.returncode == 0, wider.stderr
    assert "withdrawn 38" in wider.stdout
    allowed = _run(fresh_database, "import-shak", "--allow-mass-withdrawal", str(empty))
    assert allowed.returncode == 0, allowed.stderr
    assert "withdrawn 20" in allowed.stdout


def test_full_sor_import_closing_most_of_the_register_is_refused(fresh_database):
    sygehus, praksis = fixture_path("ONE_SYGEHUS.xml"), fixture_path("ONE_PRAKSIS.xml")
    assert _run(fresh_database, "import-sor", str(sygehus), str(praksis)).returncode == 0
    refused = _run(fresh_database, "import-sor", "--full", str(sygehus))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "would withdraw 3 of the" in refused.stderr
    assert "nothing was imported" in refused.stderr
    allowed = _run(fresh_database, "import-sor", "--full", "--allow-mass-withdrawal",
                   str(sygehus))
    assert allowed.returncode == 0, allowed.stderr
    # Closed now: the same full import has nothing left to close, and passes the guard.
    assert _run(fresh_database, "import-sor", "--full", str(sygehus)).returncode == 0


def test_a_share_outside_0_to_1_is_a_configuration_error(fresh_database):
    result = _run(fresh_database, "import-shak", "x.TXT", SOR_MAX_WITHDRAWAL_SHARE="10")
    assert result.returncode != 0
    assert "SOR_MAX_WITHDRAWAL_SHARE" in result.stderr
