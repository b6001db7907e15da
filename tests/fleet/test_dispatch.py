"""Messages go out on time, once, through a real Celery worker, Redis, PostgreSQL and a local provider.

Timings come from tests/settings.py: a 3 s horizon, a hand-over counted lost 2 s past its time,
an 8 s lease.
"""

import time

import pytest

from scheduling import handover
from scheduling.models import MessageStatus, ScheduledMessage

from .. import support
from ..factories import in_seconds, schedule_via_api
from ..support import Reply

pytestmark = [pytest.mark.dispatch, pytest.mark.rabbitmq]


def read(api, url, message_id):
    return api.get(f"{url}/{message_id}").json()["scheduled"]


def history(message_id, fleet):
    """What to read when a timing assertion fails: the message's transitions and the worker's log."""
    events = ScheduledMessage.objects.get(pk=message_id).events.values_list(
        "created_at", "to_status", "actor", "detail"
    )
    return "\n".join([*map(str, events), *fleet.worker.lines[-15:], *fleet.pump.lines[-15:]])


def wait_for_status(api, url, message_id, status, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        current = read(api, url, message_id)
        if current["status"] == status:
            return current
        time.sleep(0.05)
    return read(api, url, message_id)


def test_it_sends_a_message_due_in_2s_within_1s_of_its_time_exactly_once(dispatch, provider, api, scheduled_url):
    due = in_seconds(2)
    message_id = schedule_via_api(api, scheduled_url, due, text="Hello from the test")["id"]

    received = provider.wait_for(message_id)
    time.sleep(1.5)

    assert len(provider.requests_for(message_id)) == 1
    lateness = received[0].at - due.timestamp()
    assert 0 <= lateness < 1.0, history(message_id, dispatch)
    assert received[0].body == {"id": message_id, "to": "919988066776", "type": "text", "text": "Hello from the test"}
    shown = wait_for_status(api, scheduled_url, message_id, "sent")
    assert shown["status"] == "sent"
    assert shown["result"] == {"messageId": shown["result"]["messageId"]}
    assert shown["result"]["messageId"].startswith("wamid.")


def test_it_never_sends_a_cancelled_message(dispatch, provider, api, scheduled_url):
    message_id = schedule_via_api(api, scheduled_url, in_seconds(2))["id"]

    assert api.delete(f"{scheduled_url}/{message_id}").status_code == 200
    time.sleep(3.5)

    assert provider.requests_for(message_id) == []
    assert read(api, scheduled_url, message_id)["status"] == "cancelled"


def test_it_sends_a_rescheduled_message_at_its_new_time_only(dispatch, provider, api, scheduled_url):
    message_id = schedule_via_api(api, scheduled_url, in_seconds(1.5))["id"]
    new_time = in_seconds(4)

    response = api.patch(f"{scheduled_url}/{message_id}", {"scheduledAt": new_time.isoformat()}, format="json")

    assert response.status_code == 200
    received = provider.wait_for(message_id, timeout=8)
    time.sleep(1)
    assert len(provider.requests_for(message_id)) == 1
    assert 0 <= received[0].at - new_time.timestamp() < 1.0


def test_it_sends_once_with_two_workers_and_a_duplicated_task(dispatch, provider, api, scheduled_url, service_env):
    second = support.worker(service_env, "w2").start()
    try:
        due = in_seconds(2)
        message_id = schedule_via_api(api, scheduled_url, due)["id"]
        message = ScheduledMessage.objects.get(pk=message_id)
        for _ in range(3):
            handover.enqueue_send(message.id, message.version, message.due_at)

        provider.wait_for(message_id)
        time.sleep(1.5)
    finally:
        second.stop()

    assert len(provider.requests_for(message_id)) == 1
    assert read(api, scheduled_url, message_id)["status"] == "sent"


def test_it_still_sends_a_message_after_the_broker_is_flushed(dispatch, provider, api, scheduled_url, broker):
    due = in_seconds(2)
    message_id = schedule_via_api(api, scheduled_url, due)["id"]
    time.sleep(0.5)  # the worker has reserved the ETA task by now

    dispatch.worker.kill()  # nothing survives but the database
    broker.flush()
    dispatch.worker.start()

    received = provider.wait_for(message_id, timeout=15)
    time.sleep(1)
    assert len(provider.requests_for(message_id)) == 1
    assert received[0].at - due.timestamp() < 10, history(
        message_id, dispatch
    )  # 2 s stale + a pump pass + worker start
    assert read(api, scheduled_url, message_id)["status"] == "sent"


def test_it_hands_far_future_messages_over_only_when_they_enter_the_horizon(
    dispatch, provider, api, scheduled_url, broker
):
    due = in_seconds(6)  # beyond the 3 s test horizon
    message_id = schedule_via_api(api, scheduled_url, due)["id"]

    assert ScheduledMessage.objects.get(pk=message_id).handed_over_at is None
    assert broker.waiting() == 0
    received = provider.wait_for(message_id, timeout=10)
    assert received and 0 <= received[0].at - due.timestamp() < 1.0, history(message_id, dispatch)


def test_it_retries_a_temporary_provider_error_and_then_succeeds(dispatch, provider, api, scheduled_url):
    provider.script("flaky", Reply(503, {"error": "busy"}), Reply(429, {"error": "slow down"}, {"Retry-After": "1"}))

    message_id = schedule_via_api(api, scheduled_url, in_seconds(0), text="flaky")["id"]

    shown = wait_for_status(api, scheduled_url, message_id, "sent", timeout=15)
    attempts = provider.requests_for(message_id)
    assert [r.headers["Idempotency-Key"] for r in attempts] == [message_id] * 3
    assert attempts[2].at - attempts[1].at >= 1.0  # Retry-After honoured
    assert shown["status"] == "sent"
    assert shown["attempts"] == 2  # the 429 was the provider's rate limit, not a failed attempt


def test_it_fails_a_permanent_provider_error_at_once_with_the_reason_in_the_api(dispatch, provider, api, scheduled_url):
    provider.script("refused", Reply(400, {"error": "recipient is not on WhatsApp"}))

    message_id = schedule_via_api(api, scheduled_url, in_seconds(0), text="refused")["id"]

    shown = wait_for_status(api, scheduled_url, message_id, "failed")
    assert len(provider.requests_for(message_id)) == 1
    assert shown["status"] == "failed"
    assert shown["error"] == 'Provider refused the message with HTTP 400: {"error": "recipient is not on WhatsApp"}'


def test_it_resends_with_the_same_key_when_a_worker_dies_mid_send(dispatch, provider, api, scheduled_url):
    provider.script("slow", Reply(200, {"messageId": "wamid.slow"}, delay=4))

    message_id = schedule_via_api(api, scheduled_url, in_seconds(0), text="slow")["id"]
    provider.wait_for(message_id)
    dispatch.worker.kill()  # mid-send: the provider got the request, the worker never recorded it
    dispatch.worker.start()

    shown = wait_for_status(api, scheduled_url, message_id, "sent", timeout=20)
    keys = [r.headers["Idempotency-Key"] for r in provider.requests_for(message_id)]
    assert keys == [message_id, message_id]  # the provider can deduplicate: exactly-once effect
    assert shown["status"] == "sent"
    assert (
        ScheduledMessage.objects.get(pk=message_id)
        .events.filter(actor="pump", to_status=MessageStatus.PENDING)
        .exists()
    )


@pytest.mark.parametrize(
    "lead",
    [
        5,  # beyond the 3 s horizon: the pump hands the campaign over, a task per tick
        2,  # inside it: each message is handed over as it is created, and they share their tick's task
    ],
    ids=["handed over by the pump", "created inside the horizon"],
)
def test_a_campaign_due_at_one_instant_goes_out_on_time_once_each_in_batches(
    dispatch, provider, api, scheduled_url, lead
):
    due = in_seconds(lead)
    message_ids = [schedule_via_api(api, scheduled_url, due, text=f"Campaign {n}")["id"] for n in range(40)]
    cancelled = message_ids.pop(7)
    assert api.delete(f"{scheduled_url}/{cancelled}").status_code == 200

    for message_id in message_ids:
        provider.wait_for(message_id)
    time.sleep(1.0)

    for message_id in message_ids:
        received = provider.requests_for(message_id)
        assert len(received) == 1, history(message_id, dispatch)
        assert 0 <= received[0].at - due.timestamp() < 1.0, history(message_id, dispatch)
    assert provider.requests_for(cancelled) == []
    statuses = {read(api, scheduled_url, message_id)["status"] for message_id in message_ids}
    assert statuses == {"sent"}
    claims = ScheduledMessage.objects.get(pk=message_ids[0]).events.filter(to_status=MessageStatus.SENDING)
    assert [event.detail for event in claims] == ["claimed (batch)"]


def test_it_sends_every_message_of_a_bulk_on_time_and_none_of_a_cancelled_batch(dispatch, provider, api, scheduled_url):
    due = in_seconds(2.5)
    bodies = [{"to": "919988066776", "text": f"bulk {n}", "scheduledAt": due.isoformat()} for n in range(50)]
    sent = api.post(f"{scheduled_url}/bulk", {"messages": bodies}, format="json").json()
    kept = api.post(f"{scheduled_url}/bulk", {"messages": bodies[:5]}, format="json").json()
    api.delete(scheduled_url.replace("/scheduled", f"/batches/{kept['batchId']}"))
    ids = [entry["id"] for entry in sent["scheduled"]]

    arrivals = [provider.wait_for(message_id, timeout=15)[0].at for message_id in ids]
    time.sleep(1)

    assert all(len(provider.requests_for(message_id)) == 1 for message_id in ids)
    assert max(arrivals) - due.timestamp() < 2.0
    assert min(arrivals) >= due.timestamp()
    assert all(provider.requests_for(entry["id"]) == [] for entry in kept["scheduled"])


def test_it_hands_a_template_message_to_the_provider_as_a_template(dispatch, provider, api, scheduled_url):
    template = {
        "name": "order_shipped",
        "language": "en_US",
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}],
    }
    body = {"to": "919988066776", "type": "template", "template": template, "scheduledAt": in_seconds(1).isoformat()}
    message_id = api.post(scheduled_url, body, format="json").json()["scheduled"]["id"]

    [received] = provider.wait_for(message_id)

    assert received.body == {"id": message_id, "to": "919988066776", "type": "template", "template": template}
    assert wait_for_status(api, scheduled_url, message_id, "sent")["status"] == "sent"
