"""The operators' console: find messages, read their history, cancel, retry, reschedule or send them now; manage
sessions, their keys and webhooks."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.utils import timezone
from django.utils.html import escape

from scheduling import services
from scheduling.models import ApiKey, DeliveryStatus, MessageEvent, ScheduledMessage, Session, WebhookDelivery

from ..factories import admin_action, in_hours, key_client, schedule_via_services, set_status

MESSAGES = "/admin/scheduling/scheduledmessage/"
SESSIONS = "/admin/scheduling/session/"
KEYS = "/admin/scheduling/apikey/"
DELIVERIES = "/admin/scheduling/webhookdelivery/"
NO_INLINE_FORMS = {
    "api_keys-TOTAL_FORMS": "0",
    "api_keys-INITIAL_FORMS": "0",
    "api_keys-MIN_NUM_FORMS": "0",
    "api_keys-MAX_NUM_FORMS": "1000",
}


def shown_messages(response):
    return [str(message) for message in response.context["messages"]]


def listed(response):
    return [message.id for message in response.context["cl"].result_list]


def status_of(message):
    return ScheduledMessage.objects.get(pk=message.pk).status


# --- Access -----------------------------------------------------------------------------------


def test_it_lets_a_staff_superuser_log_in(db, client, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_superuser("boss", "boss@example.com", "correct horse battery staple")

    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "boss", "password": "correct horse battery staple", "next": "/admin/"},
        follow=True,
    )

    assert response.redirect_chain == [("/admin/", 302)]
    assert response.status_code == 200
    assert b"Scheduled messages" in response.content


def log_in(client, password, username="boss"):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password, "next": "/admin/"})


@pytest.fixture
def boss(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return User.objects.create_superuser("boss", "boss@example.com", "correct horse battery staple")


def test_it_locks_a_login_out_after_5_failures_even_for_the_right_password(boss, client):
    failures = [log_in(client, f"guess {n}").status_code for n in range(5)]

    locked = log_in(client, "correct horse battery staple")

    assert failures == [200, 200, 200, 200, 429]
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def test_it_lets_the_login_in_again_after_the_lockout_time(boss, client):
    for n in range(5):
        log_in(client, f"guess {n}")
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    response = log_in(client, "correct horse battery staple")

    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_it_locks_out_only_the_username_being_guessed(boss, client):
    User.objects.create_superuser("ops", "ops@example.com", "another long passphrase")
    for n in range(5):
        log_in(client, f"guess {n}")

    response = log_in(client, "another long passphrase", username="ops")

    assert response.status_code == 302


def test_it_forgets_failures_after_a_login_that_succeeds(boss, client):
    for n in range(4):
        log_in(client, f"guess {n}")
    log_in(client, "correct horse battery staple")
    client.logout()

    failures = [log_in(client, f"again {n}").status_code for n in range(4)]

    assert failures == [200, 200, 200, 200]


def test_it_sends_a_user_who_is_not_staff_to_the_login_page(db, client):
    client.force_login(User.objects.create_user("visitor", "visitor@example.com", None))

    response = client.get(MESSAGES)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={MESSAGES}"


def test_it_sends_an_anonymous_visitor_to_the_login_page(db, client):
    response = client.get(MESSAGES)

    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={MESSAGES}"


# --- Finding messages -------------------------------------------------------------------------


def test_it_filters_the_message_list_by_status(operator, new_session):
    pending = schedule_via_services(new_session.session)
    cancelled = services.message_cancel(message=schedule_via_services(new_session.session))

    response = operator.get(MESSAGES, {"status__exact": "cancelled"})

    assert listed(response) == [cancelled.id]
    assert cancelled.id in response.content.decode()
    assert pending.id not in response.content.decode()


def test_it_filters_the_message_list_by_session(operator, new_session):
    other = services.session_create(name="other").session
    mine, theirs = schedule_via_services(new_session.session), schedule_via_services(other)

    response = operator.get(MESSAGES, {"session__id__exact": str(other.pk)})

    assert listed(response) == [theirs.id]
    assert mine.id not in response.content.decode()


def test_it_finds_a_message_by_its_id(operator, new_session):
    wanted, _ = schedule_via_services(new_session.session), schedule_via_services(new_session.session)

    response = operator.get(MESSAGES, {"q": wanted.id})

    assert listed(response) == [wanted.id]


def test_it_finds_messages_by_recipient(operator, new_session):
    wanted = schedule_via_services(new_session.session, to="4915112345678")
    schedule_via_services(new_session.session, to="919988066776")

    response = operator.get(MESSAGES, {"q": "4915112345678"})

    assert listed(response) == [wanted.id]


def test_it_shows_scheduled_times_in_utc_with_z_in_the_list(operator, new_session):
    message = schedule_via_services(new_session.session)

    response = operator.get(MESSAGES)

    assert (
        message.scheduled_at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{message.scheduled_at.microsecond // 1000:03d}Z"
    ) in (response.content.decode())


# --- One message ------------------------------------------------------------------------------


def test_it_shows_the_history_on_the_message_page(operator, new_session):
    message = services.message_cancel(message=schedule_via_services(new_session.session))

    response = operator.get(f"{MESSAGES}{quote(message.pk)}/change/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Message events" in page
    assert "∅ → pending" in page
    assert "pending → cancelled" in page
    assert re.search(r'field-detail">\s*<p>scheduled</p>', page)
    assert re.search(r'field-detail">\s*<p>cancelled</p>', page)


def test_it_lets_nobody_edit_a_status_by_hand(operator, new_session):
    message = schedule_via_services(new_session.session)

    response = operator.get(f"{MESSAGES}{quote(message.pk)}/change/")

    assert 'name="status"' not in response.content.decode()


def test_it_refuses_a_save_posted_to_the_read_only_message_page(operator, new_session):
    message = schedule_via_services(new_session.session)

    event = MessageEvent.objects.get(message=message)
    form = {
        "status": "sent",
        "_save": "Save",
        "events-TOTAL_FORMS": "1",
        "events-INITIAL_FORMS": "1",
        "events-MIN_NUM_FORMS": "0",
        "events-MAX_NUM_FORMS": "0",
        "events-0-id": str(event.pk),
        "events-0-message": message.pk,
    }

    response = operator.post(f"{MESSAGES}{quote(message.pk)}/change/", form)

    assert response.status_code == 403
    assert status_of(message) == "pending"


def test_it_offers_no_way_to_add_a_message_by_hand(operator):
    response = operator.get(f"{MESSAGES}add/")

    assert response.status_code == 403


def test_it_explains_who_the_actors_of_the_history_are(operator, new_session):
    message = schedule_via_services(new_session.session)

    response = operator.get(f"{MESSAGES}{quote(message.pk)}/change/")

    assert 'title="api, admin:, worker:, pump"' not in response.content.decode()


# --- Actions on messages ----------------------------------------------------------------------


def test_it_cancels_a_pending_message_with_the_cancel_action(operator, new_session):
    message = schedule_via_services(new_session.session)

    response = admin_action(operator, MESSAGES, "cancel", message)

    assert status_of(message) == "cancelled"
    assert shown_messages(response) == ["1 message(s) cancelled."]


def test_it_records_who_cancelled_in_the_admin(operator, new_session):
    message = schedule_via_services(new_session.session)

    admin_action(operator, MESSAGES, "cancel", message)

    assert MessageEvent.objects.filter(message=message).latest("id").actor == "admin:boss"


def test_it_refuses_to_cancel_a_sent_message_and_says_why(operator, new_session):
    message = schedule_via_services(new_session.session)
    set_status(message.pk, "sent")

    response = admin_action(operator, MESSAGES, "cancel", message)

    assert status_of(message) == "sent"
    assert shown_messages(response) == [
        f"{message.id}: Cannot cancel a message with status 'sent'; only pending messages can be cancelled"
    ]


def test_it_puts_a_failed_message_back_to_pending_with_retry(operator, new_session):
    message = schedule_via_services(new_session.session)
    set_status(message.pk, "failed", attempts=6, last_error="Provider down")

    response = admin_action(operator, MESSAGES, "retry", message)

    retried = ScheduledMessage.objects.get(pk=message.pk)
    assert (retried.status, retried.attempts, retried.last_error) == ("pending", 0, "")
    assert shown_messages(response) == ["1 message(s) queued for retry."]


def test_it_refuses_to_retry_a_pending_message(operator, new_session):
    message = schedule_via_services(new_session.session)

    response = admin_action(operator, MESSAGES, "retry", message)

    assert status_of(message) == "pending"
    assert shown_messages(response) == [
        f"{message.id}: Cannot retry a message with status 'pending'; only failed messages can be retried"
    ]


@pytest.mark.parametrize(
    ("action", "status", "refusal"),
    [
        ("cancel", "failed", "Cannot cancel a message with status 'failed'; only pending messages can be cancelled"),
        ("cancel", "sending", "Cannot cancel a message with status 'sending'; only pending messages can be cancelled"),
        (
            "send_now",
            "sending",
            "Cannot send now a message with status 'sending'; only pending messages can be sent now",
        ),
        ("send_now", "sent", "Cannot send now a message with status 'sent'; only pending messages can be sent now"),
        (
            "send_now",
            "cancelled",
            "Cannot send now a message with status 'cancelled'; only pending messages can be sent now",
        ),
        ("send_now", "failed", "Cannot send now a message with status 'failed'; only pending messages can be sent now"),
        ("retry", "sending", "Cannot retry a message with status 'sending'; only failed messages can be retried"),
        ("retry", "sent", "Cannot retry a message with status 'sent'; only failed messages can be retried"),
        ("retry", "cancelled", "Cannot retry a message with status 'cancelled'; only failed messages can be retried"),
    ],
)
def test_it_refuses_an_action_the_status_does_not_allow_naming_the_message_and_why(
    operator, new_session, action, status, refusal
):
    message = schedule_via_services(new_session.session)
    set_status(message.pk, status)

    response = admin_action(operator, MESSAGES, action, message)

    assert (status_of(message), shown_messages(response)) == (status, [f"{message.id}: {refusal}"])


def test_it_acts_on_the_messages_it_may_and_names_each_one_it_refuses(operator, new_session):
    pending, sent, failed = (schedule_via_services(new_session.session) for _ in range(3))
    set_status(sent.pk, "sent")
    set_status(failed.pk, "failed")

    response = admin_action(operator, MESSAGES, "send_now", pending, sent, failed)

    assert sorted(shown_messages(response)) == sorted(
        [
            "1 message(s) due now.",
            f"{sent.id}: Cannot send now a message with status 'sent'; only pending messages can be sent now",
            f"{failed.id}: Cannot send now a message with status 'failed'; only pending messages can be sent now",
        ]
    )
    assert [status_of(m) for m in (pending, sent, failed)] == ["pending", "sent", "failed"]


def test_it_reschedules_from_the_admin(operator, new_session):
    message = schedule_via_services(new_session.session)
    new_time = in_hours(5)

    form = admin_action(operator, MESSAGES, "reschedule", message)
    done = admin_action(operator, MESSAGES, "reschedule", message, apply="1", scheduled_at=new_time.isoformat())

    message.refresh_from_db()
    assert "New time" in form.content.decode()
    assert "1 message(s) rescheduled." in done.content.decode()
    assert message.scheduled_at == new_time
    assert message.events.last().actor == "admin:boss"


def test_it_refuses_a_reschedule_into_the_past(operator, new_session):
    message = schedule_via_services(new_session.session)

    response = admin_action(operator, MESSAGES, "reschedule", message, apply="1", scheduled_at="2020-01-01T00:00")

    assert "must not be in the past." in response.content.decode()
    assert ScheduledMessage.objects.get(pk=message.pk).version == message.version


def test_it_sends_now_from_the_admin(operator, new_session):
    message = schedule_via_services(new_session.session)

    admin_action(operator, MESSAGES, "send_now", message)

    message.refresh_from_db()
    assert message.due_at <= datetime.now(UTC)
    assert message.scheduled_at > datetime.now(UTC)


# --- Sessions and keys ------------------------------------------------------------------------


def test_it_revokes_keys_with_the_revoke_action(operator, new_session):
    key = ApiKey.objects.get(session=new_session.session)

    response = admin_action(operator, KEYS, "revoke", key)

    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert shown_messages(response) == ["Revoked 1 API keys."]


def test_it_refuses_a_key_revoked_in_the_admin_at_the_api(operator, new_session, scheduled_url):
    admin_action(operator, KEYS, "revoke", ApiKey.objects.get(session=new_session.session))

    response = key_client(new_session.api_key).get(scheduled_url)

    assert response.status_code == 401


def test_it_shows_the_key_of_a_session_added_in_the_admin_once(operator):
    response = operator.post(
        f"{SESSIONS}add/",
        {
            "name": "shop",
            "webhook_url": "https://example.com/hook",
            "transport": "default",
            "active": "on",
            **NO_INLINE_FORMS,
        },
        follow=True,
    )

    session = Session.objects.get()
    notice = next(message for message in shown_messages(response) if "wask_" in message)
    assert notice.startswith(f"Session {session.pk} created.")
    assert "whsec_" in notice


def test_it_shows_a_key_that_works_at_the_api(operator):
    response = operator.post(
        f"{SESSIONS}add/",
        {"name": "shop", "webhook_url": "", "transport": "default", "active": "on", **NO_INLINE_FORMS},
        follow=True,
    )

    session = Session.objects.get()
    key = re.search(r"wask_[A-Za-z0-9_-]+", " ".join(shown_messages(response))).group()
    assert key_client(key).get(f"/sessions/{session.pk}/scheduled").status_code == 200


def test_it_does_not_show_the_key_again_on_the_session_page(operator):
    added = operator.post(
        f"{SESSIONS}add/",
        {"name": "shop", "webhook_url": "", "transport": "default", "active": "on", **NO_INLINE_FORMS},
        follow=True,
    )
    key = re.search(r"wask_[A-Za-z0-9_-]+", " ".join(shown_messages(added))).group()

    response = operator.get(f"{SESSIONS}{Session.objects.get().pk}/change/")

    assert key not in response.content.decode()


def test_it_creates_an_inactive_session_when_active_is_unticked(operator):
    operator.post(f"{SESSIONS}add/", {"name": "shop", "webhook_url": "", "transport": "default", **NO_INLINE_FORMS})

    assert Session.objects.get().active is False


def test_it_issues_a_new_working_key_from_the_session_list(operator, new_session, scheduled_url):
    response = admin_action(operator, SESSIONS, "issue_api_key", new_session.session)

    key = re.search(r"wask_[A-Za-z0-9_-]+", " ".join(shown_messages(response))).group()
    assert key != new_session.api_key
    assert key_client(key).get(scheduled_url).status_code == 200


def test_it_rotates_a_sessions_api_key_from_the_admin(operator, new_session, api, scheduled_url):
    response = admin_action(operator, SESSIONS, "rotate_api_key", new_session.session)

    new_key = re.search(r"wask_[\w-]+", response.content.decode()).group(0)
    assert api.get(scheduled_url).status_code == 401
    api.credentials(HTTP_X_API_KEY=new_key)
    assert api.get(scheduled_url).status_code == 200
    assert ApiKey.objects.filter(session=new_session.session, revoked_at__isnull=True).count() == 1


def test_it_rotates_the_webhook_secret_from_the_admin(operator, new_session):
    old = new_session.session.webhook_secret

    response = admin_action(operator, SESSIONS, "rotate_webhook_secret", new_session.session)

    new = Session.objects.get(pk=new_session.session.pk).webhook_secret
    assert new != old
    assert new in response.content.decode()


def test_it_redelivers_a_webhook_from_the_admin(operator, new_session):
    Session.objects.filter(pk=new_session.session.pk).update(webhook_url="https://example.com/hooks")
    message = schedule_via_services(Session.objects.get(pk=new_session.session.pk))
    services.message_cancel(message=message)
    delivery = WebhookDelivery.objects.get(message=message)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.EXHAUSTED, attempts=8)

    response = admin_action(operator, DELIVERIES, "redeliver", delivery)

    delivery.refresh_from_db()
    assert "1 delivery(ies) queued again." in response.content.decode()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)


def test_it_resumes_webhooks_stopped_by_a_410_from_the_admin(operator, new_session):
    Session.objects.filter(pk=new_session.session.pk).update(webhook_disabled_at=datetime.now(UTC))

    admin_action(operator, SESSIONS, "enable_webhooks", new_session.session)

    assert Session.objects.get(pk=new_session.session.pk).webhook_disabled_at is None


# --- Secrets shown once, whatever the session is called ------------------------------------------

HOSTILE_NAMES = ["<img src=x onerror=alert(1)>", "{evil}", "{api_key}", "{0} %s {{}}"]


def only_notice(response):
    [notice] = shown_messages(response)
    return notice


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_it_rotates_the_key_of_a_session_whatever_its_name_and_shows_the_name_as_text(operator, name):
    created = services.session_create(name=name)

    response = admin_action(operator, SESSIONS, "rotate_api_key", created.session)

    page = response.content.decode()
    key = re.search(r"wask_[A-Za-z0-9_-]+", only_notice(response)).group()
    assert response.status_code == 200
    assert only_notice(response) == (
        f"New key for {escape(name)}; its older keys no longer work. Copy now: shown only this once."
        f"<br>api key: <code>{key}</code>"
    )
    assert "<img src=x" not in page
    assert key_client(key).get(f"/sessions/{created.session.pk}/scheduled").status_code == 200
    assert key_client(created.api_key).get(f"/sessions/{created.session.pk}/scheduled").status_code == 401


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_it_rotates_the_webhook_secret_of_a_session_whatever_its_name_and_shows_it_once(operator, name):
    created = services.session_create(name=name)

    response = admin_action(operator, SESSIONS, "rotate_webhook_secret", created.session)

    secret = Session.objects.get(pk=created.session.pk).webhook_secret
    assert secret != created.session.webhook_secret
    assert only_notice(response) == (
        f"New webhook secret for {escape(name)}. Copy now: shown only this once.<br>"
        f"webhook secret: <code>{secret}</code>"
    )
    assert "<img src=x" not in response.content.decode()


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_it_issues_an_extra_key_to_a_session_whatever_its_name(operator, name):
    created = services.session_create(name=name)

    response = admin_action(operator, SESSIONS, "issue_api_key", created.session)

    key = re.search(r"wask_[A-Za-z0-9_-]+", only_notice(response)).group()
    assert (
        only_notice(response)
        == f"New key for {escape(name)}. Copy now: shown only this once.<br>api key: <code>{key}</code>"
    )
    assert key_client(key).get(f"/sessions/{created.session.pk}/scheduled").status_code == 200


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_it_shows_the_credentials_of_a_session_added_with_any_name(operator, name):
    response = operator.post(
        f"{SESSIONS}add/",
        {"name": name, "webhook_url": "", "transport": "default", "active": "on", **NO_INLINE_FORMS},
        follow=True,
    )

    session = Session.objects.get()
    notice = next(message for message in shown_messages(response) if "wask_" in message)
    key = re.search(r"wask_[A-Za-z0-9_-]+", notice).group()
    assert session.name == name
    assert "<img src=x" not in response.content.decode()
    assert key_client(key).get(f"/sessions/{session.pk}/scheduled").status_code == 200


def test_it_refuses_a_webhook_url_that_is_internal_however_it_is_read(operator, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False

    response = operator.post(
        f"{SESSIONS}add/",
        {
            "name": "shop",
            "webhook_url": "http://127.0.0.1:3199\\@example.com/hooks",
            "transport": "default",
            "active": "on",
            **NO_INLINE_FORMS,
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "webhook_url": ["must not contain backslashes, spaces or control characters."]
    }
    assert Session.objects.count() == 0


def test_it_sets_a_sessions_send_rate_and_refuses_one_it_cannot_read(operator, new_session):
    form = {"name": "acme", "webhook_url": "", "transport": "default", "active": "on", **NO_INLINE_FORMS}
    change = f"{SESSIONS}{new_session.session.pk}/change/"

    refused = operator.post(change, {**form, "send_rate": "fast"})
    assert "is not a rate: write a positive number per s, min or h, like 20/s or 30/min" in refused.content.decode()
    assert Session.objects.get(pk=new_session.session.pk).send_rate == ""

    operator.post(change, {**form, "send_rate": "30/min"})
    assert Session.objects.get(pk=new_session.session.pk).send_rate == "30/min"


def test_it_sets_a_sessions_api_rate_limit_and_max_lateness(operator, new_session):
    form = {"name": "acme", "webhook_url": "", "transport": "default", "active": "on", **NO_INLINE_FORMS}
    change = f"{SESSIONS}{new_session.session.pk}/change/"

    refused = operator.post(change, {**form, "api_rate_limit": "2.5/s", "max_lateness_seconds": "0"})
    assert refused.context["adminform"].form.errors == {
        "api_rate_limit": ["'2.5/s' is not a request limit: write a whole number per s, min or h, like 100/min, or 0"],
        "max_lateness_seconds": ["Ensure this value is greater than or equal to 1."],
    }

    operator.post(change, {**form, "api_rate_limit": "0", "max_lateness_seconds": "300"})
    session = Session.objects.get(pk=new_session.session.pk)
    assert (session.api_rate_limit, session.max_lateness_seconds) == ("0", 300)
