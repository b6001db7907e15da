"""The Messente-compatible API, driven by Messente's own Python client (messente-api), unchanged."""

from datetime import UTC, datetime, timedelta

import pytest
import requests
from messente_api import SMS as Sms
from messente_api import (
    ApiClient,
    BulkMessagingApi,
    BulkOmnimessage,
    Configuration,
    Omnimessage,
    OmnimessageMessagesInner,
    Viber,
    WhatsApp,
    WhatsAppText,
)
from messente_api.exceptions import BadRequestException, NotFoundException, UnauthorizedException

from scheduling import services
from scheduling.models import MessageStatus, ScheduledMessage

from ..factories import in_hours, messente_client, set_status


@pytest.fixture
def messente(live_server, account):
    return messente_client(live_server, account.api_username, account.api_password)


def channels():
    return [
        OmnimessageMessagesInner(Sms(text="hello by sms", sender="Shop", ttl=60)),
        OmnimessageMessagesInner(Viber(text="hello by viber", validity=5)),
        OmnimessageMessagesInner(WhatsApp(text=WhatsAppText(body="hello by whatsapp"))),
    ]


def test_it_schedules_an_omnimessage_with_an_offset(messente):
    omnimessages, _ = messente
    when = (datetime.now(UTC) + timedelta(hours=1)).astimezone().replace(microsecond=0)

    response = omnimessages.send_omnimessage(
        Omnimessage(
            to="+37255555555", messages=channels(), time_to_send=when.isoformat(), dlr_url="https://example.com/dlr"
        )
    )

    message = ScheduledMessage.objects.get(pk=response.omnimessage_id)
    assert response.to == "+37255555555"
    assert [(m.channel.value, m.sender) for m in response.messages] == [
        ("sms", "Shop"),
        ("viber", "Scheduler"),
        ("whatsapp", "Scheduler"),
    ]
    assert [m.message_id for m in response.messages] == [str(c.channel_message_id) for c in message.channels.all()]
    assert message.scheduled_at == when
    assert message.status == MessageStatus.PENDING
    assert [c.ttl_seconds for c in message.channels.all()] == [60, 300, None]


def test_it_reads_a_naive_time_as_utc(messente):
    omnimessages, _ = messente
    naive = (datetime.now(UTC) + timedelta(hours=2)).replace(tzinfo=None, second=0, microsecond=0)

    response = omnimessages.send_omnimessage(
        Omnimessage(to="+37255555555", messages=channels(), time_to_send=naive.strftime("%Y-%m-%dT%H:%M"))
    )

    assert ScheduledMessage.objects.get(pk=response.omnimessage_id).scheduled_at == naive.replace(tzinfo=UTC)


def test_it_reports_the_status_of_a_scheduled_omnimessage(messente):
    omnimessages, reports = messente
    sent = omnimessages.send_omnimessage(
        Omnimessage(
            to="+37255555555", messages=channels(), time_to_send=(datetime.now(UTC) + timedelta(hours=1)).isoformat()
        )
    )

    report = reports.retrieve_delivery_report(sent.omnimessage_id)

    assert report.omnimessage_id == sent.omnimessage_id
    assert report.to == "+37255555555"
    assert [(s.channel.value, s.status, s.message_id, s.sender) for s in report.statuses] == [
        ("sms", None, sent.messages[0].message_id, "Shop")
    ]


def test_it_cancels_a_scheduled_omnimessage_with_202_and_then_404(messente):
    omnimessages, reports = messente
    sent = omnimessages.send_omnimessage(
        Omnimessage(
            to="+37255555555", messages=channels(), time_to_send=(datetime.now(UTC) + timedelta(hours=1)).isoformat()
        )
    )

    result = omnimessages.cancel_scheduled_message_with_http_info(sent.omnimessage_id)

    assert result.status_code == 202
    assert ScheduledMessage.objects.get(pk=sent.omnimessage_id).status == MessageStatus.CANCELLED
    assert reports.retrieve_delivery_report(sent.omnimessage_id).statuses[0].status.value == "DELETED"
    with pytest.raises(NotFoundException) as again:
        omnimessages.cancel_scheduled_message(sent.omnimessage_id)
    assert again.value.data.errors[0].title.value == "Not found"
    assert again.value.data.errors[0].code.value == "101"


@pytest.mark.parametrize("status", ["sending", "sent", "failed", "cancelled"])
def test_it_answers_a_cancel_of_an_omnimessage_no_longer_scheduled_with_404_saying_its_status(messente, status):
    omnimessages, _ = messente
    sent = omnimessages.send_omnimessage(
        Omnimessage(to="+37255555555", messages=channels(), time_to_send=in_hours(1).isoformat())
    )
    set_status(sent.omnimessage_id, status)

    with pytest.raises(NotFoundException) as refused:
        omnimessages.cancel_scheduled_message(sent.omnimessage_id)

    [error] = refused.value.data.errors
    assert (error.title.value, error.code.value, error.source) == ("Not found", "101", None)
    assert error.detail == f"Omnimessage {sent.omnimessage_id} is no longer scheduled ({status})"
    assert ScheduledMessage.objects.get(pk=sent.omnimessage_id).status == status


def test_it_answers_404_for_an_unknown_omnimessage(messente):
    omnimessages, reports = messente

    with pytest.raises(NotFoundException) as caught:
        reports.retrieve_delivery_report("sched_doesnotexist")

    assert caught.value.data.errors[0].code.value == "101"


def test_it_hides_another_accounts_omnimessages(live_server, messente, transactional_db):
    omnimessages, _ = messente
    sent = omnimessages.send_omnimessage(Omnimessage(to="+37255555555", messages=channels()))
    stranger = services.session_create(name="stranger")
    _, stranger_reports = messente_client(live_server, stranger.api_username, stranger.api_password)

    with pytest.raises(NotFoundException):
        stranger_reports.retrieve_delivery_report(sent.omnimessage_id)


@pytest.mark.parametrize("username_password", [("om_nobody", "wrong"), (None, None)])
def test_it_refuses_bad_credentials_with_401(live_server, account, username_password):
    omnimessages, _ = messente_client(live_server, *username_password)

    with pytest.raises(UnauthorizedException) as caught:
        omnimessages.send_omnimessage(Omnimessage(to="+37255555555", messages=channels()))

    [error] = caught.value.data.errors
    assert (error.title.value, error.code.value, error.source) == ("Unauthorized", "103", None)
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_a_bad_phone_number(messente):
    omnimessages, _ = messente

    with pytest.raises(BadRequestException) as caught:
        omnimessages.send_omnimessage(Omnimessage(to="12345", messages=channels()))

    [error] = caught.value.data.errors
    assert (error.title.value, error.code.value, error.source) == ("Invalid data", "105", "payload[to]")
    assert ScheduledMessage.objects.count() == 0


def test_it_refuses_ttl_and_validity_together(messente):
    omnimessages, _ = messente
    both = OmnimessageMessagesInner(Sms(text="hi", ttl=60, validity=5))

    with pytest.raises(BadRequestException) as caught:
        omnimessages.send_omnimessage(Omnimessage(to="+37255555555", messages=[both]))

    [error] = caught.value.data.errors
    assert (error.code.value, error.source) == ("105", "payload[messages[0].ttl]")
    assert error.detail == "messages[0].ttl: Give ttl (seconds) or validity (minutes), not both."


def test_it_names_missing_data(messente):
    omnimessages, _ = messente
    empty_viber = OmnimessageMessagesInner(Viber(sender="Shop"))

    with pytest.raises(BadRequestException) as caught:
        omnimessages.send_omnimessage(Omnimessage(to="+37255555555", messages=[empty_viber]))

    [error] = caught.value.data.errors
    assert (error.title.value, error.code.value, error.source) == ("Missing data", "106", "payload[messages[0].text]")


def test_it_refuses_a_time_in_the_past(messente):
    omnimessages, _ = messente

    with pytest.raises(BadRequestException) as caught:
        omnimessages.send_omnimessage(
            Omnimessage(to="+37255555555", messages=channels(), time_to_send="2020-01-01T00:00")
        )

    [error] = caught.value.data.errors
    assert (error.code.value, error.source, error.detail) == (
        "105",
        "payload[time_to_send]",
        "time_to_send: must not be in the past.",
    )


# --- Bulk: POST /v1/omnimessages ------------------------------------------------------------------


def test_it_schedules_a_bulk_and_answers_each_omnimessage_in_its_place(live_server, account, messente):
    bulk = BulkMessagingApi(
        ApiClient(
            Configuration(host=f"{live_server.url}/v1", username=account.api_username, password=account.api_password)
        )
    )
    when = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)

    response = bulk.send_bulk_omnimessage(
        BulkOmnimessage(
            messages=[
                Omnimessage(to="+37255555555", messages=channels(), time_to_send=when.isoformat()),
                Omnimessage(to="12345", messages=channels()),
                Omnimessage(to="+37255555556", messages=channels()[:1], time_to_send=when.isoformat()),
            ]
        )
    )

    first, refused, third = (answer.actual_instance for answer in response.messages)
    assert (first.to, third.to) == ("+37255555555", "+37255555556")
    [error] = refused.errors
    assert (error.title.value, error.code.value, error.source) == ("Invalid data", "105", "payload[to]")
    stored = ScheduledMessage.objects.order_by("to")
    assert [(m.id, m.to, m.scheduled_at, m.channels.count()) for m in stored] == [
        (first.omnimessage_id, "37255555555", when, 3),
        (third.omnimessage_id, "37255555556", when, 1),
    ]
    assert omnimessage_status(messente, first.omnimessage_id) == ["sms"]


def omnimessage_status(messente, omnimessage_id):
    _, reports = messente
    return [entry.channel.value for entry in reports.retrieve_delivery_report(omnimessage_id).statuses]


def test_it_refuses_an_empty_or_oversized_bulk_and_stores_nothing(live_server, account, settings):
    settings.OMNIMESSAGE_BULK_MAX = 2
    url = f"{live_server.url}/v1/omnimessages"
    auth = (account.api_username, account.api_password)
    one = {"to": "+37255555555", "messages": [{"channel": "sms", "text": "hi"}]}

    empty = requests.post(url, json={"messages": []}, auth=auth, timeout=10)
    too_many = requests.post(url, json={"messages": [one, one, one]}, auth=auth, timeout=10)
    not_a_list = requests.post(url, json={"messages": one}, auth=auth, timeout=10)

    assert [r.status_code for r in (empty, too_many, not_a_list)] == [400, 400, 400]
    assert [e["source"] for r in (empty, too_many, not_a_list) for e in r.json()["errors"]] == ["payload[messages]"] * 3
    assert ScheduledMessage.objects.count() == 0
