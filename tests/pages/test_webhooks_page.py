"""The staff's webhooks page: subscriptions, deliveries given up, and the retry button."""

from __future__ import annotations

from sqlalchemy import select

from hierarchy.webhooks.models import WebhookDelivery, WebhookSubscription
from sorregistry.accounts.clients import create_client
from tests.pages.helpers import login, post


def test_the_page_lists_subscriptions_and_failed_deliveries_and_retries_one(
        client, session, people):
    owner, _ = create_client(session, "Regionens system", cvr="29190909", roles=["reporter"])
    subscription = WebhookSubscription(
        client_id=owner.id, url="https://hooks.example.org/sor?a=1&b=2",
        filter={"level": "SI"}, secret="whsec_x", status="paused",
        paused_reason="delivery 1 failed: HTTP 500", last_position=7, created_by="test")
    session.add(subscription)
    session.flush()
    delivery = WebhookDelivery(subscription_id=subscription.id, position=5,
                               sor_code="123456789012345", body="{}", status="failed",
                               attempts=10, last_error="HTTP 500: nope")
    session.add(delivery)
    session.commit()

    assert client.get("/staff/webhooks/").status_code in (302, 303)  # not logged in
    login(client, people["sds"].email)
    page = client.get("/staff/webhooks/").get_data(as_text=True)
    assert "https://hooks.example.org/sor?a=1&amp;b=2" in page
    assert "level=SI" in page and "HTTP 500: nope" in page and "Sat på pause" in page
    answer = post(client, f"/staff/webhooks/deliveries/{delivery.id}/retry",
                  page="/staff/webhooks/")
    assert answer.status_code == 303
    session.expire_all()
    assert session.scalar(select(WebhookDelivery.status)) == "queued"
    assert session.scalar(select(WebhookSubscription.status)) == "active"
    after = client.get("/staff/webhooks/").get_data(as_text=True)
    assert "Ingen opgivne leverancer" in after


def test_only_staff_see_the_page(client, people):
    login(client, people["aarhus"].email)
    assert client.get("/staff/webhooks/").status_code == 403
