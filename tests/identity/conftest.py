"""Fixtures of the identity tests: a real OpenID Provider (oidc-provider) on 127.0.0.1, an
issuer the tests control, and the app configured for both - with local login off
(``SOR_LOCAL_LOGIN=0``) unless a test turns it on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sorregistry import create_app
from sorregistry.extensions import db
from tests.applications.helpers import AARHUS, AARHUS_CVR, build_register
from tests.pages.conftest import FreshGlobalsClient
from tests.support import oidc_provider
from tests.support.database import bind_session_to
from tests.support.oidc_provider import (
    AUDIENCE,
    CVR_CLAIM,
    ORG_CLAIM,
    UUID_CLAIM,
    Provider,
    TestIssuer,
    machine_client,
    service_client,
)

SDS_CVR = "29190909"
ACCOUNTS: dict[str, dict[str, Any]] = {
    # A case worker of Aarhus Kommune, as NemLog-in describes a professional.
    "anne": {"name": "Anne Aarhus", "email": "anne@aarhus.dk", CVR_CLAIM: AARHUS_CVR,
             ORG_CLAIM: "Aarhus Kommune",
             UUID_CLAIM: "urn:uuid:3c6d9757-1e70-438a-8dd3-5f84398c2e25"},
    "sara": {"name": "Sara SDS", "email": "sara@sundhedsdata.dk", CVR_CLAIM: SDS_CVR,
             ORG_CLAIM: "Sundhedsdatastyrelsen", "sor_roles": ["sor-sagsbehandler"]},
    "nocvr": {"name": "Niels Uden CVR", "email": "niels@example.dk"},
    "badcvr": {"name": "Bent Forkert", CVR_CLAIM: "12345678"},
}
MACHINE_CLAIMS: dict[str, dict[str, Any]] = {
    "sei-aarhus": {CVR_CLAIM: AARHUS_CVR},
    "aarhus-system": {CVR_CLAIM: AARHUS_CVR, "kommunekode": AARHUS},
    "sds-system": {CVR_CLAIM: SDS_CVR},
}

pytestmark = pytest.mark.skipif(oidc_provider.missing() is not None,
                                reason=oidc_provider.missing() or "")


def start_provider(folder, redirect_base: str = "http://localhost", **extra: Any) -> Provider:
    return Provider.start(
        folder,
        clients=[service_client(redirect_base),
                 machine_client("sei-aarhus", "sor:lookup"),
                 machine_client("aarhus-system", "sor:lookup sor:apply"),
                 machine_client("sds-system", "sor:lookup sor:staff"),
                 *extra.pop("clients", [])],
        accounts=ACCOUNTS, machine_claims=MACHINE_CLAIMS, **extra)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """oidc-provider for the module's tests (its sessions are the test's own)."""
    running = start_provider(tmp_path_factory.mktemp("oidc-provider"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def test_issuer() -> Iterator[TestIssuer]:
    issuer = TestIssuer.start()
    issuer.new_key("test-1")
    try:
        yield issuer
    finally:
        issuer.stop()


def identity_settings(provider: Provider, *extra_issuers: str, **more: Any) -> dict[str, Any]:
    """The app's configuration for the provider: what SOR_OIDC_* and SOR_API_* give."""
    return {
        "OIDC_ISSUER": provider.issuer, "OIDC_CLIENT_ID": "sor",
        "OIDC_CLIENT_SECRET": oidc_provider.SERVICE_SECRET,
        "LOCAL_LOGIN": False,
        "OIDC_CLAIMS_ROLES": "sor_roles",
        "OIDC_CLAIMS_ROLE_VALUES": {"sds": ("sor-sagsbehandler",)},
        "API_ISSUERS": (provider.issuer, *extra_issuers), "API_AUDIENCE": AUDIENCE,
        **more,
    }


@pytest.fixture
def settings(provider: Provider, test_issuer: TestIssuer) -> dict[str, Any]:
    """What a test adds to the configuration (change it before asking for ``app``)."""
    return identity_settings(provider, test_issuer.issuer)


@pytest.fixture
def app(database_url: str, settings: dict[str, Any]) -> Iterator[Flask]:
    """As the root conftest's app, configured for the identity provider."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, **settings})
    with app.app_context():
        engine = db.engine
        connection = engine.connect()
        transaction = connection.begin()
        try:
            with bind_session_to(app, connection):
                yield app
        finally:
            if transaction.is_active:
                transaction.rollback()
            connection.close()
            engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = FreshGlobalsClient
    return app.test_client()


@pytest.fixture
def register(session) -> None:
    build_register(session)
    session.flush()
