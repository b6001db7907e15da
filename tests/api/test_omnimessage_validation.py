"""Bad input to the Messente-compatible API: a 4xx in Messente's error shape, and nothing stored."""

import json

import pytest

from scheduling.models import ScheduledMessage

from ..factories import basic_auth, client_with

URL = "/v1/omnimessage"
BULK = "/v1/omnimessages"


@pytest.fixture
def omni(account):
    return client_with(HTTP_AUTHORIZATION=basic_auth(account.api_username, account.api_password))


def send(omni, *channels, url=URL, **body):
    # json.dumps escapes a lone surrogate as \ud800, as any client's JSON encoder would send it.
    return omni.post(
        url, json.dumps({"to": "+37255555555", "messages": list(channels), **body}), content_type="application/json"
    )


def error(title, code, detail, source):
    return {"title": title, "detail": detail, "code": code, "source": source}


def invalid(field, message):
    return {"errors": [error("Invalid data", "105", f"{field}: {message}", f"payload[{field}]")]}


# --- Before any view logic: credentials, paths, bodies -----------------------------------------------


@pytest.mark.parametrize("username", ["\x00", "om_\x00", "om_0123456789abcdef\x00", "\ud800"])
def test_it_refuses_credentials_with_a_nul_or_junk_in_the_username_with_401(account, username):
    client = client_with(HTTP_AUTHORIZATION=basic_auth(username, account.api_password))

    response = client.post(URL, {"to": "+37255555555", "messages": [{"channel": "sms", "text": "hi"}]}, format="json")

    assert response.status_code == 401
    assert response.json() == {"errors": [error("Unauthorized", "103", "Invalid username or password", None)]}
    assert ScheduledMessage.objects.count() == 0


@pytest.mark.parametrize("path", ["sched_\x00x", "sched_%00x", "\x00", "sched_" + "x" * 300])
def test_it_answers_404_for_a_nul_or_junk_omnimessage_id(omni, path):
    cancelled = omni.delete(f"{URL}/{path}")
    status = omni.get(f"{URL}/{path}/status")

    assert (cancelled.status_code, status.status_code) == (404, 404)
    assert [e["code"] for e in cancelled.json()["errors"] + status.json()["errors"]] == ["101", "101"]


@pytest.mark.parametrize("url", [URL, BULK])
def test_it_refuses_deeply_nested_json_with_400(omni, url):
    response = omni.post(url, "[" * 30_000, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {
        "errors": [error("Invalid data", "105", "Malformed JSON - nested more than 32 levels deep", None)]
    }


def test_it_refuses_well_formed_json_nested_too_deep_with_400(omni):
    nested = "[" * 500 + "]" * 500

    response = omni.post(
        URL,
        f'{{"to": "+37255555555", "messages": [{{"channel": "sms", "text": {nested}}}]}}',
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["detail"] == "Malformed JSON - nested more than 32 levels deep"
    assert ScheduledMessage.objects.count() == 0


@pytest.mark.parametrize(("url", "limit"), [(URL, 65536), (BULK, 1048576)])
def test_it_refuses_a_body_over_its_limit_with_a_json_413_even_past_djangos_own(omni, url, limit):
    body = json.dumps({"to": "+37255555555", "messages": [{"channel": "sms", "text": "x" * 3_000_000}]})

    response = omni.post(url, body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {
        "errors": [error("Invalid data", "105", f"Request body too large: the limit is {limit} bytes", None)]
    }


# --- Channel content: types, sizes, ranges -------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "field", "message"),
    [
        ({"channel": "sms", "text": "nul\x00here"}, "messages[0].text", "Null characters are not allowed."),
        (
            {"channel": "sms", "text": "hi", "sender": "Sh\x00p"},
            "messages[0].sender",
            "Null characters are not allowed.",
        ),
        (
            {"channel": "whatsapp", "image": {"link": "https://example.com/a.jpg", "caption": "a\x00"}},
            "messages[0].image.caption",
            "Null characters are not allowed.",
        ),
        ({"channel": "sms", "text": "\ud800"}, "messages[0].text", "Surrogate characters are not allowed: U+D800."),
        (
            {"channel": "viber", "text": "hi", "sender": "\udfff"},
            "messages[0].sender",
            "Surrogate characters are not allowed: U+DFFF.",
        ),
        (
            {"channel": "sms", "text": "hi", "sender": "S" * 65},
            "messages[0].sender",
            "Ensure this field has no more than 64 characters.",
        ),
        ({"channel": "sms", "text": "hi", "sender": 42}, "messages[0].sender", "Not a valid string."),
        ({"channel": "sms", "text": 12345}, "messages[0].text", "Not a valid string."),
        ({"channel": "sms", "text": "   "}, "messages[0].text", "This field may not be blank."),
        (
            {"channel": "sms", "text": "hi", "ttl": 2147483648},
            "messages[0].ttl",
            "Must be a whole number from 1 to 2592000 (30 days).",
        ),
        (
            {"channel": "sms", "text": "hi", "ttl": 0},
            "messages[0].ttl",
            "Must be a whole number from 1 to 2592000 (30 days).",
        ),
        (
            {"channel": "viber", "text": "hi", "validity": 35791395},
            "messages[0].validity",
            "Must be a whole number from 1 to 43200 (30 days).",
        ),
        (
            {"channel": "viber", "text": "hi", "validity": 1.5},
            "messages[0].validity",
            "Must be a whole number from 1 to 43200 (30 days).",
        ),
        (
            {"channel": "sms", "text": "x" * 1601},
            "messages[0].text",
            "Ensure this field has no more than 1600 characters.",
        ),
        (
            {"channel": "viber", "text": "x" * 1001},
            "messages[0].text",
            "Ensure this field has no more than 1000 characters.",
        ),
        (
            {"channel": "whatsapp", "text": {"body": "x" * 4097}},
            "messages[0].text.body",
            "Ensure this field has no more than 4096 characters.",
        ),
        (
            {"channel": "whatsapp", "video": {"link": "https://example.com/a.mp4", "caption": "x" * 1025}},
            "messages[0].video.caption",
            "Ensure this field has no more than 1024 characters.",
        ),
        (
            {"channel": "viber", "image_url": "ftp://example.com/a.jpg"},
            "messages[0].image_url",
            "must be an http(s) URL.",
        ),
    ],
)
def test_it_refuses_channel_content_of_the_wrong_type_size_or_range(omni, channel, field, message):
    response = send(omni, channel)

    assert response.status_code == 400
    assert response.json() == invalid(field, message)
    assert ScheduledMessage.objects.count() == 0


def test_it_takes_each_channels_longest_text(omni):
    response = send(
        omni,
        {"channel": "sms", "text": "s" * 1600},
        {"channel": "viber", "text": "v" * 1000},
        {"channel": "whatsapp", "text": {"body": "w" * 4096}},
    )

    assert response.status_code == 201
    assert [len(c.content["text"]) for c in ScheduledMessage.objects.get().channels.all()] == [1600, 1000, 4096]


@pytest.mark.parametrize(("field", "value"), [("to", 37255555555), ("time_to_send", 1769958000)])
def test_it_refuses_a_number_where_text_belongs(omni, field, value):
    response = send(omni, {"channel": "sms", "text": "hi"}, **{field: value})

    assert response.status_code == 400
    assert response.json() == invalid(field, "Not a valid string.")
    assert ScheduledMessage.objects.count() == 0


# --- Amplification: channels per omnimessage -------------------------------------------------------------


def test_it_refuses_more_than_three_channels(omni):
    response = send(omni, *[{"channel": "sms", "text": f"try {n}"} for n in range(4)])

    assert response.status_code == 400
    assert response.json() == invalid("messages", "At most 3 channel messages in one omnimessage.")
    assert ScheduledMessage.objects.count() == 0


def test_it_answers_an_omnimessage_of_32768_channels_in_its_place_in_a_bulk_and_stores_the_rest(omni):
    many = {"to": "+37255555555", "messages": [{"channel": "sms", "text": "x"}] * 32_768}
    fine = {"to": "+37255555556", "messages": [{"channel": "sms", "text": "hello"}]}

    response = omni.post(BULK, {"messages": [many, fine]}, format="json")

    refused, scheduled = response.json()["messages"]
    assert response.status_code == 201
    assert refused == invalid("messages", "At most 3 channel messages in one omnimessage.")
    assert ScheduledMessage.objects.get().id == scheduled["omnimessage_id"]


# --- SSRF: the delivery-report URL and media links --------------------------------------------------------

AMBIGUOUS = "must not contain backslashes, spaces or control characters."
INTERNAL = "must not point to a private, loopback or link-local address."


@pytest.mark.parametrize(
    ("dlr_url", "message"),
    [
        ("http://127.0.0.1:3199\\@example.com/dlr", AMBIGUOUS),
        ("http://[::127.0.0.1]:3199/dlr", INTERNAL),
        ("http://[64:ff9b::a9fe:a9fe]/dlr", INTERNAL),
        ("ftp://example.com/dlr", "must be an http(s) URL."),
    ],
)
def test_it_refuses_a_dlr_url_that_is_internal_however_it_is_read(omni, settings, dlr_url, message):
    settings.WEBHOOK_ALLOW_PRIVATE = False

    response = send(omni, {"channel": "sms", "text": "hi"}, dlr_url=dlr_url)

    assert response.status_code == 400
    assert response.json() == invalid("dlr_url", message)
    assert ScheduledMessage.objects.count() == 0


@pytest.mark.parametrize(
    ("channel", "field"),
    [
        ({"channel": "viber", "image_url": "http://127.0.0.1:3199\\@example.com/a.jpg"}, "messages[0].image_url"),
        (
            {"channel": "whatsapp", "image": {"link": "http://127.0.0.1:3199\\@example.com/a.jpg"}},
            "messages[0].image.link",
        ),
    ],
)
def test_it_refuses_a_media_link_that_is_internal_however_it_is_read(omni, settings, channel, field):
    settings.WEBHOOK_ALLOW_PRIVATE = False

    response = send(omni, channel)

    assert response.status_code == 400
    assert response.json() == invalid(field, AMBIGUOUS)
