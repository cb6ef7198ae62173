"""A throwaway Dovecot IMAP server for the tests.

Debian's Dovecot, run in the foreground (``dovecot -F``) with a configuration
of its own in a temporary directory: IMAP only, on 127.0.0.1 and a free port,
no SSL, plaintext PLAIN logins, users in a passwd-file. Mail is stored in
Maildirs owned by ``nobody``: started as root, Dovecot runs each IMAP session
as the user's uid, which must not be root (``first_valid_uid``).
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DOVECOT = Path("/usr/sbin/dovecot")
MAIL_USER = "nobody"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _configuration(workdir: Path, port: int) -> str:
    """dovecot.conf: everything in *workdir*, IMAP without SSL on 127.0.0.1:*port*."""
    return f"""\
base_dir = {workdir}/run
state_dir = {workdir}/state
instance_name = sor-test-{port}
log_path = {workdir}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:{workdir}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {workdir}/users/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {workdir}/users/%u
}}
# No auth penalty (a growing delay after failed logins from one IP: a test
# fails one on purpose): the auth process cannot reach anvil's penalty socket.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


@dataclass
class Account:
    host: str
    port: int
    user: str
    password: str

    def connect(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4(self.host, self.port, timeout=30)
        try:
            imap.login(self.user, self.password)
        except imaplib.IMAP4.error:
            imap.shutdown()
            raise
        return imap

    def append(self, raw: bytes, *, mailbox: str = "INBOX", seen: bool = False) -> int:
        """Deliver *raw* into *mailbox*; returns its UID."""
        imap = self.connect()
        try:
            status, data = imap.append(
                f'"{mailbox}"', "(\\Seen)" if seen else None, None, raw
            )
            assert status == "OK", data
            # [APPENDUID <uidvalidity> <uid>]
            return int(data[0].split(b"]")[0].split()[-1])
        finally:
            imap.logout()

    def messages(self, mailbox: str = "INBOX") -> dict[int, set[str]]:
        """UID -> flags of every message in *mailbox*."""
        imap = self.connect()
        try:
            imap.select(f'"{mailbox}"', readonly=True)
            status, data = imap.uid("FETCH", "1:*", "(UID FLAGS)")
            found: dict[int, set[str]] = {}
            for item in data:
                if not isinstance(item, bytes):
                    continue
                text = item.decode()
                if "UID" not in text:
                    continue
                uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
                flags = text.split("FLAGS (")[1].split(")")[0].split()
                found[uid] = set(flags)
            return found
        finally:
            imap.logout()

    def uidvalidity(self, mailbox: str = "INBOX") -> int:
        imap = self.connect()
        try:
            imap.select(f'"{mailbox}"', readonly=True)
            return int(imap.response("UIDVALIDITY")[1][0])
        finally:
            imap.logout()

    def run(self, *command: str) -> list:
        """One IMAP command on a fresh connection (CREATE, DELETE …); returns its data."""
        imap = self.connect()
        try:
            status, data = getattr(imap, command[0].lower())(*command[1:])
            assert status == "OK", data
            return data
        finally:
            imap.logout()


@dataclass
class Server:
    workdir: Path
    port: int
    process: subprocess.Popen[bytes]
    host: str = "127.0.0.1"

    @classmethod
    def start(cls) -> Server:
        """Start Dovecot in a new temporary directory and wait until it answers IMAP.

        Not under pytest's temporary directory: pytest makes its root 0700 again
        whenever a test run starts, and Dovecot's unprivileged processes (the
        ``dovecot`` auth user, ``nobody`` for the mail) must reach the files.
        """
        mail_user = pwd.getpwnam(MAIL_USER)
        workdir = Path(tempfile.mkdtemp(prefix="sor-dovecot-"))
        try:
            os.chmod(workdir, 0o711)
            (workdir / "run").mkdir()
            (workdir / "state").mkdir()
            mail = workdir / "mail"
            mail.mkdir()
            os.chown(mail, mail_user.pw_uid, mail_user.pw_gid)
            # One passwd-file per user: Dovecot notices a changed file by its mtime,
            # in whole seconds, so users added to one file in the same second are missed.
            (workdir / "users").mkdir()
            port = _free_port()
            config = workdir / "dovecot.conf"
            config.write_text(_configuration(workdir, port))
            with open(workdir / "dovecot.stderr", "wb") as stderr:
                process = subprocess.Popen(
                    [str(DOVECOT), "-F", "-c", str(config)],
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        server = cls(workdir=workdir, port=port, process=process)
        server._wait()
        return server

    def _wait(self, seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.1)
        log = self.log()
        self.stop()
        raise RuntimeError(f"Dovecot did not start on port {self.port}:\n{log}")

    def log(self) -> str:
        texts = []
        for name in ("dovecot.stderr", "dovecot.log"):
            path = self.workdir / name
            if path.exists():
                texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)

    def add_account(self, user: str, password: str = "secret") -> Account:
        """A new user with an empty INBOX, in a passwd-file of its own."""
        mail_user = pwd.getpwnam(MAIL_USER)
        home = self.workdir / "mail" / user
        (self.workdir / "users" / user).write_text(
            f"{user}:{{PLAIN}}{password}:{mail_user.pw_uid}:{mail_user.pw_gid}::{home}::\n"
        )
        return Account(host=self.host, port=self.port, user=user, password=password)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def available() -> bool:
    return DOVECOT.exists() and os.access(DOVECOT, os.X_OK)
