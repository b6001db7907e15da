"""Dispatch decisions checked in this process, against the real database and the local provider:
a campaign batch keeps within its task's time limit, the pump tells a lost hand-over from one
the fleet has not reached yet, and media on an internal host never reaches the provider."""

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from scheduling import handover, services, validation
from scheduling.models import MessageStatus, ScheduledMessage

from ..factories import in_hours, schedule_via_services
from ..support import Reply


def session_sending_to(provider, settings, *, transport, **options):
    """A session whose messages go to `provider` through a transport of its own (transports are built once
    per name, so each test names a new one)."""
    settings.TRANSPORTS = {**settings.TRANSPORTS, transport: {
        "BACKEND": "scheduling.transports.http.HttpTransport", "OPTIONS": {"URL": provider.url, **options}}}
    return services.session_create(name=transport, transport=transport).session


def test_a_slow_batch_hands_back_what_it_could_not_start_in_time(transactional_db, settings, provider):
    provider.reset()
    settings.SEND_TIME_LIMIT = 3  # a batch starts sends for a third of it: 1 s
    session = session_sending_to(provider, settings, transport="slow-provider", TIMEOUT=5)
    due = in_hours(1)  # beyond the horizon: no task of its own
    messages = [schedule_via_services(session, due, text=f"slow {n}") for n in range(3)]
    for message in messages:
        provider.script(message.text, Reply(body={"messageId": f"id-{message.id}"}, delay=0.6))

    services.message_dispatch_batch(batch=[(m.id, m.version) for m in messages], worker="test")

    stored = {m.id: m for m in ScheduledMessage.objects.filter(pk__in=[m.id for m in messages])}
    sent = [m for m in stored.values() if m.status == MessageStatus.SENT]
    [handed_back] = [m for m in stored.values() if m.status == MessageStatus.PENDING]
    assert len(sent) == 2
    arrived = [r.body["id"] for r in provider.received if r.body.get("id") in stored]
    assert sorted(arrived) == sorted(m.id for m in sent)  # each sent once, the third not at all
    assert handed_back.attempts == 0 and handed_back.handed_over_at is not None
    assert handed_back.due_at <= timezone.now()
    assert handed_back.events.last().detail == "batch ran out of time; handed over alone"


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
        status=MessageStatus.SENDING, due_at=due, lease_until=timezone.now() + timedelta(minutes=1))


def presumed_lost(message):
    return message.events.filter(detail__contains="presumed lost").exists()


@pytest.fixture
def empty_queue(broker):
    broker.delete("celery")  # nothing waiting in the broker: a late hand-over is not queued behind others
    handover.broker_keeps_work()  # and the broker has kept what it was given (not new, flushed or reconnected)


def test_the_pump_re_hands_an_overdue_hand_over_the_fleet_has_passed(transactional_db, empty_queue):
    session = services.session_create(name="pump").session
    lost = overdue_hand_over(session, late_by=10)  # the stale limit is 2 s in the tests
    in_flight(session, due_seconds_ago=0.5)  # the fleet is sending what is due now

    services.dispatch_pump_once()

    assert presumed_lost(lost)
    assert ScheduledMessage.objects.get(pk=lost.pk).handed_over_at > timezone.now() - timedelta(seconds=5)


def test_the_pump_leaves_an_overdue_hand_over_alone_while_the_fleet_is_still_behind_it(transactional_db, empty_queue):
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
