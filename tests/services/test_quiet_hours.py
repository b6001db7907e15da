"""Quiet hours: a message falling due inside a session's window waits until it ends. The hold is known when
the message is made (it is not claimed only to be put back), and a tick's task holds what quiet hours
cover by the time it falls due (hours set later); pacing still spaces what comes out at the window's end.
Checked against the real database, Redis and a local provider."""

import time as clock
from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from scheduling import services
from scheduling.models import MessageStatus, ScheduledMessage, Session
from scheduling.quiethours import quiet_until
from scheduling.services.handovers import tick_end

from ..factories import TO, in_hours, in_seconds, schedule_via_services
from .test_dispatch_decisions import session_sending_to

NEW_YORK_NUMBER = "12125551234"  # one zone: America/New_York
TOLL_FREE_NUMBER = "18005551234"  # every North American zone


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def message_of(start="21:00", end="08:00", zone="Europe/Tallinn", *, to=TO, **fields) -> ScheduledMessage:
    session = Session(quiet_start=time.fromisoformat(start), quiet_end=time.fromisoformat(end), quiet_time_zone=zone)
    return ScheduledMessage(session=session, to=to, **fields)


@pytest.mark.parametrize(
    ("at", "until"),
    [
        ("2027-06-01 19:30", "2027-06-02 05:00"),  # 22:30 EEST: until 08:00 EEST the next morning
        ("2027-06-02 04:59", "2027-06-02 05:00"),  # 07:59: a minute to go
        ("2027-06-01 18:00", "2027-06-02 05:00"),  # 21:00 sharp: the window has begun
        ("2027-06-02 05:00", None),  # 08:00 sharp: it has ended
        ("2027-06-01 17:59", None),  # 20:59
        ("2027-03-27 20:30", "2027-03-28 05:00"),  # 22:30 EET; clocks go forward overnight: 08:00 EEST
    ],
)
def test_a_message_due_inside_the_window_waits_until_it_ends_on_the_zones_clock(at, until):
    assert quiet_until(message_of(), utc(at)) == (utc(until) if until else None)


def test_a_window_within_one_day_holds_only_inside_it():
    lunch = message_of("12:00", "13:00", "UTC")

    assert quiet_until(lunch, utc("2027-06-01 12:30")) == utc("2027-06-01 13:00")
    assert quiet_until(lunch, utc("2027-06-01 13:30")) is None


def test_the_recipients_zone_is_each_messages_own():
    new_yorker = message_of(zone="recipient", to=NEW_YORK_NUMBER)

    # 23:00 in New York (EDT): quiet until 08:00 there; the same instant is 06:00 in Tallinn
    assert quiet_until(new_yorker, utc("2027-06-02 03:00")) == utc("2027-06-02 12:00")


@pytest.mark.parametrize("to", [TOLL_FREE_NUMBER, "120363025246125888@g.us"])
def test_a_recipient_whose_zone_cannot_be_told_is_not_held(to):
    assert quiet_until(message_of(zone="recipient", to=to), utc("2027-06-02 03:00")) is None


def test_a_message_that_ignores_quiet_hours_and_an_omnimessage_are_not_held():
    assert quiet_until(message_of(ignore_quiet_hours=True), utc("2027-06-01 20:00")) is None
    assert quiet_until(message_of(channel_count=2), utc("2027-06-01 20:00")) is None


def quiet_now(session, *, until: datetime, zone="UTC"):
    """Quiet hours on `session` from an hour ago until `until` (to the second), on a UTC clock by default."""
    start = (timezone.now() - timedelta(hours=1)).astimezone(UTC).time().replace(microsecond=0)
    services.session_set_quiet_hours(
        session=session, start=start, end=until.astimezone(UTC).time().replace(microsecond=0), time_zone=zone
    )


def test_a_message_made_inside_quiet_hours_is_held_from_the_start_and_its_history_says_until_when(new_session):
    session = new_session.session
    services.session_set_quiet_hours(session=session, start=time(0, 0), end=time(23, 59, 59), time_zone="UTC")
    when = in_hours(1)

    message = schedule_via_services(session, when)

    end = datetime.combine(when.date(), time(23, 59, 59), tzinfo=UTC)
    stored = ScheduledMessage.objects.get(pk=message.pk)
    assert (stored.scheduled_at, stored.due_at) == (when, end)
    assert stored.events.get().detail == f"scheduled; held for quiet hours until {end:%Y-%m-%dT%H:%M:%S}.000Z"


def send_due_now():
    services.messages_send_due(until=tick_end(timezone.now()), worker="test")


def test_a_message_falling_due_in_quiet_hours_set_after_it_was_made_is_held_by_its_tick(
    transactional_db, settings, provider, queue
):
    provider.reset()
    session = session_sending_to(provider, settings, transport="quiet-at-tick")
    held = schedule_via_services(session, in_seconds(-1), text="held")
    loud = schedule_via_services(session, in_seconds(-1), text="loud", ignore_quiet_hours=True)
    end = in_hours(1).replace(microsecond=0)
    quiet_now(session, until=end)

    send_due_now()

    held.refresh_from_db()
    assert (held.status, held.due_at, held.attempts) == (MessageStatus.PENDING, end, 0)
    assert held.events.last().detail == f"held for quiet hours until {end:%Y-%m-%dT%H:%M:%S}.000Z"
    assert ScheduledMessage.objects.get(pk=loud.pk).status == MessageStatus.SENT
    assert [request.body["text"] for request in provider.received] == ["loud"]


def test_messages_coming_out_of_quiet_hours_are_still_paced(transactional_db, settings, provider, queue):
    provider.reset()
    session = session_sending_to(provider, settings, transport="quiet-then-paced")
    session.send_rate = "5/s"
    session.save()
    end = in_seconds(2).replace(microsecond=0)
    quiet_now(session, until=end)
    ids = [schedule_via_services(session, in_seconds(-1), text=f"night {n}").pk for n in range(5)]
    assert set(ScheduledMessage.objects.filter(pk__in=ids).values_list("due_at", flat=True)) == {end}

    clock.sleep(max(0.0, (end - timezone.now()).total_seconds()) + 0.05)
    send_due_now()

    statuses = list(ScheduledMessage.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses.count(MessageStatus.SENT) == 3  # what the batch's 500 ms window holds at 5/s
    assert statuses.count(MessageStatus.PENDING) == 2  # each waits for its slot
    arrivals = sorted(request.at for request in provider.received)
    assert [round(later - earlier, 1) for earlier, later in zip(arrivals, arrivals[1:], strict=False)] == [0.2, 0.2]
