"""The files an operator installs: the systemd units (deploy/systemd/) and gunicorn.conf.py.

The units are checked by systemd's own ``systemd-analyze verify`` (with this checkout's
programs in place of /opt/sorregistry's), every command they start is one the
``sorregistry`` command has, with those options, and each unit waits longer for a
graceful stop than the work it lets finish may take."""

from __future__ import annotations

import configparser
import os
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from gunicorn import glogging
from gunicorn.config import Config

from sorregistry.config import DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/sorregistry"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(UNITS / name)
    return parser


def _services() -> list[str]:
    return sorted(path.name for path in UNITS.glob("*.service"))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_verifies_the_units(tmp_path: Path) -> None:
    for path in UNITS.iterdir():
        if path.suffix in (".service", ".timer", ".target"):
            text = path.read_text().replace(INSTALLED, str(ROOT))
            (tmp_path / path.name).write_text(text)
    checked = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True, text=True, timeout=60, env={"SYSTEMD_LOG_LEVEL": "warning",
                                                          "PATH": "/usr/bin:/bin"})
    problems = [line for line in checked.stderr.splitlines()
                if "sorregistry" in line and "/etc/sorregistry" not in line]
    assert checked.returncode == 0 or not problems, checked.stderr
    assert not problems, checked.stderr


def test_the_services_start_commands_the_command_has(app: Flask) -> None:
    commands = app.cli.commands
    started = []
    for name in _services():
        line = _unit(name)["Service"]["ExecStart"]
        program, *args = shlex.split(line)
        assert program.startswith(INSTALLED + "/.venv/bin/"), line
        if program.endswith("/gunicorn"):
            assert args[:2] == ["-c", INSTALLED + "/gunicorn.conf.py"]
            assert args[2] == "sorregistry:create_app()"
            continue
        command, *options = args
        assert command in commands, line
        known = {opt for param in commands[command].params for opt in param.opts}
        assert {option for option in options if option.startswith("--")} <= known, line
        started.append(command)
    assert sorted(started) == ["db", "deliver-webhooks", "fetch-mail", "send-notifications",
                               "tick"]


def test_each_stop_waits_longer_than_the_work_it_lets_finish(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR when unset: not in the tests' process.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.delenv("SOR_LOG_FORMAT", raising=False)
    monkeypatch.delenv("SOR_ENV", raising=False)
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    seconds = {name: int(_unit(name)["Service"]["TimeoutStopSec"]) for name in _services()}
    assert seconds["sorregistry-web.service"] > settings["graceful_timeout"] > 30  # long poll
    assert seconds["sorregistry-notifications.service"] > DEFAULTS["NOTIFY_SMTP_TIMEOUT_SECONDS"]
    assert seconds["sorregistry-webhooks.service"] > DEFAULTS["WEBHOOK_TIMEOUT_SECONDS"]
    assert settings["worker_class"] == "sorregistry.serving.ThreadWorker"
    assert settings["accesslog"] is None  # JSON
    assert callable(settings["child_exit"]) and callable(settings["on_starting"])
    for name in _services():
        assert _unit(name)["Service"]["EnvironmentFile"] == "/etc/sorregistry/sorregistry.env"


@pytest.mark.parametrize(("log_format", "access_log"), [("json", False), ("text", True)])
def test_gunicorn_gathers_no_access_log_the_app_writes_itself(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, log_format: str,
        access_log: bool) -> None:
    # With JSON logs the app writes the request line; gunicorn's logger must not gather
    # every request's atoms for an access log nobody reads (its logconfig_dict alone
    # would turn that on). Read through gunicorn's own config and logger class.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("SOR_LOG_FORMAT", log_format)
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    cfg = Config()
    for name in ("accesslog", "logconfig_dict", "logger_class"):
        if name in settings:
            cfg.set(name, settings[name])
    assert issubclass(cfg.logger_class, glogging.Logger)
    # Not set up (that would configure this process's logging): the property alone.
    logger = cfg.logger_class.__new__(cfg.logger_class)
    logger.cfg = cfg
    assert logger.access_log_enabled is access_log
    assert bool(cfg.logconfig_dict) is (log_format == "json")


def test_a_worker_freezes_what_the_app_keeps_for_the_collector(tmp_path: Path) -> None:
    # post_worker_init: the loaded app's objects moved out of the cyclic collector's walks
    # (a full collection walked ~190,000 of them, ~90 ms with the interpreter lock held).
    # In a process of its own: a frozen test process would keep its garbage for ever.
    script = (
        "import gc, runpy, time\n"
        "from sorregistry import create_app\n"
        "create_app({'TESTING': True, 'SQLALCHEMY_DATABASE_URI': 'sqlite://'})\n"
        f"settings = runpy.run_path({str(ROOT / 'gunicorn.conf.py')!r})\n"
        "before = len(gc.get_objects())\n"
        "settings['post_worker_init'](None)\n"
        "started = time.perf_counter()\n"
        "gc.collect()\n"
        "print(before, gc.get_freeze_count(), len(gc.get_objects()),"
        " time.perf_counter() - started)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=ROOT,
                          env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    before, frozen, walked, _ = done.stdout.split()
    assert int(frozen) > 50_000 and int(frozen) > 0.9 * int(before)
    assert int(walked) < 0.05 * int(frozen)  # what a collection still walks
