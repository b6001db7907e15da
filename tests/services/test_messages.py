"""What a client's or an operator's change does to a message, in this process against the real database
and Redis: when it is handed to the workers, and the exact refusal (a 409 in the API, a notice in the
admin) of a change its status does not allow."""

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from scheduling import handover, services
from scheduling.models import MessageEvent, MessageStatus, ScheduledMessage
from scheduling.services.handovers import tick_end

from ..factories import in_seconds, schedule_via_services, set_status

# --- Handed to the workers at once, or left for the pump -------------------------------------------------
# The test horizon is 3 s (tests/settings.py): a message due within it goes to Celery with the write; a later
# one waits in the database until the pump hands it over as it enters the horizon.


def tick_task(due):
    """The task that sends what is due within the tick of `due`: it starts at the tick's start."""
    until = tick_end(due)
    return ("scheduling.send_due", [until.isoformat()], until - settings.DISPATCH_TICK)


def tick_id(due):
    return handover.due_task_id(tick_end(due))


def waiting(queue):
    return [(task.name, task.args, task.eta) for task in queue.tasks()]


def test_it_hands_a_message_due_within_the_horizon_to_the_workers_at_once(
    new_session, queue, django_capture_on_commit_callbacks
):
    due = in_seconds(2)
    before = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        message = schedule_via_services(new_session.session, due)

    stored = ScheduledMessage.objects.get(pk=message.pk)
    assert before <= stored.handed_over_at <= timezone.now()
    assert stored.task_id == tick_id(due)
    assert waiting(queue) == [tick_task(due)]


def test_it_leaves_a_later_message_to_the_pump_which_hands_it_over_as_it_enters_the_horizon(
    new_session, queue, django_capture_on_commit_callbacks
):
    due = in_seconds(4)

    with django_capture_on_commit_callbacks(execute=True):
        message = schedule_via_services(new_session.session, due)
        services.dispatch_pump_once()

    stored = ScheduledMessage.objects.get(pk=message.pk)
    assert (stored.handed_over_at, stored.task_id, waiting(queue)) == (None, "", [])
    time.sleep(max(0.0, (due - timedelta(seconds=3) - timezone.now()).total_seconds()) + 0.1)
    with django_capture_on_commit_callbacks(execute=True):
        services.dispatch_pump_once()
    assert ScheduledMessage.objects.get(pk=message.pk).handed_over_at is not None
    assert waiting(queue) == [tick_task(due)]


def test_it_hands_a_message_rescheduled_into_the_horizon_over_at_once_as_its_new_version(
    new_session, queue, django_capture_on_commit_callbacks
):
    message = schedule_via_services(new_session.session)
    due = in_seconds(1)

    with django_capture_on_commit_callbacks(execute=True):
        services.message_update(message=message, scheduled_at=due)

    stored = ScheduledMessage.objects.get(pk=message.pk)
    assert (stored.version, stored.task_id) == (2, tick_id(due))
    assert stored.handed_over_at is not None
    assert waiting(queue) == [tick_task(due)]


def test_it_leaves_a_message_rescheduled_beyond_the_horizon_to_the_pump_again(
    new_session, queue, django_capture_on_commit_callbacks
):
    due = in_seconds(2)
    with django_capture_on_commit_callbacks(execute=True):
        message = schedule_via_services(new_session.session, due)
    first_task = tick_task(due)

    with django_capture_on_commit_callbacks(execute=True):
        services.message_update(message=message, scheduled_at=in_seconds(3600))

    stored = ScheduledMessage.objects.get(pk=message.pk)
    assert (stored.version, stored.handed_over_at, stored.task_id) == (2, None, "")
    assert waiting(queue) == [first_task]  # nothing new handed over; that tick's task finds nothing due


@pytest.mark.parametrize(
    ("status", "act"),
    [
        (MessageStatus.PENDING, lambda message: services.message_send_now(message=message, actor="admin:boss")),
        (MessageStatus.FAILED, lambda message: services.message_retry(message=message, actor="admin:boss")),
    ],
    ids=["send now", "retry"],
)
def test_it_hands_a_message_an_operator_sends_now_or_retries_over_at_once(
    new_session, queue, django_capture_on_commit_callbacks, status, act
):
    message = schedule_via_services(new_session.session)
    set_status(message.pk, status)
    message = ScheduledMessage.objects.get(pk=message.pk)
    before = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        act(message)

    stored = ScheduledMessage.objects.get(pk=message.pk)
    assert (stored.status, stored.version, stored.task_id) == (MessageStatus.PENDING, 2, tick_id(stored.due_at))
    assert before <= stored.due_at <= stored.handed_over_at <= timezone.now()
    assert waiting(queue) == [tick_task(stored.due_at)]


# --- What each status refuses, and how it says so ------------------------------------------------------

ACTIONS = {
    "cancel": lambda message: services.message_cancel(message=message, actor="admin:boss"),
    "change": lambda message: services.message_update(message=message, text="Changed"),
    "send now": lambda message: services.message_send_now(message=message, actor="admin:boss"),
    "retry": lambda message: services.message_retry(message=message, actor="admin:boss"),
}
REFUSALS = {
    "cancel": "Cannot cancel a message with status '{status}'; only pending messages can be cancelled",
    "change": "Cannot change a message with status '{status}'; only pending messages can be changed",
    "send now": "Cannot send now a message with status '{status}'; only pending messages can be sent now",
    "retry": "Cannot retry a message with status '{status}'; only failed messages can be retried",
}
REFUSED = [
    *[("cancel", status) for status in ("sending", "sent", "failed")],  # cancelling a cancelled one is harmless
    *[(action, status) for action in ("change", "send now") for status in ("sending", "sent", "cancelled", "failed")],
    *[("retry", status) for status in ("pending", "sending", "sent", "cancelled")],
]


def message_in(session, status):
    """A message in `status`, read back as the API or the admin would have it when asked to act."""
    message = schedule_via_services(session)
    set_status(message.pk, status)
    return ScheduledMessage.objects.get(pk=message.pk)


def as_stored(message):
    stored = ScheduledMessage.objects.get(pk=message.pk)
    return stored.status, stored.version, stored.text, MessageEvent.objects.filter(message=message).count()


@pytest.mark.parametrize(("action", "status"), REFUSED)
def test_it_refuses_what_the_status_does_not_allow_saying_which_status_allows_it(new_session, action, status):
    message = message_in(new_session.session, status)
    before = as_stored(message)

    with pytest.raises(services.NotAllowed) as refused:
        ACTIONS[action](message)

    assert str(refused.value) == REFUSALS[action].format(status=status)
    assert as_stored(message) == before


@pytest.mark.parametrize("action", ["cancel", "change", "send now", "retry"])
def test_it_asks_to_try_again_when_the_message_changed_after_it_was_read(new_session, action):
    status = MessageStatus.FAILED if action == "retry" else MessageStatus.PENDING
    read = message_in(new_session.session, status)
    first = ScheduledMessage.objects.get(pk=read.pk)
    ACTIONS["retry" if action == "retry" else "change"](first)  # another request (an edit, a second retry) wins
    before = as_stored(first)

    with pytest.raises(services.NotAllowed) as refused:
        ACTIONS[action](read)

    assert str(refused.value) == f"Cannot {action} the message: it was changed at the same time, try again"
    assert as_stored(read) == before


def test_it_takes_a_cancel_of_a_message_cancelled_after_it_was_read_as_done(new_session):
    read = message_in(new_session.session, MessageStatus.PENDING)
    services.message_cancel(message=ScheduledMessage.objects.get(pk=read.pk))

    cancelled = services.message_cancel(message=read)

    assert cancelled.status == MessageStatus.CANCELLED
    assert MessageEvent.objects.filter(message=read, to_status=MessageStatus.CANCELLED).count() == 1
