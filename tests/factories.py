"""What the tests make and do again and again: times, clients of the APIs and the admin, messages. Plain
functions that go through the project's own ways in (the HTTP APIs, the admin, `services`), so what they
leave behind is what a client or the service would; only `set_status` and `campaign` write rows directly,
for states no client can reach in a test's time."""

import base64
from datetime import UTC, datetime, timedelta

from messente_api import ApiClient, Configuration, DeliveryReportApi, OmnimessageApi
from rest_framework.test import APIClient

from scheduling import services
from scheduling.models import ScheduledMessage, Session

TO = "919988066776"  # the seed's recipient

# --- Times ------------------------------------------------------------------------------------------


def in_seconds(seconds: float) -> datetime:
    """`seconds` from now, to the microsecond: for checks of when something went out."""
    return datetime.now(UTC) + timedelta(seconds=seconds)


def in_hours(hours: float) -> datetime:
    """A whole-second UTC time `hours` from now, so that it reads back from the API exactly."""
    return in_seconds(hours * 3600).replace(microsecond=0)


def as_seed(when: datetime) -> str:
    """How the seed writes a time: UTC, milliseconds, `Z`."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


# --- Clients ----------------------------------------------------------------------------------------


def client_with(**headers) -> APIClient:
    """A test client that sends these headers (`HTTP_X_API_KEY=…`, `HTTP_AUTHORIZATION=…`) every time."""
    client = APIClient()
    client.credentials(**headers)
    return client


def key_client(api_key: str) -> APIClient:
    """A client of the session API, with a session's key."""
    return client_with(HTTP_X_API_KEY=api_key)


def basic_auth(username: str, password: str) -> str:
    """The Messente API's Authorization header. A lone surrogate is sent as its UTF-8 bytes, as a
    careless client would."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode("utf-8", "surrogatepass")).decode()


def messente_client(live_server, username: str, password: str) -> tuple[OmnimessageApi, DeliveryReportApi]:
    """Messente's own Python client, pointed at the live test server."""
    api = ApiClient(Configuration(host=f"{live_server.url}/v1", username=username, password=password))
    return OmnimessageApi(api), DeliveryReportApi(api)


def admin_action(operator, changelist: str, action: str, *objects, **form):
    """An action picked on an admin list (`changelist`, e.g. /admin/scheduling/session/) for `objects`, with
    the action's own `form` fields; the page it ends on."""
    selected = [chosen.pk for chosen in objects]
    return operator.post(
        changelist, {"action": action, "index": "0", "_selected_action": selected, **form}, follow=True
    )


# --- Messages ---------------------------------------------------------------------------------------


def post_schedule(api: APIClient, url: str, **body):
    """POST /sessions/{id}/scheduled with `body` as given; the response, whatever it says."""
    return api.post(url, body, format="json")


def schedule_via_api(
    api: APIClient, url: str, when: datetime | None = None, *, to: str = TO, text: str = "Hello"
) -> dict:
    """A text message scheduled through the session API, due at `when` (in an hour by default): the
    `scheduled` object of its 201 answer."""
    response = post_schedule(api, url, to=to, text=text, scheduledAt=(when or in_hours(1)).isoformat())
    assert response.status_code == 201, response.json()
    return response.json()["scheduled"]


def schedule_via_services(
    session: Session, when: datetime | None = None, *, to: str = TO, text: str = "Hello", **content
) -> ScheduledMessage:
    """A message scheduled as the APIs schedule one (`services.message_schedule`), due at `when` (in an
    hour by default)."""
    return services.message_schedule(session=session, scheduled_at=when or in_hours(1), to=to, text=text, **content)


def set_status(message_id: str, status: str, **fields) -> None:
    """Leave a message in `status` (and `fields`) as a worker or an earlier outcome would have."""
    ScheduledMessage.objects.filter(pk=message_id).update(status=status, **fields)


def campaign(session: Session, size: int, when: datetime) -> list[str]:
    """`size` messages of one session due at the same instant, as a bulk import would leave them (not
    handed over yet); their ids."""
    created = ScheduledMessage.objects.bulk_create(
        ScheduledMessage(session=session, to=TO, text=f"campaign {n}", scheduled_at=when, due_at=when)
        for n in range(size)
    )
    return [message.id for message in created]
