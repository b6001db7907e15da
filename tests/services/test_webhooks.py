"""Signed webhooks, one attempt at a time in this process, against a real local receiver: what counts as
delivered, how long a failed delivery waits before it is tried again, what is refused before any connection."""

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from scheduling import services, validation
from scheduling.models import DeliveryStatus, Session, WebhookDelivery

from ..factories import schedule_via_api
from ..support import Reply


def cancelled_delivery(client, url):
    """A message.cancelled outbox row, written but not handed to a worker (no commit in this test)."""
    message_id = schedule_via_api(client, url)["id"]
    client.delete(f"{url}/{message_id}")
    return WebhookDelivery.objects.get(message_id=message_id)


def deliver_once(delivery):
    services.webhook_deliver(delivery_id=delivery.id, version=delivery.version)
    delivery.refresh_from_db()
    return delivery


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
    message_id = schedule_via_api(client, url)["id"]
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
    assert delivery.last_error.startswith(
        "refused: 127.0.0.1 resolves to 127.0.0.1, a private, loopback or link-local address"
    )


def test_it_redelivers_on_an_operators_request(hooked, receiver):
    _, client, url = hooked
    delivery = cancelled_delivery(client, url)
    deliver_once(delivery)

    services.webhook_redeliver(delivery=delivery)
    delivery = deliver_once(delivery)

    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.id, delivery.id]
    assert delivery.status == DeliveryStatus.DELIVERED


# --- How long a delivery waits before it is tried again ---------------------------------------------------

SCHEDULE = [5.0, 300.0, 1800.0]  # seconds before the first, second and third retry, as a deployment sets them


@pytest.mark.parametrize(("attempts", "planned"), [(1, 5), (2, 300), (3, 1800)])
def test_it_waits_the_schedules_delay_give_or_take_a_tenth_before_each_retry(settings, attempts, planned):
    settings.WEBHOOK_RETRY_SCHEDULE = SCHEDULE

    waits = [services.webhook_retry_delay(attempts) for _ in range(200)]

    assert all(planned * 0.9 <= wait <= planned * 1.1 for wait in waits)
    assert min(waits) < planned * 0.95 and max(waits) > planned * 1.05  # receivers are not all hit at once


@pytest.mark.parametrize(
    ("attempts", "retry_after", "shortest", "longest"),
    [
        (1, 60, 60, 60),  # the receiver asked for longer than planned: exactly what it asked
        (2, 10, 270, 330),  # it asked for less: the plan stands
    ],
)
def test_it_waits_at_least_as_long_as_the_receiver_asked_with_retry_after(
    settings, attempts, retry_after, shortest, longest
):
    settings.WEBHOOK_RETRY_SCHEDULE = SCHEDULE

    waits = [services.webhook_retry_delay(attempts, retry_after) for _ in range(200)]

    assert all(shortest <= wait <= longest for wait in waits)


def test_it_tries_a_failed_delivery_again_no_sooner_than_the_receiver_asked(hooked, receiver):
    _, client, url = hooked
    delivery = cancelled_delivery(client, url)
    receiver.script(delivery.message_id, Reply(503, headers={"Retry-After": "120"}))
    before = timezone.now()

    delivery = deliver_once(delivery)

    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.PENDING, 1, 503)
    assert before + timedelta(seconds=120) <= delivery.due_at <= timezone.now() + timedelta(seconds=120)
    assert delivery.handed_over_at is None  # beyond the horizon: the pump hands it over when it is due


def test_it_gives_up_after_the_last_retry_of_the_schedule(hooked, receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = SCHEDULE[:2]
    _, client, url = hooked
    delivery = cancelled_delivery(client, url)
    receiver.script(delivery.message_id, *[Reply(503)] * 3)

    statuses = [deliver_once(delivery).status for _ in range(3)]

    assert statuses == [DeliveryStatus.PENDING, DeliveryStatus.PENDING, DeliveryStatus.EXHAUSTED]
    assert delivery.attempts == 3  # the first try and one retry for each entry of the schedule
    assert len(receiver.received) == 3


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

    assert delivery.last_error.startswith(
        f"refused: {name} resolves to {address}, a private, loopback or link-local address"
    )


@pytest.mark.parametrize(
    "address",
    [
        "::127.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:0:7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::10.0.0.1",
        "2002:7f00:1::1",
        "2002:a9fe:a9fe::",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
    ],
)
def test_it_judges_an_ipv6_address_by_the_ipv4_address_it_carries(address):
    assert validation.is_public_address(address) is False


@pytest.mark.parametrize(
    "address", ["64:ff9b::8.8.8.8", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1111", "8.8.8.8"]
)
def test_it_takes_public_addresses_in_any_of_those_forms(address):
    assert validation.is_public_address(address) is True
