"""Signed webhooks with retries, checked by a real local receiver and the standardwebhooks verifier."""

import re
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from scheduling import services, validation
from scheduling.models import DeliveryStatus, Session, WebhookDelivery

from .support import ProviderServer, Reply


@pytest.fixture(scope="session")
def receiver():
    server = ProviderServer().start()
    yield server
    server.stop()


@pytest.fixture
def hooked(db, receiver):
    """A session whose webhook URL is the local receiver, with an API client for it."""
    receiver.reset()
    created = services.session_create(name="hooked", webhook_url=receiver.url)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=created.api_key)
    return created, client, f"/sessions/{created.session.id}/scheduled"


def schedule(client, url, seconds=0.0, text="Hello"):
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    response = client.post(url, {"to": "919988066776", "text": text, "scheduledAt": when.isoformat()}, format="json")
    assert response.status_code == 201
    return response.json()["scheduled"]["id"]


def cancelled_delivery(client, url):
    """A message.cancelled outbox row, written but not handed to a worker (no commit in this test)."""
    message_id = schedule(client, url, seconds=3600)
    client.delete(f"{url}/{message_id}")
    return WebhookDelivery.objects.get(message_id=message_id)


def deliver_once(delivery):
    services.webhook_deliver(delivery_id=delivery.id, version=delivery.version)
    delivery.refresh_from_db()
    return delivery


def wait_for_delivery(message_id, status, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        delivery = WebhookDelivery.objects.filter(message_id=message_id).first()
        if delivery and delivery.status == status:
            return delivery
        time.sleep(0.05)
    return WebhookDelivery.objects.filter(message_id=message_id).first()


# --- Through the real worker and pump -------------------------------------------------------------


def test_it_delivers_the_seeds_message_sent_body_signed(dispatch, hooked, receiver):
    created, client, url = hooked
    message_id = schedule(client, url, seconds=1)

    [request] = receiver.webhooks_for(message_id)

    body = Webhook(created.session.webhook_secret).verify(request.raw, request.headers)
    sent = client.get(f"{url}/{message_id}").json()["scheduled"]
    assert body == {
        "event": "message.sent",
        "sessionId": str(created.session.id),
        "timestamp": body["timestamp"],
        "scheduledId": message_id,
        "status": "success",
        "result": {"messageId": sent["result"]["messageId"], "to": "919988066776@s.whatsapp.net"},
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["timestamp"])
    assert request.headers["webhook-id"].startswith("msg_")


def test_it_retries_a_failing_receiver_with_the_same_webhook_id(dispatch, hooked, receiver):
    _, client, url = hooked
    message_id = schedule(client, url, seconds=1)
    receiver.script(message_id, Reply(500), Reply(500))

    requests = receiver.webhooks_for(message_id, count=3)
    delivery = wait_for_delivery(message_id, DeliveryStatus.DELIVERED)

    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert len(requests) == 3
    assert delivery.status == DeliveryStatus.DELIVERED
    assert list(delivery.attempt_log.values_list("status_code", flat=True)) == [500, 500, 200]


def test_it_delivers_to_a_receiver_that_was_down_once_it_is_back(dispatch, hooked):
    created, client, url = hooked
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    Session.objects.filter(pk=created.session.pk).update(webhook_url=f"http://127.0.0.1:{port}/hooks")

    message_id = schedule(client, url)
    delivery = wait_for_delivery(message_id, DeliveryStatus.PENDING)
    deadline = time.time() + 10
    while not delivery.attempt_log.exists() and time.time() < deadline:
        time.sleep(0.02)
    back = ProviderServer(port=port).start()
    try:
        [request] = back.webhooks_for(message_id)
    finally:
        back.stop()

    delivery = wait_for_delivery(message_id, DeliveryStatus.DELIVERED)
    assert request.body["event"] == "message.sent"
    assert delivery.attempt_log.first().error.startswith("could not connect")
    assert delivery.status == DeliveryStatus.DELIVERED


def test_it_gives_up_after_the_last_retry(dispatch, hooked, receiver):
    _, client, url = hooked
    message_id = schedule(client, url)
    receiver.script(message_id, *[Reply(503)] * 10)

    delivery = wait_for_delivery(message_id, DeliveryStatus.EXHAUSTED)

    assert delivery.status == DeliveryStatus.EXHAUSTED
    assert delivery.attempts == 4  # the first try and the 3 retries of the test schedule
    assert len(receiver.webhooks_for(message_id, count=4)) == 4


def test_it_reports_a_cancellation(dispatch, hooked, receiver):
    created, client, url = hooked
    message_id = schedule(client, url, seconds=3600)
    client.delete(f"{url}/{message_id}")

    [request] = receiver.webhooks_for(message_id)

    assert Webhook(created.session.webhook_secret).verify(request.raw, request.headers) == {
        "event": "message.cancelled", "sessionId": str(created.session.id), "timestamp": request.body["timestamp"],
        "scheduledId": message_id, "status": "cancelled", "result": {"to": "919988066776@s.whatsapp.net"},
    }


def test_it_reports_a_failure_with_its_reason(dispatch, hooked, receiver, provider):
    _, client, url = hooked
    provider.script("rejected", Reply(400, {"error": "bad number"}))
    message_id = schedule(client, url, text="rejected")

    [request] = receiver.webhooks_for(message_id)

    assert request.body["event"] == "message.failed"
    assert request.body["status"] == "failed"
    assert request.body["error"] == 'Provider refused the message with HTTP 400: {"error": "bad number"}'


def test_it_loses_no_event_when_the_worker_dies_mid_delivery(dispatch, hooked, receiver):
    _, client, url = hooked
    message_id = schedule(client, url, seconds=3600)
    receiver.script(message_id, Reply(200, delay=4))
    client.delete(f"{url}/{message_id}")

    receiver.webhooks_for(message_id)
    dispatch.worker.kill()
    dispatch.worker.start()

    requests = receiver.webhooks_for(message_id, count=2, timeout=20)
    delivery = wait_for_delivery(message_id, DeliveryStatus.DELIVERED)
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert delivery.status == DeliveryStatus.DELIVERED


# --- One attempt at a time, in this process ---------------------------------------------------------


def test_it_counts_a_redirect_as_a_failure_and_does_not_follow_it(hooked, receiver):
    _, client, url = hooked
    delivery = cancelled_delivery(client, url)
    receiver.script(delivery.message_id, Reply(301, headers={"Location": receiver.url}))

    delivery = deliver_once(delivery)

    assert len(receiver.received) == 1
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_error == "HTTP 301: redirects are not followed; only 2xx counts as delivered"


def test_it_counts_a_timeout_as_a_failure(hooked, receiver):
    _, client, url = hooked
    delivery = cancelled_delivery(client, url)
    receiver.script(delivery.message_id, Reply(200, delay=3))

    delivery = deliver_once(delivery)

    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_error == "timed out after 2 s"
    assert delivery.attempt_log.get().duration_ms >= 2000


def test_it_stops_webhooks_of_a_session_whose_endpoint_is_gone(hooked, receiver):
    created, client, url = hooked
    delivery = cancelled_delivery(client, url)
    receiver.script(delivery.message_id, Reply(410))

    delivery = deliver_once(delivery)
    message_id = schedule(client, url, seconds=3600)
    client.delete(f"{url}/{message_id}")

    assert delivery.status == DeliveryStatus.GONE
    assert Session.objects.get(pk=created.session.pk).webhook_disabled_at is not None
    assert not WebhookDelivery.objects.filter(message_id=message_id).exists()


def test_it_refuses_a_private_address_unless_allowed(hooked, receiver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    _, client, url = hooked
    delivery = cancelled_delivery(client, url)

    delivery = deliver_once(delivery)

    assert receiver.received == []
    assert delivery.last_error.startswith("refused: 127.0.0.1 resolves to 127.0.0.1, a private, loopback or link-local address")


def test_it_redelivers_on_an_operators_request(hooked, receiver):
    _, client, url = hooked
    delivery = cancelled_delivery(client, url)
    deliver_once(delivery)

    services.webhook_redeliver(delivery=delivery)
    delivery = deliver_once(delivery)

    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.id, delivery.id]
    assert delivery.status == DeliveryStatus.DELIVERED


# --- SSRF: what the guard refuses, before any connection -------------------------------------------


def test_it_opens_no_connection_to_an_internal_address(hooked, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    created, client, url = hooked
    with socket.socket() as internal:
        internal.bind(("127.0.0.1", 0))
        internal.listen(8)
        internal.settimeout(0.5)
        port = internal.getsockname()[1]
        Session.objects.filter(pk=created.session.pk).update(webhook_url=f"http://127.0.0.1:{port}/hooks")

        delivery = deliver_once(cancelled_delivery(client, url))

        with pytest.raises(TimeoutError):  # the kernel would have queued a completed handshake here
            internal.accept()
    assert delivery.last_error == (
        "refused: 127.0.0.1 resolves to 127.0.0.1, a private, loopback or link-local address "
        "(set WEBHOOK_ALLOW_PRIVATE=1 for local development)"
    )


def test_it_refuses_a_name_that_resolves_to_an_internal_address_before_connecting(hooked, settings):
    name = socket.gethostname()
    address = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)[0][4][0]
    if validation.is_public_address(address):
        pytest.skip(f"this host's name resolves to a public address ({address})")
    settings.WEBHOOK_ALLOW_PRIVATE = False
    created, client, url = hooked
    Session.objects.filter(pk=created.session.pk).update(webhook_url=f"http://{name}:9/hooks")

    delivery = deliver_once(cancelled_delivery(client, url))

    assert delivery.last_error.startswith(f"refused: {name} resolves to {address}, a private, loopback or link-local address")


@pytest.mark.parametrize("address", [
    "::127.0.0.1", "::ffff:127.0.0.1", "::ffff:0:7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::10.0.0.1",
    "2002:7f00:1::1", "2002:a9fe:a9fe::", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "::", "::1", "fe80::1", "fc00::1",
])
def test_it_judges_an_ipv6_address_by_the_ipv4_address_it_carries(address):
    assert validation.is_public_address(address) is False


@pytest.mark.parametrize("address", ["64:ff9b::8.8.8.8", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1111", "8.8.8.8"])
def test_it_takes_public_addresses_in_any_of_those_forms(address):
    assert validation.is_public_address(address) is True
