"""Session keys: who may read, schedule and cancel which session's messages."""

import uuid

import pytest
from rest_framework.test import APIClient

from scheduling import services
from scheduling.models import ApiKey, ScheduledMessage, Session

from ..factories import client_with, in_hours, key_client, schedule_via_services

MISSING = {"success": False, "error": "Missing API key: send it as X-API-Key or Authorization: Bearer"}
INVALID = {"success": False, "error": "Invalid or revoked API key"}
SESSION_NOT_FOUND = {"success": False, "error": "Session not found"}


def body():
    return {"to": "919988066776", "text": "Hello", "scheduledAt": in_hours(1).isoformat()}


@pytest.fixture
def message(new_session):
    return schedule_via_services(new_session.session, text="Mine")


@pytest.fixture
def intruder(db):
    """Another session's valid key."""
    return key_client(services.session_create(name="intruder").api_key)


def test_it_refuses_a_request_without_a_key(db, scheduled_url):
    response = APIClient().get(scheduled_url)

    assert response.status_code == 401
    assert response.json() == MISSING


def test_it_tells_the_client_how_to_authenticate(db, scheduled_url):
    response = APIClient().get(scheduled_url)

    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_it_stores_nothing_posted_without_a_key(db, scheduled_url):
    response = APIClient().post(scheduled_url, body(), format="json")

    assert response.status_code == 401
    assert ScheduledMessage.objects.count() == 0


def test_it_asks_for_a_key_before_reading_the_body(db, scheduled_url):
    response = APIClient().post(scheduled_url, "{broken", content_type="application/json")

    assert response.status_code == 401
    assert response.json() == MISSING


def test_it_refuses_a_wrong_key(db, scheduled_url):
    response = key_client("wask_" + "x" * 43).get(scheduled_url)

    assert response.status_code == 401
    assert response.json() == INVALID


def test_it_refuses_a_key_without_the_wask_prefix(db, scheduled_url):
    response = key_client("sk_live_123").get(scheduled_url)

    assert response.status_code == 401
    assert response.json() == INVALID


def test_it_refuses_a_key_that_differs_only_after_its_prefix(new_session, scheduled_url):
    tampered = new_session.api_key[:-1] + ("A" if new_session.api_key[-1] != "A" else "B")

    response = key_client(tampered).get(scheduled_url)

    assert response.status_code == 401
    assert response.json() == INVALID


def test_it_refuses_a_revoked_key(new_session, api, scheduled_url):
    services.api_key_revoke(api_key=ApiKey.objects.get(session=new_session.session))

    response = api.get(scheduled_url)

    assert response.status_code == 401
    assert response.json() == INVALID


def test_it_keeps_accepting_the_other_keys_of_a_session_when_one_is_revoked(new_session, api, scheduled_url):
    first = ApiKey.objects.get(session=new_session.session)
    _, second = services.api_key_create(session=new_session.session, label="second")
    services.api_key_revoke(api_key=first)

    response = key_client(second).get(scheduled_url)

    assert response.status_code == 200


def test_it_accepts_the_key_as_a_bearer_token(new_session, scheduled_url):
    response = client_with(HTTP_AUTHORIZATION=f"Bearer {new_session.api_key}").get(scheduled_url)

    assert response.status_code == 200
    assert response.json() == {"success": True, "scheduled": [], "next": None}


def test_it_accepts_the_bearer_scheme_in_any_case(new_session, scheduled_url):
    response = client_with(HTTP_AUTHORIZATION=f"bearer {new_session.api_key}").get(scheduled_url)

    assert response.status_code == 200


def test_it_refuses_the_key_under_another_scheme(new_session, scheduled_url):
    response = client_with(HTTP_AUTHORIZATION=f"Basic {new_session.api_key}").get(scheduled_url)

    assert response.status_code == 401
    assert response.json() == MISSING


def test_it_schedules_with_a_bearer_token(new_session, scheduled_url):
    response = client_with(HTTP_AUTHORIZATION=f"Bearer {new_session.api_key}").post(
        scheduled_url, body(), format="json"
    )

    assert response.status_code == 201


def test_it_notes_when_a_key_was_last_used(new_session, api, scheduled_url):
    api.get(scheduled_url)

    assert ApiKey.objects.get(session=new_session.session).last_used_at is not None


def test_it_hides_a_session_from_another_sessions_key(intruder, scheduled_url, message):
    response = intruder.get(scheduled_url)

    assert response.status_code == 404
    assert response.json() == SESSION_NOT_FOUND


def test_it_hides_a_message_from_another_sessions_key(intruder, scheduled_url, message):
    response = intruder.get(f"{scheduled_url}/{message.id}")

    assert response.status_code == 404
    assert response.json() == SESSION_NOT_FOUND


def test_it_never_lets_another_sessions_key_cancel_a_message(intruder, scheduled_url, message):
    response = intruder.delete(f"{scheduled_url}/{message.id}")

    assert response.status_code == 404
    assert response.json() == SESSION_NOT_FOUND
    assert ScheduledMessage.objects.get(pk=message.id).status == "pending"


def test_it_never_lets_another_sessions_key_reschedule_a_message(intruder, scheduled_url, message):
    later = in_hours(5).isoformat()

    response = intruder.patch(f"{scheduled_url}/{message.id}", {"scheduledAt": later}, format="json")

    assert response.status_code == 404
    assert ScheduledMessage.objects.get(pk=message.id).scheduled_at == message.scheduled_at


def test_it_never_lets_another_sessions_key_schedule_into_this_session(intruder, scheduled_url, new_session):
    response = intruder.post(scheduled_url, body(), format="json")

    assert response.status_code == 404
    assert response.json() == SESSION_NOT_FOUND
    assert ScheduledMessage.objects.count() == 0


def test_it_answers_a_message_id_of_another_session_through_ones_own_session_as_not_found(intruder, message):
    own_session = Session.objects.get(name="intruder")

    response = intruder.get(f"/sessions/{own_session.id}/scheduled/{message.id}")

    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Scheduled message not found"}


def test_it_answers_404_for_a_session_id_that_is_not_a_uuid(api, message):
    response = api.get("/sessions/not-a-uuid/scheduled")

    assert response.status_code == 404
    assert response.json() == SESSION_NOT_FOUND


def test_it_answers_404_for_a_session_that_does_not_exist(api):
    response = api.get(f"/sessions/{uuid.uuid4()}/scheduled")

    assert response.status_code == 404
    assert response.json() == SESSION_NOT_FOUND


def test_it_finds_the_session_whatever_the_case_of_its_uuid(new_session, api):
    response = api.get(f"/sessions/{str(new_session.session.id).upper()}/scheduled")

    assert response.status_code == 200


def test_it_refuses_the_key_of_an_inactive_session(new_session, api, scheduled_url):
    Session.objects.filter(pk=new_session.session.pk).update(active=False)

    response = api.get(scheduled_url)

    assert response.status_code == 403
    assert response.json() == {"success": False, "error": "This session is disabled"}
