"""A forged From is not believed, and the mail never decides where replies go (issue 12).

The receiving server's Authentication-Results (RFC 8601) over a real Dovecot; DKIM
verified by the service with keys the tests make and serve through the injected DNS
lookup (tests/support/dkim_signing.py): no network.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from applications import mail_service
from applications.mail_imap import ImapSettings
from applications.mail_intake import fetch_mail
from applications.mail_message import parse_mail
from applications.mail_models import IncomingMail
from applications.mail_trust import (
    AuthResult,
    SenderPolicy,
    TrustConfigurationError,
    aligned,
    parse_authentication_results,
)
from notifications.models import OutboxMessage
from sorregistry.config import DEFAULTS, from_environment
from tests.applications import hostile
from tests.applications.helpers import bearer, build_register
from tests.applications.messages import AARHUS, mail, template_text
from tests.pages.conftest import FreshGlobalsClient
from tests.pages.helpers import login, make_users
from tests.support.dkim_signing import KeyServer, SigningDomain

ATTACKER = "attacker@evil.example"
TRUSTED = "mx.sds.dk"


def _fetch(runner) -> str:
    result = runner.invoke(args=["fetch-mail"])
    assert result.exit_code == 0, result.output
    return result.output


def _ledger(session) -> list[IncomingMail]:
    session.expire_all()
    return list(session.execute(select(IncomingMail).order_by(IncomingMail.uid)).scalars())


def _recipients(session) -> list[str]:
    session.expire_all()
    return [address for message in session.execute(select(OutboxMessage)).scalars()
            for address in message.recipients]


@pytest.fixture
def trusting_the_mx(mail_app):
    mail_app.config.update(MAIL_SENDER_AUTH="authentication-results",
                           MAIL_TRUSTED_AUTHSERV_ID=TRUSTED)
    return mail_app


# -- the receiving server's verdict -----------------------------------------------------


def test_forged_mails_from_a_contact_become_triage_and_nobody_is_written_to(
    trusting_the_mx, runner, session, imap_account, aarhus_contact, created
):
    forged = [
        hostile.forged(),  # spf=fail dmarc=fail from the trusted server
        mail(template_text(Kontakt_e_mail=ATTACKER)),  # no results at all
        # Results that passed, from a server that is not ours: came with the mail.
        hostile.forged(results="dmarc=pass header.from=aarhus.dk", authserv_id="mx.evil"),
        # The topmost of ours failed; a "pass" below it was there before ours.
        hostile.forged().replace(b"\r\n", f"\r\nAuthentication-Results: {TRUSTED}; "
                                 "dmarc=pass header.from=aarhus.dk\r\n".encode(), 1),
        # DKIM passed, for someone else's domain.
        hostile.forged(results="dkim=pass header.d=evil.example; spf=pass "
                       "smtp.mailfrom=evil.example"),
    ]
    for raw in forged:
        imap_account.append(raw)

    output = _fetch(runner)

    assert f"0 applications, {len(forged)} triage items" in output
    ledger = _ledger(session)
    assert [row.triage_reason for row in ledger] == ["unauthenticated"] * len(forged)
    assert all(row.municipality_code == "0751" and row.raw == raw
               for row, raw in zip(ledger, forged, strict=True))
    assert [row.authentication for row in ledger] == [
        f"Authentication-Results of {TRUSTED}: dmarc=fail",
        f"no Authentication-Results of {TRUSTED}",
        f"no Authentication-Results of {TRUSTED}",
        f"Authentication-Results of {TRUSTED}: dmarc=fail",
        f"Authentication-Results of {TRUSTED}: no aligned pass (dkim=pass; spf=pass)",
    ]
    assert "is not authenticated" in ledger[0].problems[0]
    assert ledger[0].fields["contact_email"] == ATTACKER  # kept as data, for staff
    assert created == []
    assert _recipients(session) == []  # no receipt, no notice: to nobody at all
    trusting_the_mx.test_client_class = FreshGlobalsClient
    staff = trusting_the_mx.test_client()
    login(staff, make_users(session)["sds"].email)
    queue = staff.get("/staff/mail/?reason=unauthenticated").get_data(as_text=True)
    assert "Afsenderen kunne ikke bekræftes" in queue and f"{len(forged)} mails" in queue


def test_an_authenticated_mail_is_answered_at_the_registered_address_only(
    trusting_the_mx, client, runner, session, imap_account, aarhus_contact, created
):
    build_register(session)
    imap_account.append(hostile.authenticated(reply_to=ATTACKER))

    assert "1 application, 0 triage items" in _fetch(runner)

    [row] = _ledger(session)
    assert row.authentication == f"Authentication-Results of {TRUSTED}: dmarc=pass"
    assert row.fields["contact_email"] == ATTACKER  # what the mail said, kept
    application = created[0]["application"]
    assert application.contact_email == AARHUS  # who is answered
    assert _recipients(session) == [AARHUS]  # the receipt

    staff = bearer(session, "sds", cvr="29190909", name="SDS")
    approved = client.post(f"/api/v1/applications/{application.id}/approve", headers=staff)
    assert approved.status_code == 200, approved.get_json()
    assert ATTACKER not in _recipients(session)  # nor the new SOR code
    assert _recipients(session).count(AARHUS) == 2


def test_a_reply_address_registered_for_the_same_municipality_is_used(
    trusting_the_mx, runner, session, imap_account, aarhus_contact, created
):
    mail_service.add_contact(session, "0751", "sundhed@aarhus.dk")
    mail_service.add_contact(session, "0461", "sor@odense.dk")
    session.commit()
    imap_account.append(hostile.authenticated(reply_to="sundhed@aarhus.dk"))
    imap_account.append(hostile.authenticated(reply_to="sor@odense.dk",
                                              Institutionens_navn="Plejecenter To"))
    _fetch(runner)
    assert [call["fields"]["contact_email"] for call in created] == [
        "sundhed@aarhus.dk", AARHUS]  # another municipality's address is not
    assert sorted(_recipients(session)) == [AARHUS, "sundhed@aarhus.dk"]


@pytest.mark.parametrize("results, how", [
    ("spf=pass smtp.mailfrom=sor@aarhus.dk", "spf=pass for aarhus.dk"),
    ("dkim=pass header.d=aarhus.dk header.s=s1", "dkim=pass for aarhus.dk"),
    ("dkim=pass (good signature) header.i=@sundhed.aarhus.dk; dmarc=none",
     "no aligned pass (dkim=pass; dmarc=none)"),
    ("dmarc=pass (p=reject) header.from=evil.example", "no aligned pass (dmarc=pass)"),
    ("none", "no aligned pass (none)"),
])
def test_what_the_trusted_results_must_say(app, results, how):
    policy = SenderPolicy(methods=("authentication-results",), authserv_id=TRUSTED)
    raw = f"Authentication-Results: {TRUSTED}; {results}\r\n".encode() + mail("x")
    check = policy.check(raw, parse_mail(raw).headers, AARHUS)
    assert check.how == f"Authentication-Results of {TRUSTED}: {how}"
    assert check.authenticated == ("pass for" in how)


def test_parsing_authentication_results():
    authserv_id, results = parse_authentication_results(
        'MX.SDS.DK 1; (a comment; with a semicolon) spf=pass (sender IP is 192.0.2.1) '
        'smtp.mailfrom="sor@kk.dk"; dkim/1=pass header.d=kk.dk header.s=s1 reason="ok; fine";'
        ' dmarc=FAIL action=none header.from=kk.dk; junk'
    )
    assert authserv_id == "mx.sds.dk"
    assert results == [
        AuthResult("spf", "pass", {"smtp.mailfrom": "sor@kk.dk"}),
        AuthResult("dkim", "pass", {"header.d": "kk.dk", "header.s": "s1",
                                    "reason": "ok; fine"}),
        AuthResult("dmarc", "fail", {"action": "none", "header.from": "kk.dk"}),
    ]
    assert parse_authentication_results("mx.sds.dk; none") == ("mx.sds.dk", [])
    assert parse_authentication_results("") == ("", [])


def test_alignment_is_the_domain_or_a_parent():
    assert aligned("kk.dk", "kk.dk") and aligned("kk.dk", "sundhed.kk.dk")
    assert not aligned("sundhed.kk.dk", "kk.dk") and not aligned("k.dk", "kk.dk")
    assert not aligned(None, "kk.dk") and not aligned("kk.dk", None)


# -- DKIM verified by the service --------------------------------------------------------


@pytest.fixture
def dns() -> KeyServer:
    return KeyServer()


def _record(session, raw: bytes, dns: KeyServer, uid: int = 1) -> IncomingMail:
    return mail_service.record_mail(
        session, raw, mailbox="INBOX", uidvalidity=1, uid=uid, received_at=None,
        max_size=10**7, senders=SenderPolicy(methods=("dkim",), dns=dns.lookup))


def test_a_mail_signed_by_the_senders_domain_becomes_an_application(
    app, session, aarhus_contact, dns, created
):
    aarhus = SigningDomain("aarhus.dk", dns)
    recorded = _record(session, aarhus.sign(mail(template_text())), dns)
    assert recorded.outcome == "application"
    assert recorded.authentication == "dkim=pass for aarhus.dk"
    assert dns.asked == [b"sel1._domainkey.aarhus.dk."]


def test_a_parent_domains_signature_is_aligned(app, session, dns, created):
    mail_service.add_contact(session, "0751", "sor@sundhed.aarhus.dk")
    aarhus = SigningDomain("aarhus.dk", dns)
    raw = aarhus.sign(mail(template_text(), sender="sor@sundhed.aarhus.dk"))
    assert _record(session, raw, dns).outcome == "application"


@pytest.mark.parametrize("case, reason", [
    ("unsigned", "no DKIM signature"),
    ("altered", "DKIM signature 1: ValidationError: body hash mismatch"),
    ("other domain", "DKIM signature 1 is evil.example's, not aarhus.dk's"),
    ("body length", "DKIM signature 1 (aarhus.dk) signs part of the body"),
    ("From not signed", "DKIM signature 1 (aarhus.dk) does not sign From"),
    ("another key", "DKIM signature 1 (aarhus.dk) does not verify"),
    ("no key published", "DKIM signature 1 (aarhus.dk) does not verify"),
])
def test_a_mail_without_a_good_aligned_signature_is_unauthenticated(
    app, session, aarhus_contact, dns, created, case, reason
):
    aarhus, evil = SigningDomain("aarhus.dk", dns), SigningDomain("evil.example", dns)
    raw = mail(template_text(Kontakt_e_mail=ATTACKER))
    raw = {
        "unsigned": lambda: raw,
        "altered": lambda: aarhus.sign(raw).replace(b"Plejecenter", b"Plejecentre"),
        "other domain": lambda: evil.sign(raw),
        "body length": lambda: aarhus.sign(raw, length=True),
        "From not signed": lambda: aarhus.sign_without_from(raw),
        "another key": lambda: SigningDomain("aarhus.dk", KeyServer()).sign(raw),
        "no key published": lambda: SigningDomain("aarhus.dk", KeyServer(),
                                                  selector="gone").sign(raw),
    }[case]()
    recorded = _record(session, raw, dns)
    assert (recorded.outcome, recorded.triage_reason) == ("triage", "unauthenticated")
    assert recorded.authentication.startswith(reason), recorded.authentication
    assert created == [] and _recipients(session) == []


def test_dkim_over_the_real_mailbox(mail_app, session, imap_account, aarhus_contact, dns):
    """The signed bytes survive IMAP: what Dovecot hands back still verifies."""
    aarhus = SigningDomain("aarhus.dk", dns)
    imap_account.append(aarhus.sign(mail(template_text())))
    imap_account.append(SigningDomain("evil.example", dns).sign(mail(template_text())))
    result = fetch_mail(session, ImapSettings.from_config(mail_app.config), max_size=10**7,
                        senders=SenderPolicy(methods=("dkim",), dns=dns.lookup))
    assert (result.applications, result.triage) == (1, 1)
    assert [row.authentication for row in _ledger(session)] == [
        "dkim=pass for aarhus.dk", "DKIM signature 1 is evil.example's, not aarhus.dk's"]


# -- the settings ------------------------------------------------------------------------


@pytest.mark.parametrize("config, methods", [
    ({"TESTING": True}, ("none",)),
    ({"SOR_ENV": "development"}, ("none",)),
    ({"SOR_ENV": "production"}, ("dkim",)),
    ({"SOR_ENV": "development", "MAIL_TRUSTED_AUTHSERV_ID": "MX.sds.dk"},
     ("authentication-results",)),
    ({"SOR_ENV": "production", "MAIL_TRUSTED_AUTHSERV_ID": "mx.sds.dk",
      "MAIL_SENDER_AUTH": "authentication-results, dkim"}, ("authentication-results", "dkim")),
])
def test_the_default_is_to_authenticate_outside_development(config, methods):
    policy = SenderPolicy.from_config(config)
    assert policy.methods == methods
    assert policy.authserv_id == (config.get("MAIL_TRUSTED_AUTHSERV_ID") or "").lower() or (
        policy.authserv_id is None)


@pytest.mark.parametrize("config, message", [
    ({"SOR_ENV": "production", "MAIL_SENDER_AUTH": "none"}, "is for development only"),
    ({"MAIL_SENDER_AUTH": "spf"}, "unknown method spf"),
    ({"MAIL_SENDER_AUTH": "authentication-results"}, "needs SOR_MAIL_TRUSTED_AUTHSERV_ID"),
])
def test_unusable_settings_are_refused(config, message):
    with pytest.raises(TrustConfigurationError, match=message):
        SenderPolicy.from_config(config)


def test_fetch_mail_refuses_to_believe_everyone_in_production(mail_app, runner):
    mail_app.config.update(TESTING=False, SOR_ENV="production", MAIL_SENDER_AUTH="none")
    result = runner.invoke(args=["fetch-mail"])
    assert result.exit_code == 1
    assert "SOR_MAIL_SENDER_AUTH=none believes any From address" in result.output


def test_settings_from_the_environment():
    config = {**DEFAULTS, **from_environment({
        "SOR_MAIL_SENDER_AUTH": "authentication-results",
        "SOR_MAIL_TRUSTED_AUTHSERV_ID": "mx.sds.dk", "SOR_MAIL_MAX_PER_SENDER_HOUR": "12",
    })}
    assert config["MAIL_MAX_PER_SENDER_HOUR"] == 12
    assert DEFAULTS["MAIL_MAX_PER_SENDER_HOUR"] == 30
    policy = SenderPolicy.from_config(config)
    assert (policy.methods, policy.authserv_id) == (("authentication-results",), "mx.sds.dk")
