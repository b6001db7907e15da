"""Recurring series in the database: the pump makes each occurrence an ordinary pending message shortly
before it enters the dispatch horizon, exactly once however many pumps run; count, until, pause, resume,
stop and edits. The pump's clock is passed in, so a series can be taken through days (and clock changes)
in a test's time."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from scheduling import services
from scheduling.models import MessageStatus, RecurringStatus, ScheduledMessage, WebhookDelivery

from ..factories import TO


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def series_of(session, *, start="2027-03-01T09:00", time_zone="UTC", rrule="", cron="", **limits):
    """A text series made as the API makes one: every minute from 1 March 2027, 09:00 UTC, unless told."""
    return services.recurring_create(
        session=session,
        to=TO,
        text="Standup",
        time_zone=time_zone,
        start_wall=datetime.fromisoformat(start),
        rrule=rrule or ("" if cron else "FREQ=MINUTELY"),
        cron=cron,
        **limits,
    )


def made(series) -> list[datetime]:
    return list(series.occurrences.order_by("occurrence_at").values_list("occurrence_at", flat=True))


def pump_at(now: datetime, series=None) -> int:
    count = services.occurrences_materialise(now)
    if series is not None:
        series.refresh_from_db()
    return count


def test_an_occurrence_is_made_shortly_before_it_enters_the_horizon_as_an_ordinary_message(new_session, settings):
    series = series_of(new_session.session, rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0")
    lead = settings.DISPATCH_HORIZON + settings.RECURRING_LEAD

    assert pump_at(utc("2027-03-01 09:00") - lead - timedelta(seconds=1)) == 0
    assert pump_at(utc("2027-03-01 09:00") - lead, series) == 1

    message = series.occurrences.get()
    assert (message.scheduled_at, message.due_at, message.status) == (utc("2027-03-01 09:00"),) * 2 + ("pending",)
    assert (message.to, message.text, message.recurring_id, message.time_zone) == (TO, "Standup", series.pk, "UTC")
    assert message.events.get().detail == f"scheduled: an occurrence of {series.pk}"
    assert series.next_at == utc("2027-03-02 09:00")  # the next one waits: nothing is made days ahead


def test_a_series_makes_each_occurrence_once_however_many_pumps_run_at_once(new_session, transactional_db):
    series = series_of(new_session.session)
    now = utc("2027-03-01 09:00")
    barrier = threading.Barrier(4)

    def one_pump():
        barrier.wait()
        try:
            services.occurrences_materialise(now)
        finally:
            connection.close()

    pumps = [threading.Thread(target=one_pump) for _ in range(4)]
    for pump in pumps:
        pump.start()
    for pump in pumps:
        pump.join()

    occurrences = made(series)
    assert len(occurrences) == len(set(occurrences)) > 0


def test_an_occurrence_made_already_is_never_made_again_even_from_a_series_moved_back(new_session):
    series = series_of(new_session.session)
    pump_at(utc("2027-03-01 09:00"), series)
    first_made = made(series)

    type(series).objects.filter(pk=series.pk).update(next_at=utc("2027-03-01 09:00"))  # as a stale pump would see it
    pump_at(utc("2027-03-01 09:00"), series)

    assert made(series) == first_made


def test_a_series_with_a_count_makes_that_many_and_finishes(new_session):
    series = series_of(new_session.session, count=3)

    pump_at(utc("2027-03-01 09:30"), series)

    assert made(series) == [utc("2027-03-01 09:00"), utc("2027-03-01 09:01"), utc("2027-03-01 09:02")]
    assert (series.status, series.next_at, series.created_count) == (RecurringStatus.FINISHED, None, 3)


def test_a_series_with_until_makes_none_after_it_and_finishes(new_session):
    series = series_of(new_session.session, rrule="FREQ=DAILY", until=utc("2027-03-03 09:00"))

    for day in range(1, 6):
        pump_at(utc(f"2027-03-0{day} 09:00"), series)

    assert made(series) == [utc("2027-03-01 09:00"), utc("2027-03-02 09:00"), utc("2027-03-03 09:00")]
    assert series.status == RecurringStatus.FINISHED


def test_a_spring_forward_occurrence_is_made_right_after_the_change(new_session):
    series = series_of(new_session.session, start="2027-03-14T00:00", time_zone="America/New_York", cron="30 2 * * *")

    pump_at(utc("2027-03-14 07:29"), series)

    [message] = series.occurrences.all()
    assert message.scheduled_at == utc("2027-03-14 07:30")  # 02:30 EST does not exist: 03:30 EDT


def test_occurrences_the_pump_reaches_too_late_are_skipped_and_counted(new_session, settings):
    series = series_of(new_session.session, rrule="FREQ=HOURLY;BYMINUTE=0", count=10)

    pump_at(utc("2027-03-01 12:30"), series)  # the pump was down since before 09:00

    assert made(series) == [utc("2027-03-01 12:00")]  # 09:00, 10:00 and 11:00 were over an hour late
    assert series.created_count == 4


def test_pausing_cancels_the_occurrences_made_and_resuming_goes_on_from_now(new_session, hooked):
    created, _, _ = hooked
    series = series_of(created.session, rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0")
    pump_at(utc("2027-03-01 08:59"), series)
    [first] = series.occurrences.all()

    services.recurring_pause(series=series)
    assert pump_at(utc("2027-03-02 08:59")) == 0

    first.refresh_from_db()
    assert first.status == MessageStatus.CANCELLED
    assert WebhookDelivery.objects.filter(message=first, event="message.cancelled").exists()
    services.recurring_resume(series=series)
    series.refresh_from_db()
    assert series.status == RecurringStatus.ACTIVE
    assert series.next_at == utc("2027-03-01 09:00")  # the first from now on: the cancelled one is not made again
    pump_at(utc("2027-03-02 08:59"), series)
    assert made(series) == [utc("2027-03-01 09:00"), utc("2027-03-02 09:00")]


def test_stopping_cancels_what_is_pending_and_makes_nothing_more(new_session):
    series = series_of(new_session.session)
    pump_at(utc("2027-03-01 09:00"), series)

    services.recurring_stop(series=series)
    pump_at(utc("2027-03-01 10:00"))

    series.refresh_from_db()
    assert series.status == RecurringStatus.STOPPED
    assert set(series.occurrences.values_list("status", flat=True)) == {MessageStatus.CANCELLED}


def test_a_content_change_reaches_the_occurrences_made_and_still_pending(new_session):
    series = series_of(new_session.session, rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0")
    pump_at(utc("2027-03-01 08:59"), series)

    services.recurring_update(series=series, text="Standup moved online")

    [message] = series.occurrences.all()
    assert (message.text, message.status) == ("Standup moved online", MessageStatus.PENDING)
    assert message.events.last().detail == "edited: text"


def test_a_rule_change_cancels_the_occurrences_the_new_rule_does_not_have(new_session):
    series = series_of(new_session.session, rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0")
    pump_at(utc("2027-03-01 08:59"), series)

    services.recurring_update(series=series, rrule="FREQ=DAILY;BYHOUR=10;BYMINUTE=0")
    pump_at(utc("2027-03-01 09:59"), series)

    statuses = dict(series.occurrences.values_list("occurrence_at", "status"))
    assert statuses == {utc("2027-03-01 09:00"): MessageStatus.CANCELLED, utc("2027-03-01 10:00"): "pending"}


@pytest.mark.parametrize("change", [{"text": "x"}, {"rrule": "FREQ=DAILY"}])
def test_a_stopped_series_cannot_be_changed(new_session, change):
    series = series_of(new_session.session)
    services.recurring_stop(series=series)

    with pytest.raises(services.NotAllowed, match="Cannot change a recurring series with status 'stopped'"):
        services.recurring_update(series=series, **change)


def test_an_occurrence_is_cancellable_alone_and_the_series_goes_on(new_session):
    series = series_of(new_session.session)
    pump_at(utc("2027-03-01 09:00"), series)
    first = series.occurrences.order_by("occurrence_at").first()

    services.message_cancel(message=first)
    pump_at(utc("2027-03-01 09:10"), series)

    assert series.status == RecurringStatus.ACTIVE
    assert ScheduledMessage.objects.get(pk=first.pk).status == MessageStatus.CANCELLED
    assert series.occurrences.filter(status=MessageStatus.PENDING).count() > 0


def test_the_pump_keeps_a_series_anchor_near_so_a_long_running_rule_stays_cheap_to_follow(new_session):
    series = series_of(new_session.session, rrule="FREQ=MINUTELY;INTERVAL=7")

    for day in range(1, 4):
        pump_at(utc(f"2027-03-0{day} 10:00"), series)

    # hours behind where the last pass began (2 March, 10:0x), not at 1 March: a search walks hours, not days
    assert "2027-03-02T06:00:00" <= series.anchor_wall <= "2027-03-02T10:00:00"
    times = made(series)
    assert all(
        (later - earlier) % timedelta(minutes=7) == timedelta(0)
        for earlier, later in zip(times, times[1:], strict=False)
    )


def test_an_occurrence_takes_the_series_template_and_the_sessions_max_lateness(new_session, settings):
    session = new_session.session
    session.max_lateness_seconds = 600
    session.save()
    template = {"name": "weekly_reminder", "language": "en_US", "components": []}
    series = series_of(session, rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0")
    services.recurring_update(series=series, type="template", text="", template=template)

    pump_at(utc("2027-03-01 09:00") - settings.DISPATCH_HORIZON - settings.RECURRING_LEAD, series)

    message = series.occurrences.get()
    assert (message.type, message.template) == ("template", template)  # outside the 24-hour window: a template
    assert message.expires_at == utc("2027-03-01 09:10")  # not sent by then, it expires like any message
