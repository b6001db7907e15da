"""Omnimessages through the real worker and pump: each channel tried in turn, each reported."""

import time

import pytest
from messente_api import SMS as Sms
from messente_api import Omnimessage, OmnimessageMessagesInner, Viber, WhatsApp, WhatsAppText

from scheduling.models import MessageStatus, ScheduledMessage

from ..factories import messente_client
from ..support import ProviderServer, Reply

pytestmark = pytest.mark.rabbitmq


def wait_until(condition, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_it_falls_back_from_sms_to_viber_to_whatsapp(dispatch, live_server, account, channel_providers):
    with ProviderServer() as receiver:
        sms, viber, whatsapp = (channel_providers[c] for c in ("sms", "viber", "whatsapp"))
        for server in channel_providers.values():
            server.reset()
        sms.script("fallback sms", Reply(400, {"error": "no SMS route to this number"}))
        viber.script("fallback viber", *[Reply(200, {"id": "late"}, delay=3)] * 3)  # slower than the 2 s timeout
        omnimessages, reports = messente_client(live_server, account.api_username, account.api_password)

        sent = omnimessages.send_omnimessage(
            Omnimessage(
                to="+37255555555",
                dlr_url=receiver.url,
                messages=[
                    OmnimessageMessagesInner(Sms(text="fallback sms")),
                    OmnimessageMessagesInner(Viber(text="fallback viber", ttl=2)),
                    OmnimessageMessagesInner(WhatsApp(text=WhatsAppText(body="fallback whatsapp"))),
                ],
            )
        )

        assert wait_until(lambda: len(receiver.received) >= 3), [r.body for r in receiver.received]
        report = reports.retrieve_delivery_report(sent.omnimessage_id)

    assert [(s.channel.value, s.status.value, s.err) for s in report.statuses] == [
        ("sms", "FAILED", 1),
        ("viber", "EXPIRED", 2),
        ("whatsapp", "ACK", 0),
    ]
    assert (
        report.statuses[0].error
        == 'Provider refused the message with HTTP 400: {"error": "no SMS route to this number"}'
    )
    assert [(r.body["channel"], r.body["status"]) for r in receiver.received] == [
        ("sms", "FAILED"),
        ("viber", "EXPIRED"),
        ("whatsapp", "ACK"),
    ]
    assert {r.body["omnimessage_id"] for r in receiver.received} == {sent.omnimessage_id}
    assert [r.body["text"] for r in whatsapp.received] == ["fallback whatsapp"]
    assert whatsapp.received[0].body["channel"] == "whatsapp"
    assert len(viber.received) >= 1
    assert ScheduledMessage.objects.get(pk=sent.omnimessage_id).status == MessageStatus.SENT
