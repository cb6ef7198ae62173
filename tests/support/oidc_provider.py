"""A real OpenID Provider for the identity tests, and a small issuer the tests control.

:class:`Provider` runs panva's ``oidc-provider`` (npm, OpenID Certified) through
``tests/support/oidc/provider.mjs`` on 127.0.0.1 and a port the system chooses: the
service logs in through it (its own login and consent pages, devInteractions) and
systems get access tokens from it with the client-credentials grant. ``make test``
installs the npm package (``npm ci`` in ``tests/support/oidc``); the tests are skipped,
saying so, when Node or the package is missing.

:class:`TestIssuer` is a plain HTTP server on 127.0.0.1 that serves a discovery document
and a JWKS the test sets, and counts the fetches: the refusal tests mint tokens the real
provider cannot be made to produce (``alg=none``, HS256 with the public key as secret,
a payload changed after signing, an unknown ``kid``) and sign them with its keys.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

FOLDER = Path(__file__).parent / "oidc"
NODE = shutil.which("node")
CVR_CLAIM = "https://data.gov.dk/model/core/eid/professional/cvr"
ORG_CLAIM = "https://data.gov.dk/model/core/eid/professional/orgName"
UUID_CLAIM = "https://data.gov.dk/model/core/eid/professional/uuid/persistent"
AUDIENCE = "https://sor.test/api"
SERVICE_SECRET = "sor-service-secret-0123456789abcdef"


def missing() -> str | None:
    """Why the provider cannot run here (a reason to skip), or None."""
    if NODE is None:
        return "no node on PATH"
    if not (FOLDER / "node_modules" / "oidc-provider").is_dir():
        return "oidc-provider is not installed: run `npm ci` in tests/support/oidc (make test)"
    return None


def service_client(redirect_base: str, *, auth: str = "client_secret_basic",
                   jwks: dict[str, Any] | None = None) -> dict[str, Any]:
    """The service as a confidential client of the provider, its redirect URIs on
    *redirect_base* (``http://localhost`` for Flask's test client, the test server's)."""
    client: dict[str, Any] = {
        "client_id": "sor", "redirect_uris": [f"{redirect_base}/login/oidc/callback"],
        "post_logout_redirect_uris": [f"{redirect_base}/login"],
        "grant_types": ["authorization_code"], "response_types": ["code"],
        "token_endpoint_auth_method": auth,
    }
    if auth == "private_key_jwt":
        client["jwks"] = jwks
        client["client_id"] = "sor-pkjwt"
    else:
        client["client_secret"] = SERVICE_SECRET
    return client


def machine_client(client_id: str, scope: str) -> dict[str, Any]:
    """A system with the client-credentials grant, allowed *scope*."""
    return {"client_id": client_id, "client_secret": f"{client_id}-secret-0123456789",
            "grant_types": ["client_credentials"], "response_types": [],
            "redirect_uris": [], "token_endpoint_auth_method": "client_secret_basic",
            "scope": scope}


STARTUP = 30  # seconds a start of the provider may take


@dataclass
class Provider:
    """oidc-provider running in a Node process of its own."""

    issuer: str
    process: subprocess.Popen[str]
    log: Path

    @classmethod
    def start(cls, folder: Path, *, clients: list[dict[str, Any]],
              accounts: dict[str, dict[str, Any]],
              machine_claims: dict[str, dict[str, Any]] | None = None,
              access_token_ttl: int = 300) -> Provider:
        config = folder / "provider.json"
        config.write_text(json.dumps({
            "clients": clients, "accounts": accounts, "machine_claims": machine_claims or {},
            "resource": AUDIENCE, "resource_scope": "sor:lookup sor:apply sor:staff",
            "access_token_ttl": access_token_ttl,
        }), encoding="utf-8")
        log = folder / "provider.log"
        # Once in a while (seen once in a full run on a fresh machine) Node hangs before it
        # serves, idle in a futex wait: each start gets STARTUP seconds, then one more try.
        for _ in range(2):
            started = cls._launch(config, log)
            if started is not None:
                return started
        raise RuntimeError("oidc-provider did not start: " + log.read_text()[-2000:])

    @classmethod
    def _launch(cls, config: Path, log: Path) -> Provider | None:
        """One start: the provider once it says it listens, or None (killed) when it
        has not within STARTUP seconds or ended."""
        # Its warnings and errors go to the log; stdout carries only the "listening" line.
        with log.open("a") as errors:
            process = subprocess.Popen(  # noqa: S603 - our own script, no shell
                [str(NODE), str(FOLDER / "provider.mjs"), str(config)], cwd=FOLDER,
                stdout=subprocess.PIPE, stderr=errors, text=True)
        assert process.stdout is not None
        stdout = process.stdout
        # Read in a thread: a readline() on a process that says nothing blocks for ever,
        # past any deadline.
        said: list[str] = []
        heard = threading.Event()

        def listen() -> None:
            for line in stdout:
                if line.startswith("listening "):
                    said.append(line.split()[1])
                    break
            heard.set()

        threading.Thread(target=listen, daemon=True).start()
        if heard.wait(STARTUP) and said:
            return cls(said[0], process, log)
        process.kill()
        process.wait()
        heard.wait(5)
        stdout.close()
        return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def client_credentials(self, client_id: str, scope: str,
                           resource: str = AUDIENCE) -> str:
        """An access token for the machine client *client_id* (its secret is
        :func:`machine_client`'s), as a system gets one."""
        answer = requests.post(f"{self.issuer}/token", timeout=10,
                               auth=(client_id, f"{client_id}-secret-0123456789"),
                               data={"grant_type": "client_credentials", "scope": scope,
                                     "resource": resource})
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def jwks(self) -> dict[str, Any]:
        return dict(requests.get(f"{self.issuer}/jwks", timeout=10).json())


_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*method="post"', re.I)


def log_in_at_provider(browser: requests.Session, authorization_url: str, login: str,
                       ) -> str:
    """Go through the provider's own login and consent pages as *login* (devInteractions:
    any password) with a session of our own; the URL it sends the browser back to."""
    answer = browser.get(authorization_url, allow_redirects=True, timeout=10)
    for step in ({"prompt": "login", "login": login, "password": "any password"},
                 {"prompt": "consent"}):
        found = _FORM.search(answer.text)
        if found is None:
            break
        answer = browser.post(urljoin(answer.url, unescape(found.group(1))), data=step,
                              allow_redirects=False, timeout=10)
        while answer.is_redirect:
            target = urljoin(answer.url, answer.headers["Location"])
            if not target.startswith(authorization_url.split("/auth")[0]):
                return target  # back to the service: the callback
            answer = browser.get(target, allow_redirects=False, timeout=10)
    raise AssertionError("the provider did not send the browser back: " + answer.text[:500])


# --- an issuer the test controls ----------------------------------------------------------


@dataclass
class TestIssuer:
    """Discovery and JWKS on 127.0.0.1 from keys the test holds; counts JWKS fetches."""

    server: ThreadingHTTPServer
    keys: list[RSAKey] = field(default_factory=list)
    published: list[RSAKey] = field(default_factory=list)
    jwks_fetches: int = 0
    down: bool = False

    __test__ = False  # not a test class, whatever its name says

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @classmethod
    def start(cls) -> TestIssuer:
        holder: dict[str, TestIssuer] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                owner = holder["issuer"]
                if owner.down:
                    self.send_error(503)
                    return
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": owner.issuer, "jwks_uri": owner.issuer + "/jwks"}
                elif self.path == "/jwks":
                    owner.jwks_fetches += 1
                    body = {"keys": [key.as_dict(private=False) for key in owner.published]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        issuer = cls(server)
        holder["issuer"] = issuer
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return issuer

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def new_key(self, kid: str, *, publish: bool = True) -> RSAKey:
        key = RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"})
        self.keys.append(key)
        if publish:
            self.published.append(key)
        return key

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": "sei-test", "client_id": "sei-test",
                  "aud": AUDIENCE, "iat": now, "exp": now + 300, "jti": f"j{now}",
                  "scope": "sor:lookup", CVR_CLAIM: "55133018"}
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def mint(self, key: RSAKey, claims: dict[str, Any], *, typ: str = "at+jwt",
             alg: str = "RS256") -> str:
        return jwt.encode({"alg": alg, "typ": typ, "kid": key.kid}, claims, key)


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segments(token: str) -> Iterable[str]:
    return token.split(".")
