"""Each transport against a real local HTTP server: the request it makes, and how it reads answers."""

import pytest

from scheduling.transports import OutgoingMessage, TransportError
from scheduling.transports.http import HttpTransport
from scheduling.transports.twilio import TwilioTransport
from scheduling.transports.whatsapp_cloud import WhatsAppCloudTransport

from ..support import ProviderServer, Reply

TEXT = OutgoingMessage(idempotency_key="sched_1", to="919988066776", type="text", text="Hello")
IMAGE = OutgoingMessage(
    idempotency_key="sched_2", to="919988066776", type="image", media="https://example.com/a.jpg", caption="Look"
)


@pytest.fixture(scope="module")
def server():
    with ProviderServer() as running:
        yield running


@pytest.fixture
def provider(server):
    server.reset()
    return server


def base_url(provider):
    return provider.url.removesuffix("/messages")


def test_it_posts_the_message_as_json_with_an_idempotency_key(provider):
    result = HttpTransport(URL=provider.url).send(TEXT)

    [request] = provider.received
    assert request.headers["Idempotency-Key"] == "sched_1"
    assert request.body == {"id": "sched_1", "to": "919988066776", "type": "text", "text": "Hello"}
    assert result.message_id.startswith("wamid.")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_it_treats_busy_answers_as_temporary(provider, status):
    provider.script("Hello", Reply(status, {"error": "busy"}, {"Retry-After": "7"}))

    with pytest.raises(TransportError) as caught:
        HttpTransport(URL=provider.url).send(TEXT)

    assert caught.value.permanent is False
    assert caught.value.retry_after == 7


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_it_treats_other_client_errors_as_permanent(provider, status):
    provider.script("Hello", Reply(status, {"error": "no such recipient"}))

    with pytest.raises(TransportError) as caught:
        HttpTransport(URL=provider.url).send(TEXT)

    assert caught.value.permanent is True
    assert str(caught.value) == f'Provider refused the message with HTTP {status}: {{"error": "no such recipient"}}'


def test_it_does_not_follow_redirects(provider):
    provider.script("Hello", Reply(302, {}, {"Location": provider.url}))

    with pytest.raises(TransportError) as caught:
        HttpTransport(URL=provider.url).send(TEXT)

    assert caught.value.permanent is True
    assert len(provider.received) == 1


def test_it_counts_a_timeout_as_temporary(provider):
    provider.script("Hello", Reply(200, {"id": "late"}, delay=1.5))
    transport = HttpTransport(URL=provider.url, TIMEOUT=0.5)

    with pytest.raises(TransportError) as caught:
        transport.send(TEXT)

    assert caught.value.permanent is False
    assert "Timed out" in str(caught.value)


def test_it_counts_a_refused_connection_as_temporary():
    with pytest.raises(TransportError) as caught:
        HttpTransport(URL="http://127.0.0.1:9/messages").send(TEXT)

    assert caught.value.permanent is False


def test_it_needs_a_message_id_in_a_successful_answer(provider):
    provider.script("Hello", Reply(200, {"ok": True}))

    with pytest.raises(TransportError) as caught:
        HttpTransport(URL=provider.url).send(TEXT)

    assert str(caught.value) == "Provider accepted the request but returned no messageId or id"


def test_it_speaks_the_whatsapp_cloud_api(provider):
    provider.script("", Reply(200, {"messaging_product": "whatsapp", "messages": [{"id": "wamid.HBgM"}]}))
    transport = WhatsAppCloudTransport(TOKEN="t0k", PHONE_NUMBER_ID="1055", BASE_URL=base_url(provider))

    result = transport.send(IMAGE)

    [request] = provider.received
    assert request.path == "/1055/messages"
    assert request.headers["Authorization"] == "Bearer t0k"
    assert request.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "919988066776",
        "type": "image",
        "image": {"link": "https://example.com/a.jpg", "caption": "Look"},
    }
    assert result.message_id == "wamid.HBgM"


def test_it_sends_whatsapp_cloud_text_bodies(provider):
    provider.script("", Reply(200, {"messages": [{"id": "wamid.T"}]}))

    WhatsAppCloudTransport(TOKEN="t", PHONE_NUMBER_ID="1", BASE_URL=base_url(provider)).send(TEXT)

    assert provider.received[0].body["text"] == {"preview_url": False, "body": "Hello"}


def test_it_speaks_twilios_messages_api(provider):
    provider.script("Hello", Reply(201, {"sid": "SM123", "status": "queued"}))
    transport = TwilioTransport(
        ACCOUNT_SID="AC1", AUTH_TOKEN="secret", FROM="whatsapp:+14155238886", BASE_URL=base_url(provider)
    )

    result = transport.send(TEXT)

    [request] = provider.received
    assert request.path == "/2010-04-01/Accounts/AC1/Messages.json"
    assert request.headers["Authorization"].startswith("Basic ")
    assert request.body == {"To": "whatsapp:+919988066776", "From": "whatsapp:+14155238886", "Body": "Hello"}
    assert result.message_id == "SM123"


def test_it_refuses_groups_where_the_provider_has_none():
    group = OutgoingMessage(idempotency_key="sched_3", to="120363025246125486@g.us", type="text", text="Hi")

    with pytest.raises(TransportError) as caught:
        TwilioTransport(ACCOUNT_SID="AC1", AUTH_TOKEN="x", FROM="+1").send(group)

    assert caught.value.permanent is True


# --- WhatsApp templates ---------------------------------------------------------------------------------

ORDER_SHIPPED = {
    "name": "order_shipped",
    "language": "en_US",
    "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}],
}
TEMPLATE = OutgoingMessage(idempotency_key="sched_4", to="919988066776", type="template", template=ORDER_SHIPPED)


def test_it_sends_a_template_in_the_cloud_apis_format(provider):
    provider.script("", Reply(200, {"messages": [{"id": "wamid.TPL"}]}))

    WhatsAppCloudTransport(TOKEN="t", PHONE_NUMBER_ID="1", BASE_URL=base_url(provider)).send(TEMPLATE)

    assert provider.received[0].body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "919988066776",
        "type": "template",
        "template": {
            "name": "order_shipped",
            "language": {"policy": "deterministic", "code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}],
        },
    }


def test_the_http_transport_passes_a_template_on(provider):
    HttpTransport(URL=provider.url).send(TEMPLATE)

    assert provider.received[0].body == {
        "id": "sched_4",
        "to": "919988066776",
        "type": "template",
        "template": ORDER_SHIPPED,
    }


REENGAGEMENT = {
    "error": {
        "message": "(#131047) Re-engagement message",
        "type": "OAuthException",
        "code": 131047,
        "error_data": {"messaging_product": "whatsapp", "details": "Message failed to send because more than 24 hours"},
    }
}


def test_whatsapps_error_131047_is_permanent_and_says_a_template_is_needed(provider):
    provider.script("", Reply(400, REENGAGEMENT))  # the Cloud API body's text is an object: scripted as ""

    with pytest.raises(TransportError) as caught:
        WhatsAppCloudTransport(TOKEN="t", PHONE_NUMBER_ID="1", BASE_URL=base_url(provider)).send(TEXT)

    assert caught.value.permanent is True
    assert str(caught.value) == (
        "WhatsApp error 131047 (re-engagement message): more than 24 hours have passed since the recipient last "
        "wrote, so only a template message may be sent to them"
    )


def test_twilio_refuses_a_meta_template():
    with pytest.raises(TransportError) as caught:
        TwilioTransport(ACCOUNT_SID="AC1", AUTH_TOKEN="x", FROM="whatsapp:+1").send(TEMPLATE)

    assert caught.value.permanent is True
