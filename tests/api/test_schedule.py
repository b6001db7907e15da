"""POST /sessions/{id}/scheduled: what a client sends, what it gets back, what is kept."""

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from scheduling.models import ScheduledMessage

from ..factories import as_seed, in_hours, post_schedule

INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_it_answers_a_text_message_in_the_seeds_shape(api, scheduled_url):
    when = in_hours(1)

    response = post_schedule(
        api, scheduled_url, to="919988066776", text="This is a scheduled message!", scheduledAt=as_seed(when)
    )

    body = response.json()
    assert response.status_code == 201
    assert body == {
        "success": True,
        "scheduled": {
            "id": body["scheduled"]["id"],
            "to": "919988066776",
            "text": "This is a scheduled message!",
            "scheduledAt": as_seed(when),
            "status": "pending",
            "createdAt": body["scheduled"]["createdAt"],
        },
    }


def test_it_gives_the_new_message_an_id_starting_with_sched(api, scheduled_url):
    response = post_schedule(api, scheduled_url, to="919988066776", text="Hi", scheduledAt=as_seed(in_hours(1)))

    assert response.json()["scheduled"]["id"].startswith("sched_")


def test_it_gives_each_message_its_own_id(api, scheduled_url):
    first = post_schedule(api, scheduled_url, to="919988066776", text="Hi", scheduledAt=as_seed(in_hours(1)))
    second = post_schedule(api, scheduled_url, to="919988066776", text="Hi", scheduledAt=as_seed(in_hours(1)))

    assert first.json()["scheduled"]["id"] != second.json()["scheduled"]["id"]


def test_it_stamps_created_at_with_the_current_utc_time(api, scheduled_url):
    before = datetime.now(UTC) - timedelta(seconds=1)

    response = post_schedule(api, scheduled_url, to="919988066776", text="Hi", scheduledAt=as_seed(in_hours(1)))

    created = response.json()["scheduled"]["createdAt"]
    assert INSTANT.match(created)
    assert before <= datetime.fromisoformat(created) <= datetime.now(UTC) + timedelta(seconds=1)


def test_it_stores_the_message_it_reports(api, scheduled_url, new_session):
    when = in_hours(1)

    response = post_schedule(api, scheduled_url, to="919988066776", text="Kept", scheduledAt=as_seed(when))

    stored = ScheduledMessage.objects.get(pk=response.json()["scheduled"]["id"])
    assert (stored.session_id, stored.to, stored.type, stored.text, stored.scheduled_at, stored.status) == (
        new_session.session.id,
        "919988066776",
        "text",
        "Kept",
        when,
        "pending",
    )


def test_it_schedules_an_image_message_with_media_and_caption(api, scheduled_url):
    when = in_hours(1)

    response = post_schedule(
        api,
        scheduled_url,
        to="919988066776",
        type="image",
        media="https://example.com/image.jpg",
        caption="Scheduled image",
        scheduledAt=as_seed(when),
    )

    body = response.json()
    assert response.status_code == 201
    assert body == {
        "success": True,
        "scheduled": {
            "id": body["scheduled"]["id"],
            "to": "919988066776",
            "type": "image",
            "media": "https://example.com/image.jpg",
            "caption": "Scheduled image",
            "scheduledAt": as_seed(when),
            "status": "pending",
            "createdAt": body["scheduled"]["createdAt"],
        },
    }


@pytest.mark.parametrize("kind", ["video", "document"])
def test_it_schedules_the_other_media_types(api, scheduled_url, kind):
    response = post_schedule(
        api,
        scheduled_url,
        to="919988066776",
        type=kind,
        media="http://example.com/file.bin",
        scheduledAt=as_seed(in_hours(1)),
    )

    assert response.status_code == 201
    assert (response.json()["scheduled"]["type"], response.json()["scheduled"]["media"]) == (
        kind,
        "http://example.com/file.bin",
    )


def test_it_accepts_an_explicit_text_type_and_leaves_it_out_of_the_answer(api, scheduled_url):
    response = post_schedule(
        api, scheduled_url, to="919988066776", type="text", text="Hi", scheduledAt=as_seed(in_hours(1))
    )

    assert response.status_code == 201
    assert "type" not in response.json()["scheduled"]


@pytest.mark.parametrize(
    "written",
    ["+91 99880 66776", "+919988066776", "00919988066776", "91-9988-066776", " 919988066776 "],
)
def test_it_normalises_a_phone_number_to_international_digits(api, scheduled_url, written):
    response = post_schedule(api, scheduled_url, to=written, text="Hi", scheduledAt=as_seed(in_hours(1)))

    assert response.status_code == 201
    assert response.json()["scheduled"]["to"] == "919988066776"
    assert ScheduledMessage.objects.get().to == "919988066776"


def test_it_accepts_a_whatsapp_group_id_as_is(api, scheduled_url):
    response = post_schedule(
        api, scheduled_url, to="120363025246125486@g.us", text="Hi group", scheduledAt=as_seed(in_hours(1))
    )

    assert response.status_code == 201
    assert response.json()["scheduled"]["to"] == "120363025246125486@g.us"


def test_it_takes_a_time_written_with_z(api, scheduled_url):
    when = in_hours(2)

    response = post_schedule(
        api, scheduled_url, to="919988066776", text="Hi", scheduledAt=when.strftime("%Y-%m-%dT%H:%M:%SZ")
    )

    assert response.json()["scheduled"]["scheduledAt"] == as_seed(when)


def test_it_honours_an_offset_and_returns_the_time_in_utc(api, scheduled_url):
    # 15:00 in India (+05:30) is 09:30 UTC, as in the seed's timezone section.
    utc = (datetime.now(UTC) + timedelta(days=2)).replace(hour=9, minute=30, second=0, microsecond=0)
    india = utc.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert india.strftime("%H:%M") == "15:00"

    response = post_schedule(api, scheduled_url, to="919988066776", text="Hi", scheduledAt=india.isoformat())

    assert response.json()["scheduled"]["scheduledAt"] == utc.strftime("%Y-%m-%dT09:30:00.000Z")
    assert ScheduledMessage.objects.get().scheduled_at == utc


def test_it_honours_a_negative_offset(api, scheduled_url):
    utc = in_hours(3)
    new_york = utc.astimezone(timezone(timedelta(hours=-5)))

    response = post_schedule(api, scheduled_url, to="919988066776", text="Hi", scheduledAt=new_york.isoformat())

    assert response.json()["scheduled"]["scheduledAt"] == as_seed(utc)


def test_it_reads_a_time_without_offset_as_utc(api, scheduled_url):
    when = in_hours(4)

    response = post_schedule(
        api, scheduled_url, to="919988066776", text="Hi", scheduledAt=when.strftime("%Y-%m-%dT%H:%M:%S")
    )

    assert response.json()["scheduled"]["scheduledAt"] == as_seed(when)


def test_it_returns_times_with_milliseconds_and_z(api, scheduled_url):
    when = in_hours(1).replace(microsecond=123456)

    response = post_schedule(api, scheduled_url, to="919988066776", text="Hi", scheduledAt=when.isoformat())

    assert response.json()["scheduled"]["scheduledAt"] == as_seed(when)
    assert as_seed(when).endswith(".123Z")


def test_it_accepts_a_time_a_few_seconds_past_as_due_now(api, scheduled_url):
    just_past = datetime.now(UTC) - timedelta(seconds=3)

    response = post_schedule(api, scheduled_url, to="919988066776", text="Hi", scheduledAt=just_past.isoformat())

    assert response.status_code == 201


def test_it_accepts_a_time_just_inside_30_days(api, scheduled_url):
    when = datetime.now(UTC) + timedelta(days=30) - timedelta(minutes=1)

    response = post_schedule(api, scheduled_url, to="919988066776", text="Hi", scheduledAt=when.isoformat())

    assert response.status_code == 201


def test_it_keeps_text_exactly_as_sent(api, scheduled_url):
    text = "  Line one\nLine two, with emoji \U0001f680  "

    response = post_schedule(api, scheduled_url, to="919988066776", text=text, scheduledAt=as_seed(in_hours(1)))

    assert response.json()["scheduled"]["text"] == text


def test_it_accepts_text_of_exactly_4096_characters(api, scheduled_url):
    response = post_schedule(api, scheduled_url, to="919988066776", text="x" * 4096, scheduledAt=as_seed(in_hours(1)))

    assert response.status_code == 201


def test_it_files_the_message_under_the_session_of_the_url(api, scheduled_url, new_session):
    post_schedule(api, scheduled_url, to="919988066776", text="Hi", scheduledAt=as_seed(in_hours(1)))

    assert list(new_session.session.messages.values_list("text", flat=True)) == ["Hi"]
