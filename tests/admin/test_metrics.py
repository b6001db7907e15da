"""/metrics: closed until an operator opens it, to a token or to networks; what it shows of pacing."""

import subprocess
import sys
from datetime import timedelta

from django.test import Client
from django.utils import timezone

from scheduling import metrics, services
from scheduling.models import ScheduledMessage

from ..servers import ROOT


def test_it_keeps_metrics_closed_even_to_loopback_until_they_are_opened(web):
    response = web.get("/metrics")

    assert response.status_code == 403
    assert response.json() == {
        "success": False,
        "error": "Metrics are closed: set METRICS_TOKEN (and scrape with Authorization: Bearer)"
        " or METRICS_ALLOWED_NETWORKS",
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

    started = subprocess.run(
        [sys.executable, "-c", "import project.settings"], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert started.returncode == 1
    assert (
        "ImproperlyConfigured: Environment variable METRICS_ALLOWED_NETWORKS is invalid: "
        "'loopback' does not appear to be an IPv4 or IPv6 network"
    ) in started.stderr


def test_it_opens_metrics_to_the_token(db, settings):
    settings.METRICS_TOKEN = "scrape-me"
    client = Client(REMOTE_ADDR="203.0.113.9")

    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403


def test_it_shows_how_many_messages_wait_for_a_pacing_slot_and_how_long_they_were_made_to_wait(db, settings):
    settings.METRICS_TOKEN = "scrape-me"
    session = services.session_create(name="paced", send_rate="1/min").session
    slot = timezone.now() + timedelta(minutes=1)
    ScheduledMessage.objects.create(
        session=session, to="15550001234", text="waits", scheduled_at=slot, due_at=slot, paced_for=slot
    )
    metrics._client().delete(metrics.PACING, metrics.PACING_SUM)  # the fleet's counters, from zero
    metrics.count_paced([0.3, 42.0])

    page = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").content.decode()

    assert "scheduled_messages_paced 1.0" in page
    assert 'message_pacing_delay_seconds_bucket{le="0.5"} 1.0' in page
    assert 'message_pacing_delay_seconds_bucket{le="60.0"} 2.0' in page
    assert "message_pacing_delay_seconds_count 2.0" in page
    assert "message_pacing_delay_seconds_sum 42.3" in page
