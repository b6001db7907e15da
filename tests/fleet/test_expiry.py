"""Expiry through the real worker and pump: a message held up past its deadline (a paused session, a provider
that keeps failing) becomes `expired`, is never sent, and its webhook says so; an omnimessage's channel is
reported EXPIRED to its dlr_url."""

import time

from messente_api import SMS as Sms
from messente_api import Omnimessage, OmnimessageMessagesInner
from standardwebhooks import Webhook

from scheduling import services
from scheduling.models import MessageStatus, ScheduledMessage, Session

from ..factories import in_seconds, messente_client
from ..support import ProviderServer, Reply


def schedule(client, url, when, expires, text):
    body = {"to": "919988066776", "text": text, "scheduledAt": when.isoformat(), "expiresAt": expires.isoformat()}
    response = client.post(url, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["scheduled"]["id"]


def wait_for_status(message_id, status, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        current = ScheduledMessage.objects.get(pk=message_id).status
        if current == status:
            return current
        time.sleep(0.05)
    return ScheduledMessage.objects.get(pk=message_id).status


def test_a_message_held_by_a_pause_past_its_deadline_expires_and_is_never_sent(dispatch, provider, hooked, receiver):
    created, client, url = hooked
    services.session_pause(session=created.session)
    deadline = in_seconds(2.5)
    message_id = schedule(client, url, in_seconds(1), deadline, "paused past its deadline")

    assert wait_for_status(message_id, MessageStatus.EXPIRED) == MessageStatus.EXPIRED
    expired_at = time.time()
    [hook] = receiver.webhooks_for(message_id)
    services.session_resume(session=Session.objects.get(pk=created.session.pk))
    time.sleep(2)

    assert deadline.timestamp() <= expired_at < deadline.timestamp() + 2  # the pump's pass after the deadline
    assert Webhook(created.session.webhook_secret).verify(hook.raw, hook.headers) == {
        "event": "message.expired",
        "sessionId": str(created.session.id),
        "timestamp": hook.body["timestamp"],
        "scheduledId": message_id,
        "status": "expired",
        "result": {"to": "919988066776@s.whatsapp.net"},
        "error": "Expired: it could not be sent by its deadline (expiresAt)",
    }
    assert provider.requests_for(message_id) == []
    assert client.get(f"{url}/{message_id}").json()["scheduled"]["status"] == "expired"


def test_a_message_whose_provider_keeps_failing_expires_at_its_deadline(dispatch, provider, api, scheduled_url):
    provider.script("down until too late", *[Reply(503, {"error": "down"})] * 50)
    deadline = in_seconds(3)
    message_id = schedule(api, scheduled_url, in_seconds(1), deadline, "down until too late")

    assert wait_for_status(message_id, MessageStatus.EXPIRED) == MessageStatus.EXPIRED
    tried = len(provider.requests_for(message_id))
    time.sleep(1.5)

    assert tried >= 2  # retried while it could still go out
    assert all(request.at < deadline.timestamp() for request in provider.requests_for(message_id))
    assert len(provider.requests_for(message_id)) == tried  # and never after
    shown = api.get(f"{scheduled_url}/{message_id}").json()["scheduled"]
    assert (shown["status"], shown["error"]) == ("expired", "Expired: it could not be sent by its deadline (expiresAt)")


def test_a_sessions_max_lateness_expires_an_omnimessage_as_messente_does(dispatch, live_server, account):
    Session.objects.filter(pk=account.session.pk).update(max_lateness_seconds=2, paused_at=in_seconds(0))
    with ProviderServer() as dlr:
        omnimessages, reports = messente_client(live_server, account.api_username, account.api_password)
        sent = omnimessages.send_omnimessage(
            Omnimessage(to="+37255555555", dlr_url=dlr.url, messages=[OmnimessageMessagesInner(Sms(text="late"))])
        )

        assert wait_for_status(sent.omnimessage_id, MessageStatus.EXPIRED, timeout=10) == MessageStatus.EXPIRED
        deadline = time.time() + 10
        while not dlr.received and time.time() < deadline:
            time.sleep(0.05)
        report = reports.retrieve_delivery_report(sent.omnimessage_id)

    assert [(s.channel.value, s.status.value, s.err) for s in report.statuses] == [("sms", "EXPIRED", 2)]
    assert [(r.body["channel"], r.body["status"], r.body["err"]) for r in dlr.received] == [("sms", "EXPIRED", 2)]
