"""What an identity provider's access token costs a request, next to the service's own.

One process, Flask's test client, a SQLite database of its own (migrated), and an issuer
on 127.0.0.1 that serves a discovery document and a JWKS (``tests.support.oidc_provider.
TestIssuer``, RS256 keys). The same API call (``GET /api/v1/lookups/my-cvr/all`` on an
empty register, so that the call is mostly authentication) is timed with:

- ``own``: the service's own opaque token (a digest looked up, cached per worker);
- ``jwt``: access tokens of the issuer, several (distinct ``jti``) in turn - each request
  verifies the signature and the claims; the keys are the worker's, fetched once.

The kinds take turns request by request, so that the machine's load falls on both alike.
It prints the median and p95 of each, their ratio, and how many times the JWKS was
fetched while timing (it must be 0: never per request).

    .venv/bin/python bench/bench_access_tokens.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import say
from flask_migrate import upgrade

from sorregistry import create_app
from sorregistry.accounts import access_tokens
from sorregistry.accounts.clients import create_client
from sorregistry.extensions import db
from tests.support.oidc_provider import AUDIENCE, TestIssuer

URL = "/api/v1/lookups/my-cvr/all"
CVR = "55133018"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per kind (default 2000)")
    parser.add_argument("--tokens", type=int, default=20, help="distinct access tokens")
    args = parser.parse_args()
    issuer = TestIssuer.start()
    key = issuer.new_key("bench-1")
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"TESTING": True,
                          "SQLALCHEMY_DATABASE_URI": f"sqlite:///{Path(folder) / 'bench.db'}",
                          "API_ISSUERS": (issuer.issuer,), "API_AUDIENCE": AUDIENCE})
        with app.app_context():
            upgrade()
            _, own = create_client(db.session, "bench", cvr=CVR, roles=["reporter"])
            db.session.commit()
        jwts = [issuer.mint(key, issuer.claims(jti=f"bench-{n}", **{
            "https://data.gov.dk/model/core/eid/professional/cvr": CVR}))
            for n in range(args.tokens)]
        client = app.test_client()
        times: dict[str, list[float]] = {"own": [], "jwt": []}

        def call(token: str) -> float:
            started = time.perf_counter()
            answer = client.get(URL, headers={"Authorization": f"Bearer {token}"})
            elapsed = time.perf_counter() - started
            if answer.status_code != 200:
                raise SystemExit(f"{answer.status_code}: {answer.get_data(as_text=True)}")
            return elapsed

        for token in (own, *jwts):  # warm up: the keys, the client's record, the caches
            call(token)
        fetched = issuer.jwks_fetches
        for n in range(args.requests):
            times["own"].append(call(own))
            times["jwt"].append(call(jwts[n % len(jwts)]))
        fetches = issuer.jwks_fetches - fetched
        with app.app_context():
            held = access_tokens.issuer_keys(app, issuer.issuer).fetches
            db.engine.dispose()
    issuer.stop()
    say(f"{args.requests} requests per kind, {args.tokens} distinct access tokens (RS256)")
    medians = {}
    for kind, values in times.items():
        medians[kind] = statistics.median(values) * 1000
        say(f"  {kind:4} median {medians[kind]:.3f} ms   p95 {_p95(values) * 1000:.3f} ms")
    say(f"  jwt/own median ratio {medians['jwt'] / medians['own']:.2f}")
    say(f"  JWKS fetched while timing: {fetches} (by this worker in all: {held})")


if __name__ == "__main__":
    main()
