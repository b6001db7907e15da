"""What operators see of the running service: metrics and JSON logs from the worker, a session paused in the
admin, the Procfile's web process and its access log, and `make run`."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from django.test import Client

from scheduling import handover
from scheduling.models import MessageStatus, ScheduledMessage, Session
from scheduling.services.handovers import tick_end

from ..factories import admin_action, in_seconds, schedule_via_services
from ..servers import ROOT, free_port, procfile_commands
from ..support import Reply

SESSIONS = "/admin/scheduling/session/"

# --- Metrics and logs of the worker ---------------------------------------------------------------------


def sample(text, name, **labels):
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))  # exposition sorts labels
    pattern = rf"^{re.escape(name)}{{{re.escape(wanted)}}} (\S+)$" if labels else rf"^{re.escape(name)} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_its_counters_move_when_messages_are_sent_and_fail(dispatch, provider, new_session, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    scrape = lambda: Client(REMOTE_ADDR="127.0.0.1").get("/metrics").content.decode()  # noqa: E731
    before = scrape()
    provider.script("refused", Reply(400, {"error": "nope"}))

    ok = schedule_via_services(new_session.session, in_seconds(0), text="fine")
    bad = schedule_via_services(new_session.session, in_seconds(0), text="refused")
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
    message = schedule_via_services(new_session.session, in_seconds(0), text="logged")
    deadline = time.time() + 10
    line = None
    while line is None and time.time() < deadline:
        line = next(
            (
                entry
                for entry in map(parse_json, list(dispatch.worker.lines))
                if entry and entry.get("message") == "message sent" and entry.get("message_id") == message.id
            ),
            None,
        )
        time.sleep(0.05)

    assert line["session_id"] == str(new_session.session.id)
    assert line["task_id"].startswith(handover.due_task_id(tick_end(message.due_at)))  # the task of its tick
    assert line["level"] == "INFO"


def parse_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


# --- A session paused in the admin -------------------------------------------------------------------


def test_it_pauses_and_resumes_a_sessions_sending(dispatch, operator, provider, new_session):
    admin_action(operator, SESSIONS, "pause", new_session.session)
    message = schedule_via_services(new_session.session, in_seconds(0.5), text="paused")

    time.sleep(2)
    held = ScheduledMessage.objects.get(pk=message.pk).status
    admin_action(operator, SESSIONS, "resume", new_session.session)
    received = provider.wait_for(message.pk, timeout=10)

    assert held == MessageStatus.PENDING
    assert len(received) == 1
    assert Session.objects.get(pk=new_session.session.pk).paused_at is None


# --- The web process as the Procfile runs it -------------------------------------------------------------


def procfile_server(service_env, **env):
    """The Procfile's web process, from its gunicorn command on (collectstatic is not needed here)."""
    port = free_port()
    server = subprocess.Popen(
        procfile_commands()["web"].split("&& ", 1)[1],
        shell=True,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={
            **service_env,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PORT": str(port),
            "WEB_CONCURRENCY": "1",
            "ALLOWED_HOSTS": "127.0.0.1",
            **env,
        },
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
        key_as_user = requests.get(
            f"{url}/sessions/{new_session.session.id}/scheduled", auth=(new_session.api_key, ""), timeout=5
        )
        omni_user = requests.get(
            f"{url}/v1/omnimessage/sched_x/status", auth=(new_session.api_username, "wrong"), timeout=5
        )
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
        ["make", "run", f"PORT={port}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VAR_DIR": str(tmp_path / "var")},
    )
    lines = []
    threading.Thread(target=lambda: lines.extend(quick_start.stdout), daemon=True).start()
    try:
        deadline = time.time() + 120
        while (
            not any("Listening at" in line for line in lines) and time.time() < deadline and quick_start.poll() is None
        ):
            time.sleep(0.2)
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        os.killpg(quick_start.pid, signal.SIGTERM)
        quick_start.wait(timeout=30)

    assert any(f"Listening at: http://127.0.0.1:{port} " in line for line in lines), "".join(lines[-30:])
    assert health.status_code == 200
