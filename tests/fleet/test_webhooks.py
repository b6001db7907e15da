"""Signed webhooks with retries through the real worker and pump, checked by a real local receiver and the
standardwebhooks verifier."""

import re
import time

import pytest
from standardwebhooks import Webhook

from scheduling.models import DeliveryStatus, Session, WebhookDelivery

from ..factories import in_seconds, schedule_via_api
from ..servers import free_port
from ..support import ProviderServer, Reply

pytestmark = pytest.mark.rabbitmq


def wait_for_delivery(message_id, status, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        delivery = WebhookDelivery.objects.filter(message_id=message_id).first()
        if delivery and delivery.status == status:
            return delivery
        time.sleep(0.05)
    return WebhookDelivery.objects.filter(message_id=message_id).first()


def test_it_delivers_the_seeds_message_sent_body_signed(dispatch, hooked, receiver):
    created, client, url = hooked
    message_id = schedule_via_api(client, url, in_seconds(1))["id"]

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
    message_id = schedule_via_api(client, url, in_seconds(1))["id"]
    receiver.script(message_id, Reply(500), Reply(500))

    requests = receiver.webhooks_for(message_id, count=3)
    delivery = wait_for_delivery(message_id, DeliveryStatus.DELIVERED)

    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert len(requests) == 3
    assert delivery.status == DeliveryStatus.DELIVERED
    assert list(delivery.attempt_log.values_list("status_code", flat=True)) == [500, 500, 200]


def test_it_delivers_to_a_receiver_that_was_down_once_it_is_back(dispatch, hooked):
    created, client, url = hooked
    port = free_port()
    Session.objects.filter(pk=created.session.pk).update(webhook_url=f"http://127.0.0.1:{port}/hooks")

    message_id = schedule_via_api(client, url, in_seconds(0))["id"]
    delivery = wait_for_delivery(message_id, DeliveryStatus.PENDING)
    deadline = time.time() + 10
    while not delivery.attempt_log.exists() and time.time() < deadline:
        time.sleep(0.02)
    with ProviderServer(port=port) as back:
        [request] = back.webhooks_for(message_id)

    delivery = wait_for_delivery(message_id, DeliveryStatus.DELIVERED)
    assert request.body["event"] == "message.sent"
    assert delivery.attempt_log.first().error.startswith("could not connect")
    assert delivery.status == DeliveryStatus.DELIVERED


def test_it_gives_up_after_the_last_retry(dispatch, hooked, receiver):
    _, client, url = hooked
    message_id = schedule_via_api(client, url, in_seconds(0))["id"]
    receiver.script(message_id, *[Reply(503)] * 10)

    delivery = wait_for_delivery(message_id, DeliveryStatus.EXHAUSTED)

    assert delivery.status == DeliveryStatus.EXHAUSTED
    assert delivery.attempts == 4  # the first try and the 3 retries of the test schedule
    assert len(receiver.webhooks_for(message_id, count=4)) == 4


def test_it_reports_a_cancellation(dispatch, hooked, receiver):
    created, client, url = hooked
    message_id = schedule_via_api(client, url)["id"]
    client.delete(f"{url}/{message_id}")

    [request] = receiver.webhooks_for(message_id)

    assert Webhook(created.session.webhook_secret).verify(request.raw, request.headers) == {
        "event": "message.cancelled",
        "sessionId": str(created.session.id),
        "timestamp": request.body["timestamp"],
        "scheduledId": message_id,
        "status": "cancelled",
        "result": {"to": "919988066776@s.whatsapp.net"},
    }


def test_it_reports_a_failure_with_its_reason(dispatch, hooked, receiver, provider):
    _, client, url = hooked
    provider.script("rejected", Reply(400, {"error": "bad number"}))
    message_id = schedule_via_api(client, url, in_seconds(0), text="rejected")["id"]

    [request] = receiver.webhooks_for(message_id)

    assert request.body["event"] == "message.failed"
    assert request.body["status"] == "failed"
    assert request.body["error"] == 'Provider refused the message with HTTP 400: {"error": "bad number"}'


def test_it_loses_no_event_when_the_worker_dies_mid_delivery(dispatch, hooked, receiver):
    _, client, url = hooked
    message_id = schedule_via_api(client, url)["id"]
    receiver.script(message_id, Reply(200, delay=4))
    client.delete(f"{url}/{message_id}")

    receiver.webhooks_for(message_id)
    dispatch.worker.kill()
    dispatch.worker.start()

    requests = receiver.webhooks_for(message_id, count=2, timeout=20)
    delivery = wait_for_delivery(message_id, DeliveryStatus.DELIVERED)
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert delivery.status == DeliveryStatus.DELIVERED
