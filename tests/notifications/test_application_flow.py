"""From an application over HTTP to mail at a real SMTP server, on both back ends."""

from __future__ import annotations

from sqlalchemy import select

from notifications.models import OutboxMessage
from sorregistry.extensions import db
from tests.applications.helpers import bearer, build_register, new_nursing_home

NAME = "Plejecenter Åbo – Ærøhjemmet"


def _setup(app):
    with app.app_context():
        build_register(db.session)
        headers = {
            "aarhus": bearer(db.session, "municipality", name="Aarhus"),
            "sds": bearer(db.session, "sds", cvr="29190909", name="SDS"),
            "reporter": bearer(db.session, "reporter", name="Form"),
        }
        db.session.commit()
    return headers


def _send(app) -> str:
    result = app.test_cli_runner().invoke(args=["send-notifications"])
    assert result.exit_code == 0, result.output
    return result.output


def _outbox(app) -> list[tuple[str, str, str]]:
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        return [(row.kind, row.recipients[0], row.status) for row in rows]


def test_approval_mails_the_code_to_the_institution_and_the_municipality(make_app, smtp):
    app = make_app()
    headers = _setup(app)
    client = app.test_client()
    created = client.post("/api/v1/applications", json=new_nursing_home(
        institution_name=NAME, email="leder@aabo.dk"), headers=headers["aarhus"]).get_json()
    url = f"/api/v1/applications/{created['id']}"
    assert client.post(url + "/submit", headers=headers["aarhus"]).status_code == 200
    # The receipt is queued with the submission, and nothing else yet.
    assert _outbox(app) == [("application_received", "sor@aarhus.dk", "queued")]
    assert "Sent 1 mail" in _send(app)
    (receipt,) = smtp.to("sor@aarhus.dk")
    assert created["reference"] in str(receipt.message["Subject"])

    # A reporting form's cached lookup sees the new institution once approved.
    my_si = "/api/v1/lookups/my-cvr/si"
    before = client.get(my_si, headers=headers["reporter"])
    again = client.get(my_si, headers=headers["reporter"])
    assert again.headers["X-Cache"] == "hit"

    approved = client.post(url + "/approve", headers=headers["sds"]).get_json()
    code = approved["sor_code"]
    after = client.get(my_si, headers=headers["reporter"])
    assert after.headers["X-Cache"] == "miss"
    assert after.get_json()["total"] == before.get_json()["total"] + 1
    assert code in [item["sor_code"] for item in after.get_json()["items"]]
    assert _send(app).startswith("Sent 2 mails")
    institution = smtp.to("leder@aabo.dk")
    municipality = [r for r in smtp.to("sor@aarhus.dk") if r is not receipt]
    assert len(institution) == 1 and len(municipality) == 1 and len(smtp.received) == 3
    for received in (institution[0], municipality[0]):
        message = received.message
        assert code in str(message["Subject"]) or NAME in str(message["Subject"])
        for part in (message.get_body(("plain",)), message.get_body(("html",))):
            content = part.get_content()
            assert code in content and created["reference"] in content
            assert "Ærøhjemmet" in content and "Åboulevarden 7" in content
    # Nothing is sent twice.
    assert "Sent 0 mails" in _send(app)
    assert len(smtp.received) == 3
    assert [status for _, _, status in _outbox(app)] == ["sent"] * 3


def test_rejection_and_information_requests_carry_the_reason(make_app, smtp):
    app = make_app()
    headers = _setup(app)
    client = app.test_client()
    created = client.post("/api/v1/applications", json=new_nursing_home(),
                          headers=headers["aarhus"]).get_json()
    url = f"/api/v1/applications/{created['id']}"
    client.post(url + "/submit", headers=headers["aarhus"])
    client.post(url + "/request-info", json={"reason": "Hvilket ydernummer har klinikken?"},
                headers=headers["sds"])
    client.post(url + "/submit", headers=headers["aarhus"])
    client.post(url + "/reject", json={"reason": "Institutionen findes allerede i SOR."},
                headers=headers["sds"])
    _send(app)
    kinds = [kind for kind, _, _ in _outbox(app)]
    assert kinds == ["application_received", "information_requested",
                     "application_received", "application_rejected"]
    bodies = [r.message.get_body(("plain",)).get_content() for r in smtp.to("sor@aarhus.dk")]
    assert any("Hvilket ydernummer har klinikken?" in body for body in bodies)
    assert any("Institutionen findes allerede i SOR." in body for body in bodies)


def test_a_failed_step_queues_no_mail(make_app, smtp):
    app = make_app()
    headers = _setup(app)
    client = app.test_client()
    created = client.post("/api/v1/applications", json=new_nursing_home(phone=None),
                          headers=headers["aarhus"]).get_json()
    response = client.post(f"/api/v1/applications/{created['id']}/submit",
                           headers=headers["aarhus"])
    assert response.status_code == 422
    assert _outbox(app) == []
