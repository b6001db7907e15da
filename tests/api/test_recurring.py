"""/sessions/{id}/recurring: create, read (with the next occurrences), change, pause, resume, stop."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from scheduling import services
from scheduling.models import RecurringSeries, ScheduledMessage

from ..factories import TO, key_client

INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def recurring_url(new_session):
    return f"/sessions/{new_session.session.id}/recurring"


def create(api, url, **body):
    return api.post(url, {"to": TO, "text": "Standup", "timeZone": "Europe/Tallinn", **body}, format="json")


def next_year() -> int:
    return datetime.now(UTC).year + 1


def test_it_creates_a_weekly_series_and_shows_its_next_five_occurrences_in_utc(api, recurring_url):
    year = next_year()
    response = create(
        api, recurring_url, rrule="FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0", startAt=f"{year}-06-01T00:00:00"
    )

    body = response.json()
    assert response.status_code == 201, body
    series = body["recurring"]
    assert series["id"].startswith("rec_")
    assert {key: series[key] for key in ("to", "text", "rrule", "timeZone", "status", "occurrencesMade")} == {
        "to": TO,
        "text": "Standup",
        "rrule": "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0",
        "timeZone": "Europe/Tallinn",
        "status": "active",
        "occurrencesMade": 0,
    }
    assert len(series["nextOccurrences"]) == 5
    for shown in series["nextOccurrences"]:
        assert INSTANT.match(shown)
        when = datetime.fromisoformat(shown)
        assert (when.weekday() in (0, 2), when.hour, when.minute) == (True, 6, 0)  # 09:00 EEST
    assert series["startAt"] == f"{year}-05-31T21:00:00.000Z"
    assert RecurringSeries.objects.get(pk=series["id"]).session_id is not None


def test_a_cron_series_runs_on_its_zones_clock(api, recurring_url):
    response = create(api, recurring_url, cron="0 9 * * 1-5", timeZone="America/New_York")

    series = response.json()["recurring"]
    assert response.status_code == 201
    assert series["cron"] == "0 9 * * 1-5"
    assert {datetime.fromisoformat(at).hour for at in series["nextOccurrences"]} <= {13, 14}  # 09:00 EDT or EST


def test_it_shows_up_to_50_next_occurrences_when_asked(api, recurring_url):
    series = create(api, recurring_url, rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0").json()["recurring"]

    shown = api.get(f"{recurring_url}/{series['id']}", {"occurrences": 50}).json()["recurring"]

    assert len(shown["nextOccurrences"]) == 50
    assert api.get(f"{recurring_url}/{series['id']}", {"occurrences": 51}).status_code == 400


def test_count_limits_the_next_occurrences(api, recurring_url):
    series = create(api, recurring_url, rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0", count=3).json()["recurring"]

    assert (series["count"], len(series["nextOccurrences"])) == (3, 3)


def test_until_limits_the_next_occurrences(api, recurring_url):
    year = next_year()
    series = create(
        api,
        recurring_url,
        rrule="FREQ=DAILY;BYHOUR=9;BYMINUTE=0",
        startAt=f"{year}-01-01T00:00:00",
        until=f"{year}-01-02T09:00:00",
    ).json()["recurring"]

    assert series["nextOccurrences"] == [f"{year}-01-01T07:00:00.000Z", f"{year}-01-02T07:00:00.000Z"]
    assert series["until"] == f"{year}-01-02T07:00:00.000Z"


def test_the_recipients_zone_is_taken_from_the_number(api, recurring_url):
    response = create(api, recurring_url, to="12125551234", cron="0 9 * * *", timeZone="recipient")

    assert response.json()["recurring"]["timeZone"] == "America/New_York"


@pytest.mark.parametrize(
    ("body", "field", "error"),
    [
        ({"rrule": "FREQ=SECONDLY"}, "rrule", "fires more often than once a minute."),
        ({"rrule": "FREQ=MINUTELY;BYSECOND=0,30"}, "rrule", "fires more often than once a minute."),
        (
            {"cron": "* * * * * *"},
            "cron",
            "five fields (minute hour day-of-month month day-of-week), e.g. 0 9 * * 1-5.",
        ),
        ({"rrule": "FREQ=DAILY", "cron": "0 9 * * *"}, "rrule", "give either rrule or cron."),
        ({}, "rrule", "give either rrule or cron."),
        ({"rrule": "FREQ=DAILY;COUNT=3"}, "rrule", "give COUNT as the series' count."),
        ({"rrule": "FREQ=DAILY", "timeZone": "Mars/Olympus"}, "timeZone", '"Mars/Olympus" is not an IANA time zone'),
        ({"rrule": "FREQ=DAILY", "count": 0}, "count", "Ensure this value is greater than or equal to 1."),
        ({"cron": "0 9 30 2 *"}, "cron", "Bad day-of-month"),
    ],
)
def test_a_rule_that_cannot_run_is_refused_and_nothing_is_stored(api, recurring_url, body, field, error):
    response = create(api, recurring_url, **body)

    assert response.status_code == 400
    assert response.json()["details"][field][0].startswith(error), response.json()
    assert RecurringSeries.objects.count() == 0


def test_a_rule_that_names_no_date_that_exists_is_refused_on_the_rule(api, recurring_url):
    response = create(api, recurring_url, rrule="FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30")

    assert response.status_code == 400
    assert response.json()["details"] == {
        "rrule": ["the rule has no occurrence from startAt (or now): it names no date that exists."]
    }
    assert RecurringSeries.objects.count() == 0


def test_a_rule_with_no_occurrence_before_until_is_refused(api, recurring_url):
    year = next_year()
    response = create(
        api,
        recurring_url,
        rrule="FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
        startAt=f"{year}-03-01T00:00:00",
        until=f"{year}-12-31T00:00:00",
    )

    assert response.status_code == 400  # from 1 March to 31 December there is no 29 February
    assert "no occurrence" in response.json()["details"]["until"][0]
    assert RecurringSeries.objects.count() == 0


def test_a_recipient_whose_zone_cannot_be_told_is_refused(api, recurring_url):
    response = create(api, recurring_url, to="18005551234", cron="0 9 * * *", timeZone="recipient")

    assert response.status_code == 400
    assert response.json()["details"]["timeZone"] == [
        "the recipient's time zone cannot be told from its number (none or several); give one."
    ]


def test_it_lists_the_sessions_series_in_pages(api, recurring_url):
    ids = [create(api, recurring_url, cron=f"{n} 9 * * *").json()["recurring"]["id"] for n in range(3)]

    first = api.get(recurring_url, {"limit": 2}).json()
    second = api.get(first["next"]).json()

    assert [s["id"] for s in first["recurring"] + second["recurring"]] == ids
    assert second["next"] is None
    assert all(len(s["nextOccurrences"]) == 5 for s in first["recurring"])


def test_another_sessions_series_is_not_found(api, recurring_url):
    other = services.session_create(name="other")
    series = create(key_client(other.api_key), f"/sessions/{other.session.id}/recurring", cron="0 9 * * *")

    response = api.get(f"{recurring_url}/{series.json()['recurring']['id']}")

    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Recurring series not found"}


def test_a_patch_changes_the_rule_and_shows_the_new_occurrences(api, recurring_url):
    series = create(api, recurring_url, cron="0 9 * * *").json()["recurring"]

    response = api.patch(f"{recurring_url}/{series['id']}", {"rrule": "FREQ=DAILY;BYHOUR=18;BYMINUTE=0"}, format="json")

    changed = response.json()["recurring"]
    assert response.status_code == 200
    assert ("cron" not in changed, changed["rrule"]) == (True, "FREQ=DAILY;BYHOUR=18;BYMINUTE=0")
    assert {datetime.fromisoformat(at).hour for at in changed["nextOccurrences"]} <= {15, 16}


def test_pause_resume_and_delete(api, recurring_url):
    url = f"{recurring_url}/{create(api, recurring_url, cron='0 9 * * *').json()['recurring']['id']}"

    paused = api.post(f"{url}/pause").json()["recurring"]
    resumed = api.post(f"{url}/resume").json()["recurring"]
    stopped = api.delete(url).json()["recurring"]

    assert (paused["status"], paused["nextOccurrences"]) == ("paused", [])
    assert (resumed["status"], len(resumed["nextOccurrences"])) == ("active", 5)
    assert (stopped["status"], stopped["nextOccurrences"]) == ("stopped", [])
    assert api.post(f"{url}/resume").status_code == 409
    assert api.delete(url).status_code == 200  # stopping again is harmless


def test_occurrences_are_listed_with_their_series_id(api, recurring_url, scheduled_url):
    series = create(api, recurring_url, rrule="FREQ=MINUTELY").json()["recurring"]
    services.occurrences_materialise(datetime.now(UTC))

    listed = api.get(scheduled_url, {"recurringId": series["id"]}).json()["scheduled"]

    assert listed and {message["recurringId"] for message in listed} == {series["id"]}
    assert ScheduledMessage.objects.filter(recurring_id=series["id"]).count() == len(listed)
    assert api.get(scheduled_url, {"recurringId": "rec_unknown"}).json()["scheduled"] == []
    first = datetime.fromisoformat(listed[0]["scheduledAt"])
    assert first - datetime.now(UTC) < timedelta(minutes=2)


def test_a_series_started_long_ago_can_still_be_changed(api, recurring_url, new_session):
    old_start = (datetime.now(UTC) - timedelta(days=90)).replace(tzinfo=None, microsecond=0)
    series = services.recurring_create(
        session=new_session.session, to=TO, text="Old", time_zone="UTC", cron="0 9 * * *", start_wall=old_start
    )

    response = api.patch(f"{recurring_url}/{series.pk}", {"text": "Still here"}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["recurring"]["text"] == "Still here"
    assert (
        api.patch(f"{recurring_url}/{series.pk}", {"startAt": old_start.isoformat()}, format="json").status_code == 400
    )
