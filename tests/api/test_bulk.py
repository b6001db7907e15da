"""POST /sessions/{id}/scheduled/bulk, the batch it makes, listing it and cancelling what is left of it."""

from datetime import UTC, datetime, time, timedelta

import pytest

from scheduling import services
from scheduling.models import MessageEvent, MessageStatus, ScheduledMessage, WebhookDelivery

from ..factories import as_seed, in_hours, key_client, set_status

WHEN = as_seed(in_hours(1))


def text(n, **more):
    return {"to": "919988066776", "text": f"Hello {n}", "scheduledAt": WHEN, **more}


@pytest.fixture
def bulk_url(new_session):
    return f"/sessions/{new_session.session.id}/scheduled/bulk"


def send_bulk(api, url, messages, **headers):
    return api.post(url, {"messages": messages}, format="json", **headers)


def test_it_schedules_each_message_in_order_as_one_batch(api, bulk_url):
    response = send_bulk(api, bulk_url, [text(1), text(2), text(3)])

    body = response.json()
    stored = ScheduledMessage.objects.filter(batch_id=body["batchId"])
    assert response.status_code == 201
    assert body["success"] is True
    assert body["batchId"].startswith("batch_")
    assert [entry["text"] for entry in body["scheduled"]] == ["Hello 1", "Hello 2", "Hello 3"]
    assert body["scheduled"][0] == {
        "id": body["scheduled"][0]["id"],
        "to": "919988066776",
        "text": "Hello 1",
        "scheduledAt": WHEN,
        "status": "pending",
        "createdAt": body["scheduled"][0]["createdAt"],
        "batchId": body["batchId"],
    }
    assert len({entry["id"] for entry in body["scheduled"]}) == 3
    assert sorted(stored.values_list("id", flat=True)) == sorted(entry["id"] for entry in body["scheduled"])
    assert MessageEvent.objects.filter(message__in=stored, detail=f"scheduled in {body['batchId']}").count() == 3


def test_it_answers_an_invalid_message_in_its_place_and_stores_the_others(api, bulk_url):
    response = send_bulk(api, bulk_url, [text(1), {"to": "919988066776", "scheduledAt": WHEN}, "hello", text(4)])

    entries = response.json()["scheduled"]
    assert response.status_code == 201
    assert entries[1] == {
        "success": False,
        "index": 1,
        "error": "text: This field is required for text messages.",
        "details": {"text": ["This field is required for text messages."]},
    }
    assert entries[2] == {
        "success": False,
        "index": 2,
        "error": "Invalid data. Expected a dictionary, but got str.",
        "details": {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]},
    }
    assert [entries[0]["text"], entries[3]["text"]] == ["Hello 1", "Hello 4"]
    assert ScheduledMessage.objects.count() == 2


def test_a_bulk_of_invalid_messages_is_a_400_with_each_ones_error_and_stores_nothing(api, bulk_url):
    response = send_bulk(api, bulk_url, [{"to": "nobody"}, None])

    body = response.json()
    assert response.status_code == 400
    assert (body["success"], body["error"]) == (False, "No message could be scheduled: every one is invalid.")
    assert [(entry["success"], entry["index"]) for entry in body["scheduled"]] == [(False, 0), (False, 1)]
    assert "batchId" not in body
    assert not ScheduledMessage.objects.exists()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"messages": []}, "messages: This list may not be empty."),
        ({"messages": "hello"}, 'messages: Expected a list of items but got type "str".'),
        ({}, "messages: This field is required."),
    ],
)
def test_it_refuses_a_body_without_a_list_of_messages(api, bulk_url, body, error):
    response = api.post(bulk_url, body, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == error


def test_it_refuses_more_than_the_bulk_maximum(api, bulk_url, settings):
    settings.SCHEDULE_BULK_MAX = 3

    response = send_bulk(api, bulk_url, [text(n) for n in range(4)])

    assert response.status_code == 400
    assert response.json()["error"] == "messages: At most 3 messages in one request."
    assert not ScheduledMessage.objects.exists()


def test_its_body_may_hold_a_thousand_messages_but_no_more_than_its_limit(api, bulk_url, settings):
    big = send_bulk(api, bulk_url, [text(n) for n in range(1000)])
    settings.SCHEDULE_BULK_MAX_BODY_BYTES = 1000
    too_big = send_bulk(api, bulk_url, [text(n) for n in range(20)])

    assert big.status_code == 201
    assert ScheduledMessage.objects.count() == 1000
    assert too_big.status_code == 413
    assert too_big.json() == {"success": False, "error": "Request body too large: the limit is 1000 bytes"}


def test_a_bulk_retry_with_its_idempotency_key_gets_the_first_answer(api, bulk_url):
    first = send_bulk(api, bulk_url, [text(1), text(2)], HTTP_IDEMPOTENCY_KEY="bulk-7")
    again = send_bulk(api, bulk_url, [text(1), text(2)], HTTP_IDEMPOTENCY_KEY="bulk-7")

    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert ScheduledMessage.objects.count() == 2


# --- Listing and cancelling a batch ---------------------------------------------------------------------


@pytest.fixture
def batch(api, bulk_url):
    """A batch of three: its id and its messages' ids."""
    body = send_bulk(api, bulk_url, [text(1), text(2), text(3)]).json()
    return body["batchId"], [entry["id"] for entry in body["scheduled"]]


def test_it_lists_a_batch(api, scheduled_url, batch):
    batch_id, ids = batch
    send_bulk(api, scheduled_url + "/bulk", [text(4)])

    response = api.get(scheduled_url, {"batchId": batch_id})

    assert sorted(entry["id"] for entry in response.json()["scheduled"]) == sorted(ids)


def test_it_refuses_a_malformed_batch_id_in_the_list(api, scheduled_url):
    response = api.get(scheduled_url, {"batchId": "sched_abc"})

    assert response.status_code == 400
    assert response.json()["error"] == "batchId: Invalid batch id: it starts with batch_."


def test_it_cancels_what_is_still_pending_of_a_batch(hooked):
    created, api, url = hooked
    body = send_bulk(api, url + "/bulk", [text(1), text(2), text(3)]).json()
    batch_id, ids = body["batchId"], [entry["id"] for entry in body["scheduled"]]
    set_status(ids[0], MessageStatus.SENT)

    response = api.delete(f"/sessions/{created.session.id}/batches/{batch_id}")

    assert response.status_code == 200
    assert response.json() == {"success": True, "cancelled": 2, "notCancelled": 1}
    statuses = dict(ScheduledMessage.objects.filter(pk__in=ids).values_list("id", "status"))
    assert statuses == {ids[0]: "sent", ids[1]: "cancelled", ids[2]: "cancelled"}
    webhooks = WebhookDelivery.objects.filter(event="message.cancelled")
    assert sorted(webhooks.values_list("message_id", flat=True)) == sorted(ids[1:])  # each its own webhook
    assert api.delete(f"/sessions/{created.session.id}/batches/{batch_id}").json() == {
        "success": True,
        "cancelled": 0,
        "notCancelled": 3,
    }


def test_it_answers_404_for_a_batch_it_does_not_have(api, new_session, batch):
    other = services.session_create(name="other")
    batch_id, _ = batch

    unknown = api.delete(f"/sessions/{new_session.session.id}/batches/batch_nothere")
    malformed = api.delete(f"/sessions/{new_session.session.id}/batches/nope")
    not_theirs = key_client(other.api_key).delete(f"/sessions/{other.session.id}/batches/{batch_id}")

    assert [r.status_code for r in (unknown, malformed, not_theirs)] == [404, 404, 404]
    assert unknown.json() == {"success": False, "error": "Batch not found"}
    assert ScheduledMessage.objects.filter(status="pending").count() == 3


def test_a_bulk_message_may_give_a_local_time_and_is_held_by_quiet_hours_like_any_other(api, bulk_url, new_session):
    services.session_set_quiet_hours(
        session=new_session.session, start=time(0, 0), end=time(23, 59, 59), time_zone="UTC"
    )
    local = (datetime.now(UTC) + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    response = send_bulk(
        api,
        bulk_url,
        [
            text(1),
            {
                "to": "919988066776",
                "text": "Good morning",
                "localTime": local.strftime("%Y-%m-%dT%H:%M:%S"),
                "timeZone": "Asia/Kolkata",
            },
        ],
    )

    body = response.json()
    assert response.status_code == 201, body
    assert body["scheduled"][1]["scheduledAt"] == (local - timedelta(hours=5, minutes=30)).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )
    assert body["scheduled"][1]["timeZone"] == "Asia/Kolkata"
    held = ScheduledMessage.objects.get(pk=body["scheduled"][0]["id"])
    assert held.due_at > held.scheduled_at
    assert held.events.get().detail.startswith(f"scheduled in {body['batchId']}; held for quiet hours until ")
