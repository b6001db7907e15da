"""GET, DELETE and PATCH of scheduled messages: lists, pages, cancel, reschedule, history."""

import random
from datetime import UTC, datetime

import pytest

from scheduling import services
from scheduling.models import MessageEvent, ScheduledMessage

from ..factories import as_seed, campaign, in_hours, schedule_via_api, schedule_via_services, set_status

CANCELLED = {"success": True, "message": "Scheduled message cancelled successfully"}


def ids(response):
    return [message["id"] for message in response.json()["scheduled"]]


# --- GET list ---------------------------------------------------------------------------------


def test_it_lists_nothing_for_a_new_session(api, scheduled_url):
    response = api.get(scheduled_url)

    assert response.status_code == 200
    assert response.json() == {"success": True, "scheduled": [], "next": None}


def test_it_lists_messages_in_the_seeds_shape(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url, text="This is a scheduled message!")

    response = api.get(scheduled_url)

    assert response.json() == {"success": True, "scheduled": [message], "next": None}


def test_it_lists_messages_by_scheduled_time_not_by_creation(api, scheduled_url):
    hours = [5, 1, 4, 2, 3]
    created = {hour: schedule_via_api(api, scheduled_url, in_hours(hour))["id"] for hour in hours}

    response = api.get(scheduled_url)

    assert ids(response) == [created[hour] for hour in sorted(hours)]


def test_it_lists_only_the_sessions_own_messages(api, scheduled_url):
    other = services.session_create(name="other").session
    schedule_via_services(other, text="Not yours")
    mine = schedule_via_api(api, scheduled_url)

    response = api.get(scheduled_url)

    assert ids(response) == [mine["id"]]


def test_it_filters_the_list_by_status(api, scheduled_url):
    kept = [schedule_via_api(api, scheduled_url, in_hours(hour))["id"] for hour in (1, 3)]
    dropped = schedule_via_api(api, scheduled_url, in_hours(2))["id"]
    api.delete(f"{scheduled_url}/{dropped}")

    response = api.get(scheduled_url, {"status": "pending"})

    assert response.status_code == 200
    assert ids(response) == kept


def test_it_lists_cancelled_messages_under_their_status(api, scheduled_url):
    schedule_via_api(api, scheduled_url, in_hours(1))
    dropped = schedule_via_api(api, scheduled_url, in_hours(2))["id"]
    api.delete(f"{scheduled_url}/{dropped}")

    response = api.get(scheduled_url, {"status": "cancelled"})

    assert ids(response) == [dropped]


@pytest.mark.parametrize("status", ["sent", "failed"])
def test_it_filters_by_the_seeds_other_statuses(api, scheduled_url, status):
    schedule_via_api(api, scheduled_url, in_hours(1))
    done = schedule_via_api(api, scheduled_url, in_hours(2))["id"]
    set_status(done, status)

    response = api.get(scheduled_url, {"status": status})

    assert ids(response) == [done]


def test_it_treats_an_empty_status_filter_as_no_filter(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url)

    response = api.get(scheduled_url, {"status": ""})

    assert ids(response) == [message["id"]]


def test_it_pages_with_limit_and_next_links_until_next_is_null(api, scheduled_url):
    expected = [schedule_via_api(api, scheduled_url, in_hours(hour))["id"] for hour in (1, 2, 3, 4, 5)]

    first = api.get(scheduled_url, {"limit": 2})
    second = api.get(first.json()["next"])
    third = api.get(second.json()["next"])

    assert [ids(first), ids(second), ids(third)] == [expected[0:2], expected[2:4], expected[4:5]]
    assert third.json()["next"] is None


def test_it_gives_a_next_link_on_a_full_page(api, scheduled_url):
    for hour in (1, 2, 3):
        schedule_via_api(api, scheduled_url, in_hours(hour))

    response = api.get(scheduled_url, {"limit": 2})

    assert response.json()["next"].startswith(f"http://testserver{scheduled_url}?")
    assert "limit=2" in response.json()["next"]


def test_it_pages_through_messages_due_at_the_same_time_without_loss_or_repeat(api, scheduled_url):
    when = in_hours(1)
    created = {schedule_via_api(api, scheduled_url, when)["id"] for _ in range(5)}

    seen, url = [], f"{scheduled_url}?limit=2"
    while url:
        page = api.get(url).json()
        seen += [message["id"] for message in page["scheduled"]]
        url = page["next"]

    assert sorted(seen) == sorted(created)


def test_it_keeps_the_status_filter_on_the_next_page(api, scheduled_url):
    pending = [schedule_via_api(api, scheduled_url, in_hours(hour))["id"] for hour in (1, 3, 5)]
    for hour in (2, 4):
        api.delete(f"{scheduled_url}/{schedule_via_api(api, scheduled_url, in_hours(hour))['id']}")

    first = api.get(scheduled_url, {"status": "pending", "limit": 2})
    second = api.get(first.json()["next"])

    assert ids(first) + ids(second) == pending
    assert second.json()["next"] is None


def test_it_refuses_an_invalid_cursor(api, scheduled_url):
    response = api.get(scheduled_url, {"cursor": "not-a-cursor"})

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": "cursor: Invalid cursor.",
        "details": {"cursor": ["Invalid cursor."]},
    }


# --- GET one ----------------------------------------------------------------------------------


def test_it_shows_one_message_as_it_was_created(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url, text="This is a scheduled message!")

    response = api.get(f"{scheduled_url}/{message['id']}")

    assert response.status_code == 200
    assert response.json() == {"success": True, "scheduled": message}


def test_it_answers_404_for_an_unknown_message(api, scheduled_url):
    response = api.get(f"{scheduled_url}/sched_doesnotexist")

    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Scheduled message not found"}


def test_it_answers_404_for_a_message_of_another_session(api, scheduled_url):
    other = services.session_create(name="other").session
    theirs = schedule_via_services(other, text="Not yours")

    response = api.get(f"{scheduled_url}/{theirs.id}")

    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Scheduled message not found"}


def test_it_shows_when_a_sent_message_went_out_and_its_provider_id(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url)
    sent_at = datetime(2026, 2, 1, 15, 0, 0, 250000, tzinfo=UTC)
    ScheduledMessage.objects.filter(pk=message["id"]).update(
        status="sent",
        sent_at=sent_at,
        provider_message_id="3EB0ABC123456789",
        attempts=1,
    )

    response = api.get(f"{scheduled_url}/{message['id']}")

    assert response.json()["scheduled"] == {
        **message,
        "status": "sent",
        "sentAt": "2026-02-01T15:00:00.250Z",
        "result": {"messageId": "3EB0ABC123456789"},
        "attempts": 1,
    }


def test_it_shows_why_a_failed_message_failed(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url)
    ScheduledMessage.objects.filter(pk=message["id"]).update(
        status="failed", last_error="Recipient not on WhatsApp", attempts=1
    )

    response = api.get(f"{scheduled_url}/{message['id']}")

    assert response.json()["scheduled"] == {
        **message,
        "status": "failed",
        "error": "Recipient not on WhatsApp",
        "attempts": 1,
    }


# --- DELETE (cancel) --------------------------------------------------------------------------


def test_it_cancels_a_pending_message(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url)

    response = api.delete(f"{scheduled_url}/{message['id']}")

    assert response.status_code == 200
    assert response.json() == CANCELLED


def test_it_shows_a_cancelled_message_as_cancelled(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url)
    api.delete(f"{scheduled_url}/{message['id']}")

    response = api.get(f"{scheduled_url}/{message['id']}")

    assert response.json() == {"success": True, "scheduled": {**message, "status": "cancelled"}}


def test_it_answers_a_repeated_cancel_like_the_first(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url)
    api.delete(f"{scheduled_url}/{message['id']}")

    response = api.delete(f"{scheduled_url}/{message['id']}")

    assert response.status_code == 200
    assert response.json() == CANCELLED
    assert api.get(f"{scheduled_url}/{message['id']}").json()["scheduled"]["status"] == "cancelled"


def test_it_answers_404_when_cancelling_an_unknown_message(api, scheduled_url):
    response = api.delete(f"{scheduled_url}/sched_doesnotexist")

    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Scheduled message not found"}


@pytest.mark.parametrize("status", ["sent", "failed", "sending"])
def test_it_refuses_to_cancel_a_message_that_is_no_longer_pending(api, scheduled_url, status):
    message = schedule_via_api(api, scheduled_url)
    set_status(message["id"], status)

    response = api.delete(f"{scheduled_url}/{message['id']}")

    assert response.status_code == 409
    assert response.json() == {
        "success": False,
        "error": f"Cannot cancel a message with status '{status}'; only pending messages can be cancelled",
    }
    assert ScheduledMessage.objects.get(pk=message["id"]).status == status


def test_it_records_scheduling_and_cancelling_in_the_history(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url)
    api.delete(f"{scheduled_url}/{message['id']}")
    api.delete(f"{scheduled_url}/{message['id']}")

    history = MessageEvent.objects.filter(message_id=message["id"]).values_list(
        "from_status", "to_status", "actor", "detail"
    )

    assert list(history) == [("", "pending", "api", "scheduled"), ("pending", "cancelled", "api", "cancelled")]


# --- PATCH (reschedule) -----------------------------------------------------------------------


def test_it_reschedules_a_pending_message(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url, in_hours(1))
    later = as_seed(in_hours(6))

    response = api.patch(f"{scheduled_url}/{message['id']}", {"scheduledAt": later}, format="json")

    assert response.status_code == 200
    assert response.json() == {"success": True, "scheduled": {**message, "scheduledAt": later}}


def test_it_changes_the_recipient_and_text_of_a_pending_message(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url, in_hours(1))

    response = api.patch(
        f"{scheduled_url}/{message['id']}", {"to": "+1 415 555 2671", "text": "Changed"}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {"success": True, "scheduled": {**message, "to": "14155552671", "text": "Changed"}}


def test_it_keeps_the_new_time_when_read_again(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url, in_hours(1))
    later = as_seed(in_hours(6))
    api.patch(f"{scheduled_url}/{message['id']}", {"scheduledAt": later}, format="json")

    response = api.get(f"{scheduled_url}/{message['id']}")

    assert response.json() == {"success": True, "scheduled": {**message, "scheduledAt": later}}


def test_it_moves_a_rescheduled_message_in_the_list_order(api, scheduled_url):
    first = schedule_via_api(api, scheduled_url, in_hours(1))["id"]
    second = schedule_via_api(api, scheduled_url, in_hours(2))["id"]

    api.patch(f"{scheduled_url}/{first}", {"scheduledAt": as_seed(in_hours(3))}, format="json")

    assert ids(api.get(scheduled_url)) == [second, first]


def test_it_records_a_reschedule_in_the_history(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url, in_hours(1))

    api.patch(f"{scheduled_url}/{message['id']}", {"scheduledAt": as_seed(in_hours(6))}, format="json")

    history = MessageEvent.objects.filter(message_id=message["id"]).values_list("from_status", "to_status", "detail")
    assert list(history) == [("", "pending", "scheduled"), ("pending", "pending", "edited: scheduled_at")]


def test_it_checks_a_new_time_like_a_new_message(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url, in_hours(1))

    response = api.patch(f"{scheduled_url}/{message['id']}", {"scheduledAt": as_seed(in_hours(-1))}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": "scheduledAt: must not be in the past.",
        "details": {"scheduledAt": ["must not be in the past."]},
    }
    assert api.get(f"{scheduled_url}/{message['id']}").json()["scheduled"] == message


def test_it_refuses_to_reschedule_a_cancelled_message(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url, in_hours(1))
    api.delete(f"{scheduled_url}/{message['id']}")

    response = api.patch(f"{scheduled_url}/{message['id']}", {"scheduledAt": as_seed(in_hours(6))}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "success": False,
        "error": "Cannot change a message with status 'cancelled'; only pending messages can be changed",
    }
    assert api.get(f"{scheduled_url}/{message['id']}").json()["scheduled"] == {**message, "status": "cancelled"}


def test_it_answers_404_when_rescheduling_an_unknown_message(api, scheduled_url):
    response = api.patch(f"{scheduled_url}/sched_doesnotexist", {"scheduledAt": as_seed(in_hours(6))}, format="json")

    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Scheduled message not found"}


def test_it_lists_a_shuffled_batch_in_time_order(api, scheduled_url):
    hours = list(range(1, 9))
    random.Random(7).shuffle(hours)
    by_hour = {hour: schedule_via_api(api, scheduled_url, in_hours(hour))["scheduledAt"] for hour in hours}

    times = [message["scheduledAt"] for message in api.get(scheduled_url).json()["scheduled"]]

    assert times == sorted(by_hour.values())


# --- Long lists: a campaign due at one instant, walked page by page -----------------------------


def walk(api, url, most_pages=200):
    seen, pages = [], 0
    while url and pages < most_pages:
        response = api.get(url)
        assert response.status_code == 200, response.json()
        seen += ids(response)
        url, pages = response.json()["next"], pages + 1
    return seen, url


@pytest.mark.parametrize("limit", [500, None])
def test_it_walks_a_campaign_of_5000_at_one_instant_to_the_end_each_message_once(
    api, scheduled_url, new_session, limit
):
    campaign(new_session.session, 5000, in_hours(1))

    seen, left = walk(api, scheduled_url if limit is None else f"{scheduled_url}?limit={limit}")

    assert left is None
    assert len(seen) == 5000
    assert sorted(seen) == sorted(ScheduledMessage.objects.values_list("id", flat=True))


def test_it_walks_a_campaign_behind_earlier_messages_and_before_later_ones(api, scheduled_url, new_session):
    first = schedule_via_api(api, scheduled_url, in_hours(1))["id"]
    campaign(new_session.session, 1200, in_hours(2))
    last = schedule_via_api(api, scheduled_url, in_hours(3))["id"]

    seen, left = walk(api, f"{scheduled_url}?limit=500")

    assert left is None
    assert (seen[0], seen[-1], len(seen), len(set(seen))) == (first, last, 1202, 1202)


@pytest.mark.parametrize("limit", ["-1", "0", "abc", "1e3", "501", "2.5", "²"])
def test_it_refuses_a_limit_that_is_not_a_whole_number_from_1_to_500(api, scheduled_url, limit):
    response = api.get(scheduled_url, {"limit": limit})

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": "limit: must be a whole number from 1 to 500.",
        "details": {"limit": ["must be a whole number from 1 to 500."]},
    }


@pytest.mark.parametrize("cursor", ["bz0wJnA9Z2FyYmFnZQ==", "cD0yMDI2LTAxLTAx", "AA==", "////", "x" * 3000])
def test_it_refuses_a_crafted_cursor(api, scheduled_url, cursor):
    response = api.get(scheduled_url, {"cursor": cursor})

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": "cursor: Invalid cursor.",
        "details": {"cursor": ["Invalid cursor."]},
    }


# --- PATCH: what can change, and what is refused first -----------------------------------------


@pytest.fixture
def omnimessage(new_session):
    channels = [
        services.ChannelSpec(channel="sms", sender="Shop", content={"type": "text", "text": "by sms"}),
        services.ChannelSpec(channel="viber", sender="Shop", content={"type": "text", "text": "by viber"}),
    ]
    return services.omnimessage_schedule(
        session=new_session.session, to="37255555555", channels=channels, scheduled_at=in_hours(1)
    )


OMNI_CONTENT = (
    "Cannot change the content of an omnimessage here: it is set per channel. Only scheduledAt and to can "
    "change; to send other content, cancel it and schedule a new omnimessage"
)


@pytest.mark.parametrize("change", [{"text": "PATCHED"}, {"type": "image", "media": "https://example.com/a.jpg"}])
def test_it_refuses_to_change_the_content_of_an_omnimessage_and_says_why(api, scheduled_url, omnimessage, change):
    before = api.get(f"{scheduled_url}/{omnimessage.id}").json()

    response = api.patch(f"{scheduled_url}/{omnimessage.id}", change, format="json")

    assert response.status_code == 409
    assert response.json() == {"success": False, "error": OMNI_CONTENT}
    assert api.get(f"{scheduled_url}/{omnimessage.id}").json() == before
    assert [c.content["text"] for c in omnimessage.channels.all()] == ["by sms", "by viber"]


def test_it_reschedules_an_omnimessage_and_changes_its_recipient(api, scheduled_url, omnimessage):
    later = as_seed(in_hours(6))

    response = api.patch(
        f"{scheduled_url}/{omnimessage.id}", {"scheduledAt": later, "to": "+37255555556"}, format="json"
    )

    assert response.status_code == 200
    assert (response.json()["scheduled"]["scheduledAt"], response.json()["scheduled"]["to"]) == (later, "37255555556")
    assert [c.content["text"] for c in omnimessage.channels.all()] == ["by sms", "by viber"]


@pytest.mark.parametrize("status", ["sent", "failed", "cancelled", "sending"])
def test_it_refuses_to_edit_a_message_that_is_no_longer_pending_with_409_even_when_its_time_has_passed(
    api, scheduled_url, status
):
    message = schedule_via_api(api, scheduled_url, in_hours(1))
    ScheduledMessage.objects.filter(pk=message["id"]).update(
        status=status, scheduled_at=in_hours(-2), due_at=in_hours(-2)
    )

    response = api.patch(f"{scheduled_url}/{message['id']}", {"text": "Too late"}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "success": False,
        "error": f"Cannot change a message with status '{status}'; only pending messages can be changed",
    }


def test_it_edits_a_pending_message_whose_retry_is_due_later_without_a_new_time(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url, in_hours(1))
    first_try, retry_at = in_hours(-1), in_hours(0.1)
    ScheduledMessage.objects.filter(pk=message["id"]).update(scheduled_at=first_try, due_at=retry_at, attempts=1)

    response = api.patch(
        f"{scheduled_url}/{message['id']}", {"text": "Edited while waiting for a retry"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["scheduled"]["text"] == "Edited while waiting for a retry"
    assert response.json()["scheduled"]["scheduledAt"] == as_seed(first_try)
    assert ScheduledMessage.objects.get(pk=message["id"]).due_at == retry_at


def test_it_still_checks_a_new_time_of_a_message_waiting_for_a_retry(api, scheduled_url):
    message = schedule_via_api(api, scheduled_url, in_hours(1))
    ScheduledMessage.objects.filter(pk=message["id"]).update(
        scheduled_at=in_hours(-1), due_at=in_hours(0.1), attempts=1
    )

    response = api.patch(f"{scheduled_url}/{message['id']}", {"scheduledAt": as_seed(in_hours(-1))}, format="json")

    assert response.status_code == 400
    assert response.json()["details"] == {"scheduledAt": ["must not be in the past."]}
