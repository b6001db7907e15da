"""`manage.py create_session`: one JSON object with a working key, shown once."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from scheduling.models import ApiKey, Session

from ..factories import key_client

pytestmark = pytest.mark.django_db


def create_session(*args):
    out = StringIO()
    call_command("create_session", *args, stdout=out)
    return out.getvalue()


def test_it_prints_one_json_object_with_the_sessions_credentials():
    printed = json.loads(create_session("shop", "--webhook-url", "https://example.com/hook"))

    assert printed == {
        "id": printed["id"],
        "name": "shop",
        "apiKey": printed["apiKey"],
        "apiUsername": printed["apiUsername"],
        "apiPassword": printed["apiPassword"],
        "webhookSecret": printed["webhookSecret"],
        "webhookUrl": "https://example.com/hook",
        "transport": "default",
        "sendRate": "",
    }
    assert printed["apiKey"].startswith("wask_")
    assert printed["webhookSecret"].startswith("whsec_")
    assert printed["apiUsername"].startswith("om_")


def test_it_prints_nothing_but_the_json_object():
    printed = create_session("shop")

    assert printed.strip().startswith("{") and printed.strip().endswith("}")
    assert printed.count("\n") <= 1
    json.loads(printed)


def test_it_creates_the_session_it_prints():
    printed = json.loads(create_session("shop", "--webhook-url", "https://example.com/hook", "--transport", "console"))

    session = Session.objects.get()
    assert (str(session.id), session.name, session.webhook_url, session.transport, session.active) == (
        printed["id"],
        "shop",
        "https://example.com/hook",
        "console",
        True,
    )


def test_it_prints_a_key_that_authenticates_against_the_api():
    printed = json.loads(create_session("shop"))

    response = key_client(printed["apiKey"]).get(f"/sessions/{printed['id']}/scheduled")

    assert response.status_code == 200
    assert response.json() == {"success": True, "scheduled": [], "next": None}


def test_it_keeps_only_a_hash_of_the_key():
    printed = json.loads(create_session("shop"))

    stored = ApiKey.objects.get()
    assert printed["apiKey"] not in (stored.prefix, stored.hashed_key)
    assert printed["apiKey"].startswith(stored.prefix)


def test_it_gives_each_session_its_own_key_and_secret():
    first, second = json.loads(create_session("one")), json.loads(create_session("two"))

    assert (first["id"], first["apiKey"], first["webhookSecret"]) != (
        second["id"],
        second["apiKey"],
        second["webhookSecret"],
    )
    assert len({first["id"], second["id"]}) == 2
    assert len({first["apiKey"], second["apiKey"]}) == 2
    assert len({first["webhookSecret"], second["webhookSecret"]}) == 2


def test_it_refuses_an_unknown_transport():
    with pytest.raises(CommandError) as refusal:
        create_session("shop", "--transport", "carrier-pigeon")

    assert str(refusal.value) == "Unknown transport 'carrier-pigeon'; configured: console, default"
    assert Session.objects.count() == 0


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:3199\\@example.com/hooks", "must not contain backslashes, spaces or control characters."),
        ("http://[::127.0.0.1]/hooks", "must not point to a private, loopback or link-local address."),
        ("http://[64:ff9b::a9fe:a9fe]/hooks", "must not point to a private, loopback or link-local address."),
    ],
)
def test_it_refuses_a_webhook_url_that_is_internal_however_it_is_read(settings, url, reason):
    settings.WEBHOOK_ALLOW_PRIVATE = False

    with pytest.raises(CommandError) as refusal:
        create_session("shop", "--webhook-url", url)

    assert str(refusal.value) == f"--webhook-url {url!r}: {reason}"
    assert Session.objects.count() == 0


def test_it_sets_the_sessions_send_rate():
    printed = json.loads(create_session("paced-shop", "--send-rate", "20/s"))

    assert printed["sendRate"] == "20/s"
    assert Session.objects.get(pk=printed["id"]).send_rate == "20/s"


@pytest.mark.parametrize("rate", ["fast", "20", "0/s", "20/fortnight", "-3/min"])
def test_it_refuses_a_send_rate_it_cannot_read_and_creates_nothing(rate):
    with pytest.raises(CommandError, match="--send-rate: .* like 20/s or 30/min"):
        create_session("shop", f"--send-rate={rate}")

    assert not Session.objects.exists()
