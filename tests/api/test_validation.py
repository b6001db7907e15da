"""Bad input: a clear JSON error with the right status, and nothing stored."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import RequestFactory

from scheduling.api import handlers
from scheduling.models import ScheduledMessage

from ..factories import in_hours, key_client, post_schedule


def valid(**changes):
    body = {"to": "919988066776", "text": "This is a scheduled message!", "scheduledAt": in_hours(1).isoformat()}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def field_error(field, message):
    return {"success": False, "error": f"{field}: {message}", "details": {field: [message]}}


def test_it_refuses_malformed_json(api, scheduled_url):
    response = api.post(scheduled_url, '{"to": "919988066776", "text": "Hi",', content_type="application/json")

    assert response.status_code == 400
    assert set(response.json()) == {"success", "error"}
    assert response.json()["success"] is False
    assert response.json()["error"].startswith("Malformed JSON")
    assert ScheduledMessage.objects.count() == 0


def test_it_says_where_the_json_is_broken(api, scheduled_url):
    response = api.post(scheduled_url, "{not json}", content_type="application/json")

    assert response.json() == {
        "success": False,
        "error": "Malformed JSON - Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    }


def test_it_refuses_a_json_value_that_is_not_an_object(api, scheduled_url):
    response = api.post(scheduled_url, json.dumps([valid()]), content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": "Invalid data. Expected a dictionary, but got list.",
        "details": {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]},
    }
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_a_message_without_to(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(to=None))

    assert response.status_code == 400
    assert response.json() == field_error("to", "This field is required.")
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_an_empty_to(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(to=""))

    assert response.status_code == 400
    assert response.json() == field_error("to", "This field may not be blank.")
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_a_phone_number_that_is_not_valid(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(to="12345"))

    assert response.status_code == 400
    assert response.json() == field_error(
        "to",
        '"12345" is not a valid phone number in international format (e.g. 919988066776)'
        " or a group id ending in @g.us.",
    )
    assert ScheduledMessage.objects.count() == 0


@pytest.mark.parametrize("written", ["hello", "9199880667761234567", "abc@g.us", "1203630252461254@s.whatsapp.net"])
def test_it_refuses_other_recipients_that_are_neither_phone_nor_group(api, scheduled_url, written):
    response = post_schedule(api, scheduled_url, **valid(to=written))

    assert response.status_code == 400
    assert list(response.json()["details"]) == ["to"]
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_an_unknown_type(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(type="sticker"))

    assert response.status_code == 400
    assert response.json() == field_error(
        "type", '"sticker" is not a message type; use one of text, image, video, document, template.'
    )
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_a_text_message_without_text(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(text=None))

    assert response.status_code == 400
    assert response.json() == field_error("text", "This field is required for text messages.")
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_a_text_message_with_empty_text(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(text=""))

    assert response.status_code == 400
    assert response.json() == field_error("text", "This field may not be blank.")
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_text_longer_than_4096_characters(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(text="x" * 4097))

    assert response.status_code == 400
    assert response.json() == field_error("text", "Ensure this field has no more than 4096 characters.")
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_an_image_message_without_media(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(type="image", text=None))

    assert response.status_code == 400
    assert response.json() == field_error("media", "This field is required for image messages.")
    assert ScheduledMessage.objects.count() == 0


@pytest.mark.parametrize("media", ["ftp://example.com/image.jpg", "not a url"])
def test_it_refuses_media_that_is_not_an_http_url_with_one_message(api, scheduled_url, media):
    response = post_schedule(api, scheduled_url, **valid(type="image", text=None, media=media))

    assert response.status_code == 400
    assert response.json() == field_error("media", "must be an http(s) URL.")
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_media_that_is_not_a_url_at_all(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(type="image", text=None, media="image.jpg"))

    assert response.status_code == 400
    assert list(response.json()["details"]) == ["media"]
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_media_on_a_text_message(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(media="https://example.com/image.jpg"))

    assert response.status_code == 400
    assert response.json() == field_error(
        "media", "Media needs a media type: set type to one of image, video, document."
    )
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_a_caption_without_media(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(caption="Scheduled image"))

    assert response.status_code == 400
    assert response.json() == field_error("caption", "A caption needs media.")
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_a_caption_longer_than_1024_characters(api, scheduled_url):
    body = valid(type="image", text=None, media="https://example.com/image.jpg", caption="x" * 1025)

    response = post_schedule(api, scheduled_url, **body)

    assert response.status_code == 400
    assert response.json() == field_error("caption", "Ensure this field has no more than 1024 characters.")
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_a_message_without_scheduled_at(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(scheduledAt=None))

    assert response.status_code == 400
    assert response.json() == field_error("scheduledAt", "This field is required.")
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_an_unparseable_scheduled_at(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(scheduledAt="tomorrow at noon"))

    assert response.status_code == 400
    assert response.json() == field_error(
        "scheduledAt", '"tomorrow at noon" is not an ISO 8601 date-time, e.g. 2026-02-01T15:00:00Z.'
    )
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_an_impossible_date(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(scheduledAt="2026-02-30T15:00:00Z"))

    assert response.status_code == 400
    assert list(response.json()["details"]) == ["scheduledAt"]
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_a_scheduled_at_that_is_not_a_string(api, scheduled_url):
    response = post_schedule(api, scheduled_url, **valid(scheduledAt=1769958000))

    assert response.status_code == 400
    assert response.json() == field_error("scheduledAt", "must be an ISO 8601 date-time, e.g. 2026-02-01T15:00:00Z.")
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_a_time_in_the_past(api, scheduled_url):
    past = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()

    response = post_schedule(api, scheduled_url, **valid(scheduledAt=past))

    assert response.status_code == 400
    assert response.json() == field_error("scheduledAt", "must not be in the past.")
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_a_time_more_than_30_days_ahead(api, scheduled_url):
    too_far = (datetime.now(UTC) + timedelta(days=30, minutes=1)).isoformat()

    response = post_schedule(api, scheduled_url, **valid(scheduledAt=too_far))

    assert response.status_code == 400
    assert response.json() == field_error("scheduledAt", "must be at most 30 days in the future.")
    assert ScheduledMessage.objects.count() == 0


def test_it_reports_every_bad_field_at_once(api, scheduled_url):
    response = post_schedule(api, scheduled_url, type="fax")

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": 'to: This field is required; type: "fax" is not a message type; use one of text, image, video, '
        "document, template; scheduledAt: This field is required.",
        "details": {
            "to": ["This field is required."],
            "type": ['"fax" is not a message type; use one of text, image, video, document, template.'],
            "scheduledAt": ["This field is required."],
        },
    }
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_a_body_over_64_kib(api, scheduled_url):
    body = json.dumps(valid(text="x" * (64 * 1024)))

    response = api.post(scheduled_url, body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {"success": False, "error": "Request body too large: the limit is 65536 bytes"}
    assert ScheduledMessage.objects.count() == 0


def test_it_reads_a_body_of_exactly_64_kib(api, scheduled_url):
    body = json.dumps({**valid(), "padding": ""})
    body = json.dumps({**valid(), "padding": "x" * (64 * 1024 - len(body))})
    assert len(body.encode()) == 64 * 1024

    response = api.post(scheduled_url, body, content_type="application/json")

    assert response.status_code == 201


def test_it_refuses_a_body_that_is_not_json(api, scheduled_url):
    response = api.post(scheduled_url, "to=919988066776&text=Hi", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert response.json() == {
        "success": False,
        "error": 'Unsupported media type "application/x-www-form-urlencoded" in request.',
    }
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_plain_text(api, scheduled_url):
    response = api.post(scheduled_url, json.dumps(valid()), content_type="text/plain")

    assert response.status_code == 415
    assert response.json() == {"success": False, "error": 'Unsupported media type "text/plain" in request.'}
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_an_unknown_status_filter(api, scheduled_url):
    response = api.get(scheduled_url, {"status": "delivered"})

    assert response.status_code == 400
    assert response.json() == field_error(
        "status", '"delivered" is not a status; use one of pending, sending, sent, cancelled, failed, expired.'
    )


@pytest.mark.parametrize("written", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_it_refuses_a_time_at_the_edge_of_the_calendar_as_bad_input(api, scheduled_url, written):
    api.raise_request_exception = False

    response = post_schedule(api, scheduled_url, **valid(scheduledAt=written))

    assert response.status_code == 400
    assert list(response.json()["details"]) == ["scheduledAt"]
    assert ScheduledMessage.objects.count() == 0


@pytest.mark.parametrize(
    "media",
    [
        "http://127.0.0.1/a.jpg",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/x.png",
        "http://localhost/a.jpg",
        "http://[::1]/a.jpg",
    ],
)
def test_it_refuses_media_on_an_internal_address(api, scheduled_url, settings, media):
    settings.WEBHOOK_ALLOW_PRIVATE = False

    response = post_schedule(api, scheduled_url, **valid(type="image", media=media, text=None))

    assert response.status_code == 400
    assert response.json()["details"] == {"media": ["must not point to a private, loopback or link-local address."]}
    assert ScheduledMessage.objects.count() == 0


# --- What used to be a 500 -----------------------------------------------------------------------------


def test_it_refuses_deeply_nested_json_with_400(api, scheduled_url):
    response = api.post(scheduled_url, "[" * 30_000, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"success": False, "error": "Malformed JSON - nested more than 32 levels deep"}


def test_it_refuses_well_formed_json_nested_too_deep_with_400(api, scheduled_url):
    body = json.dumps({**valid(), "text": 1})[:-1] + ', "extra": ' + "[" * 100 + "]" * 100 + "}"

    response = api.post(scheduled_url, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"success": False, "error": "Malformed JSON - nested more than 32 levels deep"}
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_a_body_over_djangos_own_limit_with_the_json_413(api, scheduled_url):
    response = api.post(scheduled_url, json.dumps(valid(text="x" * 3_000_000)), content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {"success": False, "error": "Request body too large: the limit is 65536 bytes"}


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize("message_id", ["sched_\x00x", "sched_%00x", "\x00", "sched_" + "x" * 300])
def test_it_answers_404_for_a_nul_or_junk_message_id(api, scheduled_url, method, message_id):
    response = getattr(api, method)(
        f"{scheduled_url}/{message_id}", {"text": "x"} if method == "patch" else None, format="json"
    )

    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Scheduled message not found"}


@pytest.mark.parametrize("key", ["wask_\x00" + "x" * 42, "wask_" + "x" * 42 + "\x00", "\x00"])
def test_it_refuses_a_key_with_a_nul_with_401(new_session, scheduled_url, key):
    response = key_client(key).get(scheduled_url)

    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "Invalid or revoked API key"}


@pytest.mark.parametrize("field", ["text", "to", "caption"])
def test_it_refuses_a_number_where_text_belongs(api, scheduled_url, field):
    body = valid(type="image", media="https://example.com/a.jpg", text=None) if field == "caption" else valid()

    response = post_schedule(api, scheduled_url, **{**body, field: 919988066776})

    assert response.status_code == 400
    assert response.json() == field_error(field, "Not a valid string.")
    assert ScheduledMessage.objects.count() == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/sessions/x/scheduled", {"success": False, "error": "Internal server error"}),
        (
            "/v1/omnimessage",
            {
                "errors": [
                    {"title": "Internal Server Error", "detail": "Internal server error", "code": "104", "source": None}
                ]
            },
        ),
    ],
)
def test_it_answers_an_unexpected_error_in_the_shape_of_the_api_style(path, body):
    response = handlers.server_error(RequestFactory().post(path))

    assert response.status_code == 500
    assert json.loads(response.content) == body


def test_it_answers_an_unknown_path_of_the_messente_api_in_its_shape(db, client):
    response = client.get("/v1/omnimessage/one/two/three")

    assert response.status_code == 404
    assert response.json() == {"errors": [{"title": "Not found", "detail": "Not found", "code": "101", "source": None}]}


# --- SSRF: URLs that read as public to one parser and internal to another ------------------------------

AMBIGUOUS = "must not contain backslashes, spaces or control characters."
INTERNAL = "must not point to a private, loopback or link-local address."
BYPASSES = [
    ("http://127.0.0.1:3199\\@example.com/a.jpg", AMBIGUOUS),
    ("http://[::127.0.0.1]/a.jpg", INTERNAL),
    ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data", INTERNAL),
    ("http://[::ffff:10.0.0.5]/a.jpg", INTERNAL),
    ("http://%31%32%37.0.0.1/a.jpg", "must be an http(s) URL."),  # Django's URL check refuses these forms first
    ("http://0x7f.1/a.jpg", "must be an http(s) URL."),
    ("http://2130706433/a.jpg", "must be an http(s) URL."),
]


@pytest.mark.parametrize(("media", "message"), BYPASSES)
def test_it_refuses_media_that_any_url_parser_reads_as_internal(api, scheduled_url, settings, media, message):
    settings.WEBHOOK_ALLOW_PRIVATE = False

    response = post_schedule(api, scheduled_url, **valid(type="image", media=media, text=None))

    assert response.status_code == 400
    assert response.json()["details"] == {"media": [message]}
    assert ScheduledMessage.objects.count() == 0
