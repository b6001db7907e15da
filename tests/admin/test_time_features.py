"""The operators' console for the time features: recurring series (list, pause, resume, stop) and a
session's quiet hours."""

from datetime import datetime, time

from django.contrib.admin.utils import quote
from django.utils.html import escape

from scheduling import services
from scheduling.models import MessageEvent, MessageStatus, RecurringStatus, Session

from ..factories import TO, admin_action
from .test_console import NO_INLINE_FORMS, SESSIONS, shown_messages

SERIES = "/admin/scheduling/recurringseries/"


def daily_series(session):
    return services.recurring_create(
        session=session,
        to=TO,
        text="Standup",
        time_zone="Europe/Tallinn",
        rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
        start_wall=datetime(2027, 3, 1),
    )


def test_it_lists_recurring_series_with_their_rule_and_status(operator, new_session):
    series = daily_series(new_session.session)

    response = operator.get(SERIES)

    page = response.content.decode()
    assert response.status_code == 200
    assert series.id in page and "FREQ=DAILY;BYHOUR=9;BYMINUTE=0" in page and "active" in page


def test_it_pauses_resumes_and_stops_a_series_through_the_services(operator, new_session):
    series = daily_series(new_session.session)
    services.occurrences_materialise(datetime.fromisoformat("2027-03-01T06:59:00+00:00"))
    [occurrence] = series.occurrences.all()

    admin_action(operator, SERIES, "pause", series)
    series.refresh_from_db()
    assert series.status == RecurringStatus.PAUSED
    occurrence.refresh_from_db()
    assert occurrence.status == MessageStatus.CANCELLED
    assert MessageEvent.objects.filter(message=occurrence, actor="admin:boss").exists()

    admin_action(operator, SERIES, "resume", series)
    series.refresh_from_db()
    assert series.status == RecurringStatus.ACTIVE

    response = admin_action(operator, SERIES, "stop", series)
    series.refresh_from_db()
    assert series.status == RecurringStatus.STOPPED
    assert shown_messages(response) == ["1 series stopped."]


def test_it_names_a_series_it_cannot_resume_and_why(operator, new_session):
    series = daily_series(new_session.session)
    services.recurring_stop(series=series)

    response = admin_action(operator, SERIES, "resume", series)

    assert shown_messages(response) == [f"{series.id}: Cannot resume a recurring series with status 'stopped'"]


def test_the_series_page_is_read_only(operator, new_session):
    series = daily_series(new_session.session)

    response = operator.get(f"{SERIES}{quote(series.pk)}/change/")

    assert response.status_code == 200
    assert b'name="_save"' not in response.content


def session_form(**quiet):
    return {"name": "shop", "webhook_url": "", "transport": "default", "active": "on", **quiet, **NO_INLINE_FORMS}


def test_it_sets_a_sessions_quiet_hours(operator, new_session):
    session = new_session.session

    operator.post(
        f"{SESSIONS}{session.pk}/change/",
        session_form(quiet_start="21:00", quiet_end="08:00", quiet_time_zone="recipient"),
    )

    session.refresh_from_db()
    assert (session.quiet_start, session.quiet_end, session.quiet_time_zone) == (time(21), time(8), "recipient")
    assert "21:00–08:00 recipient" in operator.get(SESSIONS).content.decode()


def test_it_refuses_quiet_hours_in_a_zone_that_does_not_exist_or_without_an_end(operator, new_session):
    session = new_session.session

    unknown = operator.post(
        f"{SESSIONS}{session.pk}/change/",
        session_form(quiet_start="21:00", quiet_end="08:00", quiet_time_zone="Moon/Base"),
    )
    half = operator.post(f"{SESSIONS}{session.pk}/change/", session_form(quiet_start="21:00", quiet_time_zone="UTC"))

    assert escape('"Moon/Base" is not an IANA time zone name') in unknown.content.decode()
    assert half.status_code == 200  # the form again, with the constraint's error
    assert Session.objects.get(pk=session.pk).quiet_start is None
