"""Dispatch decisions checked in this process, against the real database, Redis and the local provider:
how long a message waits before it is tried again, how the pump batches messages due together, that a
campaign batch keeps within its task's time limit, that the pump tells a lost hand-over from one the
fleet has not reached yet, and that media on an internal host never reaches the provider."""

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from scheduling import services, validation
from scheduling.models import MessageStatus, ScheduledMessage

from ..factories import campaign, in_hours, in_seconds, schedule_via_services
from ..support import Reply


def session_sending_to(provider, settings, *, transport, **options):
    """A session whose messages go to `provider` through a transport of its own (transports are built once
    per name, so each test names a new one)."""
    settings.TRANSPORTS = {
        **settings.TRANSPORTS,
        transport: {"BACKEND": "scheduling.transports.http.HttpTransport", "OPTIONS": {"URL": provider.url, **options}},
    }
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


# --- Messages due at one instant: the batches the pump hands over ---------------------------------------


def handed_over(queue):
    """Each task in the broker as the ids it sends, with its ETA."""
    sends = {
        "scheduling.send_message": lambda args: [args[0]],  # [id, version]
        "scheduling.send_messages": lambda args: [message_id for message_id, _ in args[0]],  # [[[id, version], ...]]
    }
    return [(sends[task.name](task.args), task.eta) for task in queue.tasks()]


def pump(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the hand-overs go to the broker on commit
        services.dispatch_pump_once()


# What a group of n messages due together becomes: at least 16 batches while it has that many messages
# (more than a small fleet has processes, so all of them start on it at once), at most DISPATCH_SEND_BATCH
# (20) messages each; a group too small for that goes as one task per message.
@pytest.mark.parametrize(
    ("size", "batch_sizes"),
    [
        (10, [1] * 10),
        (17, [1] * 17),
        (33, [2] * 16 + [1]),
        (40, [2] * 20),
        (400, [20] * 20),
        (410, [20] * 20 + [10]),
    ],
)
def test_the_pump_hands_a_campaign_due_at_one_instant_over_in_batches(
    new_session, queue, django_capture_on_commit_callbacks, size, batch_sizes
):
    due = in_seconds(2)  # within the 3 s test horizon, and not handed over when it was written
    ids = campaign(new_session.session, size, due)

    pump(django_capture_on_commit_callbacks)

    tasks = handed_over(queue)
    assert [len(batch) for batch, _ in tasks] == batch_sizes
    assert sorted(i for batch, _ in tasks for i in batch) == sorted(ids)  # each message in one task, once
    assert {eta for _, eta in tasks} == {due}
    assert [task.name for task in queue.tasks()] == [
        "scheduling.send_message" if n == 1 else "scheduling.send_messages" for n in batch_sizes
    ]


def test_the_pump_never_batches_messages_due_at_different_instants_together(
    new_session, queue, django_capture_on_commit_callbacks
):
    first, second = in_seconds(1), in_seconds(2)
    earlier = set(campaign(new_session.session, 32, first))
    later = set(campaign(new_session.session, 32, second))

    pump(django_capture_on_commit_callbacks)

    tasks = handed_over(queue)
    assert [(len(batch), eta) for batch, eta in tasks] == [(2, first)] * 16 + [(2, second)] * 16
    assert all(set(batch) <= (earlier if eta == first else later) for batch, eta in tasks)


def test_the_pump_batches_a_backlog_already_due_as_one_group_due_now(
    new_session, queue, django_capture_on_commit_callbacks
):
    """After a broker outage or a paused session, messages due at many past instants are all due now."""
    for seconds_ago in range(1, 33):
        campaign(new_session.session, 1, in_seconds(-seconds_ago))

    pump(django_capture_on_commit_callbacks)

    tasks = handed_over(queue)
    assert [len(batch) for batch, _ in tasks] == [2] * 16
    assert all(eta <= timezone.now() for _, eta in tasks)
