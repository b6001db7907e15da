"""WhatsApp template messages (type "template"): what both API styles take, what they refuse, what is kept."""

import pytest
from messente_api import (
    Omnimessage,
    OmnimessageMessagesInner,
    WhatsApp,
    WhatsAppComponent,
    WhatsAppLanguage,
    WhatsAppParameter,
    WhatsAppTemplate,
)

from scheduling.models import ScheduledMessage

from ..factories import as_seed, basic_auth, client_with, in_hours, messente_client, post_schedule

WHEN = as_seed(in_hours(1))
TEMPLATE = {
    "name": "order_shipped",
    "language": "en_US",
    "components": [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://example.com/box.jpg"}}]},
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Ann"},
                {"type": "currency", "currency": {"fallback_value": "€12.50", "code": "EUR", "amount_1000": 12500}},
                {"type": "date_time", "date_time": {"fallback_value": "1 February"}},
            ],
        },
        {"type": "button", "sub_type": "url", "index": 0, "parameters": [{"type": "text", "text": "track/123"}]},
        {"type": "button", "sub_type": "quick_reply", "index": 1, "parameters": [{"type": "payload", "payload": "S"}]},
    ],
}


def schedule_template(api, url, template=None, **more):
    return post_schedule(
        api, url, to="919988066776", type="template", template=template or TEMPLATE, scheduledAt=WHEN, **more
    )


def test_it_schedules_a_template_message_and_shows_it_as_taken(api, scheduled_url):
    response = schedule_template(api, scheduled_url)

    body = response.json()["scheduled"]
    assert response.status_code == 201
    assert (body["type"], body["template"]) == ("template", TEMPLATE)
    assert "text" not in body
    stored = ScheduledMessage.objects.get(pk=body["id"])
    assert (stored.type, stored.template, stored.text) == ("template", TEMPLATE, "")


def test_it_takes_the_cloud_apis_language_object_too(api, scheduled_url):
    response = schedule_template(
        api, scheduled_url, {**TEMPLATE, "language": {"policy": "deterministic", "code": "pt_BR"}}
    )

    assert response.json()["scheduled"]["template"]["language"] == "pt_BR"


def test_a_template_without_components_is_just_its_name(api, scheduled_url):
    response = schedule_template(api, scheduled_url, {"name": "hello_world", "language": "en_US"})

    assert response.json()["scheduled"]["template"] == {"name": "hello_world", "language": "en_US", "components": []}


def error_of(response):
    assert response.status_code == 400, response.json()
    return response.json()["error"]


def test_a_template_message_needs_its_template_and_nothing_else(api, scheduled_url):
    missing = post_schedule(api, scheduled_url, to="919988066776", type="template", scheduledAt=WHEN)
    with_text = schedule_template(api, scheduled_url, text="Hello")
    on_a_text = post_schedule(api, scheduled_url, to="919988066776", text="Hi", template=TEMPLATE, scheduledAt=WHEN)

    assert error_of(missing) == "template: This field is required for template messages."
    assert error_of(with_text) == "text: Not allowed with a template."
    assert error_of(on_a_text) == "template: A template needs type template."
    assert not ScheduledMessage.objects.exists()


BODY = TEMPLATE["components"][1]


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("order_shipped", "template: Must be an object."),
        ({"language": "en"}, "template: name: This field is required."),
        (
            {"name": "Order Shipped", "language": "en"},
            "template: name: Must be the template's name: lowercase letters, digits and underscores.",
        ),
        ({"name": "x", "language": "english"}, "template: language: Must be a language code such as en or en_US."),
        ({"name": "x", "language": 12}, "template: language: Not a valid string."),
        (
            {"name": "x", "language": "en", "components": {}},
            "template: components: Must be a list of at most 12 components.",
        ),
        (
            {"name": "x", "language": "en", "components": [{"type": "footer"}]},
            "template: components[0].type: Must be one of header, body, button.",
        ),
        (
            {"name": "x", "language": "en", "components": [{"type": "body"}]},
            "template: components[0].parameters: Must be a list of 1 to 50 parameters.",
        ),
        (
            {
                "name": "x",
                "language": "en",
                "components": [{"type": "button", "sub_type": "url", "parameters": [{"type": "text", "text": "a"}]}],
            },
            "template: components[0].index: Must be a whole number from 0 to 9.",
        ),
        (
            {"name": "x", "language": "en", "components": [{**BODY, "parameters": [{"type": "text"}]}]},
            "template: components[0].parameters[0].text: This field is required.",
        ),
        (
            {"name": "x", "language": "en", "components": [{**BODY, "parameters": [{"type": "text", "text": "\x00"}]}]},
            "template: components[0].parameters[0].text: Null characters are not allowed.",
        ),
        (
            {
                "name": "x",
                "language": "en",
                "components": [{**BODY, "parameters": [{"type": "image", "image": {"id": "123"}}]}],
            },
            "template: components[0].parameters[0].image.link: This field is required (media ids are not supported).",
        ),
        (
            {
                "name": "x",
                "language": "en",
                "components": [
                    {
                        **BODY,
                        "parameters": [
                            {"type": "currency", "currency": {"fallback_value": "1", "code": "eur", "amount_1000": 1}}
                        ],
                    }
                ],
            },
            "template: components[0].parameters[0].currency.code: Must be an ISO 4217 currency code such as EUR.",
        ),
    ],
)
def test_it_refuses_a_template_naming_the_part_that_is_wrong(api, scheduled_url, template, error):
    response = schedule_template(api, scheduled_url, template)

    assert error_of(response) == error
    assert not ScheduledMessage.objects.exists()


def test_it_refuses_template_media_on_an_internal_host(api, scheduled_url, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    header = {"type": "header", "parameters": [{"type": "document", "document": {"link": "http://10.0.0.7/a.pdf"}}]}

    response = schedule_template(api, scheduled_url, {"name": "x", "language": "en", "components": [header]})

    assert error_of(response) == (
        "template: components[0].parameters[0].document.link: must not point to a private, loopback or link-local "
        "address."
    )


# --- Messente's WhatsApp template object ---------------------------------------------------------------


def test_messentes_client_schedules_its_whatsapp_template(live_server, account):
    omnimessages, _ = messente_client(live_server, account.api_username, account.api_password)
    template = WhatsAppTemplate(
        name="order_shipped",
        language=WhatsAppLanguage(code="en_US"),
        components=[WhatsAppComponent(type="body", parameters=[WhatsAppParameter(type="text", text="Ann")])],
    )

    sent = omnimessages.send_omnimessage(
        Omnimessage(to="+37255555555", messages=[OmnimessageMessagesInner(WhatsApp(template=template))])
    )

    message = ScheduledMessage.objects.get(pk=sent.omnimessage_id)
    expected = {
        "name": "order_shipped",
        "language": "en_US",
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}],
    }
    assert message.channels.get().content == {"type": "template", "template": expected}
    assert (message.type, message.template) == ("template", expected)


def test_the_messente_api_names_the_part_of_a_template_that_is_wrong(account):
    messente = client_with(HTTP_AUTHORIZATION=basic_auth(account.api_username, account.api_password))
    channel = {
        "channel": "whatsapp",
        "template": {"name": "x", "language": {"code": "en"}, "components": [{"type": "nope"}]},
    }

    response = messente.post("/v1/omnimessage", {"to": "+37255555555", "messages": [channel]}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "title": "Invalid data",
            "detail": "messages[0].template.components[0].type: Must be one of header, body, button.",
            "code": "105",
            "source": "payload[messages[0].template.components[0].type]",
        }
    ]
