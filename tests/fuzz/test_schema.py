"""Schemathesis against the service's own OpenAPI schema (/api/schema/), both API styles, in-process.

Every operation is fuzzed with generated requests, valid and invalid (schemathesis' positive and
negative modes), a bounded number per operation so that the file stays fast. Strings may hold NULs
(schemathesis' allow_x00), and one body in three gets something hostile in place of one of its values,
at any depth: a NUL, a lone surrogate (which schemathesis never generates), nesting past the parser's
limit, a number out of any column's range, a number where text belongs. Two checks:
`not_a_server_error` (no 5xx) and `response_schema_conformance` (a documented status code's body
matches the schema). Requests carry a real session's credentials (X-API-Key for /sessions/…, basic
auth for /v1/omnimessage…) and, most of the time, real path ids, so they get past authentication
and the lookups into the views' own logic.

The schema is loaded at import through the WSGI application, as a client would read it; requests go
through the same WSGI application (so through every middleware), not through Django's test client.
"""

import copy
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from django.test.utils import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from project.wsgi import application
from scheduling import services
from scheduling.models import ChannelStatus, MessageStatus, ScheduledMessage

from ..factories import basic_auth, schedule_via_services, set_status

MAX_EXAMPLES = 30
CHECKS = [not_a_server_error, response_schema_conformance]

with override_settings(ALLOWED_HOSTS=["localhost"]):  # the WSGI client's Host; the test environment is not up yet
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)

FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture
def world(transactional_db, settings):
    """A session with messages in every status, and an omnimessage.

    transactional_db: requests go through the real WSGI handler, which closes the connection's
    transaction state at each request's start and end (close_old_connections), as in production.
    """
    settings.ALLOWED_HOSTS = ["localhost"]
    created = services.session_create(name="fuzz", webhook_url="https://example.com/hooks")
    session = created.session
    soon = timezone.now() + timedelta(hours=1)
    ids = {}
    for status in MessageStatus.values:
        message = schedule_via_services(session, soon, text=f"fuzz {status}")
        set_status(
            message.pk,
            status,
            attempts=1 if status != MessageStatus.PENDING else 0,
            sent_at=soon if status == MessageStatus.SENT else None,
            provider_message_id="wamid.fuzz" if status == MessageStatus.SENT else "",
            last_error="HTTP 400: refused" if status == MessageStatus.FAILED else "",
        )
        ids[status] = message.id
    image = services.message_schedule(
        session=session,
        scheduled_at=soon,
        to="120363025246125888@g.us",
        type="image",
        media="https://example.com/cat.jpg",
        caption="a cat",
    )
    channels = [
        services.ChannelSpec(channel="sms", sender="Shop", content={"type": "text", "text": "hi"}, ttl_seconds=60),
        services.ChannelSpec(channel="viber", sender="Shop", content={"type": "text", "text": "hi"}),
        services.ChannelSpec(channel="whatsapp", sender="Shop", content={"type": "text", "text": "hi"}),
    ]
    omni = services.omnimessage_schedule(
        session=session, to="37255555555", channels=channels, scheduled_at=soon, dlr_url="https://example.com/dlr"
    )
    tried = services.omnimessage_schedule(session=session, to="37255555555", channels=channels, scheduled_at=soon)
    batch_id, _ = services.messages_schedule_batch(
        session=session, contents=[{"scheduled_at": soon, "to": "919988066776", "text": "fuzz batch"}]
    )
    first = tried.channels.get(position=0)
    first.status, first.err, first.error, first.status_at, first.started_at = (
        ChannelStatus.EXPIRED,
        2,
        "no success within the channel's ttl",
        soon,
        soon,
    )
    first.save()
    ScheduledMessage.objects.filter(pk=tried.pk).update(current_channel=1)
    series = [
        services.recurring_create(
            session=session,
            to="37255555555",
            text="fuzz",
            time_zone="Europe/Tallinn",
            start_wall=datetime(2027, 1, 1),
            **rule,
        ).pk
        for rule in ({"rrule": "FREQ=DAILY;BYHOUR=9"}, {"cron": "*/5 * * * *"})
    ]
    return {
        "recurring_ids": series,
        "session_id": str(session.id),
        "api_key": created.api_key,
        "basic": basic_auth(created.api_username, created.api_password),
        "scheduled_ids": [*ids.values(), image.id],
        "omnimessage_ids": [omni.id, tried.id],
        "batch_ids": [batch_id],
    }


def bucket(value, n):
    """A deterministic choice among n, derived from generated data (so a failure replays the same)."""
    return sum(repr(value).encode()) % n


def pick(generated, real_ids):
    """Mostly a real id (to reach the view's logic), sometimes the generated one (unknown ids: 404)."""
    choice = bucket(generated, len(real_ids) + 1)
    return str(generated) if choice == len(real_ids) else real_ids[choice]


RECIPIENTS = ["919988066776", "+91 99880 66776", "0037255555555", "120363025246125888@g.us"]


def valid_instant(choice):
    """scheduledAt / time_to_send inside the window (now .. 30 days), spelled in several ISO 8601 ways."""
    when = datetime.now(UTC) + timedelta(minutes=10 + choice)
    return [
        when.isoformat(),
        when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        when.astimezone(timezone.get_fixed_timezone(330)).isoformat(),
        when.replace(tzinfo=None).isoformat(),
    ][choice % 4]


def steer_schedule_body(case, change_recipient=False):
    """Random recipients, times and contents are nearly never valid together, so the success paths (201,
    200 and their bodies) would go unchecked: in two cases out of three, make the generated body valid
    (a real `to`, a `scheduledAt` in the window, content that fits its type), keeping what already is; for
    a bulk, each of its messages."""
    if not isinstance(case.body, dict) or bucket(case.body, 3) == 2:
        return
    if case.path.endswith("/bulk"):
        messages = case.body.get("messages")
        for message in messages if isinstance(messages, list) else []:
            if isinstance(message, dict):
                steer_message(message, post=True)
        return
    steer_message(case.body, post=case.method.upper() == "POST", change_recipient=change_recipient)


def steer_message(body, post, change_recipient=False):
    choice = bucket(sorted(body), 97)
    if post or change_recipient:
        body["to"] = RECIPIENTS[choice % len(RECIPIENTS)]
    else:
        body.pop("to", None)  # see test_changing_the_recipient_of_a_pending_message
    if post or "scheduledAt" in body:
        body["scheduledAt"] = valid_instant(choice)
    kind = body.get("type", "text")
    if kind not in ("text", "image", "video", "document"):
        return
    for field in ("text", "caption"):
        if field in body and not str(body[field]).strip():
            body[field] = f"fuzz {field}"
    if kind == "text":
        body.pop("media", None)
        body.pop("caption", None)
        if post:
            body.setdefault("text", "fuzz text")
    elif post or "media" in body:
        body["media"] = f"https://example.com/{kind}/{choice}"


CHANNEL_MESSAGES = [
    [{"channel": "sms", "text": "Hello", "sender": "Shop", "ttl": 300}],
    [{"channel": "viber", "text": "Hello", "validity": 10}, {"channel": "sms", "text": "Hello"}],
    [{"channel": "whatsapp", "text": {"body": "Hello"}}],
    [
        {"channel": "whatsapp", "image": {"link": "https://example.com/a.jpg", "caption": "a"}},
        {"channel": "sms", "text": "x"},
    ],
]


def steer_omnimessage_body(case):
    if not isinstance(case.body, dict) or bucket(case.body, 3) == 2:
        return
    choice = bucket(sorted(case.body), 97)
    case.body["to"] = "+37255555555"
    case.body["messages"] = copy.deepcopy(CHANNEL_MESSAGES[choice % len(CHANNEL_MESSAGES)])
    if "time_to_send" in case.body:
        case.body["time_to_send"] = valid_instant(choice)


def nested(levels):
    value = []
    for _ in range(levels - 1):
        value = [value]
    return value


HOSTILE = ["\x00", "nul\x00inside", "\ud800", "lone \udfff surrogate", nested(100), 2147483648, -1, 12345, "x" * 5000]


def slots(value):
    """Every place in a JSON value that holds another value: (container, key or index)."""
    places = (
        list(value.items()) if isinstance(value, dict) else list(enumerate(value)) if isinstance(value, list) else []
    )
    for key, inner in places:
        yield value, key
        yield from slots(inner)


def make_hostile(case):
    """One body in three: one of its values, chosen from the generated data, replaced by a hostile one."""
    if not isinstance(case.body, (dict, list)) or bucket(case.body, 3) != 0:
        return
    places = list(slots(case.body))
    if places:
        container, key = places[bucket(case.body, len(places))]
        container[key] = HOSTILE[bucket(key, len(HOSTILE))]


session_api = schema.include(path_regex=r"^/sessions/")
omnimessage_api = schema.include(path_regex=r"^/v1/omnimessage")


def as_session_client(case, world):
    case.headers = {**(case.headers or {}), "X-API-Key": world["api_key"]}
    case.headers.pop("Authorization", None)
    case.path_parameters = {**(case.path_parameters or {}), "session_id": world["session_id"]}
    if "scheduled_id" in case.path_parameters:
        case.path_parameters["scheduled_id"] = pick(case.path_parameters["scheduled_id"], world["scheduled_ids"])
    if "batch_id" in case.path_parameters:
        case.path_parameters["batch_id"] = pick(case.path_parameters["batch_id"], world["batch_ids"])
    if "recurring_id" in case.path_parameters:
        case.path_parameters["recurring_id"] = pick(case.path_parameters["recurring_id"], world["recurring_ids"])


RULES = [{"rrule": "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0"}, {"cron": "0 9 * * 1-5"}, {"rrule": "FREQ=MINUTELY"}]


def steer_recurring_body(case):
    """As for messages: two bodies in three made valid (a rule, a zone, content that fits), the rest as generated."""
    if not isinstance(case.body, dict) or bucket(case.body, 3) == 2:
        return
    choice = bucket(sorted(case.body), 97)
    case.body.pop("rrule", None), case.body.pop("cron", None)
    case.body.update(RULES[choice % len(RULES)], timeZone=["UTC", "Europe/Tallinn", "recipient"][choice % 3])
    case.body.update(to=RECIPIENTS[choice % 3], type="text", text="fuzz")
    for field in ("media", "caption", "startAt", "until"):
        case.body.pop(field, None)


@session_api.parametrize()
@FUZZ
def test_session_api(case, world):
    as_session_client(case, world)
    if (
        "recurring" in case.path
        and case.method.upper() in ("POST", "PATCH")
        and not case.path.endswith(("pause", "resume"))
    ):
        steer_recurring_body(case)
    else:
        steer_schedule_body(case)
    make_hostile(case)
    response = case.call()
    case.validate_response(response, checks=CHECKS)


@schema.include(operation_id="update_scheduled_message").parametrize()
@FUZZ
def test_changing_the_recipient_of_a_pending_message(case, world):
    as_session_client(case, world)
    steer_schedule_body(case, change_recipient=True)
    response = case.call()
    assert response.status_code < 500, f"{response.status_code} for PATCH {case.body!r}"
    case.validate_response(response, checks=CHECKS)


@omnimessage_api.parametrize()
@FUZZ
def test_omnimessage_api(case, world):
    case.headers = {**(case.headers or {}), "Authorization": world["basic"]}
    if "omnimessage_id" in (case.path_parameters or {}):
        case.path_parameters["omnimessage_id"] = pick(case.path_parameters["omnimessage_id"], world["omnimessage_ids"])
    if case.method.upper() == "POST":
        steer_omnimessage_body(case)
    make_hostile(case)
    response = case.call()
    case.validate_response(response, checks=CHECKS)


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_without_credentials(case, world):
    """Whatever the request, a missing or unknown key or password is a documented 401, never a 5xx."""
    if case.headers:
        case.headers.pop("X-API-Key", None)
        case.headers.pop("Authorization", None)
    response = case.call()
    case.validate_response(response, checks=CHECKS)
    assert response.status_code in (401, 404, 405), response.status_code  # 404: a path Django cannot route
