"""expiresAt and the max lateness in the session API: what a client sets, what it reads back, what is refused."""

from datetime import timedelta

import pytest

from scheduling.models import ScheduledMessage, Session

from ..factories import admin_action, as_seed, in_hours, post_schedule, set_status

WHEN = in_hours(1)


def schedule(api, url, **more):
    return post_schedule(api, url, to="919988066776", text="Soon or never", scheduledAt=as_seed(WHEN), **more)


def test_it_keeps_and_shows_a_messages_own_deadline(api, scheduled_url):
    response = schedule(api, scheduled_url, expiresAt=as_seed(WHEN + timedelta(minutes=10)))

    body = response.json()["scheduled"]
    assert response.status_code == 201
    assert body["expiresAt"] == as_seed(WHEN + timedelta(minutes=10))
    assert ScheduledMessage.objects.get(pk=body["id"]).expires_at == WHEN + timedelta(minutes=10)


def test_without_a_deadline_a_message_has_none(api, scheduled_url):
    body = schedule(api, scheduled_url).json()["scheduled"]

    assert "expiresAt" not in body


@pytest.mark.parametrize(
    ("expires", "error"),
    [
        (WHEN, "expiresAt: Must be after scheduledAt."),
        (WHEN - timedelta(minutes=1), "expiresAt: Must be after scheduledAt."),
        (WHEN + timedelta(days=31), "expiresAt: must be at most 30 days in the future."),
    ],
)
def test_it_refuses_a_deadline_outside_the_window(api, scheduled_url, expires, error):
    response = schedule(api, scheduled_url, expiresAt=as_seed(expires))

    assert response.status_code == 400
    assert response.json()["error"] == error
    assert not ScheduledMessage.objects.exists()


def test_the_sessions_max_lateness_gives_a_deadline(api, scheduled_url, new_session, settings):
    settings.DISPATCH_MAX_LATENESS = timedelta(hours=2)
    Session.objects.filter(pk=new_session.session.pk).update(max_lateness_seconds=300)

    body = schedule(api, scheduled_url).json()["scheduled"]

    assert body["expiresAt"] == as_seed(WHEN + timedelta(minutes=5))


def test_the_global_max_lateness_gives_a_deadline(api, scheduled_url, settings):
    settings.DISPATCH_MAX_LATENESS = timedelta(minutes=15)

    body = schedule(api, scheduled_url).json()["scheduled"]

    assert body["expiresAt"] == as_seed(WHEN + timedelta(minutes=15))


def test_a_reschedule_moves_a_deadline_from_the_max_lateness(api, scheduled_url, settings):
    settings.DISPATCH_MAX_LATENESS = timedelta(minutes=15)
    message_id = schedule(api, scheduled_url).json()["scheduled"]["id"]

    later = WHEN + timedelta(hours=1)
    body = api.patch(f"{scheduled_url}/{message_id}", {"scheduledAt": as_seed(later)}, format="json").json()

    assert body["scheduled"]["expiresAt"] == as_seed(later + timedelta(minutes=15))


def test_a_reschedule_keeps_the_clients_own_deadline_and_must_stay_before_it(api, scheduled_url):
    message_id = schedule(api, scheduled_url, expiresAt=as_seed(WHEN + timedelta(hours=2))).json()["scheduled"]["id"]
    url = f"{scheduled_url}/{message_id}"

    kept = api.patch(url, {"scheduledAt": as_seed(WHEN + timedelta(hours=1))}, format="json")
    too_late = api.patch(url, {"scheduledAt": as_seed(WHEN + timedelta(hours=3))}, format="json")
    both = api.patch(
        url,
        {"scheduledAt": as_seed(WHEN + timedelta(hours=3)), "expiresAt": as_seed(WHEN + timedelta(hours=4))},
        format="json",
    )

    assert kept.json()["scheduled"]["expiresAt"] == as_seed(WHEN + timedelta(hours=2))
    assert too_late.status_code == 400
    assert too_late.json()["error"] == "expiresAt: Must be after scheduledAt."
    assert both.status_code == 200
    assert both.json()["scheduled"]["expiresAt"] == as_seed(WHEN + timedelta(hours=4))


def test_it_lists_expired_messages(api, scheduled_url):
    expired = schedule(api, scheduled_url).json()["scheduled"]["id"]
    schedule(api, scheduled_url)
    set_status(expired, "expired")

    listed = api.get(scheduled_url, {"status": "expired"}).json()["scheduled"]

    assert [entry["id"] for entry in listed] == [expired]


def test_the_admin_will_not_reschedule_past_a_clients_deadline(operator, api, scheduled_url):
    message_id = schedule(api, scheduled_url, expiresAt=as_seed(WHEN + timedelta(hours=1))).json()["scheduled"]["id"]
    message = ScheduledMessage.objects.get(pk=message_id)

    page = admin_action(
        operator,
        "/admin/scheduling/scheduledmessage/",
        "reschedule",
        message,
        apply="1",
        scheduled_at=as_seed(WHEN + timedelta(hours=2)),
    )

    assert [str(m) for m in page.context["messages"]] == [
        f"{message_id}: Cannot reschedule the message to {as_seed(WHEN + timedelta(hours=2))}: it expires at "
        f"{as_seed(WHEN + timedelta(hours=1))}; give it a later expiresAt too"
    ]
    assert ScheduledMessage.objects.get(pk=message_id).scheduled_at == WHEN
