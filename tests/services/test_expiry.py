"""Where a message past its deadline expires instead of going out: in a tick's task (which expires what it
locked rather than claiming it), on the one-message path, and in the pump's pass when no task comes. Checked in
this process against the real database, the broker's Redis and a local provider."""

from datetime import timedelta

from django.utils import timezone

from scheduling import services
from scheduling.models import MessageStatus, ScheduledMessage, WebhookDelivery
from scheduling.services.handovers import tick_end

from ..factories import in_hours, in_seconds, schedule_via_services
from .test_dispatch_decisions import session_sending_to


def overdue(session, *, due_seconds_ago, expired_seconds_ago, text="late"):
    """A pending message due a while ago whose deadline has passed (or not: a negative expired_seconds_ago)."""
    message = schedule_via_services(session, in_hours(1), text=text)
    now = timezone.now()
    ScheduledMessage.objects.filter(pk=message.pk).update(
        scheduled_at=now - timedelta(seconds=due_seconds_ago),
        due_at=now - timedelta(seconds=due_seconds_ago),
        expires_at=now - timedelta(seconds=expired_seconds_ago),
    )
    return message


def test_a_tick_expires_what_is_past_its_deadline_and_sends_the_rest(transactional_db, settings, provider, queue):
    provider.reset()
    session = session_sending_to(provider, settings, transport="tick-expiry", webhook_url="https://example.com/h")
    late = overdue(session, due_seconds_ago=30, expired_seconds_ago=5, text="too late")
    in_time = overdue(session, due_seconds_ago=1, expired_seconds_ago=-60, text="in time")

    services.messages_send_due(until=tick_end(timezone.now()), worker="test")

    late.refresh_from_db()
    assert (late.status, late.attempts, late.last_error) == (
        MessageStatus.EXPIRED,
        0,
        "Expired: it could not be sent by its deadline (expiresAt)",
    )
    assert late.events.last().detail.startswith("expired: not sent by ")
    assert ScheduledMessage.objects.get(pk=in_time.pk).status == MessageStatus.SENT
    assert [r.body["text"] for r in provider.received] == ["in time"]
    [webhook] = WebhookDelivery.objects.filter(message=late)
    assert (webhook.event, webhook.payload["status"], webhook.payload["error"]) == (
        "message.expired",
        "expired",
        "Expired: it could not be sent by its deadline (expiresAt)",
    )


def test_a_send_whose_deadline_comes_while_it_waits_for_its_pacing_turn_does_not_go(
    transactional_db, settings, provider, queue
):
    provider.reset()
    session = session_sending_to(provider, settings, transport="deadline-while-paced")
    session.send_rate = "5/s"  # the second goes 200 ms after the first
    session.save()
    first = overdue(session, due_seconds_ago=1, expired_seconds_ago=-60, text="first")
    second = overdue(session, due_seconds_ago=1, expired_seconds_ago=-0.15, text="second")

    services.messages_send_due(until=tick_end(timezone.now()), worker="test")

    assert [r.body["text"] for r in provider.received] == ["first"]
    assert ScheduledMessage.objects.get(pk=first.pk).status == MessageStatus.SENT
    second.refresh_from_db()
    assert (second.status, second.attempts) == (MessageStatus.PENDING, 0)
    assert second.events.last().detail == "its deadline came before its send"

    services.messages_send_due(until=tick_end(timezone.now()), worker="test")

    assert ScheduledMessage.objects.get(pk=second.pk).status == MessageStatus.EXPIRED
    assert len(provider.received) == 1


def test_the_one_message_path_expires_instead_of_sending(db, settings, provider):
    provider.reset()
    session = session_sending_to(provider, settings, transport="one-expiry")
    late = overdue(session, due_seconds_ago=10, expired_seconds_ago=1)

    services.message_dispatch(message_id=late.id, version=late.version, worker="test")

    assert ScheduledMessage.objects.get(pk=late.pk).status == MessageStatus.EXPIRED
    assert provider.requests_for(late.id) == []


def test_the_pump_expires_a_message_whose_retry_would_come_after_its_deadline(transactional_db, queue):
    session = services.session_create(name="retrying").session
    waiting = overdue(session, due_seconds_ago=-60, expired_seconds_ago=1)  # its next try is a minute away
    not_yet = overdue(session, due_seconds_ago=-60, expired_seconds_ago=-30)

    services.dispatch_pump_once()

    assert ScheduledMessage.objects.get(pk=waiting.pk).status == MessageStatus.EXPIRED
    assert ScheduledMessage.objects.get(pk=not_yet.pk).status == MessageStatus.PENDING


def test_a_message_sent_or_being_sent_never_expires(transactional_db, queue):
    session = services.session_create(name="in flight").session
    sending = overdue(session, due_seconds_ago=10, expired_seconds_ago=1)
    ScheduledMessage.objects.filter(pk=sending.pk).update(status=MessageStatus.SENDING, lease_until=in_seconds(60))

    services.dispatch_pump_once()

    assert ScheduledMessage.objects.get(pk=sending.pk).status == MessageStatus.SENDING
