"""`localTime` + `timeZone` in place of `scheduledAt` (POST and PATCH), "recipient" from the number, and
a session's quiet hours through the API."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduling.models import ScheduledMessage

from ..factories import as_seed, in_hours, post_schedule

NEW_YORK = ZoneInfo("America/New_York")


def tomorrow_at_nine(zone=NEW_YORK) -> datetime:
    return (datetime.now(zone) + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)


def test_a_local_time_is_stored_as_its_utc_instant_with_its_zone(api, scheduled_url):
    wall = tomorrow_at_nine()

    response = post_schedule(
        api,
        scheduled_url,
        to="919988066776",
        text="Hi",
        localTime=wall.strftime("%Y-%m-%dT%H:%M:%S"),
        timeZone="America/New_York",
    )

    body = response.json()["scheduled"]
    assert response.status_code == 201, response.json()
    assert body["scheduledAt"] == as_seed(wall.astimezone(UTC))
    assert (body["timeZone"], body["localTime"]) == ("America/New_York", wall.strftime("%Y-%m-%dT%H:%M:%S"))
    stored = ScheduledMessage.objects.get(pk=body["id"])
    assert (stored.scheduled_at, stored.time_zone) == (wall.astimezone(UTC), "America/New_York")


def test_the_recipients_zone_comes_from_a_number_with_exactly_one(api, scheduled_url):
    wall = tomorrow_at_nine()

    response = post_schedule(
        api,
        scheduled_url,
        to="+1 212 555 1234",
        text="Hi",
        localTime=wall.strftime("%Y-%m-%dT%H:%M"),
        timeZone="recipient",
    )

    assert response.json()["scheduled"]["timeZone"] == "America/New_York"
    assert response.json()["scheduled"]["scheduledAt"] == as_seed(wall.astimezone(UTC))


@pytest.mark.parametrize("to", ["18005551234", "120363025246125888@g.us"])
def test_a_recipient_whose_zone_cannot_be_told_is_asked_for_one(api, scheduled_url, to):
    response = post_schedule(
        api,
        scheduled_url,
        to=to,
        text="Hi",
        localTime=tomorrow_at_nine().strftime("%Y-%m-%dT%H:%M"),
        timeZone="recipient",
    )

    assert response.status_code == 400
    assert response.json()["details"] == {
        "timeZone": ["the recipient's time zone cannot be told from its number (none or several); give one."]
    }
    assert ScheduledMessage.objects.count() == 0


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        ({"localTime": "2026-12-24T09:00:00"}, {"timeZone": ["localTime and timeZone go together."]}),
        ({"timeZone": "Europe/Tallinn"}, {"localTime": ["localTime and timeZone go together."]}),
        (
            {"localTime": "2026-12-24T09:00:00+02:00", "timeZone": "Europe/Tallinn"},
            {"localTime": ["must have no offset: the time zone is timeZone's."]},
        ),
        (
            {"localTime": "2026-12-24T09:00:00", "timeZone": "Atlantis/Capital"},
            {"timeZone": ['"Atlantis/Capital" is not an IANA time zone name, e.g. Europe/Tallinn.']},
        ),
        (
            {"localTime": "2020-01-01T09:00:00", "timeZone": "Europe/Tallinn"},
            {"localTime": ["must not be in the past."]},
        ),
        ({"localTime": "9999-12-31T23:00:00", "timeZone": "America/New_York"}, {"localTime": ["is out of range."]}),
    ],
)
def test_a_local_time_that_cannot_be_placed_is_refused(api, scheduled_url, fields, details):
    response = post_schedule(api, scheduled_url, to="919988066776", text="Hi", **fields)

    assert response.status_code == 400
    assert response.json()["details"] == details


def test_scheduled_at_and_local_time_together_are_refused(api, scheduled_url):
    response = post_schedule(
        api,
        scheduled_url,
        to="919988066776",
        text="Hi",
        scheduledAt=as_seed(in_hours(1)),
        localTime=tomorrow_at_nine().strftime("%Y-%m-%dT%H:%M"),
        timeZone="UTC",
    )

    assert response.json()["details"] == {"localTime": ["give either scheduledAt or localTime, not both."]}


def test_a_patch_can_move_a_message_to_a_local_time_and_back(api, scheduled_url):
    created = post_schedule(api, scheduled_url, to="919988066776", text="Hi", scheduledAt=as_seed(in_hours(1)))
    url = f"{scheduled_url}/{created.json()['scheduled']['id']}"
    wall = tomorrow_at_nine(ZoneInfo("Asia/Kolkata"))

    local = api.patch(url, {"localTime": wall.strftime("%Y-%m-%dT%H:%M"), "timeZone": "recipient"}, format="json")
    edited = api.patch(url, {"text": "Hello"}, format="json")
    back = api.patch(url, {"scheduledAt": as_seed(in_hours(2))}, format="json")

    assert local.json()["scheduled"]["timeZone"] in ("Asia/Calcutta", "Asia/Kolkata")
    assert local.json()["scheduled"]["scheduledAt"] == as_seed(wall.astimezone(UTC))
    assert edited.json()["scheduled"]["scheduledAt"] == as_seed(wall.astimezone(UTC))  # its local time is kept
    assert "timeZone" not in back.json()["scheduled"]


def test_quiet_hours_are_set_read_and_cleared(api, new_session):
    url = f"/sessions/{new_session.session.id}/quiet-hours"

    assert api.get(url).json() == {"success": True, "quietHours": None}
    put = api.put(url, {"start": "21:00", "end": "08:00", "timeZone": "recipient"}, format="json")
    assert put.json() == {"success": True, "quietHours": {"start": "21:00", "end": "08:00", "timeZone": "recipient"}}
    assert api.get(url).json() == put.json()
    assert api.delete(url).json() == {"success": True, "quietHours": None}


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ({"start": "21:00", "end": "21:00", "timeZone": "UTC"}, {"end": ["must differ from start."]}),
        (
            {"start": "25:00", "end": "08:00", "timeZone": "UTC"},
            {"start": ['must be a time on a clock, e.g. "21:00".']},
        ),
        ({"start": "21:00", "end": "08:00"}, {"timeZone": ["This field is required."]}),
    ],
)
def test_quiet_hours_that_make_no_sense_are_refused(api, new_session, body, details):
    response = api.put(f"/sessions/{new_session.session.id}/quiet-hours", body, format="json")

    assert response.status_code == 400
    assert response.json()["details"] == details


def test_a_message_inside_quiet_hours_shows_its_requested_time_and_says_it_is_held(api, scheduled_url, new_session):
    api.put(
        f"/sessions/{new_session.session.id}/quiet-hours",
        {"start": "00:00", "end": "23:59:59", "timeZone": "UTC"},
        format="json",
    )
    when = in_hours(1)

    body = post_schedule(api, scheduled_url, to="919988066776", text="Hi", scheduledAt=as_seed(when)).json()

    assert body["scheduled"]["scheduledAt"] == as_seed(when)
    stored = ScheduledMessage.objects.get(pk=body["scheduled"]["id"])
    assert stored.due_at > stored.scheduled_at
    assert "held for quiet hours until" in stored.events.get().detail
    loud = post_schedule(
        api, scheduled_url, to="919988066776", text="Hi", scheduledAt=as_seed(when), ignoreQuietHours=True
    )
    assert loud.json()["scheduled"]["ignoreQuietHours"] is True
    assert ScheduledMessage.objects.get(pk=loud.json()["scheduled"]["id"]).due_at == when
