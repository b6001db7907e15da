"""Dispatch decisions checked in this process, against the real database, Redis and the local provider:
how long a message waits before it is tried again, that the pump tells a lost hand-over from one the
fleet has not reached yet, and that media on an internal host never reaches the provider. How messages
due together are handed over and sent as batches: test_ticks.py."""

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from scheduling import services, validation
from scheduling.models import MessageStatus, ScheduledMessage

from ..factories import schedule_via_services
from ..support import Reply


def session_sending_to(provider, settings, *, transport, webhook_url="", **options):
    """A session whose messages go to `provider` through a transport of its own (transports are built once
    per name, so each test names a new one)."""
    settings.TRANSPORTS = {
        **settings.TRANSPORTS,
        transport: {"BACKEND": "scheduling.transports.http.HttpTransport", "OPTIONS": {"URL": provider.url, **options}},
    }
    return services.session_create(name=transport, transport=transport, webhook_url=webhook_url).session


def overdue_hand_over(session, *, late_by):
    """A pending message due `late_by` seconds ago whose hand-over happened then and never ran."""
    message = schedule_via_services(session, text="late")
    then = timezone.now() - timedelta(seconds=late_by)
    ScheduledMessage.objects.filter(pk=message.pk).update(scheduled_at=then, due_at=then, handed_over_at=then)
    return message


def in_flight(session, *, due_seconds_ago):
    """A message a worker is sending right now, due `due_seconds_ago`."""
    message = schedule_via_services(session, text="in flight")
    due = timezone.now() - timedelta(seconds=due_seconds_ago)
    ScheduledMessage.objects.filter(pk=message.pk).update(
        status=MessageStatus.SENDING, due_at=due, lease_until=timezone.now() + timedelta(minutes=1)
    )


def presumed_lost(message):
    return message.events.filter(detail__contains="presumed lost").exists()


def test_the_pump_re_hands_an_overdue_hand_over_the_fleet_has_passed(transactional_db, queue):
    session = services.session_create(name="pump").session
    lost = overdue_hand_over(session, late_by=10)  # the stale limit is 2 s in the tests
    in_flight(session, due_seconds_ago=0.5)  # the fleet is sending what is due now

    services.dispatch_pump_once()

    assert presumed_lost(lost)
    assert ScheduledMessage.objects.get(pk=lost.pk).handed_over_at > timezone.now() - timedelta(seconds=5)


def test_the_pump_leaves_an_overdue_hand_over_alone_while_the_fleet_is_still_behind_it(transactional_db, queue):
    session = services.session_create(name="pump").session
    waiting = overdue_hand_over(session, late_by=10)
    in_flight(session, due_seconds_ago=9)  # a campaign draining late: the workers are at messages due 9 s ago

    services.dispatch_pump_once()

    assert not presumed_lost(waiting)
    assert ScheduledMessage.objects.get(pk=waiting.pk).handed_over_at < timezone.now() - timedelta(seconds=9)


def test_it_never_hands_the_provider_media_whose_host_resolves_inside_the_network(db, settings, provider):
    name = socket.gethostname()
    address = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)[0][4][0]
    if validation.is_public_address(address):
        pytest.skip(f"this host's name resolves to a public address ({address})")
    provider.reset()
    settings.WEBHOOK_ALLOW_PRIVATE = False
    session = session_sending_to(provider, settings, transport="media-provider")
    message = schedule_via_services(session, type="image", text="", media=f"http://{name}/cat.jpg")

    services.message_dispatch(message_id=message.id, version=message.version, worker="test")

    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert message.last_error == (
        f"Media URL refused: {name} resolves to {address}, a private, loopback or link-local address "
        "(set WEBHOOK_ALLOW_PRIVATE=1 for local development)"
    )
    assert provider.requests_for(message.id) == []


# --- How long a message waits before it is tried again ------------------------------------------------

ATTEMPTS = 200  # samples of one random delay: enough that the jitter shows, and stays within its bounds


@pytest.fixture
def production_retries(settings):
    """The retry timings a deployment has by default (the test settings shrink the base to 0.2 s)."""
    settings.DISPATCH_RETRY_BASE, settings.DISPATCH_RETRY_MAX = 2.0, 300.0


def delays(attempts, retry_after=None):
    return [services.retry_delay(attempts, retry_after) for _ in range(ATTEMPTS)]


@pytest.mark.parametrize(("attempts", "longest"), [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32), (6, 64), (8, 256)])
def test_it_waits_between_half_and_all_of_a_delay_that_doubles_with_each_failed_attempt(
    production_retries, attempts, longest
):
    waits = delays(attempts)

    assert all(longest / 2 <= wait <= longest for wait in waits)
    assert min(waits) < longest * 0.6 and max(waits) > longest * 0.9  # spread out, not in lockstep


@pytest.mark.parametrize("attempts", [9, 12, 50])
def test_it_never_waits_longer_than_the_ceiling_however_many_attempts_failed(production_retries, attempts):
    waits = delays(attempts)

    assert all(150 <= wait <= 300 for wait in waits)
    assert min(waits) < 180 and max(waits) > 270


@pytest.mark.parametrize(
    ("attempts", "retry_after", "shortest", "longest"),
    [
        (1, 30, 30, 30),  # the provider asked for longer than the back-off: exactly what it asked
        (3, 0.5, 4, 8),  # it asked for less: the back-off stands
        (9, 600, 600, 600),  # a Retry-After above the ceiling is honoured too
        (1, 0, 1, 2),
    ],
)
def test_it_waits_at_least_as_long_as_the_provider_asked_with_retry_after(
    production_retries, attempts, retry_after, shortest, longest
):
    assert all(shortest <= wait <= longest for wait in delays(attempts, retry_after))


def test_a_temporary_provider_error_puts_the_message_back_due_when_the_provider_asked(db, settings, provider):
    provider.reset()
    session = session_sending_to(provider, settings, transport="busy-provider")
    message = schedule_via_services(session, text="busy")
    provider.script("busy", Reply(503, {"error": "busy"}, {"Retry-After": "30"}))
    before = timezone.now()

    services.message_dispatch(message_id=message.id, version=message.version, worker="test")

    message.refresh_from_db()
    error = 'Provider answered HTTP 503: {"error": "busy"}'
    assert (message.status, message.attempts, message.last_error) == (MessageStatus.PENDING, 1, error)
    assert before + timedelta(seconds=30) <= message.due_at <= timezone.now() + timedelta(seconds=30)
    assert message.handed_over_at is None  # beyond the horizon: the pump hands it over when it is due
    assert message.events.last().detail == f"temporary error, retry in 30.0 s: {error}"


def test_a_free_form_message_outside_the_24_hour_window_fails_at_once_saying_so(db, settings, provider):
    provider.reset()
    session = session_sending_to(provider, settings, transport="whatsapp-gateway")
    message = schedule_via_services(session, text="Are you still there?")
    provider.script("Are you still there?", Reply(400, {"error": {"code": 131047, "message": "Re-engagement message"}}))

    services.message_dispatch(message_id=message.id, version=message.version, worker="test")

    message.refresh_from_db()
    assert (message.status, message.attempts) == (MessageStatus.FAILED, 1)
    assert message.last_error.startswith("WhatsApp error 131047 (re-engagement message)")
    assert len(provider.requests_for(message.id)) == 1  # not retried: only a template can reach the recipient
