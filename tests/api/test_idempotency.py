"""Idempotency-Key on the creating POSTs: a retry gets the first answer and creates nothing, in both API
styles, however many requests with one key arrive at once (threads against the live server)."""

import json
import threading
import time
import uuid
from datetime import timedelta

import psycopg
import pytest
import requests
from django.db import connection
from messente_api import SMS as Sms
from messente_api import Omnimessage, OmnimessageMessagesInner

from scheduling import services
from scheduling.models import IdempotencyKey, RecurringSeries, ScheduledMessage

from ..factories import as_seed, basic_auth, client_with, in_hours, key_client, messente_client

BODY = {"to": "919988066776", "text": "Once only", "scheduledAt": as_seed(in_hours(1))}


def post(api, url, body=None, key=None, **headers):
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return api.post(url, body if body is not None else BODY, format="json", **headers)


def test_a_retry_gets_the_first_answer_again_and_creates_nothing(api, scheduled_url):
    key = str(uuid.uuid4())

    first = post(api, scheduled_url, key=key)
    again = post(api, scheduled_url, key=key)

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert ScheduledMessage.objects.count() == 1


def test_without_a_key_each_request_creates(api, scheduled_url):
    post(api, scheduled_url)
    post(api, scheduled_url)

    assert ScheduledMessage.objects.count() == 2


def test_the_same_key_with_another_body_is_a_422(api, scheduled_url):
    key = str(uuid.uuid4())
    post(api, scheduled_url, key=key)

    response = post(api, scheduled_url, {**BODY, "text": "Something else"}, key=key)

    assert response.status_code == 422
    assert response.json() == {
        "success": False,
        "error": "This Idempotency-Key was already used with a different request; use a new key for a new request",
    }
    assert ScheduledMessage.objects.count() == 1


def test_the_same_body_spelled_differently_is_the_same_request(api, scheduled_url):
    key = str(uuid.uuid4())
    post(api, scheduled_url, key=key)

    reordered = json.dumps(dict(reversed(list(BODY.items()))), indent=4)
    response = api.generic("POST", scheduled_url, reordered, "application/json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 201
    assert response["Idempotent-Replayed"] == "true"


def test_a_key_over_255_characters_is_a_400_and_nothing_is_stored(api, scheduled_url):
    response = post(api, scheduled_url, key="k" * 256)

    assert response.status_code == 400
    assert response.json() == {"success": False, "error": "Idempotency-Key must be at most 255 characters (it has 256)"}
    assert ScheduledMessage.objects.count() == IdempotencyKey.objects.count() == 0
    assert post(api, scheduled_url, key="k" * 255).status_code == 201


@pytest.mark.parametrize("key", ["", "   ", '""', "caf\u00e9"])
def test_an_empty_or_non_ascii_key_is_a_400(api, scheduled_url, key):
    response = post(api, scheduled_url, key=key)

    assert response.status_code == 400
    assert response.json()["error"].startswith("Idempotency-Key must")
    assert ScheduledMessage.objects.count() == 0


def test_a_structured_field_string_is_the_same_key_as_its_bare_text(api, scheduled_url):
    """The IETF draft quotes the key ("…"); Stripe's clients send it bare."""
    post(api, scheduled_url, key='"order-1234"')

    response = post(api, scheduled_url, key="order-1234")

    assert response["Idempotent-Replayed"] == "true"
    assert ScheduledMessage.objects.count() == 1


def test_a_refused_request_frees_its_key_for_the_corrected_one(api, scheduled_url):
    key = str(uuid.uuid4())

    refused = post(api, scheduled_url, {**BODY, "text": ""}, key=key)
    corrected = post(api, scheduled_url, key=key)

    assert refused.status_code == 400
    assert corrected.status_code == 201
    assert not corrected.has_header("Idempotent-Replayed")


def test_a_key_belongs_to_one_session(api, scheduled_url):
    other = services.session_create(name="other")
    key = str(uuid.uuid4())
    post(api, scheduled_url, key=key)

    response = post(key_client(other.api_key), f"/sessions/{other.session.id}/scheduled", key=key)

    assert response.status_code == 201
    assert not response.has_header("Idempotent-Replayed")
    assert ScheduledMessage.objects.count() == 2


def test_a_key_is_forgotten_after_its_time(api, scheduled_url, settings):
    settings.IDEMPOTENCY_KEY_TTL = timedelta(0)
    key = str(uuid.uuid4())
    post(api, scheduled_url, key=key)

    response = post(api, scheduled_url, key=key)

    assert response.status_code == 201
    assert not response.has_header("Idempotent-Replayed")
    assert ScheduledMessage.objects.count() == 2


def test_the_pump_purges_keys_past_their_time(api, scheduled_url, settings):
    settings.IDEMPOTENCY_KEY_TTL = timedelta(0)
    post(api, scheduled_url, key="old")

    services.dispatch_pump_once()

    assert not IdempotencyKey.objects.exists()


# --- The Messente-compatible API ---------------------------------------------------------------------------

OMNIMESSAGE = {"to": "+37255555555", "messages": [{"channel": "sms", "text": "hi"}]}


def test_an_omnimessage_retry_gets_the_first_answer(account):
    messente = client_with(HTTP_AUTHORIZATION=basic_auth(account.api_username, account.api_password))

    first = post(messente, "/v1/omnimessage", OMNIMESSAGE, key="om-1")
    again = post(messente, "/v1/omnimessage", OMNIMESSAGE, key="om-1")
    other = post(messente, "/v1/omnimessage", {**OMNIMESSAGE, "to": "+37255555556"}, key="om-1")

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert other.status_code == 422
    assert other.json() == {
        "errors": [
            {
                "title": "Invalid data",
                "detail": "This Idempotency-Key was already used with a different request; use a new key for a new "
                "request",
                "code": "105",
                "source": None,
            }
        ]
    }
    assert ScheduledMessage.objects.count() == 1


def test_a_bulk_retry_gets_the_first_answer(account):
    messente = client_with(HTTP_AUTHORIZATION=basic_auth(account.api_username, account.api_password))
    bulk = {"messages": [OMNIMESSAGE, {**OMNIMESSAGE, "to": "nope"}]}

    first = post(messente, "/v1/omnimessages", bulk, key="bulk-1")
    again = post(messente, "/v1/omnimessages", bulk, key="bulk-1")

    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert ScheduledMessage.objects.count() == 1


def test_a_recurring_series_retry_gets_the_first_answer_and_makes_one_series(api, scheduled_url):
    series = {"to": "919988066776", "text": "Standup", "cron": "0 9 * * 1-5", "timeZone": "Europe/Tallinn"}
    url = scheduled_url.replace("/scheduled", "/recurring")

    first = post(api, url, series, key="standup")
    again = post(api, url, series, key="standup")

    assert first.status_code == 201
    assert (again.content, again["Idempotent-Replayed"]) == (first.content, "true")
    assert RecurringSeries.objects.count() == 1


def test_messentes_own_client_retries_safely_with_a_default_header(live_server, account):
    omnimessages, _ = messente_client(live_server, account.api_username, account.api_password)
    omnimessages.api_client.set_default_header("Idempotency-Key", "campaign-42")
    omnimessage = Omnimessage(to="+37255555555", messages=[OmnimessageMessagesInner(Sms(text="hi"))])

    first = omnimessages.send_omnimessage(omnimessage)
    again = omnimessages.send_omnimessage(omnimessage)

    assert again.omnimessage_id == first.omnimessage_id
    assert ScheduledMessage.objects.count() == 1


# --- Requests with one key at the same time (threads against the live server) ------------------------------


def send_at_once(url, headers, count):
    """`count` POSTs of BODY from as many threads, released together; their responses."""
    barrier, responses = threading.Barrier(count), [None] * count

    def one(index):
        barrier.wait()
        responses[index] = requests.post(url, json=BODY, headers=headers, timeout=30)

    threads = [threading.Thread(target=one, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


def test_many_requests_with_one_key_at_once_create_one_message(live_server, new_session):
    url = f"{live_server.url}/sessions/{new_session.session.id}/scheduled"
    headers = {"X-API-Key": new_session.api_key, "Idempotency-Key": str(uuid.uuid4())}

    responses = send_at_once(url, headers, 12)

    created = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    replayed = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    in_use = [r for r in responses if r.status_code == 409]
    assert len(created) == 1
    assert len(created) + len(replayed) + len(in_use) == 12
    assert {r.content for r in replayed} <= {created[0].content}
    assert ScheduledMessage.objects.count() == 1


@pytest.fixture
def slow_database(transactional_db):
    """Holds the history table locked from another connection, as a database under heavy load would: a
    create waits for it (its key held) until the lock is let go."""
    db = connection.settings_dict
    other = psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"])
    other.execute("LOCK TABLE scheduling_messageevent IN EXCLUSIVE MODE")
    yield other
    other.close()


def test_a_request_while_the_first_still_runs_is_a_409_then_the_answer_is_replayed(
    live_server, new_session, slow_database
):
    url = f"{live_server.url}/sessions/{new_session.session.id}/scheduled"
    headers = {"X-API-Key": new_session.api_key, "Idempotency-Key": "slow-1"}
    first = {}
    running = threading.Thread(
        target=lambda: first.update(r=requests.post(url, json=BODY, headers=headers, timeout=30))
    )
    running.start()
    wait_for_key_claim("slow-1")

    meanwhile = requests.post(url, json=BODY, headers=headers, timeout=10)
    slow_database.rollback()  # lets go of the lock: the first request finishes
    running.join(timeout=10)
    afterwards = requests.post(url, json=BODY, headers=headers, timeout=10)

    assert meanwhile.status_code == 409
    assert meanwhile.json() == {
        "success": False,
        "error": "A request with this Idempotency-Key is still being processed; retry once it has finished",
    }
    assert first["r"].status_code == 201
    assert afterwards.status_code == 201
    assert afterwards.content == first["r"].content
    assert afterwards.headers["Idempotent-Replayed"] == "true"
    assert ScheduledMessage.objects.count() == 1


def wait_for_key_claim(key, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not IdempotencyKey.objects.filter(key=key).exists():
        assert time.monotonic() < deadline, "the first request never claimed its key"
        time.sleep(0.02)
