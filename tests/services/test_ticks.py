"""Messages due within one tick go out together, however they were created: handed over as one task that
starts at the tick's start and sends each message at its own time (never early). It claims a batch, hands the
rest of a big campaign on to another task, sends the batch side by side and records it in a few statements.
Checked in this process against the real database, Redis's broker queue and a local provider."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduling import services
from scheduling.models import MessageStatus, ScheduledMessage, WebhookDelivery
from scheduling.services.handovers import tick_end
from scheduling.services.pacer import pace

from ..factories import campaign, in_hours, in_seconds, schedule_via_services
from ..support import Reply
from .test_dispatch_decisions import session_sending_to

TICK = timedelta(milliseconds=50)


def on_a_tick(seconds: float) -> datetime:
    """A time about `seconds` from now that falls exactly on a tick boundary (as a campaign's 09:00:00 does)."""
    return tick_end(in_seconds(seconds))


def send_due_tasks(queue):
    return [task for task in queue.tasks() if task.name == "scheduling.send_due"]


def pump(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the hand-overs go to the broker on commit
        services.dispatch_pump_once()


@pytest.mark.parametrize(
    "due",
    [
        "2026-12-24T09:00:00+00:00",
        "2026-12-24T09:00:00.000001+00:00",
        "2026-12-24T09:00:00.049999+00:00",
        "2026-12-24T09:00:00.050000+00:00",
        "2026-12-24T23:59:59.987654+00:00",
    ],
)
def test_a_tick_ends_at_or_after_every_time_in_it_never_a_tick_later(due):
    due = datetime.fromisoformat(due)
    assert due <= tick_end(due) < due + TICK
    assert tick_end(tick_end(due)) == tick_end(due)


def test_a_campaign_created_one_by_one_inside_the_horizon_is_handed_over_as_one_task(
    new_session, queue, django_capture_on_commit_callbacks
):
    due = on_a_tick(2)  # inside the 3 s test horizon: each message is handed over as it is created
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(30):
            schedule_via_services(new_session.session, due, text=f"campaign {n}")

    [task] = send_due_tasks(queue)
    assert task.eta == due - TICK  # the tick's start: it sends each message at its own time
    assert task.args == [due.isoformat()]
    assert queue.tasks() == [task]  # and no task per message


def test_messages_due_within_one_tick_share_its_task_and_it_starts_at_the_ticks_start(
    new_session, queue, django_capture_on_commit_callbacks
):
    tick = on_a_tick(2)
    dues = [tick - timedelta(milliseconds=ms) for ms in (49, 20, 0)] + [tick + timedelta(milliseconds=1)]
    with django_capture_on_commit_callbacks(execute=True):
        for due in dues:
            schedule_via_services(new_session.session, due)

    assert [task.eta for task in send_due_tasks(queue)] == [tick - TICK, tick]


def test_a_message_due_in_less_than_a_second_gets_a_task_of_its_own(
    new_session, queue, django_capture_on_commit_callbacks
):
    """The shared task of that tick may already have claimed what was due before this one was committed."""
    due = on_a_tick(0.3)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            schedule_via_services(new_session.session, due)

    assert [task.eta for task in send_due_tasks(queue)] == [due - TICK] * 3


def test_the_pump_hands_a_campaign_over_as_one_task_per_tick(new_session, queue, django_capture_on_commit_callbacks):
    first, second = on_a_tick(1), on_a_tick(2)
    campaign(new_session.session, 400, first)
    campaign(new_session.session, 40, second)

    pump(django_capture_on_commit_callbacks)

    assert [task.eta for task in send_due_tasks(queue)] == [first - TICK, second - TICK]
    assert not ScheduledMessage.objects.filter(handed_over_at=None).exists()


def test_the_pump_hands_a_backlog_already_due_over_as_one_task_due_now(
    new_session, queue, django_capture_on_commit_callbacks
):
    """After a broker outage or a paused session, messages due at many past instants are all due now."""
    for seconds_ago in range(1, 33):
        campaign(new_session.session, 1, in_seconds(-seconds_ago))

    pump(django_capture_on_commit_callbacks)

    [task] = send_due_tasks(queue)
    assert timezone.now() - 2 * TICK <= task.eta <= timezone.now()


# --- What a tick's task does ---------------------------------------------------------------------------


def test_a_tick_task_sends_what_is_due_by_its_end_and_nothing_later(transactional_db, settings, provider, queue):
    provider.reset()
    session = session_sending_to(provider, settings, transport="tick-provider")
    due = in_seconds(-1)
    early = [schedule_via_services(session, in_hours(1), text=f"due {n}") for n in range(5)]
    ScheduledMessage.objects.filter(pk__in=[m.pk for m in early]).update(scheduled_at=due, due_at=due)
    later = schedule_via_services(session, in_hours(1), text="later")

    services.messages_send_due(until=tick_end(timezone.now()), worker="test")

    statuses = dict(ScheduledMessage.objects.values_list("id", "status"))
    assert {statuses[m.pk] for m in early} == {MessageStatus.SENT}
    assert statuses[later.pk] == MessageStatus.PENDING
    assert sorted(r.body["id"] for r in provider.received) == sorted(m.pk for m in early)


def test_a_tick_task_sends_each_message_at_its_own_time_never_before(transactional_db, settings, provider, queue):
    provider.reset()
    session = session_sending_to(provider, settings, transport="on-its-own-time")
    until = tick_end(timezone.now() + 3 * TICK)
    dues = {schedule_via_services(session, until - timedelta(milliseconds=ms)).pk: ms for ms in (45, 25, 5)}

    time.sleep(max(0.0, (until - TICK - timezone.now()).total_seconds()))
    services.messages_send_due(until=until, worker="test")  # as its task does: at the tick's start

    for message_id, ms in dues.items():
        [request] = provider.requests_for(message_id)
        due = (until - timedelta(milliseconds=ms)).timestamp()
        assert due <= request.at < due + 0.02  # at its time, not at the tick's end


@pytest.mark.parametrize("microseconds", [1, 400, 500, 999])
def test_a_send_is_never_planned_before_its_message_is_due_even_by_a_fraction_of_a_millisecond(
    transactional_db, settings, provider, queue, microseconds
):
    session = session_sending_to(provider, settings, transport=f"sub-millisecond-{microseconds}")
    due = (timezone.now() + timedelta(seconds=1)).replace(microsecond=microseconds)
    message = ScheduledMessage.objects.select_related("session").get(pk=schedule_via_services(session, due).pk)

    go, _ = pace([message])

    assert go[message].at >= due


def test_a_task_that_claims_a_full_batch_hands_the_rest_of_its_tick_on(transactional_db, settings, provider, queue):
    provider.reset()
    settings.DISPATCH_SEND_BATCH = 5
    session = session_sending_to(provider, settings, transport="batch-of-five")
    until = tick_end(timezone.now())
    ids = campaign(session, 12, until - timedelta(seconds=1))

    services.messages_send_due(until=until, worker="test")

    statuses = dict(ScheduledMessage.objects.filter(pk__in=ids).values_list("id", "status"))
    assert sorted(statuses.values()).count(MessageStatus.SENT) == 5
    [handed_on] = send_due_tasks(queue)  # the rest goes to another process at once, for the same tick
    assert handed_on.args == [until.isoformat()]


def test_a_batch_is_sent_side_by_side_not_one_after_another(transactional_db, settings, provider, queue):
    provider.reset()
    session = session_sending_to(provider, settings, transport="slow-side-by-side", TIMEOUT=5)
    ids = campaign(session, 20, in_seconds(-1))
    for n in range(20):
        provider.script(f"campaign {n}", Reply(body={"messageId": f"slow-{n}"}, delay=0.5))

    services.messages_send_due(until=tick_end(timezone.now()), worker="test")

    arrivals = sorted(r.at for r in provider.received)
    assert len(arrivals) == 20
    assert arrivals[-1] - arrivals[0] < 0.5  # every send was in flight before the first one was answered
    assert set(ScheduledMessage.objects.filter(pk__in=ids).values_list("status", flat=True)) == {MessageStatus.SENT}


def test_a_slow_batch_hands_back_what_it_could_not_start_in_time(transactional_db, settings, provider, queue):
    provider.reset()
    settings.SEND_TIME_LIMIT = 3  # a batch starts sends for a third of it: 1 s
    settings.SEND_CONCURRENCY = 1  # one at a time: the third would start 1.2 s in
    session = session_sending_to(provider, settings, transport="slow-provider", TIMEOUT=5)
    messages = [schedule_via_services(session, in_hours(1), text=f"slow {n}") for n in range(3)]
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
    assert handed_back.events.last().detail == "batch ran out of time; handed over again"


def sending_queries(settings, provider, size, transport):
    session = session_sending_to(provider, settings, transport=transport)
    campaign(session, size, in_seconds(-1))
    with CaptureQueriesContext(connection) as queries:
        services.messages_send_due(until=tick_end(timezone.now()), worker="test")
    assert ScheduledMessage.objects.filter(session=session, status=MessageStatus.SENT).count() == size
    return len(queries)


def test_a_batch_is_claimed_and_recorded_in_as_many_statements_for_50_messages_as_for_5(
    transactional_db, settings, provider, queue
):
    provider.reset()
    assert sending_queries(settings, provider, 50, "fifty") == sending_queries(settings, provider, 5, "five")


def test_a_batchs_webhooks_are_written_together_and_posted_side_by_side(
    transactional_db, settings, provider, receiver, queue, django_capture_on_commit_callbacks
):
    provider.reset()
    receiver.reset()
    session = session_sending_to(provider, settings, transport="hooked-batch")
    session.webhook_url = receiver.url
    session.save()
    ids = campaign(session, 10, in_seconds(-1))
    with django_capture_on_commit_callbacks(execute=True):
        services.messages_send_due(until=tick_end(timezone.now()), worker="test")

    [task] = [task for task in queue.tasks() if task.name == "scheduling.deliver_webhooks"]
    assert sorted(delivery_id for delivery_id, _ in task.args[0]) == sorted(
        WebhookDelivery.objects.filter(message_id__in=ids).values_list("id", flat=True)
    )
    services.webhooks_deliver(batch=[tuple(pair) for pair in task.args[0]])

    assert sorted(r.body["scheduledId"] for r in receiver.received) == sorted(ids)
    assert all(r.headers.get("webhook-signature") for r in receiver.received)
    assert set(WebhookDelivery.objects.filter(message_id__in=ids).values_list("status", flat=True)) == {"delivered"}


def test_a_tick_task_leaves_a_paused_sessions_messages_for_after_it_resumes(
    transactional_db, settings, provider, queue
):
    provider.reset()
    session = session_sending_to(provider, settings, transport="paused-tick")
    [message_id] = campaign(session, 1, in_seconds(-1))
    ScheduledMessage.objects.filter(pk=message_id).update(handed_over_at=timezone.now())
    services.session_pause(session=session)

    services.messages_send_due(until=tick_end(timezone.now()), worker="test")
    assert ScheduledMessage.objects.get(pk=message_id).status == MessageStatus.PENDING
    services.session_resume(session=session)

    assert ScheduledMessage.objects.get(pk=message_id).handed_over_at is None  # the pump hands it over now
    assert provider.received == []


def test_a_campaign_due_now_is_not_sent_before_its_time(new_session, queue):
    due = datetime.now(UTC) + timedelta(seconds=30)
    campaign(new_session.session, 3, due)

    services.messages_send_due(until=due, worker="test")  # a task run early, by a worker whose clock is behind

    assert set(ScheduledMessage.objects.values_list("status", flat=True)) == {MessageStatus.PENDING}
