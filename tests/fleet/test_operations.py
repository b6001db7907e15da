"""What operators see and do: health, readiness, metrics, JSON logs, the admin dashboard and actions."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client

from scheduling import services
from scheduling.models import ApiKey, MessageStatus, ScheduledMessage, Session

from .support import ROOT, Reply

LOCAL = {"REMOTE_ADDR": "127.0.0.1"}


@pytest.fixture
def web(db):
    return Client(**LOCAL)


@pytest.fixture
def staff(db):
    user = User.objects.create_user("ops", password="pw-for-tests", is_staff=True, is_superuser=True)
    client = Client(**LOCAL)
    client.force_login(user)
    return client


def schedule(session, seconds=3600, to="919988066776", text="Hello"):
    return services.message_schedule(
        session=session, scheduled_at=datetime.now(UTC) + timedelta(seconds=seconds), to=to, text=text
    )


# --- Health and readiness ------------------------------------------------------------------------------


def test_it_reports_liveness(web):
    response = web.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_it_is_ready_with_database_broker_and_a_fresh_pump(web):
    services.pump_heartbeat(name="host:1")

    response = web.get("/readyz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["checks"]["database"] == {"ok": True}
    assert response.json()["checks"]["broker"] == {"ok": True}
    assert response.json()["checks"]["pump"]["ok"] is True


def test_it_is_not_ready_without_a_pump(web):
    response = web.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["pump"] == {"ok": False, "error": "no pump has ever run"}


def test_it_is_not_ready_when_the_broker_is_down(web, settings):
    services.pump_heartbeat(name="host:1")
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # a closed port

    response = web.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
    assert response.json()["checks"]["database"] == {"ok": True}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_it_is_not_ready_when_the_database_is_down(service_env):
    port = free_port()
    env = {**service_env, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nowhere", "ALLOWED_HOSTS": "localhost,127.0.0.1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "project.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        response = None
        for _ in range(100):
            try:
                response = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        live = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=10)

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {"ok": False, "error": "OperationalError"}
    assert live.status_code == 200


# --- Metrics -------------------------------------------------------------------------------------------


def test_it_keeps_metrics_closed_even_to_loopback_until_they_are_opened(web):
    response = web.get("/metrics")

    assert response.status_code == 403
    assert response.json() == {
        "success": False,
        "error": "Metrics are closed: set METRICS_TOKEN (and scrape with Authorization: Bearer) or METRICS_ALLOWED_NETWORKS",
    }


def test_it_opens_metrics_to_the_networks_set_and_keeps_them_from_others(db, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]

    inside = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
    outside = Client(REMOTE_ADDR="203.0.113.9").get("/metrics")

    assert inside.status_code == 200
    assert b"scheduled_messages" in inside.content
    assert outside.status_code == 403
    assert outside.json() == {"success": False, "error": "Metrics are not open to this client"}


def test_it_refuses_to_start_with_a_network_that_is_not_one(service_env):
    env = {**service_env, "METRICS_ALLOWED_NETWORKS": "127.0.0.0/8,loopback"}

    started = subprocess.run([sys.executable, "-c", "import project.settings"], cwd=ROOT, env=env, capture_output=True, text=True)

    assert started.returncode == 1
    assert ("ImproperlyConfigured: Environment variable METRICS_ALLOWED_NETWORKS is invalid: "
            "'loopback' does not appear to be an IPv4 or IPv6 network") in started.stderr


def test_it_opens_metrics_to_the_token(db, settings):
    settings.METRICS_TOKEN = "scrape-me"
    client = Client(REMOTE_ADDR="203.0.113.9")

    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403


def sample(text, name, **labels):
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))  # exposition sorts labels
    pattern = rf"^{re.escape(name)}{{{re.escape(wanted)}}} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_its_counters_move_when_messages_are_sent_and_fail(dispatch, provider, new_session, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    scrape = lambda: Client(**LOCAL).get("/metrics").content.decode()  # noqa: E731
    before = scrape()
    provider.script("refused", Reply(400, {"error": "nope"}))

    ok = schedule(new_session.session, seconds=0, text="fine")
    bad = schedule(new_session.session, seconds=0, text="refused")
    deadline = time.time() + 10
    while ScheduledMessage.objects.filter(pk__in=[ok.pk, bad.pk], status__in=["sent", "failed"]).count() < 2:
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # the worker counts an outcome just after committing it
    after = scrape()

    def moved(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert moved("message_sends_total", outcome="sent", transport="default") == 1
    assert moved("message_sends_total", outcome="failed", transport="default") == 1
    assert moved("message_lateness_seconds_count") == 1
    assert moved("scheduled_messages", status="sent") == 1
    assert moved("scheduled_messages", status="failed") == 1


def test_it_logs_dispatch_as_json_with_message_session_and_task_ids(dispatch, provider, new_session):
    message = schedule(new_session.session, seconds=0, text="logged")
    deadline = time.time() + 10
    line = None
    while line is None and time.time() < deadline:
        line = next((entry for entry in map(parse_json, list(dispatch.worker.lines))
                     if entry and entry.get("message") == "message sent" and entry.get("message_id") == message.id), None)
        time.sleep(0.05)

    assert line["session_id"] == str(new_session.session.id)
    assert line["task_id"] == f"send-{message.id}-v1"
    assert line["level"] == "INFO"


def parse_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


# --- The admin -------------------------------------------------------------------------------------------


def test_it_shows_the_dashboard_per_session(staff, new_session):
    session = new_session.session
    schedule(session, seconds=600)
    late = schedule(session, seconds=3600)
    ScheduledMessage.objects.filter(pk=late.pk).update(due_at=datetime.now(UTC) - timedelta(minutes=5))
    failed = schedule(session, seconds=7200)
    ScheduledMessage.objects.filter(pk=failed.pk).update(status=MessageStatus.FAILED)

    response = staff.get("/admin/dashboard/")

    page = response.content.decode()
    row = re.search(r"<tr>\s*<td><a [^>]*>acme</a>.*?</tr>", page, re.DOTALL).group(0)
    cells = re.findall(r"<td>(?:<strong[^>]*>)?(\d+)", row)
    assert response.status_code == 200
    # pending, sending, sent, cancelled, failed, due next hour, late, failed in the last day
    assert cells == ["2", "0", "0", "0", "1", "1", "1", "1"]


def test_it_refuses_the_dashboard_to_non_staff(db):
    client = Client(**LOCAL)
    client.force_login(User.objects.create_user("visitor", password="pw-for-tests"))

    response = client.get("/admin/dashboard/")

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_it_links_the_dashboard_from_the_admin_index(staff):
    assert 'href="/admin/dashboard/"' in staff.get("/admin/").content.decode()


def run_action(client, model, action, pks, **extra):
    return client.post(f"/admin/scheduling/{model}/", {"action": action, "_selected_action": pks, **extra}, follow=True)


def test_it_reschedules_from_the_admin(staff, new_session):
    message = schedule(new_session.session)
    new_time = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)

    form = run_action(staff, "scheduledmessage", "reschedule", [message.pk])
    done = run_action(staff, "scheduledmessage", "reschedule", [message.pk], apply="1", scheduled_at=new_time.isoformat())

    message.refresh_from_db()
    assert "New time" in form.content.decode()
    assert "1 message(s) rescheduled." in done.content.decode()
    assert message.scheduled_at == new_time
    assert message.events.last().actor == "admin:ops"


def test_it_refuses_a_reschedule_into_the_past(staff, new_session):
    message = schedule(new_session.session)

    response = run_action(staff, "scheduledmessage", "reschedule", [message.pk], apply="1", scheduled_at="2020-01-01T00:00")

    assert "must not be in the past." in response.content.decode()
    assert ScheduledMessage.objects.get(pk=message.pk).version == message.version


def test_it_sends_now_from_the_admin(staff, new_session):
    message = schedule(new_session.session)

    run_action(staff, "scheduledmessage", "send_now", [message.pk])

    message.refresh_from_db()
    assert message.due_at <= datetime.now(UTC)
    assert message.scheduled_at > datetime.now(UTC)


def test_it_rotates_a_sessions_api_key_from_the_admin(staff, new_session, api, scheduled_url):
    response = run_action(staff, "session", "rotate_api_key", [new_session.session.pk])

    new_key = re.search(r"wask_[\w-]+", response.content.decode()).group(0)
    assert api.get(scheduled_url).status_code == 401
    api.credentials(HTTP_X_API_KEY=new_key)
    assert api.get(scheduled_url).status_code == 200
    assert ApiKey.objects.filter(session=new_session.session, revoked_at__isnull=True).count() == 1


def test_it_rotates_the_webhook_secret_from_the_admin(staff, new_session):
    old = new_session.session.webhook_secret

    response = run_action(staff, "session", "rotate_webhook_secret", [new_session.session.pk])

    new = Session.objects.get(pk=new_session.session.pk).webhook_secret
    assert new != old
    assert new in response.content.decode()


def test_it_pauses_and_resumes_a_sessions_sending(dispatch, staff, provider, new_session):
    run_action(staff, "session", "pause", [new_session.session.pk])
    message = schedule(new_session.session, seconds=0.5, text="paused")

    time.sleep(2)
    held = ScheduledMessage.objects.get(pk=message.pk).status
    run_action(staff, "session", "resume", [new_session.session.pk])
    received = provider.wait_for(message.pk, timeout=10)

    assert held == MessageStatus.PENDING
    assert len(received) == 1
    assert Session.objects.get(pk=new_session.session.pk).paused_at is None


def test_it_redelivers_a_webhook_from_the_admin(staff, new_session):
    from scheduling.models import DeliveryStatus, WebhookDelivery

    Session.objects.filter(pk=new_session.session.pk).update(webhook_url="https://example.com/hooks")
    message = schedule(Session.objects.get(pk=new_session.session.pk))
    services.message_cancel(message=message)
    delivery = WebhookDelivery.objects.get(message=message)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.EXHAUSTED, attempts=8)

    response = run_action(staff, "webhookdelivery", "redeliver", [delivery.pk])

    delivery.refresh_from_db()
    assert "1 delivery(ies) queued again." in response.content.decode()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)


def test_it_resumes_webhooks_stopped_by_a_410_from_the_admin(staff, new_session):
    Session.objects.filter(pk=new_session.session.pk).update(webhook_disabled_at=datetime.now(UTC))

    run_action(staff, "session", "enable_webhooks", [new_session.session.pk])

    assert Session.objects.get(pk=new_session.session.pk).webhook_disabled_at is None


# --- The web process as the Procfile runs it -------------------------------------------------------------


def procfile_server(service_env, **env):
    """The Procfile's web process, from its gunicorn command on (collectstatic is not needed here)."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    port = free_port()
    server = subprocess.Popen(
        line.split("&& ", 1)[1], shell=True, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env={**service_env, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                                     "PORT": str(port), "WEB_CONCURRENCY": "1", "ALLOWED_HOSTS": "127.0.0.1", **env},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(f"{url}/healthz", timeout=5)
            return server, url
        except requests.ConnectionError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the web process did not start:\n" + server.communicate()[0])


def stopped(server):
    os.killpg(server.pid, signal.SIGTERM)
    return server.communicate(timeout=15)[0]


def test_its_access_log_names_no_api_key_or_username(service_env, new_session):
    server, url = procfile_server(service_env)
    try:
        key_as_user = requests.get(f"{url}/sessions/{new_session.session.id}/scheduled", auth=(new_session.api_key, ""), timeout=5)
        omni_user = requests.get(f"{url}/v1/omnimessage/sched_x/status", auth=(new_session.api_username, "wrong"), timeout=5)
    finally:
        log = stopped(server)

    assert (key_as_user.status_code, omni_user.status_code) == (401, 401)
    assert f'"GET /sessions/{new_session.session.id}/scheduled HTTP/1.1" 401' in log
    assert '"GET /v1/omnimessage/sched_x/status HTTP/1.1" 401' in log
    assert new_session.api_key not in log
    assert new_session.api_key[:12] not in log
    assert new_session.api_username not in log


def test_make_run_serves_this_machine_only(tmp_path):
    """The quick start, as a new user runs it: zero configuration, and not reachable from the network."""
    port = free_port()
    quick_start = subprocess.Popen(
        ["make", "run", f"PORT={port}"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VAR_DIR": str(tmp_path / "var")},
    )
    lines = []
    threading.Thread(target=lambda: lines.extend(quick_start.stdout), daemon=True).start()
    try:
        deadline = time.time() + 120
        while not any("Listening at" in line for line in lines) and time.time() < deadline and quick_start.poll() is None:
            time.sleep(0.2)
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        os.killpg(quick_start.pid, signal.SIGTERM)
        quick_start.wait(timeout=30)

    assert any(f"Listening at: http://127.0.0.1:{port} " in line for line in lines), "".join(lines[-30:])
    assert health.status_code == 200
